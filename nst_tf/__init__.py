"""nst_tf: neural style transfer for TensorFlow/Keras.

    import nst_tf
    nst_tf.stylize("photo.jpg", "painting.jpg", method="fast").save("out.png")

The stable surface is `stylize`, `load_network`, `load_image`, `save_image` and `NSTError` (nst_tf.api); the
modules (nst_tf.fast, nst_tf.optimize, ...) are there for more control. Nothing heavy is imported until used.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"
__all__ = ["NSTError", "load_image", "load_network", "save_image", "stylize", "__version__"]
_API = {"NSTError", "load_image", "load_network", "save_image", "stylize"}


def __getattr__(name: str):
    """Load the API (and the submodules, e.g. nst_tf.fast) on first use, so `import nst_tf` stays cheap."""
    if name in _API:
        return getattr(importlib.import_module("nst_tf.api"), name)
    if not name.startswith("_"):
        try:
            return importlib.import_module(f"nst_tf.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"nst_tf.{name}":
                raise
    raise AttributeError(f"module 'nst_tf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
