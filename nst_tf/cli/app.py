"""nst-app: the web app to try styles in the browser (Gradio; `pip install -e '.[app]'`).

  nst-app                       # http://127.0.0.1:7860
  nst-app --port=8080 --weights=lpips --preset=quality
  nst-app --host=0.0.0.0        # serve to other machines too
"""

from __future__ import annotations

import importlib.util

from absl import flags

from nst_tf import presets
from nst_tf.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_integer("port", 7860, "Port to serve on.")
flags.DEFINE_string("host", "127.0.0.1", "Address to serve on (0.0.0.0: every interface; default this machine only).")
flags.DEFINE_string("weights", "imagenet", "Loss network weights for Refine, as in nst-stylize: imagenet (Keras "
                    "download, cached), lpips or hed (offline), or a .weights.h5 file.")
flags.DEFINE_enum("preset", "preview", presets.names(), "Refine's default settings (a bundled preset; the page "
                  "offers the others).")
flags.DEFINE_integer("preview_size", 384, "Long side of the instant preview in pixels.")


def main(argv: list[str]) -> int:
    """Check the flags, then import Gradio and TensorFlow and serve until interrupted."""
    if not 1 <= FLAGS.port <= 65535:
        raise common.UsageError(f"--port must be in 1..65535, got {FLAGS.port}")
    if not FLAGS.host.strip():
        raise common.UsageError("--host is empty")
    common.require_positive("preview_size", FLAGS.preview_size)
    if importlib.util.find_spec("gradio") is None:
        common.fail("gradio is not installed: pip install -e '.[app]' (or pip install gradio)")
    from nst_tf import app as web

    print(f"nst-app: serving on http://{FLAGS.host}:{FLAGS.port} (Ctrl+C to stop)", flush=True)
    web.serve(FLAGS.host, FLAGS.port, FLAGS.weights, FLAGS.preset, FLAGS.preview_size)
    return 0


def run() -> None:
    """Console entry point."""
    common.run_app(main)


if __name__ == "__main__":
    run()
