"""nst-video: stylize every frame of a video (or a folder of frames), temporally consistent.

  nst-video --input=clip.mp4 --style=painting.jpg --output=clip_styled.mp4 --size=256
  nst-video --input=frames/ --fps=24 --style=a.jpg,b.jpg --style_blend=0.7,0.3 --output=styled_frames/
"""

from __future__ import annotations

import os
import signal
import sys
import time
import warnings

from absl import flags

from nst_tf.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "Video file, or a folder of frame images (natural order).")
flags.DEFINE_string("style", None, "Style image, or several separated by commas.")
flags.DEFINE_string("style_blend", "", "Weights of several --style images, comma-separated (default equal).")
flags.DEFINE_string("output", None, "Output video (.mp4 .mov .m4v .mkv .webm .avi) or a folder for PNG frames; "
                                    "written under a temporary name and renamed when complete.")
flags.DEFINE_bool("overwrite", False, "Replace --output if it already exists.")
flags.DEFINE_integer("size", 512, "Long side of the output frames in pixels (0: the source size). Video outputs "
                                  "round both sides to even numbers.")
flags.DEFINE_float("strength", 1.0, "Style strength in [0, 2]: 0 the photo, 1 the painting's look, 2 more painterly.")
flags.DEFINE_float("alpha", None, "Deprecated: --strength (the same below 1).")
flags.DEFINE_enum("consistency", "flow", ["none", "flow"],
                  "flow: blend the previous output, warped by optical flow, where the flow is reliable.")
flags.DEFINE_float("consistency_weight", 0.8, "--consistency=flow: weight of the warped previous output in [0, 1].")
flags.DEFINE_enum("method", "fast", ["fast", "optimize"],
                  "fast: the feed-forward network; optimize: Gatys per frame from the warped previous result.")
flags.DEFINE_string("model", "", "--method=fast: a network folder (config.json + weights.npz), or 'mobile' for "
                    "the bundled phone-sized network (nst_tf.mobile); default: the bundled arbitrary-style network.")
flags.DEFINE_integer("style_size", 256, "--method=fast: long side at which style images are analysed.")
flags.DEFINE_integer("batch_size", 4, "--method=fast: frames stylized per network call.")
flags.DEFINE_integer("tile", None, "--method=fast: frames larger than this are stylized in tiles of this side with "
                     "the whole frame's statistics (unset: chosen from the free memory; 0: never; else a multiple of "
                     "8, at least 256; docs/tiling.md).")
flags.DEFINE_string("weights", "", "--method=optimize: loss-network weights, as for nst-stylize (imagenet, lpips, "
                                   "hed or a .weights.h5 file).")
flags.DEFINE_enum("backbone", None, ["vgg19", "vgg16"],
                  "--method=optimize: loss network; default as for nst-stylize.")
flags.DEFINE_enum("preprocessing", "auto", ["auto", "caffe", "torch"],
                  "--method=optimize: input normalisation of the loss network (auto: from the weights file).")
flags.DEFINE_integer("steps", 20, "--method=optimize: Adam steps per frame.")
flags.DEFINE_integer("first_frame_steps", 100, "--method=optimize: Adam steps for the first frame.")
flags.DEFINE_float("learning_rate", 0.02, "--method=optimize: Adam step size.")
flags.DEFINE_string("codec", "auto", "Video encoder (auto: by extension, e.g. libx264 for .mp4, libvpx-vp9 "
                                     "for .webm).")
flags.DEFINE_float("fps", 25.0, "Frame rate of a frames-folder --input.")


