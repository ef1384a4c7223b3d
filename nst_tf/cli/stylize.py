"""nst-stylize: repaint a content photo in the style of one or more artworks.

  nst-stylize --content=photo.jpg --style=painting.jpg --output=out.jpg --weights=lpips
  nst-stylize --preset=quality --content=... --style=a.jpg,b.jpg --style_blend=0.7,0.3 --output=...
  nst-stylize --method=fast --content=... --style=... --output=... --strength=1.5
"""

from __future__ import annotations

import os
import signal
import sys
import time

from absl import flags

from nst_tf import controls, presets
from nst_tf.cli import common

FLAGS = flags.FLAGS
_PRESETS = "; ".join(f"{n}: {presets.describe(n).rstrip('.')}" for n in presets.names())
flags.DEFINE_enum("preset", None, presets.names(), f"Bundled settings by name ({_PRESETS}). Flags given explicitly "
                  "win. For your own settings: --flagfile=FILE.")
flags.DEFINE_string("content", None, "Content image (the photo to repaint).")
flags.DEFINE_string("style", None, "Style image, or several separated by commas.")
flags.DEFINE_string("output", None, "Output image (.jpg, .png, .webp, .bmp); written atomically.")
flags.DEFINE_bool("overwrite", False, "Replace --output if it already exists.")
flags.DEFINE_enum("method", "optimize", ["optimize", "fast"],
                  "optimize: Gatys optimisation (slow, best); fast: the feed-forward network.")
flags.DEFINE_enum("backbone", None, ["vgg19", "vgg16"],
                  "Loss network; default vgg19 for imagenet, otherwise what the weights file records.")
flags.DEFINE_string("weights", "imagenet",
                    "imagenet (Keras download, cached), lpips or hed (offline VGG16 from those packages, "
                    "converted once), or a path to a .weights.h5 file.")
flags.DEFINE_enum("preprocessing", "auto", ["auto", "caffe", "torch"],
                  "Input normalisation of the loss network; auto reads it from the weights file.")
flags.DEFINE_integer("size", 512, "Long side of the output in pixels (--method=fast: 0 keeps the input's size).")
flags.DEFINE_string("scales", "", "Coarse-to-fine long sides, e.g. 256,362,512, or 'auto' (x sqrt 2 ladder from "
                    "--min_scale to --size); empty: --size only.")
flags.DEFINE_integer("min_scale", 256, "First scale of --scales=auto.")
flags.DEFINE_string("steps", "300", "Optimisation steps (L-BFGS: iterations); one value, or one per scale.")
flags.DEFINE_float("content_weight", 1.0, "Weight of the content loss.")
flags.DEFINE_float("style_weight", 10.0, "Weight of the style loss.")
flags.DEFINE_float("tv_weight", 1.0, "Weight of the total-variation (smoothness) loss.")
flags.DEFINE_string("content_layers", "block4_conv2", "Content layers, comma-separated.")
flags.DEFINE_string("style_layers", "block1_conv1,block2_conv1,block3_conv1,block4_conv1,block5_conv1",
                    "Style layers, comma-separated.")
flags.DEFINE_string("style_layer_weights", "", "Per-style-layer weights, comma-separated (default equal).")
flags.DEFINE_string("style_blend", "", "Weights of several --style images, comma-separated (default equal).")
flags.DEFINE_float("style_scale", 1.0, "Style image size relative to the output (bigger: larger brush strokes).")
flags.DEFINE_enum("preserve_colors", "none", ["none", "luminance", "histogram"],
                  "Keep the content's colours: luminance-only transfer, or style colours matched to the content.")
flags.DEFINE_string("mask", "", "Mask image: one region (grey level, dark first) per --style image.")
flags.DEFINE_enum("optimizer", "adam", ["adam", "lbfgs"], "Optimiser.")
flags.DEFINE_float("learning_rate", 0.02, "Adam step size (pixels are in [0, 1]).")
flags.DEFINE_float("average", 0.0, "Adam iterate averaging: EMA decay of the image (0: off; e.g. 0.9).")
flags.DEFINE_string("init", "content", "Start from content, noise, style, palette (the photo with the painting's "
                    "colours), fast (the feed-forward network's result, --model), or an image file (to resume).")
flags.DEFINE_enum("style_loss", "gram", ["gram", "sliced_wasserstein"],
                  "Style loss: Gram matrices, or sliced Wasserstein (whole feature distributions, colour included).")
