"""Style transfer as data augmentation: a Keras preprocessing layer, and folder-to-folder stylization.

`RandomStyleTransfer` works like `keras.layers.RandomFlip`: in a `tf.data` map or inside a model, active only
in training, graph-mode and `tf.distribute` safe. Images are floats in `value_range` (default [0, 1]).

The folder tools behind `nst-augment` choose styles and strengths deterministically from a seed and each
image's relative path, so an interrupted run resumes with the same choices, on one machine or on Apache Beam
(`beam_pipeline`, in nst_tf.augment_beam); a CSV manifest (appended line by line, fsync'd, a torn last line
repaired) records which style and strength made each file, and which inputs could not be read.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import keras
import numpy as np
import tensorflow as tf

from nst_tf import fast, images, tiling
from nst_tf.network import ArbitraryStyleNetwork
from nst_tf.strength import STRENGTH_MAX

MANIFEST = "manifest.csv"
SETTINGS = "augment_settings.json"
MANIFEST_FIELDS = ("output", "input", "style", "strength", "error")
DEFAULT_STRENGTH_RANGE = (0.3, 1.0)


def check_strength_range(value: Sequence[float], name: str = "strength_range", top: float = STRENGTH_MAX
                         ) -> tuple[float, float]:
    """(low, high) as floats if 0 <= low <= high <= top (STRENGTH_MAX; 1 for the deprecated alpha_range), else a
    ValueError naming `name`."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (low, high), got {value!r}") from None
    if not 0.0 <= low <= high <= top:
        raise ValueError(f"{name} must satisfy 0 <= low <= high <= {top:g}, got ({low:g}, {high:g})")
    return low, high


def strength_range_from(strength_range: Sequence[float] | None, alpha_range: Sequence[float] | None
                        ) -> tuple[float, float]:
    """The strength range from `strength_range` or its deprecated alias `alpha_range` (within [0, 1], where
    alpha and strength mean the same; a DeprecationWarning); the default if neither; ValueError for both."""
    if alpha_range is None:
        return check_strength_range(DEFAULT_STRENGTH_RANGE if strength_range is None else strength_range)
    if strength_range is not None:
        raise ValueError("give strength_range or its deprecated alias alpha_range, not both")
    warnings.warn("alpha_range is deprecated: use strength_range (the same values; strength goes up to "
                  f"{STRENGTH_MAX:g})", DeprecationWarning, stacklevel=3)
    return check_strength_range(alpha_range, "alpha_range", top=1.0)


def _style_image(item) -> np.ndarray:
    """A style image from a path or an array (uint8, or float in [0, 1]) -> float32 [H, W, 3]."""
    if isinstance(item, (str, os.PathLike)):
        return images.load_image(os.fspath(item))
    array = np.asarray(item)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"a style image must be [H, W, 3], got shape {array.shape}")
    return array.astype(np.float32) / 255.0 if array.dtype == np.uint8 else array.astype(np.float32)


def style_vectors(net: ArbitraryStyleNetwork, styles, style_size: int = fast.STYLE_SIZE) -> np.ndarray:
    """[N, V] style vectors from style images (paths, arrays, a [N, H, W, 3] batch) or vectors [N, V].

    V is the network's vector size (net.vector_size)."""
    if isinstance(styles, tf.Tensor):
        styles = styles.numpy()
    if isinstance(styles, np.ndarray) and styles.ndim == 2:
        if styles.shape[-1] != net.vector_size or len(styles) == 0:
            raise ValueError(f"style vectors must be [N, {net.vector_size}], got shape {styles.shape}")
        return styles.astype(np.float32)
    items = list(styles)
    if not items:
        raise ValueError("at least one style is needed")
    if all(not isinstance(s, (str, os.PathLike)) and np.ndim(s) == 1 for s in items):
        return style_vectors(net, np.stack([np.asarray(s, np.float32) for s in items]), style_size)
    vectors = []
    for item in items:
        image = images.resize_long_side(_style_image(item), style_size, str(item) if isinstance(item, str) else "style")
        vectors.append(net.predict_style(tf.constant(image[None], tf.float32)).numpy()[0])
    return np.stack(vectors)


