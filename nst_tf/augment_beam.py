"""nst-augment on Apache Beam: stylize a folder of images on any Beam runner (direct, Dataflow, Flink, Spark).

The same outputs and manifest as `augment_folder.augment_folder` for the same settings: every output's style and
strength come from `augment_folder.choices` (the seed and the image's relative path, never the processing order).
Files are read and written through Beam's file systems (local paths, and gs:// or s3:// where Beam's extras are
installed); each output is written under a temporary name and renamed, so a killed worker leaves no partial
file, and a re-run skips the outputs that exist. The network is loaded once per worker (`DoFn.setup`) and
images of one size are stylized in batches. The manifest is the pipeline's last output: rewritten whole, in
the input order, with every output that exists and every input that could not be read.

    with beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"])) as p:
        rows = p | beam_pipeline("photos/", "styled/", ["starry_night.jpg"], settings)
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
import uuid
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from PIL import Image, ImageOps

from nst_tf import augment_folder, fast, images
from nst_tf.data import IMAGE_EXTENSIONS

NAMESPACE = "nst_augment"
RUNNERS = {"direct": "DirectRunner", "dataflow": "DataflowRunner", "flink": "FlinkRunner", "spark": "SparkRunner",
           "portable": "PortableRunner"}  # PortableRunner: a job server of your own (--job_endpoint)
TEMP_PREFIX = ".tmp-"
BATCH_SIZE = 8

# -- files through Beam's file systems ---------------------------------------------------------------------------


def is_remote(path: str) -> bool:
    """Whether `path` is a URI (gs://, s3://, ...) rather than a local path."""
    return "://" in path


def folder_uri(path: str) -> str:
    """A folder as Beam's file systems take it: local paths made absolute (workers may start elsewhere)."""
    return path.rstrip("/") if is_remote(path) else os.path.abspath(path)


def read_bytes(path: str) -> bytes:
    """A whole file's bytes."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()


def read_style(path: str) -> bytes:
    """A style image's bytes; ImageError naming it if it cannot be read."""
    if not FileSystems.exists(path):
        raise images.ImageError(f"{path}: no such file")
    try:
        return read_bytes(path)
    except OSError as exc:
        raise images.ImageError(f"{path}: cannot read ({augment_folder.error_reason(exc, path)})") from None


def write_atomic(path: str, data: bytes) -> None:
    """Write a file under a temporary name beside it, then rename it into place."""
    directory, name = FileSystems.split(path)
    tmp = FileSystems.join(directory, f"{TEMP_PREFIX}{uuid.uuid4().hex}-{name}")
    try:
        with FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            f.write(data)
        FileSystems.rename([tmp], [path])
    except BaseException:
        if FileSystems.exists(tmp):
            FileSystems.delete([tmp])
        raise


def decode_image(data: bytes, name: str, max_pixels: int = images.MAX_PIXELS) -> np.ndarray:
    """Image bytes -> float32 RGB in [0, 1], EXIF rotation applied, as `images.load_image` reads a file."""
    if not data:
        raise images.ImageError(f"{name}: empty file (0 bytes)")
    previous = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = max_pixels
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise images.ImageError(f"{name}: image too large to decode safely ({width}x{height} px, "
                                            f"limit {max_pixels} px)")
                if width == 0 or height == 0:
                    raise images.ImageError(f"{name}: zero-size image ({width}x{height} px)")
                img.load()
                return images._to_rgb_array(ImageOps.exif_transpose(img))
    except images.ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise images.ImageError(f"{name}: image too large to decode safely (decompression bomb)") from None
    except Image.UnidentifiedImageError:
        raise images.ImageError(f"{name}: not an image file (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise images.ImageError(f"{name}: cannot decode image ({reason})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def encode_image(image: np.ndarray, ext: str, quality: int = 95) -> bytes:
    """A float image in [0, 1] as the bytes `images.save_image` writes for extension `ext`."""
    fmt = images.WRITABLE_FORMATS[ext.lower()]
    buffer = io.BytesIO()
    kwargs = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    Image.fromarray(images.to_uint8(image)).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def check_settings(output_dir: str, settings: augment_folder.Settings) -> None:
    """`augment_folder.check_settings` through Beam's file systems: record the settings, or refuse other ones."""
    path = FileSystems.join(output_dir, augment_folder.SETTINGS)
    if FileSystems.exists(path):
        error = augment_folder.settings_conflict(path, json.loads(read_bytes(path)), settings)
        if error is not None:
            raise error
        return
    write_atomic(path, (settings.to_json() + "\n").encode())


def relative_under(path: str, folder: str) -> str | None:
    """`path` relative to `folder` ('/'-separated), or None for a file that is not an input image (another
    extension, or hidden: a name starting with '.' on the way, like a temporary output)."""
    prefix = folder.rstrip("/") + "/"
    if not path.startswith(prefix):
        return None
    relative = path[len(prefix):].replace(os.sep, "/")
    if any(part.startswith(".") for part in relative.split("/")):
        return None
    return relative


def common_folder(paths: Sequence[str]) -> str:
    """The deepest folder that holds every one of `paths` (local or URIs)."""
    prefix = os.path.commonprefix([p.replace(os.sep, "/") for p in paths])
    return prefix[:prefix.rfind("/")] if "/" in prefix else ""


# -- the pipeline's steps ----------------------------------------------------------------------------------------


def input_entries(path: str, folder: str) -> Iterable[tuple[str, str]]:
    """(relative path, file) for an input image under `folder`; nothing for other files."""
    relative = relative_under(path, folder)
    if relative is not None and relative.lower().endswith(IMAGE_EXTENSIONS):
        yield relative, path


def output_entries(path: str, folder: str) -> Iterable[tuple[str, bool]]:
    """(output name, True) for a file in the output folder (not hidden, so not a temporary one)."""
    relative = relative_under(path, folder)
    if relative is not None:
        yield relative, True


def planned_outputs(entry: tuple[str, str], settings: augment_folder.Settings) -> Iterable[tuple[str, tuple]]:
    """(output name, (relative, file, k, choice)) for every output `augment_folder.choices` plans for one input."""
    relative, path = entry
    for k, choice in enumerate(augment_folder.choices(relative, settings)):
        yield choice.output, (relative, path, k, choice)


@beam.typehints.with_output_types(tuple[str, Any])  # the main output; type inference would see the tagged one too
class SplitDone(beam.DoFn):
    """Planned outputs joined with the files in the output folder -> manifest rows of the finished ones
    (tagged 'done') and, by input, the outputs still to make."""

    DONE = "done"

    def __init__(self, style_paths: Sequence[str]):
        self.style_paths = list(style_paths)
        self.skipped = Metrics.counter(NAMESPACE, "skipped")

    def process(self, joined):  # noqa: D102
        _, groups = joined
        plans, existing = sorted(groups["plan"], key=lambda plan: plan[0]), list(groups["existing"])
        for relative, path, k, choice in plans[:1]:  # none for a stray file; the first input if two name one output
            if existing:
                self.skipped.inc()
                row = augment_folder.manifest_row(relative, choice, self.style_paths[choice.style])
                yield beam.pvalue.TaggedOutput(self.DONE, ((relative, k), row))
            else:
                yield relative, (path, k, choice)


class StylizeBatch(beam.DoFn):
    """Stylize a batch of inputs ((relative, [(file, k, choice), ...]) each): load the network once per worker,
    decode, stylize images of one size together, write each output atomically; yield ((relative, k), row)
    for every output written and ((relative, -1), row) for every input that could not be read."""

    def __init__(self, output_dir: str, style_paths: Sequence[str], settings: augment_folder.Settings,
                 model: str | None, style_size: int, batch_size: int):
        self.output_dir, self.style_paths, self.settings = output_dir, list(style_paths), settings
        self.model, self.style_size, self.batch_size = model, style_size, batch_size
        self.written = Metrics.counter(NAMESPACE, "written")
        self.unreadable = Metrics.counter(NAMESPACE, "unreadable")

    def setup(self):  # noqa: D102
        import tensorflow as tf

        from nst_tf.network import ArbitraryStyleNetwork

        self.tf = tf
        self.net = ArbitraryStyleNetwork.load(self.model or None)
        styles = [images.resize_long_side(decode_image(read_style(p), p), self.style_size, p)
                  for p in self.style_paths]
        self.vectors = [self.net.predict_style(tf.constant(s[None], tf.float32)) for s in styles]
        self.compiled = tf.function(lambda x, v, s: fast.stylize_padded(self.net, x, v, s), reduce_retracing=True)

    def _load(self, relative: str, path: str) -> np.ndarray:
        """The input as it is stylized (ImageError or OSError if it cannot be read)."""
        return augment_folder.prepare(decode_image(read_bytes(path), path), self.settings.size, relative)

    def process(self, batch):  # noqa: D102
        jobs = []  # (image, relative, k, choice)
        for relative, items in batch:
            items = sorted(items, key=lambda item: item[1])
            path = items[0][0]
            try:
                image = self._load(relative, path)
            except (images.ImageError, OSError) as exc:
                self.unreadable.inc()
                reason = augment_folder.error_reason(exc, path, relative)
                yield (relative, -1), augment_folder.manifest_row(relative, error=reason)
                continue
            jobs += [(image, relative, k, choice) for _, k, choice in items]
        by_shape: dict[tuple[int, ...], list] = {}
        for job in jobs:
            by_shape.setdefault(job[0].shape, []).append(job)
        for group in by_shape.values():
            for start in range(0, len(group), self.batch_size):
                yield from self._stylize(group[start:start + self.batch_size])

    def _stylize(self, jobs: list) -> Iterable[tuple[tuple[str, int], dict[str, str]]]:
        """Stylize jobs of one image size in one batch; write the outputs; their manifest rows."""
        tf = self.tf
        content = tf.constant(np.stack([job[0] for job in jobs]), tf.float32)
        vectors = tf.concat([self.vectors[job[3].style] for job in jobs], axis=0)
        strengths = tf.constant([[job[3].strength] for job in jobs], tf.float32)  # per image, to the network
        out = self.compiled(content, vectors, strengths).numpy()
        for result, (_, relative, k, choice) in zip(out, jobs):
            ext = os.path.splitext(choice.output)[1]
            write_atomic(FileSystems.join(self.output_dir, choice.output), encode_image(result, ext))
            self.written.inc()
            yield (relative, k), augment_folder.manifest_row(relative, choice, self.style_paths[choice.style])


def write_manifest(keyed_rows: list, output_dir: str) -> str:
    """Write manifest.csv whole (atomically), rows in input order; its path."""
    path = FileSystems.join(output_dir, augment_folder.MANIFEST)
    rows = [row for _, row in sorted(keyed_rows, key=lambda item: item[0])]
    write_atomic(path, augment_folder.manifest_lines(rows).encode("utf-8"))
    return path


def read_manifest(output_dir: str) -> list[dict[str, str]]:
    """The rows of an output folder's manifest.csv."""
    text = read_bytes(FileSystems.join(folder_uri(output_dir), augment_folder.MANIFEST)).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


class AugmentImages(beam.PTransform):
    """PCollection of (relative path, file) -> PCollection of manifest rows; stylizes into `output_dir`.

    Outputs that exist are skipped (listed in the manifest as done); the manifest is written when all is done."""

    def __init__(self, output_dir: str, style_paths: Sequence[str], settings: augment_folder.Settings,
                 model: str | None = None, style_size: int = fast.STYLE_SIZE, batch_size: int = BATCH_SIZE):
        super().__init__()
        self.output_dir, self.style_paths, self.settings = folder_uri(output_dir), list(style_paths), settings
        self.model, self.style_size, self.batch_size = model, int(style_size), int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if len(self.style_paths) != len(settings.styles):
            raise ValueError(f"{len(self.style_paths)} style files for {len(settings.styles)} style names")

    def expand(self, entries):  # noqa: D102
        for path in self.style_paths:  # a bad style is the caller's error: say so now, not from every worker
            decode_image(read_style(path), path)
        check_settings(self.output_dir, self.settings)
        output_dir = self.output_dir
        plan = entries | "Plan" >> beam.FlatMap(planned_outputs, self.settings)
        existing = (entries.pipeline
                    | "ListOutputs" >> fileio.MatchFiles(FileSystems.join(output_dir, "**"),
                                                         fileio.EmptyMatchTreatment.ALLOW)
                    | "OutputNames" >> beam.FlatMap(lambda match: output_entries(match.path, output_dir)))
        split = ({"plan": plan, "existing": existing} | "Join" >> beam.CoGroupByKey()
                 | "SplitDone" >> beam.ParDo(SplitDone(self.style_paths)).with_outputs(SplitDone.DONE, main="todo"))
        made = (split.todo
                | "ByInput" >> beam.GroupByKey()
                | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=self.batch_size)
                | "Stylize" >> beam.ParDo(StylizeBatch(output_dir, self.style_paths, self.settings, self.model,
                                                       self.style_size, self.batch_size)))
        keyed = (split[SplitDone.DONE], made) | "AllRows" >> beam.Flatten()
        _ = (keyed | "Collect" >> beam.combiners.ToList()
             | "WriteManifest" >> beam.Map(write_manifest, output_dir))
        return keyed | "Rows" >> beam.Values()


class ImagesUnder(beam.PTransform):
    """PBegin -> (relative path, file) for every image under a folder (recursive; hidden files skipped)."""

    def __init__(self, folder: str):
        super().__init__()
        self.folder = folder_uri(folder)

    def expand(self, pbegin):  # noqa: D102
        folder = self.folder
        return (pbegin | "ListInputs" >> fileio.MatchFiles(FileSystems.join(folder, "**"))
                | "Inputs" >> beam.FlatMap(lambda m: input_entries(m.path, folder)))


class _FromRoot(beam.PTransform):
    """PBegin -> images (a folder or a list of files) -> AugmentImages."""

    def __init__(self, inputs: str | Sequence[str], augment_images: AugmentImages):
        super().__init__()
        self.inputs, self.augment_images = inputs, augment_images

    def expand(self, pbegin):  # noqa: D102
        if isinstance(self.inputs, str):
            entries = pbegin | "Images" >> ImagesUnder(self.inputs)
        else:
            files = [p if is_remote(p) else os.path.abspath(p) for p in self.inputs]
            if not files:
                raise ValueError("no input images")
            folder = common_folder(files)
            entries = pbegin | "Images" >> beam.Create([(relative_under(p, folder) or os.path.basename(p), p)
                                                        for p in files])
        return entries | "Augment" >> self.augment_images


def beam_pipeline(inputs: str | Sequence[str], output_dir: str, style_paths: Sequence[str],
                  settings: augment_folder.Settings, model: str | None = None, style_size: int = fast.STYLE_SIZE,
                  batch_size: int = BATCH_SIZE) -> beam.PTransform:
    """nst-augment as a Beam transform on a pipeline's root: `rows = pipeline | beam_pipeline(...)`.

    inputs: a folder (searched recursively) or a list of image files (paths relative to their common folder).
    output_dir, style_paths: local paths or URIs of Beam's file systems. settings: as for `augment_folder`
    (`settings.styles` names `style_paths`, in order). model: a network folder each worker can read (None: the
    bundled one). batch_size: images of one size stylized together. The result is the PCollection of manifest
    rows (dicts of `augment_folder.MANIFEST_FIELDS`); to stylize your own PCollection of (relative path, file) pairs,
    apply `AugmentImages` to it instead."""
    return _FromRoot(inputs, AugmentImages(output_dir, style_paths, settings, model, style_size, batch_size))


# -- running it --------------------------------------------------------------------------------------------------


@dataclass
class BeamReport:
    """What one pipeline run did (from its metrics)."""

    written: int
    skipped: int
    unreadable: int
    seconds: float
    manifest: str


def runner_name(runner: str) -> str:
    """'direct' or 'DirectRunner' -> 'DirectRunner' (and Dataflow, Flink, Spark, Portable); ValueError for others."""
    key = runner.lower().removesuffix("runner")
    if key not in RUNNERS:
        raise ValueError(f"unknown runner {runner!r} (use one of {', '.join(RUNNERS)})")
    return RUNNERS[key]


def pipeline_options(runner: str, beam_args: Sequence[str] = ()) -> PipelineOptions:
    """Beam's options from a runner name and pass-through flags; ValueError naming a flag Beam does not know.

    With the direct runner, --direct_num_workers means worker processes unless --direct_running_mode says
    otherwise (Beam's own default, in_memory, would ignore it)."""
    beam_args = list(beam_args)
    named = {arg.lstrip("-").split("=", 1)[0] for arg in beam_args}
    if runner_name(runner) == "DirectRunner" and "direct_num_workers" in named and "direct_running_mode" not in named:
        beam_args.append("--direct_running_mode=multi_processing")  # Beam's default (in_memory) has one worker
    options = PipelineOptions([f"--runner={runner_name(runner)}", *beam_args])
    parsers = []  # Beam's own parser of every pipeline option, as it reads them
    options.get_all_options(add_extra_args_fn=parsers.append)
    _, unknown = parsers[0].parse_known_args(beam_args)
    if unknown:
        raise ValueError(f"{unknown[0]}: not a Beam pipeline option (nor an nst-augment flag)")
    return options


def _counter(result, name: str) -> int:
    """A counter of the finished pipeline (committed where the runner keeps them, else attempted)."""
    found = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE).with_name(name))["counters"]
    return int(sum((c.committed if c.committed is not None else c.attempted) or 0 for c in found))


def run_pipeline(inputs: str | Sequence[str], output_dir: str, style_paths: Sequence[str],
                 settings: augment_folder.Settings, model: str | None = None, style_size: int = fast.STYLE_SIZE,
                 batch_size: int = BATCH_SIZE, runner: str = "direct", beam_args: Sequence[str] = ()) -> BeamReport:
    """Build and run `beam_pipeline` on `runner` with Beam's `beam_args`; wait for it; what it did."""
    options = pipeline_options(runner, beam_args)
    if isinstance(inputs, str) and not is_remote(inputs) and not augment_folder.list_inputs(inputs):
        raise ValueError(f"{inputs}: no images")
    started = time.time()
    pipeline = beam.Pipeline(options=options)
    _ = pipeline | "NstAugment" >> beam_pipeline(inputs, output_dir, style_paths, settings, model, style_size,
                                                  batch_size)
    result = pipeline.run()
    result.wait_until_finish()
    return BeamReport(_counter(result, "written"), _counter(result, "skipped"), _counter(result, "unreadable"),
                      time.time() - started, FileSystems.join(folder_uri(output_dir), augment_folder.MANIFEST))
