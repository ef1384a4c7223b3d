"""nst-augment: stylize a whole image folder as data augmentation (resumable, with a manifest).

  nst-augment --input_dir=train/ --output_dir=train_styled/ --styles=styles/ --per_image=2 --seed=0
  cat.jpg -> cat_style-starry_night_0.jpg (relative paths kept); output_dir/manifest.csv says which style and
  strength made each file. Rerunning skips finished outputs and makes the same choices.
"""

from __future__ import annotations

import os

from absl import app, flags

from nst_tf.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_string("input_dir", None, "Folder of images (searched recursively).")
flags.DEFINE_string("output_dir", None, "Output folder (created); relative paths are kept.")
flags.DEFINE_string("styles", None, "A folder of style images, or style image files separated by commas.")
flags.DEFINE_integer("per_image", 1, "Stylized versions per input image, each with a random style.")
flags.DEFINE_string("alpha_range", "0.3,1.0", "Range of the random style strength: low,high within [0, 1].")
flags.DEFINE_integer("seed", 0, "Seed of the choices; each image's choices depend only on it and its path.")
flags.DEFINE_integer("size", 0, "Long side of the outputs in pixels (0: the input's size).")
flags.DEFINE_string("model", "", "A network folder (config.json + weights.npz); default: bundled.")
flags.DEFINE_integer("style_size", 256, "Long side at which style images are analysed.")


def _style_paths() -> list[str]:
    """The --styles files: a folder's images, or the comma-separated list."""
    from nst_tf.augment import list_inputs

    value = FLAGS.styles
    if os.path.isdir(value):
        paths = [os.path.join(value, p) for p in list_inputs(value)]
        if not paths:
            raise common.UsageError(f"--styles={value}: no images in the folder")
        return paths
    return common.split_list(value)


def _validate() -> tuple[list[str], tuple[float, float]]:
    """Check the flags; return the style paths and the alpha range."""
    for name in ("input_dir", "output_dir", "styles"):
        if not getattr(FLAGS, name):
            raise common.UsageError(f"--{name} is required")
    if not os.path.isdir(FLAGS.input_dir):
        raise common.UsageError(f"--input_dir={FLAGS.input_dir}: not a folder")
    common.require_positive("per_image", FLAGS.per_image)
    common.require_non_negative("size", FLAGS.size)
    common.require_positive("style_size", FLAGS.style_size)
    alpha = common.parse_floats(FLAGS.alpha_range, "alpha_range") or []
    if len(alpha) != 2 or not 0.0 <= alpha[0] <= alpha[1] <= 1.0:
        raise common.UsageError(f"--alpha_range={FLAGS.alpha_range}: expected low,high with 0 <= low <= high <= 1")
    inside = os.path.relpath(os.path.abspath(FLAGS.output_dir), os.path.abspath(FLAGS.input_dir))
    if inside == "." or not inside.startswith(".."):
        raise common.UsageError("--output_dir must not be --input_dir or inside it")
    styles = _style_paths()
    if not styles:
        raise common.UsageError("--styles is empty")
    return styles, (alpha[0], alpha[1])


def main(argv: list[str]) -> int:
    """Plan every output from the seed, skip the finished ones, stylize the rest, keep the manifest."""
    from nst_tf import augment

    style_paths, alpha_range = _validate()
    names = [augment.style_name(p) for p in style_paths]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise common.UsageError(f"--styles: several style files are named {duplicates[0]} (names must differ)")
    settings = augment.Settings(FLAGS.seed, FLAGS.per_image, alpha_range, tuple(names), FLAGS.size)

    def on_plan(plan: augment.FolderReport) -> None:
        print(f"{plan.inputs} images x {FLAGS.per_image} = {plan.total} outputs; {plan.skipped} already done, "
              f"{plan.total - plan.skipped} to make with {len(style_paths)} styles")

    report = augment.augment_folder(FLAGS.input_dir, FLAGS.output_dir, style_paths, settings,
                                    FLAGS.model or None, FLAGS.style_size, on_plan)
    print(f"wrote {report.written} images to {FLAGS.output_dir} in {report.seconds:.1f} s; skipped "
          f"{report.skipped} existing, {len(report.unreadable)} unreadable input(s); manifest "
          f"{os.path.join(FLAGS.output_dir, augment.MANIFEST)}")
    return 0


def run() -> None:
    """Console entry point."""
    app.run(common.guarded(main))


if __name__ == "__main__":
    run()
