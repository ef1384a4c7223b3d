"""The whole export: write each format, check it against the Keras model, write the report and the model card."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

from nst_tf import fast, mobile, tiling
from nst_tf.export.card import model_card
from nst_tf.export.options import (
    COMBINED_SIGNATURES,
    TFLITE_VARIANTS,
    ExportError,
    ExportOptions,
    TFLiteVariant,
    check_options,
    check_outputs,
    combined_filename,
    saved_model_dir,
    tflite_dir,
)
from nst_tf.export.parity import (
    IMAGE_BOUNDS,
    ParityPair,
    calibration_data,
    chain,
    check_combined,
    check_pipeline,
    check_saved_model,
    check_tflite,
    keras_reference,
    parity_pairs,
    saved_model_bound,
    strength_sweep,
    tflite_example,
    tflite_within,
    within,
)
from nst_tf.export.serving import SIGNATURES, build_serving_module, write_saved_model
from nst_tf.export.tflite import (
    convert_tflite,
    non_builtin_ops,
    tflite_ops,
    tflite_outputs,
    tflite_runners,
    tflite_session,
    tflite_signature,
    write_combined_source,
    write_tflite_source,
)
from nst_tf.export.timing import environment, time_calls
from nst_tf.network import BUNDLED_DIR


def convert_int8(source: str, variant: TFLiteVariant, net: fast.Network, pairs: Sequence[ParityPair],
                 calibration: Sequence[dict[str, np.ndarray]], options: ExportOptions) -> tuple[bytes, dict]:
    """int8 per options.int8: full-integer (kept under 'auto' only within the int8 bounds), else dynamic-range."""
    record: dict = {}
    if options.int8 in ("auto", "full"):
        if not calibration:
            raise ExportError("full-integer int8 needs calibration images (data_dir/train_content, train_style)")

        def representative() -> Iterator[dict[str, np.ndarray]]:
            yield from calibration

        model = convert_tflite(source, "int8_full", representative)
        try:
            parity = check_tflite(model, variant, net, pairs, options.threads)
        except RuntimeError as exc:  # the interpreter cannot prepare it (e.g. an int8 kernel XNNPACK lacks)
            if options.int8 == "full":
                raise ExportError(f"{variant.part}: the full-integer int8 model does not run: {exc}") from None
            record["full_integer_attempt"] = {"error": str(exc).splitlines()[0], "within_bound": False,
                                              "calibration_samples": len(calibration)}
            return dynamic_int8(source, variant, net, pairs, options, record)
        record["full_integer_attempt"] = {**parity, "within_bound": tflite_within(parity, "int8"),
                                          "calibration_samples": len(calibration)}
        if options.int8 == "full" or record["full_integer_attempt"]["within_bound"]:
            record["scheme"] = "full-integer (TFLITE_BUILTINS_INT8, float32 input/output)"
            return model, {**record, "parity": parity}  # measured once: the report entry takes it
    return dynamic_int8(source, variant, net, pairs, options, record)


DYNAMIC_SCHEME = "dynamic-range (int8 weights, float activations)"
FP16_SCHEME = "float16 weights, float32 compute"


def dynamic_scheme(float_layers: Sequence[str]) -> str:
    """The report's words for a dynamic-range model keeping these convolutions in float."""
    return DYNAMIC_SCHEME + (f"; {', '.join(float_layers)} in float" if float_layers else "")


def dynamic_int8(source: str, variant: TFLiteVariant, net: fast.Network, pairs: Sequence[ParityPair],
                 options: ExportOptions, record: dict) -> tuple[bytes, dict]:
    """The dynamic-range int8 model and its record; while it misses the int8 bounds, the network's
    int8_float_candidates are kept in float one more at a time (kept_float), recorded as 'float_layers' (and the
    returned model's parity as 'parity' when it was measured on the way)."""
    model = convert_tflite(source, "int8_dynamic")
    candidates = list(net.int8_float_candidates) if variant.part == "transfer" else []
    kept: list[str] = []
    parity = None
    while candidates:
        parity = check_tflite(model, variant, net, pairs, options.threads)
        if tflite_within(parity, "int8"):
            break
        kept.append(candidates.pop(0))
        with tempfile.TemporaryDirectory(prefix="nst_float_") as scratch:
            model = convert_tflite(write_tflite_source(net, variant, options, scratch, kept), "int8_dynamic")
        parity = None
    record = {**record, "scheme": dynamic_scheme(kept), "float_layers": kept}
    return model, record if parity is None else {**record, "parity": parity}


