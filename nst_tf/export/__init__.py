"""Export a feed-forward network (arbitrary-style or phone-sized): a SavedModel for TF Serving / TF Hub, TFLite
models, a model card.

SavedModel (TF Serving layout `<output_dir>/<model_name>/<version>/`), signatures:
- serving_default: float32 `content` [B, H, W, 3] and `style` [B or 1, h, w, 3] in [0, 1], `strength` (scalar or
  [B], in [0, 2]: 0 the photo, 1 the painting's look, 2 more painterly) -> `stylized_image` [B, H, W, 3] in [0, 1];
  any H, W >= 16 (mirror-padded to the stride inside).
- stylize_bytes (strength 1) / stylize_bytes_strength (+ `strength`): encoded JPEG/PNG/GIF/BMP strings `content`,
  `style` (scalar or [B]) -> `stylized_image_bytes`, PNG strings (TF Serving REST returns them as {"b64": ...}).
- predict_style: `style` -> `style_vector` [B, V] (V: the network's vector size, 2944 for the bundled one:
  1920 moments + its 32×32 linear-transform matrix; 6 more floats with the palette layer);
  stylize_with_vector: `content`, `style_vector`, `strength`.
- `__call__(content, style)` returns [stylized_image] at strength 1, so `hub.load(dir)(content, style)[0]` works as
  with the TF Hub module magenta/arbitrary-image-stylization-v1-256; `__call__(content, style, strength)` too.

TFLite (`<output_dir>/tflite/`), split as in the TensorFlow Lite Android style-transfer example:
`<name>_<fp16|int8>_prediction_<version>.tflite` (style [1, 256, 256, 3] -> style_vector [1, 1, 1, V]) and
`<name>_<fp16|int8>_transfer_<version>.tflite` (content [1, 384, 384, 3], strength [1], style_vector [1, 1, 1, V]
-> stylized_image; the converter lists inputs sorted by name), plus resizable float16 variants (`..._dynamic_...`).
Builtin ops only.

One module per job: `options` (what to export and where; no TensorFlow), `checks` (input validation inside the
serving graph), `serving` (the SavedModel), `tflite` (TFLite conversion), `parity` (checks against the Keras model),
`timing`, `exporter` (the whole export) and `card` (the model card). Every public name is importable from
`nst_tf.export`; the submodules load on first use, so `nst_tf.export.options` (the flag checks of nst-export) imports
no TensorFlow.
"""

from __future__ import annotations

import importlib

_MODULES = {  # submodule -> the public names it defines
    "options": ("FORMATS", "INT8_MODES", "MIN_SIDE", "ExportError", "ExportOptions", "TFLiteVariant",
        "COMBINED_SIGNATURES", "TFLITE_VARIANTS", "combined_filename", "saved_model_dir", "tflite_dir",
        "planned_outputs", "check_options", "check_outputs", "resolve_checkpoint"),
    "checks": ("validated", "check_images", "check_batch", "check_strength", "check_style_vector", "check_encoded",
        "header_pixels", "decode", "resize_long_side", "encode_png"),
    "serving": ("BYTES_STYLE_SIZE", "SIGNATURES", "StyleTransferModule", "build_serving_module",
        "serving_signatures", "write_saved_model"),
    "tflite": ("tflite_signature", "tflite_function", "write_tflite_source", "write_combined_source",
        "convert_tflite", "tflite_ops", "non_builtin_ops", "tflite_session", "tflite_runners", "tflite_outputs",
        "WEIGHTS_MIN_ELEMENTS", "sliced_conv2d", "kept_float", "float_weight_convolutions"),
    "parity": ("IMAGE_BOUNDS", "VECTOR_BOUNDS", "PARITY_STRENGTHS", "CALIBRATION_STRENGTHS", "SWEEP_STRENGTHS",
        "IMAGE_EXTENSIONS", "pick_images", "center_square", "ParityPair", "parity_pairs", "calibration_data",
        "calibration_strength", "errors", "worst", "within", "tflite_within", "keras_reference", "check_saved_model",
        "strength_sweep", "saved_model_bound", "tflite_example",
        "check_tflite", "chain", "check_pipeline", "check_combined"),
    "timing": ("time_calls", "environment"),
    "exporter": ("convert_int8", "DYNAMIC_SCHEME", "FP16_SCHEME", "dynamic_scheme", "dynamic_int8",
        "export_tflite", "COMBINED_SCHEMES", "export_combined", "describe_checkpoint",
        "folder_size", "export_saved_model", "failures", "export"),
    "card": ("SIGNATURE_DOCS", "model_card", "summary"),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    """Load the submodule that defines `name` on first use (PEP 562)."""
    if name in _HOME:
        value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """Public names and the submodules."""
    return sorted({*globals(), *_HOME})
