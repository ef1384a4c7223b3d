"""What to export and where: options, file names and their checks (no TensorFlow, so the CLI checks flags first)."""

from __future__ import annotations

import dataclasses
import os

FORMATS = ("saved_model", "tflite")
INT8_MODES = ("auto", "full", "dynamic")
MIN_SIDE = 16  # smaller inputs cannot be mirror-padded to the stride


class ExportError(ValueError):
    """An export that cannot be written or that fails its parity checks (one-line message)."""


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """What to export, where, and how to check it."""

    output_dir: str = "export"
    model_name: str = "arbitrary_style"
    version: int = 1
    formats: tuple[str, ...] = FORMATS
    overwrite: bool = False
    content_size: int = 384  # TFLite transfer input (square)
    style_size: int = 256  # TFLite prediction input (square)
    int8: str = "auto"  # auto: full-integer if within IMAGE_BOUNDS['int8'], else dynamic-range
    calibration_samples: int = 16
    parity_pairs: int = 3
    latency_runs: int = 3
    threads: int = 2


@dataclasses.dataclass(frozen=True)
class TFLiteVariant:
    """One TFLite file: which half of the network, its quantization, and whether its input is resizable."""

    part: str  # "prediction" or "transfer"
    quantization: str  # "fp16" or "int8"
    dynamic: bool = False

    def filename(self, options: ExportOptions) -> str:
        """File name, following the Android example's naming."""
        suffix = "_dynamic" if self.dynamic else ""
        return f"{options.model_name}_{self.quantization}_{self.part}{suffix}_{options.version}.tflite"


COMBINED_SIGNATURES = ("prediction", "transfer")
TFLITE_VARIANTS = (
    TFLiteVariant("prediction", "fp16"), TFLiteVariant("transfer", "fp16"),
    TFLiteVariant("prediction", "int8"), TFLiteVariant("transfer", "int8"),
    TFLiteVariant("prediction", "fp16", dynamic=True), TFLiteVariant("transfer", "fp16", dynamic=True),
)


def combined_filename(options: ExportOptions, quantization: str) -> str:
    """File name of the two-signature model."""
    return f"{options.model_name}_{quantization}_combined_{options.version}.tflite"


def saved_model_dir(options: ExportOptions) -> str:
    """<output_dir>/<model_name>/<version> (TF Serving's layout)."""
    return os.path.join(options.output_dir, options.model_name, str(options.version))


def tflite_dir(options: ExportOptions) -> str:
    """<output_dir>/tflite."""
    return os.path.join(options.output_dir, "tflite")


def planned_outputs(options: ExportOptions) -> list[str]:
    """Every path the export will write."""
    paths = []
    if "saved_model" in options.formats:
        paths.append(saved_model_dir(options))
    if "tflite" in options.formats:
        paths += [os.path.join(tflite_dir(options), v.filename(options)) for v in TFLITE_VARIANTS]
        paths += [os.path.join(tflite_dir(options), combined_filename(options, q)) for q in ("fp16", "int8")]
    return paths + [os.path.join(options.output_dir, "MODEL_CARD.md"),
                    os.path.join(options.output_dir, "export_report.json")]


def check_options(options: ExportOptions) -> None:
    """ExportError (named after the option) for option values that cannot work."""
    unknown = [f for f in options.formats if f not in FORMATS]
    if unknown or not options.formats:
        raise ExportError(f"unknown format(s) {', '.join(unknown) or '(none)'} (choose from {', '.join(FORMATS)})")
    if options.int8 not in INT8_MODES:
        raise ExportError(f"int8 must be one of {', '.join(INT8_MODES)}, got {options.int8!r}")
    if len(set(options.formats)) != len(options.formats):
        raise ExportError(f"formats repeats a format: {', '.join(options.formats)}")
    if options.version < 1:
        raise ExportError(f"version must be a positive integer, got {options.version}")
    if not options.model_name or not all(c.isalnum() or c in "_-." for c in options.model_name):
        raise ExportError(f"model_name {options.model_name!r} must use letters, digits, '_', '-' or '.'")
    for name in ("content_size", "style_size"):
        if getattr(options, name) < MIN_SIDE:
            raise ExportError(f"{name} must be at least {MIN_SIDE}, got {getattr(options, name)}")
    for name in ("parity_pairs", "latency_runs", "threads"):
        if getattr(options, name) < 1:
            raise ExportError(f"{name} must be positive, got {getattr(options, name)}")
    if options.calibration_samples < 1 and "tflite" in options.formats and options.int8 != "dynamic":
        raise ExportError("calibration_samples must be positive for full-integer int8 (or use int8=dynamic)")


def check_outputs(options: ExportOptions) -> None:
    """ExportError if an output already exists and options.overwrite is off."""
    if not options.overwrite:
        for path in planned_outputs(options)[:-2]:
            if os.path.exists(path):
                raise ExportError(f"{path}: already exists (pass --overwrite to replace it)")


def resolve_checkpoint(path: str | None) -> str | None:
    """A network folder: `path`, or its network/ sub-folder (an nst-train --model_dir); None for the bundled one."""
    if not path:
        return None
    nested = os.path.join(path, "network")
    if not os.path.isfile(os.path.join(path, "config.json")) and os.path.isfile(os.path.join(nested, "config.json")):
        return nested
    return path
