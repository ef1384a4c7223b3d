"""nst-augment: stylize a whole image folder as data augmentation (resumable, with a manifest).

  nst-augment --input_dir=train/ --output_dir=train_styled/ --styles=styles/ --per_image=2 --seed=0
  cat.jpg -> cat_style-starry_night_0.jpg (relative paths kept); output_dir/manifest.csv says which style and
  strength made each file. Rerunning skips finished outputs and makes the same choices.
"""

from __future__ import annotations

import os
import sys
import time

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
    from nst_tf import augment, images

    style_paths, alpha_range = _validate()
    names = [augment.style_name(p) for p in style_paths]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise common.UsageError(f"--styles: several style files are named {duplicates[0]} (names must differ)")
    style_images = [images.resize_long_side(images.load_image(p), FLAGS.style_size, p) for p in style_paths]
    inputs = augment.list_inputs(FLAGS.input_dir)
    if not inputs:
        raise ValueError(f"{FLAGS.input_dir}: no images")
    settings = augment.Settings(FLAGS.seed, FLAGS.per_image, alpha_range, tuple(names), FLAGS.size)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    augment.check_settings(FLAGS.output_dir, settings)
    manifest = augment.Manifest(FLAGS.output_dir)
    plan = [(rel, augment.choices(rel, settings)) for rel in inputs]
    todo = [(rel, c) for rel, cs in plan for c in cs if not os.path.exists(os.path.join(FLAGS.output_dir, c.output))]
    for rel, cs in plan:  # outputs written before a crash cut their manifest line
        for c in cs:
            if os.path.exists(os.path.join(FLAGS.output_dir, c.output)):
                manifest.add(c.output, rel, style_paths[c.style], c.alpha)
    total = sum(len(cs) for _, cs in plan)
    print(f"{len(inputs)} images x {FLAGS.per_image} = {total} outputs; {total - len(todo)} already done, "
          f"{len(todo)} to make with {len(style_paths)} styles")
    written, unreadable, elapsed = _stylize(todo, style_images, style_paths, manifest) if todo else (0, [], 0.0)
    print(f"wrote {written} images to {FLAGS.output_dir} in {elapsed:.1f} s; skipped {total - len(todo)} existing, "
          f"{len(unreadable)} unreadable input(s); manifest {manifest.path}")
    return 0


def _stylize(todo, style_images, style_paths, manifest) -> tuple[int, list[str], float]:
    """Stylize and write each planned output (atomically), recording it in the manifest."""
    import keras
    import tensorflow as tf

    from nst_tf import fast, images
    from nst_tf.network import ArbitraryStyleNetwork

    net = ArbitraryStyleNetwork.load(FLAGS.model or None)
    vectors = [net.predict_style(tf.constant(s[None], tf.float32)) for s in style_images]
    compiled = tf.function(lambda x, v, a: fast.stylize_padded(net, x, v, a), reduce_retracing=True)
    progbar = keras.utils.Progbar(len(todo), unit_name="image")
    written, unreadable, cache = 0, [], (None, None)
    started = time.time()
    for i, (rel, choice) in enumerate(todo, 1):
        if rel in unreadable:
            progbar.update(i)
            continue
        try:
            if cache[0] != rel:
                image = images.load_image(os.path.join(FLAGS.input_dir, rel))
                cache = (rel, images.resize_long_side(image, FLAGS.size, rel) if FLAGS.size else image)
        except images.ImageError as exc:
            print(f"warning: {exc} (skipped)", file=sys.stderr)
            unreadable.append(rel)
            continue
        out = compiled(tf.constant(cache[1][None]), vectors[choice.style], tf.constant(choice.alpha))
        path = os.path.join(FLAGS.output_dir, choice.output)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        images.save_image(out.numpy()[0], path)
        manifest.add(choice.output, rel, style_paths[choice.style], choice.alpha)
        written += 1
        progbar.update(i)
    return written, unreadable, time.time() - started


def run() -> None:
    """Console entry point."""
    app.run(common.guarded(main))


if __name__ == "__main__":
    run()
