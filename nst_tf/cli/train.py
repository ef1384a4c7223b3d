"""nst-train: train the arbitrary-style network (resumes automatically from --model_dir).

  nst-train --flagfile=configs/train_arbitrary.cfg --model_dir=runs/arbitrary
  nst-train --flagfile=configs/train_mobile.cfg --model_dir=runs/mobile     # the phone-sized network (a GPU job)
"""

from __future__ import annotations

import signal
import time

from absl import flags

from nst_tf.cli import common
from nst_tf.strategies import STRATEGIES

FLAGS = flags.FLAGS
flags.DEFINE_string("content_dir", None, "Content photos: a folder (searched recursively), a .txt list of image "
                    "paths (relative to the list), an image file, or several, comma-separated, each optionally "
                    "SOURCE:N (sampled N times as often).")
flags.DEFINE_string("style_dir", None, "Style images, given like --content_dir, e.g. "
                    "'../shared/data/train_style,configs/train_styles_extra.txt:80', or one painting (a "
                    "single-style specialist: configs/train_specialist.cfg).")
flags.DEFINE_string("model_dir", None, "Run folder: checkpoints/, logs/ (TensorBoard), network/ (inference weights).")
flags.DEFINE_string("weights", "imagenet", "VGG16 for encoder and loss: imagenet, lpips, hed or a .weights.h5 file.")
flags.DEFINE_string("init_from", "", "Start the decoder from a saved network folder (e.g. nst_tf/models/arbitrary; "
                    "with --network=mobile the transformer, e.g. nst_tf/models/mobile) when the run folder has no "
                    "checkpoint yet.")
flags.DEFINE_integer("steps", 20000, "Total training steps (a resumed run stops at the same total).")
flags.DEFINE_integer("batch_size", 8, "Global batch size, split across replicas.")
flags.DEFINE_integer("crop", 256, "Random crop size of content and style images.")
flags.DEFINE_integer("style_crop", 0, "Random crop size of style images when it differs from --crop (0: --crop).")
flags.DEFINE_float("learning_rate", 1e-4, "Adam learning rate at step 0.")
flags.DEFINE_float("lr_decay", 5e-5, "Inverse-time decay: lr / (1 + lr_decay * step).")
flags.DEFINE_float("content_weight", 1.0, "Weight of the content loss.")
flags.DEFINE_float("style_weight", 10.0, "Weight of the style loss.")
flags.DEFINE_float("tv_weight", 1.0, "Weight of the total-variation loss.")
flags.DEFINE_bool("style_relative", False, "Style term relative to the content crop's own style loss, per example "
                  "(output's Gram error / the photo's): every pair is pushed by the same fraction, not by its size.")
flags.DEFINE_float("style_target", 0.0, "With --style_relative: penalise only the fraction above this (0.3: a "
                   "pair whose style loss is below 0.3 of the photo's is pushed no further).")
flags.DEFINE_float("identity_weight", 0.0, "Weight of the identity loss (decoded content features vs the content "
                   "photo, pixel MSE); with the other weights at 0: a reconstruction-only warm-up.")
flags.DEFINE_float("inversion_weight", 0.0, "With --content_target=photo: weight of the output's relu4_1 against "
                   "the decoder's relu4_1 input (Huang & Belongie's content term, beside the photo's), so the "
                   "decoder keeps the deep statistics it is given.")
flags.DEFINE_float("layout_weight", 0.0, "Weight of the layout term: the output's luminance, average-pooled by 8 and "
                   "standardised, against the photo's (losses.layout_loss): the painting's tones may go anywhere, but "
                   "the photo's light regions stay the lighter ones.")
flags.DEFINE_float("photo_weight", 0.0, "With --content_target=adain: weight of a second content term, the output's "
                   "block4_conv2 against the photo's (the Gatys content loss the checks measure), so the photo's "
                   "structure stays while the AdaIN target brings the style's deep statistics.")
flags.DEFINE_enum("content_target", "adain", ["adain", "photo"],
                  "Content loss: 'adain' (relu4_1 vs the AdaIN target, Huang & Belongie) or 'photo' (block4_conv2 "
                  "vs the content photo: the Gatys content loss of nst-stylize).")
flags.DEFINE_string("style_layers", "block1_conv1,block2_conv1,block3_conv1,block4_conv1",
                    "VGG16 layers of the Gram style loss, comma-separated.")
