"""Style transfer as data augmentation of a folder: the folder-to-folder stylization behind `nst-augment`.

Styles and strengths are chosen deterministically from a seed and each image's relative path, so an interrupted
run resumes with the same choices, on one machine or on Apache Beam (`beam_pipeline`, in nst_tf.augment_beam); a
CSV manifest (appended line by line, fsync'd, a torn last line repaired) records which style and strength made
each file, and which inputs could not be read. The Keras preprocessing layer is nst_tf.augment.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import keras
import numpy as np
import tensorflow as tf

from nst_tf import fast, images, tiling
from nst_tf.network import ArbitraryStyleNetwork

MANIFEST = "manifest.csv"
SETTINGS = "augment_settings.json"
MANIFEST_FIELDS = ("output", "input", "style", "strength", "error")


@dataclass(frozen=True)
class Choice:
    """One output of one input: which style (index into the style list), at which strength."""

    output: str  # relative to the output folder
    style: int
    strength: float


@dataclass(frozen=True)
class Settings:
    """What decides the outputs; a resumed run must use the same."""

    seed: int
    per_image: int
    strength_range: tuple[float, float]
    styles: tuple[str, ...]  # style names, in order
    size: int

    def to_json(self) -> str:
        """Stable JSON form."""
        return json.dumps(asdict(self), sort_keys=True)


def style_name(path: str) -> str:
    """'art/The Starry Night.jpg' -> 'The_Starry_Night' (safe in a file name)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem) or "style"