@keras.saving.register_keras_serializable(package="nst_tf")
class RandomStyleTransfer(keras.layers.Layer):
    """Stylize each image of a batch, with probability `p`, by a random style of the bank at a random strength.

    Args:
        styles: style images (paths, [H, W, 3] arrays or a [N, H, W, 3] batch) or precomputed style vectors
            ([N, V], e.g. from `style_vectors`). Images are turned into vectors once, here.
        p: probability that an image is stylized.
        strength_range: (low, high) of the strength, drawn uniformly per image and fed to the network (nst_tf.strength:
            0 the photo, 1 the painting's look, up to 2 more painterly); within [0, 2]. Default (0.3, 1.0).
        value_range: the range of input pixel values (like keras' preprocessing layers); outputs keep it.
        model_dir: an arbitrary-style network folder (None: the bundled one), unless `network` is given.
        network: an ArbitraryStyleNetwork to use (it is frozen: this layer never trains it).
        style_size: long side at which style images are analysed.
        seed: seed of the random choices.
        alpha_range: deprecated alias of strength_range (within [0, 1], where the two mean the same).

    Inputs: [B, H, W, 3] or [H, W, 3] float images, H and W >= 16. With `training=False` (e.g. in
    `model.predict`) or p=0 the layer is the identity. Outputs have the input's shape and dtype.
    """

    def __init__(self, styles, p: float = 0.5, strength_range: Sequence[float] | None = None,
                 value_range: Sequence[float] = (0.0, 1.0), model_dir: str | None = None,
                 network: ArbitraryStyleNetwork | None = None, style_size: int = fast.STYLE_SIZE,
                 seed: int | None = None, alpha_range: Sequence[float] | None = None, **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.strength_range = strength_range_from(strength_range, alpha_range)
        self.p, self.value_range = float(p), tuple(map(float, value_range))
        self._validate()
        self.model_dir, self.style_size, self.seed = model_dir, int(style_size), seed
        net = network or ArbitraryStyleNetwork.load(model_dir)
        self.network = net
        self.encoder, self.decoder = net.encoder, net.decoder  # tracked: their weights belong to this layer
        self.linear_parts = [m for m in (net.style_net, net.transfer) if m is not None]  # --linear_rank networks
        vectors = style_vectors(net, styles, self.style_size)
        self.style_count = len(vectors)
        self.style_vectors = self.add_weight(shape=vectors.shape, initializer=keras.initializers.Constant(vectors),
                                             trainable=False, name="style_vectors")
        self.generator = keras.random.SeedGenerator(seed)
        self.trainable = False
        self.supports_jit = False  # data-dependent shapes (the chosen images): keras' jit_compile="auto" skips XLA

    def _validate(self) -> None:
        """ValueError for an out-of-range p or value_range (strength_range is checked as it is read)."""
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {self.p}")
        if not self.value_range[0] < self.value_range[1]:
            raise ValueError(f"value_range must be (low, high) with low < high, got {self.value_range}")

    def call(self, inputs, training=True):  # noqa: D102
        if training is None:
            training = True
        if isinstance(training, bool):
            return self._augment(inputs) if training and self.p > 0 else inputs
        return tf.cond(tf.cast(training, tf.bool), lambda: self._augment(inputs), lambda: tf.identity(inputs))

    def _seed(self) -> tf.Tensor:
        """A fresh stateless seed per call, different on each replica of a tf.distribute strategy."""
        seed = tf.cast(self.generator.next(), tf.int32)
        context = tf.distribute.get_replica_context()
        replica = 0 if context is None else context.replica_id_in_sync_group
        return seed + tf.stack([0, tf.cast(replica, tf.int32) * 1_000_003])

    def _augment(self, inputs: tf.Tensor) -> tf.Tensor:
        """The training-time transform."""
        inputs = tf.convert_to_tensor(inputs)
        unbatched = inputs.shape.rank == 3
        low, high = self.value_range
        x = tf.cast(inputs[None] if unbatched else inputs, tf.float32)
        x = (x - low) / (high - low)
        batch = tf.shape(x)[0]
        draws = tf.random.stateless_uniform([3, batch], self._seed())
        apply = draws[0] < self.p
        index = tf.minimum(tf.cast(tf.floor(draws[1] * self.style_count), tf.int32), self.style_count - 1)
        weakest, strongest = self.strength_range
        strength = weakest + draws[2] * (strongest - weakest)  # per image, fed to the network's strength input
        chosen = tf.where(apply)[:, 0]

        def stylize():
            vectors = tf.gather(tf.convert_to_tensor(self.style_vectors), tf.gather(index, chosen))
            out = fast.stylize_padded(self.network, tf.gather(x, chosen), vectors, tf.gather(strength, chosen)[:, None])
            return tf.tensor_scatter_nd_update(x, chosen[:, None], tf.stop_gradient(out))

        y = tf.cond(tf.size(chosen) > 0, stylize, lambda: x) * (high - low) + low
        y = tf.cast(y[0] if unbatched else y, inputs.dtype)
        return tf.ensure_shape(y, inputs.shape)

    def compute_output_shape(self, input_shape):  # noqa: D102
        return input_shape

    def get_config(self):  # noqa: D102
        return {**super().get_config(), "styles": np.asarray(self.style_vectors.numpy()).tolist(), "p": self.p,
                "strength_range": list(self.strength_range), "value_range": list(self.value_range),
                "model_dir": self.model_dir, "style_size": self.style_size, "seed": self.seed}

    @classmethod
    def from_config(cls, config):  # noqa: D102
        config = dict(config)
        config["styles"] = np.asarray(config["styles"], np.float32)
        return cls(**config)


# -- folder augmentation (nst-augment) ---------------------------------------------------------------------------


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