flags.DEFINE_integer("seed", 0, "Random seed (noise init, TensorFlow ops).")
flags.DEFINE_integer("tile", 0, "Tile the final scale into overlapping tiles of this size when larger (0: never; "
                     "else at least 64, more than --tile_overlap; e.g. 768 keeps memory flat for 2048-4096 px "
                     "outputs). --method=fast: the side of the tiles "
                     "larger images are stylized in, with the whole image's statistics (unset: chosen from the free "
                     "memory; 0: never; else a multiple of 8, at least 256; docs/tiling.md).")
flags.DEFINE_integer("tile_overlap", 64, "Overlap of neighbouring tiles, blended with feathered seams.")
flags.DEFINE_enum("precision", "float32", ["float32", "mixed_bfloat16", "mixed_float16"],
                  "Compute precision of the loss network (mixed precision is for GPUs).")
flags.DEFINE_bool("jit_compile", False, "Compile the step with XLA.")
flags.DEFINE_integer("save_every", 0, "Write an intermediate image every N steps (0: never).")
flags.DEFINE_string("logdir", "", "Write TensorBoard scalars (each loss term) and images here.")
flags.DEFINE_integer("image_every", 50, "With --logdir: log the current image every N steps.")
flags.DEFINE_string("contact_sheet", "", "Also write a side-by-side content | style(s) | result image here.")
flags.DEFINE_string("model", "", "--method=fast: a network folder (config.json + weights.npz), or 'mobile' for "
                    "the bundled phone-sized network (nst_tf.mobile); default: the bundled arbitrary-style network.")
flags.DEFINE_float("strength", 1.0, "--method=fast: style strength in [0, 2]: 0 the photo, 1 the painting's look, 2 "
                   "more painterly.")
flags.DEFINE_float("alpha", None, "Deprecated: --strength (the same below 1).")
flags.DEFINE_integer("style_size", 256, "--method=fast: long side at which style images are analysed.")


def intermediate_path(output: str, tag: str) -> str:
    """out.jpg + 'step00100' -> out.step00100.jpg."""
    stem, ext = os.path.splitext(output)
    return f"{stem}.{tag}{ext}"


