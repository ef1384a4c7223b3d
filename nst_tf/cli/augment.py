"""nst-augment: stylize a whole image folder as data augmentation (resumable, with a manifest).

  nst-augment --input_dir=train/ --output_dir=train_styled/ --styles=styles/ --per_image=2 --seed=0
  cat.jpg -> cat_style-starry_night_0.jpg (relative paths kept); output_dir/manifest.csv says which style and
  strength made each file. Rerunning skips finished outputs and makes the same choices. Each output's strength is
  drawn uniformly in --strength_range (0 the photo, 1 the painting's look, up to 2 more painterly).

  On Apache Beam (pip install nst_tf[beam]; docs/augment_beam.md), the same outputs and manifest for the same seed:
  nst-augment --runner=direct --direct_num_workers=2 --direct_running_mode=multi_processing --input_dir=... \
      --output_dir=... --styles=...
  Flags nst-augment does not know are passed to Beam as pipeline options (--name=value), e.g. --project,
  --region, --temp_location for DataflowRunner, --flink_master for FlinkRunner.
"""

from __future__ import annotations

import logging
import os
import sys

from absl import flags
from absl import logging as absl_logging

from nst_tf.cli import common

FLAGS = flags.FLAGS
BEAM_ARGS: list[str] = []  # the flags absl does not know, for Beam (set by _parse_flags)
flags.DEFINE_string("input_dir", None, "Folder of images (searched recursively).")
flags.DEFINE_string("output_dir", None, "Output folder (created); relative paths are kept.")
flags.DEFINE_string("styles", None, "A folder of style images, or style image files separated by commas.")
flags.DEFINE_integer("per_image", 1, "Stylized versions per input image, each with a random style.")
flags.DEFINE_string("strength_range", "0.3,1.0", "Range of the random style strength, drawn per output: low,high "
                    "within [0, 2] (0 the photo, 1 the painting's look, 2 more painterly).")
flags.DEFINE_string("alpha_range", None, "Deprecated: --strength_range (the same values, within [0, 1]).")
flags.DEFINE_integer("seed", 0, "Seed of the choices; each image's choices depend only on it and its path.")
flags.DEFINE_integer("size", 0, "Long side of the outputs in pixels (0: the input's size).")
flags.DEFINE_string("model", "", "A network folder (config.json + weights.npz); default: bundled.")
flags.DEFINE_integer("style_size", 256, "Long side at which style images are analysed.")
flags.DEFINE_string("runner", "", "Run on Apache Beam with this runner: direct, DataflowRunner, FlinkRunner, "
                    "SparkRunner or PortableRunner (empty: one process, no Beam). Other --name=value flags go to "
                    "Beam as pipeline options (e.g. --direct_num_workers=2: two worker processes).")
flags.DEFINE_integer("batch_size", 8, "With --runner: images of one size stylized together.")
flags.DEFINE_integer("tile", None, "Images larger than this are stylized in tiles of this side with the whole image's "
                     "statistics (unset: chosen from the free memory; 0: never; else a multiple of 8, at least 256; "
                     "docs/tiling.md). Not with --runner yet.")


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's flags; those it does not know are kept in BEAM_ARGS (for --runner) instead of failing here."""
    rest = FLAGS(argv, known_only=True)
    BEAM_ARGS[:] = [a for a in rest[1:] if a.startswith("-")]
    if BEAM_ARGS and not FLAGS.runner:
        common.fail(f"unknown flag {BEAM_ARGS[0]} (Beam pipeline options need --runner)", 2)
    return [rest[0], *(a for a in rest[1:] if not a.startswith("-"))]


def _style_paths() -> list[str]:
    """The --styles files: a folder's images, or the comma-separated list."""
    value = FLAGS.styles
    if os.path.isdir(value):
        from nst_tf.augment_folder import list_inputs

        paths = [os.path.join(value, p) for p in list_inputs(value)]
        if not paths:
            raise common.UsageError(f"--styles={value}: no images in the folder")
        return paths
    return common.split_list(value)


def _inside(output_dir: str, input_dir: str) -> bool:
    """Whether output_dir is input_dir or a folder inside it (local paths or URIs)."""
    if "://" in output_dir or "://" in input_dir:
        return (output_dir.rstrip("/") + "/").startswith(input_dir.rstrip("/") + "/")
    inside = os.path.relpath(os.path.abspath(output_dir), os.path.abspath(input_dir))
    return inside == "." or not inside.startswith("..")


def _strength_range() -> tuple[float, float]:
    """(low, high) of --strength_range, or of its deprecated alias --alpha_range (a warning on stderr)."""
    name, top = "strength_range", 2.0
    if FLAGS.alpha_range is not None:
        if FLAGS["strength_range"].present:
            raise common.UsageError("--alpha_range is the deprecated name of --strength_range: give one of them")
        print("warning: --alpha_range is deprecated; use --strength_range (the same values)", file=sys.stderr)
        name, top = "alpha_range", 1.0
    value = FLAGS[name].value
    bounds = common.parse_floats(value, name) or []
    if len(bounds) != 2 or not 0.0 <= bounds[0] <= bounds[1] <= top:
        raise common.UsageError(f"--{name}={value}: expected low,high with 0 <= low <= high <= {top:g}")
    return bounds[0], bounds[1]