flags.DEFINE_enum("network", "arbitrary", ["arbitrary", "mobile"],
                  "arbitrary: the AdaIN network's decoder; mobile: the phone-sized network (nst_tf.mobile), a student "
                  "of --teacher (needs --content_target=photo).")
flags.DEFINE_list("mobile_channels", ["16", "32", "64"], "--network=mobile: the transformer's widths at full, 1/2 and "
                  "1/4 resolution (the bundled phone-sized network's are 16,32,64; Johnson et al.'s 32,64,128).")
flags.DEFINE_bool("mobile_skips", False, "--network=mobile: the transformer's full- and half-resolution features "
                  "reach its upsampling path (zero-initialised 1x1 projections, modulated by the strength): the "
                  "photo's detail for low strengths.")
flags.DEFINE_string("teacher", "", "--network=mobile: the arbitrary-style network folder it learns from "
                    "(default: the bundled one).")
flags.DEFINE_float("distill_weight", 0.0, "--network=mobile: weight of the squared pixel error to the teacher's "
                   "output.")
flags.DEFINE_integer("skip_levels", 3, "Shallower encoder levels AdaIN'd and fed to the decoder (0: relu4_1 only; "
                     "3: relu1_1..relu3_1 too, sharper).")
flags.DEFINE_integer("linear_rank", 0, "Rank of the learned linear transform at relu4_1 (Li et al. 2019; 0: AdaIN "
                     "alone, 32: as in the paper).")
flags.DEFINE_integer("moment_head", 0, "Hidden units of the learned correction of the AdaIN target moments from the "
                     "(style, content) moments (0: none; README, \"Moment head\").")
flags.DEFINE_float("strength_max", 0.0, "Train the strength control: a strength per example, uniform in [0, this] "
                   "(at most 2), fed to the network and scaling the style and palette terms by its square (0: none).")
flags.DEFINE_float("strength_zero", 0.0, "With --strength_max: the fraction of examples drawn at strength 0 exactly "
                   "(the photo itself), the rest uniform.")
flags.DEFINE_integer("strength_units", 0, "Width of the strength embedding that modulates the decoder (FiLM) or the "
                     "phone-sized network's style bottleneck (0: no strength input; --network=mobile with "
                     "--strength_max: 16).")
flags.DEFINE_bool("skip_fade", False, "Above strength 1 the decoder's skip projections (the photo's shallow "
                  "features) fade out, none at strength 2: the top of the range is more painterly (needs "
                  "--strength_units and --skip_levels).")
flags.DEFINE_bool("palette", False, "The output gets the style's pixel colour moments (a palette layer; the style "
                  "vector grows by 6 floats).")
flags.DEFINE_float("palette_weight", 0.0, "Weight of the palette loss: sliced Wasserstein distance between the "
                   "output's and the style crop's pixel colours.")
flags.DEFINE_float("viewing_weight", 0.0, "Weight, relative to the style term, of a second Gram style term with the "
                   "output and the style crop both shrunk by --viewing_scale: strokes sized for a reduced view.")
flags.DEFINE_float("viewing_scale", 0.5, "Shrink factor of the --viewing_weight term, in (0, 1).")
flags.DEFINE_enum("viewing_target", "shrunk", ["shrunk", "whole"], "The style crop in the --viewing_weight term: "
                  "shrunk like the output, or whole (the painting as a viewer sees it beside the reduced output: "
                  "strokes 1/--viewing_scale times as big in the output).")