def _raise_interrupt(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt


def controls_from_flags() -> dict[str, object]:
    """The optimiser's controls that the parsed flags give, checked (nst_tf.controls; a bad value: UsageError)."""
    try:
        return controls.resolve({name: FLAGS[name].value for name in controls.DEFAULTS})
    except controls.ControlError as exc:
        raise common.UsageError(exc.as_flag()) from None


def main(argv: list[str]) -> int:
    """Validate flags, load inputs, optimise and save (TensorFlow is imported only once inputs are good)."""
    from nst_tf import images, masks

    common.apply_preset(FLAGS, FLAGS.preset)
    for name in ("content", "output"):
        if not getattr(FLAGS, name):
            raise common.UsageError(f"--{name} is required")
    if not FLAGS.style:
        raise common.UsageError("--style is required")
    fast_full_size = FLAGS.method == "fast" and FLAGS.size == 0  # --method=fast --size=0: the input's size
    if fast_full_size:
        FLAGS.size = FLAGS["size"].default
    if FLAGS.method == "fast" and FLAGS.tile and (FLAGS.tile < 256 or FLAGS.tile % 8):  # before the optimiser's rule
        raise common.UsageError(f"--tile must be 0 (untiled) or a multiple of 8 of at least 256 with --method=fast, "
                                f"got {FLAGS.tile}")
    values = controls_from_flags()
    common.require_non_negative("save_every", FLAGS.save_every)
    if FLAGS.alpha is not None:
        if not 0.0 <= FLAGS.alpha <= 1.0:
            raise common.UsageError(f"--alpha must be in [0, 1], got {FLAGS.alpha}")
        print("warning: --alpha is deprecated; use --strength (the same below 1)", file=sys.stderr)
        FLAGS.strength = FLAGS.alpha
    if not 0.0 <= FLAGS.strength <= 2.0:
        raise common.UsageError(f"--strength must be in [0, 2], got {FLAGS.strength}")
    style_paths, blend = common.styles_and_blend(FLAGS.style, FLAGS.style_blend)
    if FLAGS.mask and blend is not None:
        raise common.UsageError("--mask gives each style its own region; --style_blend cannot be used with it")
    if FLAGS.mask and len(style_paths) < 2:
        raise common.UsageError("--mask needs one --style per region (at least two)")
    for path in (FLAGS.output, FLAGS.contact_sheet):
        if path:
            images.check_writable(path, FLAGS.overwrite)

    content = images.load_image(FLAGS.content)
    content = content if fast_full_size else images.resize_long_side(content, FLAGS.size, FLAGS.content)
    if FLAGS.method == "fast":
        return _fast(content, style_paths, blend)
    styles = [images.load_image(p) for p in style_paths]
    for path, style in zip(style_paths, styles):
        images.resize_long_side(style, max(16, round(values["scales"][0] * FLAGS.style_scale)), path)  # too thin?
    regions = masks.load_regions(FLAGS.mask, *content.shape[:2], len(styles)) if FLAGS.mask else None
    init = FLAGS.init
    if init not in ("content", "noise", "style", "palette", "fast"):
        init = images.load_image(init)
    result = _optimize(content, styles, style_paths, blend, init, regions)
    images.save_image(result, FLAGS.output)
    if FLAGS.contact_sheet:
        images.save_image(images.contact_sheet([content, *styles, result]), FLAGS.contact_sheet)
    return 0


def optimizer_options(init=None, blend=None):
    """The optimize.Options that the parsed flags describe (also used by benchmarks to read a preset)."""
    import dataclasses

    options = controls.options(controls_from_flags(), init, blend)
    return dataclasses.replace(options, fast_model=FLAGS.model or None)  # init=fast: the network of --model


def _optimize(content, styles, style_paths, blend, init, regions):
    """Build the loss network and run the optimiser with a progress bar, TensorBoard and intermediates."""
    import keras
    import tensorflow as tf

    from nst_tf import images, optimize

    values = controls_from_flags()
    extractor = controls.extractor(values)
    options = optimizer_options(init, blend)
    scales = options.scales
    total_steps = sum(options.steps_per_scale()) if not (FLAGS.tile and scales[-1] > FLAGS.tile) else None
    progbar = keras.utils.Progbar(total_steps, stateful_metrics=["total", "content", "style", "tv"], unit_name="step")
    writer = tf.summary.create_file_writer(FLAGS.logdir) if FLAGS.logdir else None
    latest = {}

    def on_step(step, terms, image_fn):
        latest["image_fn"], latest["step"] = image_fn, step
        progbar.update(step, values=list(terms.items()))
        if writer is not None:
            with writer.as_default(step=step):
                for k, v in terms.items():
                    tf.summary.scalar(f"loss/{k}", v)
                if step % FLAGS.image_every == 0:
                    tf.summary.image("image", image_fn()[None], max_outputs=1)
        if FLAGS.save_every and step % FLAGS.save_every == 0:
            images.save_image(image_fn(), intermediate_path(FLAGS.output, f"step{step:05d}"))

    h, w = content.shape[:2]
    print(f"stylizing {FLAGS.content} ({w}x{h}) with {', '.join(style_paths)}: {extractor.spec.backbone} "
          f"({FLAGS.weights}), {FLAGS.optimizer}, scales {list(scales)}, steps {list(options.steps)}")
    signal.signal(signal.SIGTERM, _raise_interrupt)
    started = time.time()
    try:
        result = optimize.stylize(extractor, content, styles, options, on_step, regions)
    except KeyboardInterrupt:
        if "image_fn" in latest:
            partial = intermediate_path(FLAGS.output, "partial")
            images.save_image(latest["image_fn"](), partial)
            common.fail(f"interrupted at step {latest['step']}; last image saved to {partial} "
                        f"(resume with --init={partial})", 130)
        raise
    if writer is not None:
        writer.flush()
    print(f"wrote {FLAGS.output} in {time.time() - started:.1f} s")
    return result


def _fast(content, style_paths: list[str], blend: list[float] | None) -> int:
    """--method=fast: one forward pass of the arbitrary-style network."""
    from nst_tf import images

    common.require_positive("style_size", FLAGS.style_size)
    styles = [images.resize_long_side(images.load_image(p), FLAGS.style_size, p) for p in style_paths]
    from nst_tf import fast

    started = time.time()
    net = fast.load_network(FLAGS.model or None)
    tile = FLAGS.tile if FLAGS["tile"].present else None  # unset: chosen from the free memory
    result = fast.stylize(net, content, styles, FLAGS.strength, blend, tile=tile)
    images.save_image(result, FLAGS.output)
    if FLAGS.contact_sheet:
        images.save_image(images.contact_sheet([content, *styles, result]), FLAGS.contact_sheet)
    h, w = content.shape[:2]
    print(f"wrote {FLAGS.output} ({w}x{h}, fast network, strength {FLAGS.strength:g}) in {time.time() - started:.1f} s")
    return 0


def run() -> None:
    """Console entry point."""
    common.run_app(main)


if __name__ == "__main__":
    run()