def choice_rng(relative: str, seed: int) -> np.random.Generator:
    """The random generator of one input: seeded by the seed and its relative path only, never by run order."""
    digest = hashlib.sha256(f"{seed}\0{relative}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def choices(relative: str, settings: Settings) -> list[Choice]:
    """The outputs for one input, a pure function of the settings and its relative path (so resumable).

    Every runner (nst-augment's single process, any Beam runner) calls this, so the same seed gives the same
    outputs anywhere. The draws, in order: the styles, then per output its strength (a new draw goes after
    the existing ones, so older choices keep their values)."""
    rng = choice_rng(relative, settings.seed)
    count = len(settings.styles)
    picks = rng.choice(count, size=settings.per_image, replace=settings.per_image > count)
    low, high = settings.strength_range
    stem, ext = os.path.splitext(relative)
    ext = ext.lower() if ext.lower() in images.WRITABLE_FORMATS else ".png"
    out = []
    for k, style in enumerate(picks):
        strength = round(float(rng.uniform(low, high)), 3)
        out.append(Choice(f"{stem}_style-{settings.styles[style]}_{k}{ext}", int(style), strength))
    return out


def list_inputs(folder: str) -> list[str]:
    """Relative paths of the image files under `folder` (recursive, sorted, hidden files skipped)."""
    from nst_tf.data import IMAGE_EXTENSIONS

    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."):
                found.append(os.path.relpath(os.path.join(root, name), folder))
    return sorted(found)


def settings_conflict(path: str, previous: dict, settings: Settings) -> ValueError | None:
    """The error for an output folder whose recorded settings (`previous`, at `path`) differ from `settings`.

    A folder recorded before the strength control (its `alpha_range`, the same values) resumes as one with that
    `strength_range`."""
    previous = dict(previous)
    if "alpha_range" in previous and "strength_range" not in previous:
        previous["strength_range"] = previous.pop("alpha_range")
    current = json.loads(settings.to_json())
    if previous == current:
        return None
    diff = ", ".join(f"{k} {previous.get(k)} -> {current[k]}" for k in current if previous.get(k) != current[k])
    return ValueError(f"{path}: this folder was made with other settings ({diff}); "
                      f"use another --output_dir or the same settings")


def check_settings(output_dir: str, settings: Settings) -> None:
    """Record the settings in a new output folder; ValueError if an existing one was made with others."""
    path = os.path.join(output_dir, SETTINGS)
    if os.path.exists(path):
        with open(path) as f:
            error = settings_conflict(path, json.load(f), settings)
        if error is not None:
            raise error
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(settings.to_json() + "\n")
    os.replace(tmp, path)


def manifest_row(relative: str, choice: Choice | None = None, style: str = "", error: str = "") -> dict[str, str]:
    """One manifest row: output `choice` of input `relative` made with style file `style`, or (no choice) an input
    that could not be read, with the reason."""
    if choice is None:
        return {"output": "", "input": relative, "style": "", "strength": "", "error": error}
    return {"output": choice.output, "input": relative, "style": style, "strength": f"{choice.strength:.3f}",
            "error": ""}


def manifest_lines(rows: Sequence[dict[str, str]], header: bool = True) -> str:
    """CSV text of manifest rows (with the header line unless header=False)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, MANIFEST_FIELDS, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def error_reason(exc: Exception, *names: str) -> str:
    """An error's first line without a leading 'name: ' (the manifest names the input in its own column)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    for name in names:
        text = text.removeprefix(f"{name}: ")
    return text


class Manifest:
    """manifest.csv in the output folder: one row per output, appended and fsync'd as each file is written, and
    one per input that could not be read (with the reason)."""

    def __init__(self, output_dir: str):
        self.path = os.path.join(output_dir, MANIFEST)
        self.entries: dict[tuple[str, str], dict[str, str]] = {}  # ("output", name) or ("unreadable", input)
        if os.path.exists(self.path):
            self._load()
        else:
            self._append_line(manifest_lines([]))

    @property
    def rows(self) -> dict[str, dict[str, str]]:
        """The outputs' rows by output name."""
        return {name: row for (kind, name), row in self.entries.items() if kind == "output"}

    def _load(self) -> None:
        """Read the rows; cut off a last line torn by a crash (no trailing newline); an older manifest (without
        the error column, or with `alpha` for the strength) is rewritten with the current columns."""
        with open(self.path, "rb") as f:
            data = f.read()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as f:
                f.truncate(cut)
            data = data[:cut]
        if not data:
            self._append_line(manifest_lines([]))
            return
        reader = csv.DictReader(io.StringIO(data.decode("utf-8")))
        for row in reader:
            row = {**row, "strength": row.get("strength") or row.get("alpha") or ""}
            row = {k: row.get(k) or "" for k in MANIFEST_FIELDS}
            self.entries[("output", row["output"]) if row["output"] else ("unreadable", row["input"])] = row
        if tuple(reader.fieldnames or ()) != MANIFEST_FIELDS:
            self._rewrite()

    def _rewrite(self) -> None:
        """Write the whole file again, atomically."""
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(manifest_lines(list(self.entries.values())))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def _append_line(self, line: str) -> None:
        """Append and fsync one line."""
        with open(self.path, "a", encoding="utf-8", newline="") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def add(self, output: str, input_path: str, style: str, strength: float) -> None:
        """Record one output (once); an input listed as unreadable before (since replaced) is no longer."""
        if ("output", output) in self.entries:
            return
        row = manifest_row(input_path, Choice(output, -1, strength), style)
        self.entries[("output", output)] = row
        if self.entries.pop(("unreadable", input_path), None) is not None:
            self._rewrite()
        else:
            self._append_line(manifest_lines([row], header=False))

    def add_unreadable(self, input_path: str, reason: str) -> None:
        """Record an input that could not be read (once)."""
        if ("unreadable", input_path) in self.entries:
            return
        row = manifest_row(input_path, error=reason)
        self._append_line(manifest_lines([row], header=False))
        self.entries[("unreadable", input_path)] = row


def prepare(image: np.ndarray, size: int, relative: str) -> np.ndarray:
    """An input image as it is stylized: its long side resized to `size` (0: as it is)."""
    return images.resize_long_side(image, size, relative) if size else image


@dataclass
class FolderReport:
    """What one `augment_folder` run did."""

    inputs: int
    total: int  # planned outputs
    skipped: int  # already in the output folder
    written: int = 0
    unreadable: list[str] = field(default_factory=list)
    seconds: float = 0.0


def augment_folder(input_dir: str, output_dir: str, style_paths: Sequence[str], settings: Settings,
                   net: ArbitraryStyleNetwork | str | None = None, style_size: int = fast.STYLE_SIZE,
                   on_plan: Callable[[FolderReport], None] | None = None, tile: int | None = None) -> FolderReport:
    """Stylize every image under `input_dir` into `output_dir` as `settings` choose, skipping finished outputs.

    Outputs are written atomically and recorded in the manifest one by one, so a killed run resumes where it
    stopped with the same choices; an output folder made with other settings is a ValueError. Unreadable inputs
    are skipped with a warning and listed in the report and the manifest. `net`: a network or its folder (None:
    the bundled one), loaded only when there is work to do. `on_plan(report)` is called before any stylization.
    Images larger than `tile` px (None: chosen from the free memory; 0: never) are stylized in tiles with the whole
    image's statistics (nst_tf.tiling); running out of memory is a tiling.OutOfMemory naming the size.
    """
    style_images = [images.resize_long_side(images.load_image(p), style_size, p) for p in style_paths]
    inputs = list_inputs(input_dir)
    if not inputs:
        raise ValueError(f"{input_dir}: no images")
    os.makedirs(output_dir, exist_ok=True)
    check_settings(output_dir, settings)
    manifest = Manifest(output_dir)
    plan = [(rel, choices(rel, settings)) for rel in inputs]
    todo = [(rel, c) for rel, cs in plan for c in cs if not os.path.exists(os.path.join(output_dir, c.output))]
    for rel, cs in plan:  # outputs written before a crash cut their manifest line
        for c in cs:
            if os.path.exists(os.path.join(output_dir, c.output)):
                manifest.add(c.output, rel, style_paths[c.style], c.strength)
    total = sum(len(cs) for _, cs in plan)
    report = FolderReport(len(inputs), total, total - len(todo))
    if on_plan is not None:
        on_plan(report)
    if not todo:
        return report
    if not isinstance(net, ArbitraryStyleNetwork):
        net = ArbitraryStyleNetwork.load(net or None)
    vectors = [net.predict_style(tf.constant(s[None], tf.float32)) for s in style_images]
    compiled = tf.function(lambda x, v, s: fast.stylize_padded(net, x, v, s), reduce_retracing=True)
    side = tiling.check_tile(tiling.choose_tile(net) if tile is None else tile)
    progbar = keras.utils.Progbar(len(todo), unit_name="image")
    cache = (None, None)
    started = time.time()
    for i, (rel, choice) in enumerate(todo, 1):
        if rel in report.unreadable:
            progbar.update(i)
            continue
        try:
            if cache[0] != rel:
                cache = (rel, prepare(images.load_image(os.path.join(input_dir, rel)), settings.size, rel))
        except images.ImageError as exc:
            print(f"warning: {exc} (skipped)", file=sys.stderr)
            report.unreadable.append(rel)
            manifest.add_unreadable(rel, error_reason(exc, os.path.join(input_dir, rel), rel))
            continue
        out = _stylize_one(net, compiled, cache[1], vectors[choice.style], choice.strength, side)
        path = os.path.join(output_dir, choice.output)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        images.save_image(out, path)
        manifest.add(choice.output, rel, style_paths[choice.style], choice.strength)
        report.written += 1
        progbar.update(i)
    report.seconds = time.time() - started
    return report


def _stylize_one(net, compiled, image: np.ndarray, vector: tf.Tensor, strength: float, tile: int) -> np.ndarray:
    """One image through the compiled fast path at `strength`, or in tiles when it is larger than `tile` (0: never)."""
    tiled = bool(tile) and max(image.shape[:2]) + 2 * tiling.margin_of(net) > tile
    try:
        if tiled:
            return tiling.stylize_tiled(net, image, vector, strength, tile)
        return compiled(tf.constant(image[None]), vector, tf.constant(strength)).numpy()[0]
    except (tf.errors.ResourceExhaustedError, MemoryError) as exc:
        if isinstance(exc, tiling.OutOfMemory):
            raise
        raise tiling.OutOfMemory(tiling.out_of_memory_message(image.shape[1], image.shape[0], tile if tiled else 0)
                                 ) from None


def beam_pipeline(inputs, output_dir: str, style_paths: Sequence[str], settings: Settings, **kwargs):
    """`augment_folder` as a composable Apache Beam transform (pip install nst_tf[beam]); see
    nst_tf.augment_beam.beam_pipeline for the arguments. Apply it to a pipeline: `pipeline | beam_pipeline(...)`."""
    from nst_tf import augment_beam

    return augment_beam.beam_pipeline(inputs, output_dir, style_paths, settings, **kwargs)