def _raise_interrupt(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt


def _validate() -> tuple[list[str], list[float] | None]:
    """Check the flags; return the style paths and blend weights."""
    for name in ("input", "style", "output"):
        if not getattr(FLAGS, name):
            raise common.UsageError(f"--{name} is required")
    common.require_non_negative("size", FLAGS.size)
    common.require_positive("fps", FLAGS.fps)
    common.require_positive("batch_size", FLAGS.batch_size)
    common.require_positive("style_size", FLAGS.style_size)
    if FLAGS.tile is not None and FLAGS.tile != 0 and (FLAGS.tile < 256 or FLAGS.tile % 8):
        raise common.UsageError(f"--tile must be 0 (untiled) or a multiple of 8 of at least 256, got {FLAGS.tile}")
    for name in ("alpha", "consistency_weight"):
        if getattr(FLAGS, name) is not None and not 0.0 <= getattr(FLAGS, name) <= 1.0:
            raise common.UsageError(f"--{name} must be in [0, 1], got {getattr(FLAGS, name)}")
    if FLAGS.alpha is not None:
        print("warning: --alpha is deprecated; use --strength (the same below 1)", file=sys.stderr)
        FLAGS.strength = FLAGS.alpha
    if not 0.0 <= FLAGS.strength <= 2.0:
        raise common.UsageError(f"--strength must be in [0, 2], got {FLAGS.strength}")
    if FLAGS.method == "optimize":
        if not FLAGS.weights:
            raise common.UsageError("--method=optimize needs --weights (as for nst-stylize)")
        common.require_positive("steps", FLAGS.steps)
        common.require_positive("first_frame_steps", FLAGS.first_frame_steps)
    style_paths, blend = common.styles_and_blend(FLAGS.style, FLAGS.style_blend)
    if os.path.abspath(FLAGS.input.rstrip("/")) == os.path.abspath(FLAGS.output.rstrip("/")):
        raise common.UsageError("--output must differ from --input")
    return style_paths, blend


def _describe(info) -> str:
    """One line about the input."""
    count = f"{info.frame_count} frames" if info.frame_count else "unknown frame count"
    rate = (f"variable {info.variable_rate[0]:.2f}-{info.variable_rate[1]:.2f} fps (average {float(info.rate):.3f})"
            if info.variable_rate else f"{float(info.rate):.3f} fps")
    audio = ", audio" if info.has_audio else ""
    return f"{info.path}: {info.width}x{info.height}, {count}, {rate}{audio}"


def _frames_out(info, width: int, height: int, style_paths: list[str], blend):
    """The iterator of (uint8 output, pts) for the chosen method and consistency."""
    from nst_tf import images, video, video_read

    consistency = video.FlowConsistency(FLAGS.consistency_weight) if FLAGS.consistency == "flow" else None
    frames = video_read.read_frames(info, width, height)
    if FLAGS.method == "fast":
        styles = [images.resize_long_side(images.load_image(p), FLAGS.style_size, p) for p in style_paths]
        from nst_tf import fast
        net = fast.load_network(FLAGS.model or None)
        stylize = video.fast_stylizer(net, fast.style_vector(net, styles, blend), FLAGS.strength, FLAGS.tile)
        return video.stylize_frames(frames, stylize, consistency, FLAGS.batch_size), consistency
    styles = [images.resize_long_side(images.load_image(p), max(width, height), p) for p in style_paths]
    from nst_tf import features

    extractor = features.build_extractor(FLAGS.weights, FLAGS.backbone, preprocessing=FLAGS.preprocessing)
    first = next(iter(video_read.read_frames(info, width, height))).image / 255.0
    gatys = video.GatysFrames(extractor, styles, first, FLAGS.steps, FLAGS.first_frame_steps,
                              FLAGS.learning_rate, blend=blend)
    return video.optimize_frames(frames, gatys, consistency), consistency


def main(argv: list[str]) -> int:
    """Validate inputs and output before any work, then stream frames through the stylizer to the writer."""
    from nst_tf import images, video_read, video_write

    style_paths, blend = _validate()
    for path in style_paths:
        images.load_image(path)  # fail early, before the network is built
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = video_read.probe(FLAGS.input, FLAGS.fps)
        codec = video_write.check_output(FLAGS.output, FLAGS.codec, FLAGS.overwrite)
        width, height = video_write.output_size(info.width, info.height, FLAGS.size, even=bool(codec))
        print(_describe(info))
        if info.variable_rate:
            print("variable frame rate: " + ("the output keeps every source timestamp" if codec else
                                             "a frames folder keeps no timestamps (write a video to keep them)"))
        if info.has_audio and not codec:
            print("the audio is not kept in a frames folder")
        frames_out, consistency = _frames_out(info, width, height, style_paths, blend)
        status = _run(frames_out, info, width, height, codec)
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    if consistency is not None and consistency.reliable_fraction:
        share = sum(consistency.reliable_fraction) / len(consistency.reliable_fraction)
        status += f"; flow reliable on {share:.0%} of pixels"
    print(status)
    return 0


def _run(frames_out, info, width: int, height: int, codec: str) -> str:
    """Write every frame with a progress bar (frames/s, ETA); the output appears only when complete."""
    import keras

    from nst_tf import video_write

    writer = video_write.open_writer(FLAGS.output, info, width, height, codec, FLAGS.overwrite)
    progbar = keras.utils.Progbar(info.frame_count, unit_name="frame", stateful_metrics=["frames/s"])
    signal.signal(signal.SIGTERM, _raise_interrupt)
    started = time.time()
    try:
        for out, pts in frames_out:
            writer.write(out, pts)
            progbar.update(writer.frames, [("frames/s", writer.frames / max(time.time() - started, 1e-9))])
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    elapsed = time.time() - started
    if writer.warning:
        print(f"warning: {writer.warning}", file=sys.stderr)
    audio = f", {writer.audio.count} audio packets copied" if writer.audio is not None else ""
    return (f"wrote {FLAGS.output}: {writer.frames} frames {width}x{height} ({FLAGS.method}, consistency "
            f"{FLAGS.consistency}) in {elapsed:.1f} s ({writer.frames / max(elapsed, 1e-9):.2f} frames/s){audio}")


def run() -> None:
    """Console entry point."""
    common.run_app(main)


if __name__ == "__main__":
    run()