def _write_bytes(data: bytes, path: str) -> None:
    """Write a file atomically (temporary file in the same folder, then rename), with umask permissions."""
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".tmp-{os.getpid()}-{os.path.basename(path)}")
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666), "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def export_tflite(net: fast.Network, options: ExportOptions, pairs: Sequence[ParityPair],
                  calibration: dict[str, list[dict[str, np.ndarray]]]) -> dict:
    """Convert, write and check every TFLite variant; returns their report entries and the pipelines."""
    directory = tflite_dir(options)
    os.makedirs(directory, exist_ok=True)
    entries, models, float_layers = [], {}, []
    with tempfile.TemporaryDirectory(prefix="nst_tflite_") as scratch:
        sources: dict[tuple[str, bool], str] = {}
        for variant in TFLITE_VARIANTS:
            key = (variant.part, variant.dynamic)
            if key not in sources:
                sources[key] = write_tflite_source(net, variant, options,
                                                   os.path.join(scratch, f"{variant.part}_{int(variant.dynamic)}"))
            record: dict = {}
            if variant.quantization == "int8":
                model, record = convert_int8(sources[key], variant, net, pairs, calibration[variant.part], options)
                if variant == TFLiteVariant("transfer", "int8"):
                    float_layers = record.get("float_layers", [])  # the combined int8 file keeps them too
            else:
                model, record = convert_tflite(sources[key], "fp16"), {"scheme": FP16_SCHEME}
            path = os.path.join(directory, variant.filename(options))
            _write_bytes(model, path)
            models[variant] = model
            entries.append(_tflite_entry(model, path, variant, record, net, pairs, options))
        combined = export_combined(net, options, pairs, os.path.join(scratch, "combined"), directory, float_layers)
    pipelines = {}
    for quantization in ("fp16", "int8"):
        pipeline = check_pipeline(models[TFLiteVariant("prediction", quantization)],
                                  models[TFLiteVariant("transfer", quantization)], net, pairs, options.threads)
        pipelines[quantization] = {**pipeline, "within_bound": within(pipeline, IMAGE_BOUNDS[quantization])}
    return {"directory": directory, "files": entries, "pipelines": pipelines, "combined": combined}


COMBINED_SCHEMES = {"fp16": ("fp16", FP16_SCHEME), "int8": ("int8_dynamic", DYNAMIC_SCHEME)}


def export_combined(net: fast.Network, options: ExportOptions, pairs: Sequence[ParityPair], scratch: str,
                    directory: str, float_layers: Sequence[str] = ()) -> list[dict]:
    """One file per quantization holding both signatures (prediction, transfer) over one copy of the weights; the
    int8 file keeps float_layers in float (what the int8 transfer model needed)."""
    sources = {"fp16": write_combined_source(net, options, os.path.join(scratch, "fp16"))}
    sources["int8"] = (write_combined_source(net, options, os.path.join(scratch, "int8"), float_layers)
                       if float_layers else sources["fp16"])
    entries = []
    for quantization, (mode, scheme) in COMBINED_SCHEMES.items():
        scheme = dynamic_scheme(float_layers) if mode == "int8_dynamic" else scheme
        model = convert_tflite(sources[quantization], mode, signature_keys=COMBINED_SIGNATURES)
        path = os.path.join(directory, combined_filename(options, quantization))
        custom = non_builtin_ops(model)
        if custom:
            raise ExportError(f"{path}: uses non-builtin ops {', '.join(custom)}")
        _write_bytes(model, path)
        runners = tflite_runners(model, options.threads)
        parity = check_combined(runners, net, pairs)
        signatures = {}
        for part in COMBINED_SIGNATURES:
            variant = TFLiteVariant(part, quantization)
            signatures[part] = {"inputs": {t.name: list(t.shape)
                                           for t in tflite_signature(variant, options, net.vector_size)},
                                "outputs": tflite_outputs(variant, options, net.vector_size)}
        entries.append({
            "file": os.path.basename(path), "path": path, "quantization": quantization, "scheme": scheme,
            "signatures": signatures, "size_bytes": len(model), "ops": tflite_ops(model), "parity": parity,
            "bound": list(IMAGE_BOUNDS[quantization]), "within_bound": within(parity, IMAGE_BOUNDS[quantization]),
            "latency": {**time_calls(lambda r=runners, p=pairs[0]: chain(r["prediction"], r["transfer"],
                                                                          p.content_square, p.style_square),
                                     options.latency_runs),
                        "threads": options.threads, "what": "prediction then transfer"},
        })
    return entries


def _tflite_entry(model: bytes, path: str, variant: TFLiteVariant, record: dict, net: fast.Network,
                  pairs: Sequence[ParityPair], options: ExportOptions) -> dict:
    """Report entry of one written TFLite file: interface, ops, parity and latency."""
    ops = tflite_ops(model)
    custom = non_builtin_ops(model)
    if custom:
        raise ExportError(f"{path}: uses non-builtin ops {', '.join(custom)}")
    parity = record.pop("parity", None) or check_tflite(model, variant, net, pairs, options.threads)
    example = tflite_example(variant, pairs[0], net)
    session = tflite_session(model, example, options.threads)
    vector_size = net.vector_size
    return {
        "file": os.path.basename(path), "path": path, "part": variant.part, "quantization": variant.quantization,
        "dynamic": variant.dynamic, "scheme": record.pop("scheme"), **record,
        "inputs": {s.name: [-1 if d is None else d for d in s.shape]
                   for s in tflite_signature(variant, options, vector_size)},
        "outputs": tflite_outputs(variant, options, vector_size),
        "size_bytes": len(model), "ops": ops, "parity": parity,
        "bound": list(IMAGE_BOUNDS[variant.quantization]),
        "within_bound": tflite_within(parity, variant.quantization),
        "latency": {**time_calls(lambda: session(example), options.latency_runs), "threads": options.threads,
                    "input": {k: list(v.shape) for k, v in example.items()}},
    }