flags.DEFINE_integer("log_every", 10, "Print and log scalars every N steps.")
flags.DEFINE_integer("image_every", 200, "Log a preview image grid every N steps.")
flags.DEFINE_integer("checkpoint_every", 100, "Checkpoint every N steps.")
flags.DEFINE_integer("snapshot_every", 0, "Also keep the inference weights every N steps in <model_dir>/snapshots/"
                     "step-N (0: off), e.g. to average them: tools/average_networks.py.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_enum("strategy", "default", list(STRATEGIES), "tf.distribute strategy.")
flags.DEFINE_integer("cpu_devices", 0, "Split the CPU into N logical devices (to run 'mirrored' without GPUs).")
flags.DEFINE_string("tpu", "", "TPU name or address for --strategy=tpu.")


def _raise_interrupt(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    """Validate flags, build the trainer under the strategy and train."""
    for name in ("content_dir", "style_dir", "model_dir"):
        if not getattr(FLAGS, name):
            raise common.UsageError(f"--{name} is required")
    for name in ("steps", "batch_size", "crop", "learning_rate", "log_every", "image_every", "checkpoint_every"):
        common.require_positive(name, getattr(FLAGS, name))
    common.require_non_negative("snapshot_every", FLAGS.snapshot_every)
    loss_weights = ("content_weight", "style_weight", "tv_weight", "identity_weight", "distill_weight",
                    "inversion_weight", "photo_weight", "layout_weight", "palette_weight")
    if any(getattr(FLAGS, name) < 0 for name in loss_weights) or not any(getattr(FLAGS, n) for n in loss_weights):
        raise common.UsageError("loss weights must be non-negative and not all 0: "
                                + ", ".join(f"--{n}={getattr(FLAGS, n)}" for n in loss_weights))
    if not 0 <= FLAGS.style_target < 1 or (FLAGS.style_target and not FLAGS.style_relative):
        raise common.UsageError(f"--style_target must be in [0, 1) and needs --style_relative, "
                                f"got {FLAGS.style_target}")
    if FLAGS.viewing_weight < 0 or not 0 < FLAGS.viewing_scale < 1:
        raise common.UsageError(f"--viewing_weight must be non-negative and --viewing_scale in (0, 1), got "
                                f"{FLAGS.viewing_weight}, {FLAGS.viewing_scale}")
    if not 0 <= FLAGS.strength_max <= 2:
        raise common.UsageError(f"--strength_max must be in [0, 2], got {FLAGS.strength_max}")
    if FLAGS.strength_max and not (FLAGS.strength_units or FLAGS.network == "mobile"):
        raise common.UsageError("--strength_max needs --strength_units > 0 (the decoder's strength input)")
    if FLAGS.skip_fade and (FLAGS.network == "mobile" or not FLAGS.strength_units or not FLAGS.skip_levels):
        raise common.UsageError("--skip_fade needs the arbitrary network with --strength_units > 0 and "
                                "--skip_levels > 0")
    if not 0 <= FLAGS.strength_zero < 1:
        raise common.UsageError(f"--strength_zero must be in [0, 1), got {FLAGS.strength_zero}")
    if FLAGS.crop < 32 or (FLAGS.style_crop != 0 and FLAGS.style_crop < 32):
        raise common.UsageError(f"--crop and --style_crop must be at least 32, got {FLAGS.crop}, {FLAGS.style_crop}")
    for name in ("content_dir", "style_dir"):
        common.check_sources(name, getattr(FLAGS, name))  # before TensorFlow loads
    from nst_tf import strategies, train

    if FLAGS.cpu_devices:
        strategies.split_cpu(FLAGS.cpu_devices)
    strategy = strategies.make_strategy(FLAGS.strategy, FLAGS.tpu)
    if FLAGS.batch_size % strategy.num_replicas_in_sync:
        raise common.UsageError(f"--batch_size={FLAGS.batch_size} does not split across "
                                f"{strategy.num_replicas_in_sync} replicas")
    config = train.TrainConfig(
        content_dir=FLAGS.content_dir, style_dir=FLAGS.style_dir, model_dir=FLAGS.model_dir, weights=FLAGS.weights,
        steps=FLAGS.steps, batch_size=FLAGS.batch_size, crop=FLAGS.crop, style_crop=FLAGS.style_crop,
        learning_rate=FLAGS.learning_rate,
        lr_decay=FLAGS.lr_decay, content_weight=FLAGS.content_weight, style_weight=FLAGS.style_weight,
        tv_weight=FLAGS.tv_weight, identity_weight=FLAGS.identity_weight, log_every=FLAGS.log_every,
        image_every=FLAGS.image_every, checkpoint_every=FLAGS.checkpoint_every, seed=FLAGS.seed,
        content_target=FLAGS.content_target, style_layers=FLAGS.style_layers,
        distill_weight=FLAGS.distill_weight, teacher=FLAGS.teacher, style_relative=FLAGS.style_relative,
        style_target=FLAGS.style_target, snapshot_every=FLAGS.snapshot_every, inversion_weight=FLAGS.inversion_weight,
        strength_max=FLAGS.strength_max, palette_weight=FLAGS.palette_weight, strength_zero=FLAGS.strength_zero,
        viewing_weight=FLAGS.viewing_weight, viewing_scale=FLAGS.viewing_scale,
        viewing_target=FLAGS.viewing_target, photo_weight=FLAGS.photo_weight,
        layout_weight=FLAGS.layout_weight)
    if not 0 <= FLAGS.skip_levels <= 3:
        raise common.UsageError(f"--skip_levels must be 0..3, got {FLAGS.skip_levels}")
    if not 0 <= FLAGS.linear_rank <= 128:
        raise common.UsageError(f"--linear_rank must be 0..128, got {FLAGS.linear_rank}")
    mobile_run = FLAGS.network == "mobile"
    if mobile_run and FLAGS.content_target != "photo":
        raise common.UsageError("--network=mobile needs --content_target=photo (it has no AdaIN target)")
    if not 0 <= FLAGS.moment_head <= 4096:
        raise common.UsageError(f"--moment_head must be 0..4096, got {FLAGS.moment_head}")
    if mobile_run and (FLAGS.linear_rank or FLAGS.moment_head):
        raise common.UsageError("--linear_rank and --moment_head are for --network=arbitrary (the phone-sized "
                                "network has no encoder features to transform)")
    if not mobile_run and FLAGS.mobile_skips:
        raise common.UsageError("--mobile_skips is for --network=mobile")
    if not mobile_run and (FLAGS.distill_weight or FLAGS.teacher):
        raise common.UsageError("--distill_weight and --teacher are for --network=mobile")
    from nst_tf import mobile, network, weights

    try:
        mobile_channels = mobile.parse_channels(",".join(FLAGS.mobile_channels))
    except ValueError as exc:
        raise common.UsageError(f"--mobile_channels {exc}") from None

    preprocessing = weights.resolve(FLAGS.weights, "vgg16").preprocessing
    network_config = (mobile.MobileConfig(channels=mobile_channels, preprocessing=preprocessing,
                                          strength_units=FLAGS.strength_units or (16 if FLAGS.strength_max else 0),
                                          palette=FLAGS.palette, skips=FLAGS.mobile_skips) if mobile_run
                      else network.NetworkConfig(preprocessing=preprocessing, skip_levels=FLAGS.skip_levels,
                                             linear_rank=FLAGS.linear_rank, moment_head=FLAGS.moment_head,
                                             strength_units=FLAGS.strength_units, palette=FLAGS.palette,
                                             skip_fade=FLAGS.skip_fade))
    try:
        trainer = train.Trainer(config, strategy, network_config)
        if FLAGS.init_from and trainer.resumed_from is None:
            fresh = trainer.init_decoder_from(FLAGS.init_from)
            print(f"{'transformer' if mobile_run else 'decoder'} initialised from {FLAGS.init_from}"
                  + (f" (new layers, as initialised, their output projections at zero: {', '.join(fresh)})"
                     if fresh else ""), flush=True)
    except train.TrainingError as exc:
        raise ValueError(str(exc)) from None
    print(f"strategy {FLAGS.strategy}: {strategy.num_replicas_in_sync} replica(s), global batch {FLAGS.batch_size}; "
          f"TensorBoard: tensorboard --logdir={FLAGS.model_dir}/logs", flush=True)
    started = time.time()

    def on_log(step, values, rate):
        remaining = (FLAGS.steps - step) / rate if rate > 0 else float("nan")
        losses = " ".join(f"{k}={v:.4g}" for k, v in values.items())
        print(f"step {step}/{FLAGS.steps} {rate:.2f} steps/s ETA {remaining / 60:.1f} min "
              f"elapsed {(time.time() - started) / 60:.1f} min | {losses}", flush=True)

    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        last = trainer.fit(on_log)
    except KeyboardInterrupt:
        path = trainer.save()
        common.fail(f"interrupted at step {trainer.current_step}; checkpoint {path} "
                    "(run the same command to resume)", 130)
    except train.TrainingError as exc:
        raise ValueError(str(exc)) from None
    print(f"done: step {trainer.current_step}, losses {last}; network weights in {FLAGS.model_dir}/network", flush=True)
    return 0


def run() -> None:
    """Console entry point."""
    common.run_app(main)


if __name__ == "__main__":
    run()
