"""nst-export: a feed-forward network as a SavedModel (TF Serving, TF Hub) and TFLite models, with a model card.

Every stylizing signature and the TFLite transfer models take a `strength` input (0: the photo, 1: the painting's
look, the default, up to 2: more painterly); each export is checked against the Keras model at strengths 0 to 2.

  nst-export                                            # bundled weights -> export/ (SavedModel + TFLite)
  nst-export --checkpoint=runs/arbitrary --output_dir=export --version=2 --overwrite   # an nst-train --model_dir
  nst-export --formats=saved_model --output_dir=/models   # TF Serving: /models/arbitrary_style/1/
  nst-export --network=mobile                           # the phone-sized network -> export/mobile/, mobile_style
"""

from __future__ import annotations

import os

from absl import flags, logging

from nst_tf.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "export", "Folder to write into: <output_dir>/<model_name>/<version>/ (SavedModel), "
                    "<output_dir>/tflite/, <output_dir>/MODEL_CARD.md.")
flags.DEFINE_string("model_name", "arbitrary_style", "Model name (the TF Serving model folder, TFLite file prefix).")
flags.DEFINE_integer("version", 1, "Model version (the TF Serving version folder).")
flags.DEFINE_enum("network", "arbitrary", ["arbitrary", "mobile"],
                  "Which bundled network, when --checkpoint is not given: the arbitrary-style network, or the "
                  "phone-sized nst_tf.mobile one (then --output_dir defaults to export/mobile and --model_name to "
                  "mobile_style).")
flags.DEFINE_string("checkpoint", "", "A network folder (config.json + weights.npz) or an nst-train --model_dir "
                    "(its network/ folder); default: the bundled weights.")
flags.DEFINE_string("formats", "saved_model,tflite", "Comma-separated: saved_model, tflite.")
flags.DEFINE_bool("overwrite", False, "Replace existing outputs.")
flags.DEFINE_integer("content_size", 384, "Content side of the fixed-size TFLite transfer model.")
flags.DEFINE_integer("style_size", 256, "Style side of the fixed-size TFLite prediction model.")
flags.DEFINE_enum("int8", "auto", ["auto", "full", "dynamic"],
                  "int8 TFLite scheme: full-integer (TFLITE_BUILTINS_INT8), dynamic-range, or auto: full-integer "
                  "when its measured error is within the int8 bound, dynamic-range otherwise.")
flags.DEFINE_integer("calibration_samples", 16, "Representative images for full-integer int8 (from --data_dir).")
flags.DEFINE_string("data_dir", "", "Images for calibration (train_content/, train_style/) and parity checks "
                    "(content/, styles/); default $NST_TF_DATA or ../shared/data.")
flags.DEFINE_integer("parity_pairs", 3, "Content/style pairs on which each export is compared with the Keras model.")
flags.DEFINE_integer("latency_runs", 5, "Timed runs per model for the model card.")
flags.DEFINE_integer("threads", 2, "TFLite interpreter threads for parity checks and timings.")


def _data_dir() -> str:
    """--data_dir, else $NST_TF_DATA, else ../shared/data."""
    return FLAGS.data_dir or os.environ.get("NST_TF_DATA") or os.path.join("..", "shared", "data")


def main(argv: list[str]) -> int:
    """Parse the flags, export with nst_tf.export, print what was written (TensorFlow loads once the flags are good)."""
    from nst_tf.export import options as export_options  # no TensorFlow

    is_mobile = FLAGS.network == "mobile"
    output_dir = FLAGS.output_dir if FLAGS["output_dir"].present or not is_mobile else os.path.join("export", "mobile")
    model_name = FLAGS.model_name if FLAGS["model_name"].present or not is_mobile else "mobile_style"
    options = export_options.ExportOptions(
        output_dir=output_dir, model_name=model_name, version=FLAGS.version,
        formats=tuple(common.split_list(FLAGS.formats)), overwrite=FLAGS.overwrite,
        content_size=FLAGS.content_size, style_size=FLAGS.style_size, int8=FLAGS.int8,
        calibration_samples=FLAGS.calibration_samples, parity_pairs=FLAGS.parity_pairs,
        latency_runs=FLAGS.latency_runs, threads=FLAGS.threads)
    try:
        export_options.check_options(options)
    except export_options.ExportError as exc:
        raise common.UsageError(str(exc)) from None
    export_options.check_outputs(options)
    if not os.path.isdir(_data_dir()):
        raise common.UsageError(f"--data_dir={_data_dir()}: not a folder (parity checks and int8 calibration "
                                "need images; set --data_dir or NST_TF_DATA)")
    checkpoint = export_options.resolve_checkpoint(FLAGS.checkpoint)
    named = checkpoint in ("arbitrary", "mobile") and not os.path.isdir(checkpoint)  # fast.load_network's names
    if checkpoint and not named and not os.path.isfile(os.path.join(checkpoint, "config.json")):
        raise FileNotFoundError(f"{os.path.join(checkpoint, 'config.json')}: missing (a model folder holds "
                                "config.json and weights.npz)")

    logging.set_verbosity(logging.WARNING)  # TensorFlow's per-file save and convert notes
    from nst_tf import export, fast, mobile
    from nst_tf.network import BUNDLED_DIR

    checkpoint = checkpoint or (mobile.BUNDLED_DIR if is_mobile else BUNDLED_DIR)
    net = fast.load_network(checkpoint)
    report = export.export(net, options, _data_dir(), checkpoint)
    for line in export.summary(report):
        print(line)
    return 0


def run() -> None:
    """Console entry point."""
    common.run_app(main)


if __name__ == "__main__":
    run()