def describe_checkpoint(directory: str | None) -> dict:
    """Path, config and weights checksum of the exported network folder."""
    directory = directory or BUNDLED_DIR
    with open(os.path.join(directory, "weights.npz"), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    bundled = os.path.abspath(directory) in (os.path.abspath(BUNDLED_DIR), os.path.abspath(mobile.BUNDLED_DIR))
    return {"path": directory, "bundled": bundled, "config": config, "weights_sha256": digest}


def folder_size(path: str) -> int:
    """Total size in bytes of the files under `path`."""
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def export_saved_model(net: fast.Network, options: ExportOptions, pairs: Sequence[ParityPair]) -> dict:
    """Write the SavedModel, reload it, check every signature and time serving_default."""
    directory = write_saved_model(build_serving_module(net), saved_model_dir(options))
    loaded = tf.saved_model.load(directory)
    parity = check_saved_model(loaded, net, pairs)
    signatures = {}
    for name in SIGNATURES:
        fn = loaded.signatures[name]
        signatures[name] = {
            "inputs": {k: s.dtype.name for k, s in sorted(fn.structured_input_signature[1].items())},
            "outputs": {k: s.dtype.name for k, s in sorted(fn.structured_outputs.items())}}
    content = tf.constant(pairs[0].content_square[None])
    style = tf.constant(pairs[0].style_square[None])
    serve = loaded.signatures["serving_default"]
    latency = time_calls(lambda: serve(content=content, style=style, strength=tf.constant(1.0)), options.latency_runs)
    return {"path": directory, "size_bytes": folder_size(directory), "signatures": signatures, "parity": parity,
            "within_bound": {k: within(v, saved_model_bound(k)) for k, v in parity.items()},
            "latency": {**latency, "input": {"content": list(content.shape), "style": list(style.shape)}}}


def failures(report: dict, int8_mode: str) -> list[str]:
    """Parity checks outside their bounds (a forced full-integer int8 model is reported, not failed)."""
    found = []
    for name, ok in report.get("saved_model", {}).get("within_bound", {}).items():
        if not ok:
            found.append(f"SavedModel {name}: {report['saved_model']['parity'][name]}")
    for entry in report.get("tflite", {}).get("files", []):
        forced = int8_mode == "full" and entry["quantization"] == "int8"
        if not entry["within_bound"] and not forced:
            found.append(f"{entry['file']}: {entry['parity']['image']} (bound max/mean {entry['bound']})")
    for entry in report.get("tflite", {}).get("combined", []):
        if not entry["within_bound"]:
            found.append(f"{entry['file']}: {entry['parity']} (bound max/mean {entry['bound']})")
    for quantization, pipeline in report.get("tflite", {}).get("pipelines", {}).items():
        if not pipeline["within_bound"] and not (int8_mode == "full" and quantization == "int8"):
            found.append(f"{quantization} prediction -> transfer: {pipeline}")
    return found


def export(net: fast.Network, options: ExportOptions, data_dir: str, checkpoint: str | None = None) -> dict:
    """Write the requested formats, check them against `net` on real images, write the model card; the report."""
    check_options(options)
    check_outputs(options)
    if not os.path.isdir(data_dir):
        raise ExportError(f"{data_dir}: data folder not found (parity checks and int8 calibration need images)")
    os.makedirs(options.output_dir, exist_ok=True)
    pairs = parity_pairs(data_dir, options)
    report: dict = {
        "model_name": options.model_name, "version": options.version,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": describe_checkpoint(checkpoint), "options": dataclasses.asdict(options),
        "data_dir": data_dir,
        "parity_images": [[p.content_name, p.style_name] for p in pairs],
        "environment": environment(options.threads),
        "keras_latency": time_calls(lambda: keras_reference(net, pairs[0].content_square, pairs[0].style_square),
                                    options.latency_runs),
        "strength_sweep": strength_sweep(net, pairs),
        "margin": tiling.margin_of(net),
    }
    if "saved_model" in options.formats:
        report["saved_model"] = export_saved_model(net, options, pairs)
    if "tflite" in options.formats:
        needs_calibration = options.int8 != "dynamic"
        calibration = (calibration_data(net, data_dir, options) if needs_calibration
                       else {"prediction": [], "transfer": []})
        report["tflite"] = export_tflite(net, options, pairs, calibration)
    report["failures"] = failures(report, options.int8)
    _write_bytes(json.dumps(report, indent=2).encode(), os.path.join(options.output_dir, "export_report.json"))
    _write_bytes(model_card(report).encode(), os.path.join(options.output_dir, "MODEL_CARD.md"))
    if report["failures"]:
        raise ExportError(f"parity check failed: {report['failures'][0]} (see {options.output_dir}/MODEL_CARD.md)")
    return report
