"""nst-stylize: repaint a content photo in the style of one or more artworks.

  nst-stylize --content=photo.jpg --style=painting.jpg --output=out.jpg --weights=lpips
  nst-stylize --flagfile=configs/preview.cfg --content=... --style=... --output=...
"""

from __future__ import annotations

import os
import signal
import time

from absl import app, flags

from nst_tf.cli import common

FLAGS = flags.FLAGS
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
flags.DEFINE_integer("size", 512, "Long side of the output in pixels.")
flags.DEFINE_integer("steps", 300, "Optimisation steps (L-BFGS: iterations).")
flags.DEFINE_float("content_weight", 1.0, "Weight of the content loss.")
flags.DEFINE_float("style_weight", 10.0, "Weight of the style loss.")
flags.DEFINE_float("tv_weight", 1.0, "Weight of the total-variation (smoothness) loss.")
flags.DEFINE_string("content_layers", "block4_conv2", "Content layers, comma-separated.")
flags.DEFINE_string("style_layers", "block1_conv1,block2_conv1,block3_conv1,block4_conv1,block5_conv1",
                    "Style layers, comma-separated.")
flags.DEFINE_string("style_layer_weights", "", "Per-style-layer weights, comma-separated (default equal).")
flags.DEFINE_string("style_blend", "", "Weights of several --style images, comma-separated (default equal).")
flags.DEFINE_enum("optimizer", "adam", ["adam", "lbfgs"], "Optimiser.")
flags.DEFINE_float("learning_rate", 0.02, "Adam step size (pixels are in [0, 1]).")
flags.DEFINE_string("init", "content", "Start from content, noise, style, or an image file (to resume).")
flags.DEFINE_integer("seed", 0, "Random seed (noise init, TensorFlow ops).")
flags.DEFINE_integer("save_every", 0, "Write an intermediate image every N steps (0: never).")
flags.DEFINE_bool("jit_compile", False, "Compile the step with XLA.")
flags.DEFINE_string("model", "", "--method=fast: a network folder (config.json + weights.npz); default: bundled.")
flags.DEFINE_float("alpha", 1.0, "--method=fast: style strength in [0, 1] (0: the content's own look).")
flags.DEFINE_integer("style_size", 256, "--method=fast: long side at which style images are analysed.")


def intermediate_path(output: str, tag: str) -> str:
    """out.jpg + 'step00100' -> out.step00100.jpg."""
    stem, ext = os.path.splitext(output)
    return f"{stem}.{tag}{ext}"


def _raise_interrupt(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    """Validate flags, load inputs, optimise and save (TensorFlow is imported only once inputs are good)."""
    from nst_tf import images

    for name in ("content", "style", "output"):
        if not getattr(FLAGS, name):
            raise common.UsageError(f"--{name} is required")
    common.require_positive("size", FLAGS.size)
    common.require_positive("steps", FLAGS.steps)
    common.require_positive("learning_rate", FLAGS.learning_rate)
    for name in ("content_weight", "style_weight", "tv_weight", "save_every"):
        common.require_non_negative(name, getattr(FLAGS, name))
    if not 0.0 <= FLAGS.alpha <= 1.0:
        raise common.UsageError(f"--alpha must be in [0, 1], got {FLAGS.alpha}")
    style_paths = common.split_list(FLAGS.style)
    if not style_paths:
        raise common.UsageError("--style is empty")
    blend = common.parse_floats(FLAGS.style_blend, "style_blend")
    if blend is not None and len(blend) != len(style_paths):
        raise common.UsageError(f"--style_blend has {len(blend)} weights for {len(style_paths)} styles")
    images.check_writable(FLAGS.output, FLAGS.overwrite)

    content = images.resize_long_side(images.load_image(FLAGS.content), FLAGS.size, FLAGS.content)
    if FLAGS.method == "fast":
        return _fast(content, style_paths, blend)
    styles = [images.resize_long_side(images.load_image(p), FLAGS.size, p) for p in style_paths]
    init = FLAGS.init
    if init not in ("content", "noise", "style"):
        init = images.resize(images.load_image(init), *content.shape[:2])

    import keras

    from nst_tf import features, optimize

    extractor = features.build_extractor(
        FLAGS.weights, FLAGS.backbone, common.split_list(FLAGS.content_layers),
        common.split_list(FLAGS.style_layers), FLAGS.preprocessing)
    weights = optimize.LossWeights(
        content=FLAGS.content_weight, style=FLAGS.style_weight, tv=FLAGS.tv_weight,
        style_layers=tuple(common.parse_floats(FLAGS.style_layer_weights, "style_layer_weights") or ()) or None)

    progbar = keras.utils.Progbar(FLAGS.steps, stateful_metrics=["total", "content", "style", "tv"], unit_name="step")
    latest = {}

    def on_step(step, terms, image):
        latest["image"], latest["step"] = image, step
        progbar.update(step, values=list(terms.items()))
        if FLAGS.save_every and step % FLAGS.save_every == 0 and step < FLAGS.steps:
            images.save_image(image.numpy()[0], intermediate_path(FLAGS.output, f"step{step:05d}"))

    h, w = content.shape[:2]
    print(f"stylizing {FLAGS.content} ({w}x{h}) with {', '.join(style_paths)}: "
          f"{extractor.spec.backbone} ({FLAGS.weights}), {FLAGS.optimizer}, {FLAGS.steps} steps")
    signal.signal(signal.SIGTERM, _raise_interrupt)
    started = time.time()
    try:
        result = optimize.stylize(
            extractor, content, styles, FLAGS.steps, weights, FLAGS.optimizer, init, FLAGS.seed,
            FLAGS.learning_rate, blend, on_step, FLAGS.jit_compile)
    except KeyboardInterrupt:
        if "image" in latest:
            partial = intermediate_path(FLAGS.output, "partial")
            images.save_image(latest["image"].numpy()[0], partial)
            common.fail(f"interrupted at step {latest['step']}; last image saved to {partial} "
                        f"(resume with --init={partial})", 130)
        raise
    images.save_image(result, FLAGS.output)
    print(f"wrote {FLAGS.output} in {time.time() - started:.1f} s")
    return 0


def _fast(content, style_paths: list[str], blend: list[float] | None) -> int:
    """--method=fast: one forward pass of the arbitrary-style network."""
    from nst_tf import images

    common.require_positive("style_size", FLAGS.style_size)
    styles = [images.resize_long_side(images.load_image(p), FLAGS.style_size, p) for p in style_paths]
    from nst_tf import fast
    from nst_tf.network import ArbitraryStyleNetwork

    started = time.time()
    net = ArbitraryStyleNetwork.load(FLAGS.model or None)
    result = fast.stylize(net, content, styles, FLAGS.alpha, blend)
    images.save_image(result, FLAGS.output)
    h, w = content.shape[:2]
    print(f"wrote {FLAGS.output} ({w}x{h}, fast network, alpha {FLAGS.alpha}) in {time.time() - started:.1f} s")
    return 0


def run() -> None:
    """Console entry point."""
    app.run(common.guarded(main))


if __name__ == "__main__":
    run()