def _validate() -> tuple[list[str], tuple[float, float]]:
    """Check the flags; return the style paths and the strength range."""
    for name in ("input_dir", "output_dir", "styles"):
        if not getattr(FLAGS, name):
            raise common.UsageError(f"--{name} is required")
    remote = "://" in FLAGS.input_dir or "://" in FLAGS.output_dir
    if remote and not FLAGS.runner:
        raise common.UsageError("gs://, s3:// and other URIs need --runner (Beam's file systems)")
    if "://" not in FLAGS.input_dir and not os.path.isdir(FLAGS.input_dir):
        raise common.UsageError(f"--input_dir={FLAGS.input_dir}: not a folder")
    common.require_positive("per_image", FLAGS.per_image)
    common.require_non_negative("size", FLAGS.size)
    common.require_positive("style_size", FLAGS.style_size)
    strength_range = _strength_range()
    common.require_positive("batch_size", FLAGS.batch_size)
    if FLAGS.tile is not None and FLAGS.tile != 0 and (FLAGS.tile < 256 or FLAGS.tile % 8):
        raise common.UsageError(f"--tile must be 0 (untiled) or a multiple of 8 of at least 256, got {FLAGS.tile}")
    if FLAGS.tile is not None and FLAGS.runner:
        raise common.UsageError("--tile applies to the one-process run (not with --runner yet)")
    if _inside(FLAGS.output_dir, FLAGS.input_dir):
        raise common.UsageError("--output_dir must not be --input_dir or inside it")
    styles = _style_paths()
    if not styles:
        raise common.UsageError("--styles is empty")
    missing = [p for p in styles if "://" not in p and not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"{missing[0]}: no such file")
    return styles, strength_range


def main(argv: list[str]) -> int:
    """Plan every output from the seed, skip the finished ones, stylize the rest, keep the manifest."""
    style_paths, strength_range = _validate()  # before TensorFlow loads
    from nst_tf import augment_folder

    names = [augment_folder.style_name(p) for p in style_paths]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise common.UsageError(f"--styles: several style files are named {duplicates[0]} (names must differ)")
    settings = augment_folder.Settings(FLAGS.seed, FLAGS.per_image, strength_range, tuple(names), FLAGS.size)
    if FLAGS.runner:
        return _main_beam(style_paths, settings)

    def on_plan(plan: augment_folder.FolderReport) -> None:
        print(f"{plan.inputs} images x {FLAGS.per_image} = {plan.total} outputs; {plan.skipped} already done, "
              f"{plan.total - plan.skipped} to make with {len(style_paths)} styles")

    report = augment_folder.augment_folder(FLAGS.input_dir, FLAGS.output_dir, style_paths, settings,
                                           FLAGS.model or None, FLAGS.style_size, on_plan, FLAGS.tile)
    print(f"wrote {report.written} images to {FLAGS.output_dir} in {report.seconds:.1f} s; skipped "
          f"{report.skipped} existing, {len(report.unreadable)} unreadable input(s); manifest "
          f"{os.path.join(FLAGS.output_dir, augment_folder.MANIFEST)}")
    return 0


def _main_beam(style_paths: list[str], settings) -> int:
    """The same on Apache Beam: build the pipeline, run it on --runner, print what it did."""
    try:
        from nst_tf import augment_beam
    except ImportError as exc:
        raise common.UsageError(f"--runner needs Apache Beam: pip install 'nst_tf[beam]' ({exc})") from None

    beam_args = list(BEAM_ARGS)
    if not any(a.startswith("--default_sdk_harness_log_level") for a in beam_args):
        beam_args.append("--default_sdk_harness_log_level=WARNING")  # workers' INFO lines drown the summary
    try:
        augment_beam.pipeline_options(FLAGS.runner, beam_args)
    except ValueError as exc:
        raise common.UsageError(str(exc)) from None
    logging.getLogger().setLevel(logging.WARNING)
    absl_logging.set_verbosity(absl_logging.WARNING)
    try:
        report = augment_beam.run_pipeline(FLAGS.input_dir, FLAGS.output_dir, style_paths, settings,
                                           FLAGS.model or None, FLAGS.style_size, FLAGS.batch_size, FLAGS.runner,
                                           beam_args)
    except ValueError as exc:  # Beam's option checks say what is missing on the lines after the first
        raise ValueError(" ".join(line.strip() for line in str(exc).splitlines() if line.strip())) from None
    except RuntimeError as exc:  # e.g. no Spark or Flink job server to reach
        raise ValueError(f"{augment_beam.runner_name(FLAGS.runner)}: {str(exc).splitlines()[0]}") from None
    print(f"wrote {report.written} images to {FLAGS.output_dir} in {report.seconds:.1f} s on "
          f"{augment_beam.runner_name(FLAGS.runner)}; skipped {report.skipped} existing, {report.unreadable} "
          f"unreadable input(s) (listed in the manifest); manifest {report.manifest}")
    return 0


def run() -> None:
    """Console entry point."""
    common.run_app(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
