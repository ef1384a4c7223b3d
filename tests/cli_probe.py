"""Run nst-stylize's main() in this process and report what reached the optimiser (a helper of the tests).

  python tests/cli_probe.py [--skip] --content=... --style=... --output=... [nst-stylize flags]

nst_tf.optimize.stylize is wrapped: when the command line calls it, one line `probe: {json}` is printed with the
Options it was given, Keras' global dtype policy and the loss network's compute dtype; then the real function runs
(with --skip it is not run and the content comes back unchanged, for checks of the settings alone).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    """Install the recorder, then hand the remaining arguments to nst-stylize as its command line."""
    args = sys.argv[1:]
    skip = "--skip" in args
    args = [a for a in args if a != "--skip"]
    import keras
    from absl import app

    from nst_tf import optimize
    from nst_tf.cli import common, stylize

    real = optimize.stylize

    def recorder(extractor, content, styles, options, callback=None, masks=None):
        record = {"options": dataclasses.asdict(options), "policy": keras.mixed_precision.global_policy().name,
                  "compute_dtype": extractor.model.layers[-1].compute_dtype, "content_shape": list(content.shape),
                  "styles": len(styles), "masks": None if masks is None else list(masks.shape)}
        print("probe: " + json.dumps(record, default=lambda v: f"<{type(v).__name__}>"), flush=True)
        if skip:
            return content
        return real(extractor, content, styles, options, callback, masks)

    optimize.stylize = recorder
    app.run(common.guarded(stylize.main), argv=["nst-stylize", *args])


if __name__ == "__main__":
    main()
