"""Export the arbitrary-style network: a SavedModel for TF Serving / TF Hub, TFLite models, a model card.

SavedModel (TF Serving layout `<output_dir>/<model_name>/<version>/`), signatures:
- serving_default: float32 `content` [B, H, W, 3] and `style` [B or 1, h, w, 3] in [0, 1], `alpha` (scalar or [B])
  -> `stylized_image` [B, H, W, 3] in [0, 1]; any H, W >= 16 (mirror-padded to the stride inside).
- stylize_bytes / stylize_bytes_alpha: encoded JPEG/PNG/GIF/BMP strings `content`, `style` (scalar or [B])
  (+ `alpha`) -> `stylized_image_bytes`, PNG strings (TF Serving REST returns them as {"b64": ...}).
- predict_style: `style` -> `style_vector` [B, V] (V: the network's vector size, 2944 for the bundled one:
  1920 moments + its 32×32 linear-transform matrix);
  stylize_with_vector: `content`, `style_vector`, `alpha`.
- `__call__(content, style)` returns [stylized_image], so `hub.load(dir)(content, style)[0]` works as with
  the TF Hub module magenta/arbitrary-image-stylization-v1-256.

TFLite (`<output_dir>/tflite/`), split as in the TensorFlow Lite Android style-transfer example:
`<name>_<fp16|int8>_prediction_<version>.tflite` (style [1, 256, 256, 3] -> style_vector [1, 1, 1, V]) and
`<name>_<fp16|int8>_transfer_<version>.tflite` (content [1, 384, 384, 3], style_vector, alpha [1] ->
stylized_image), plus resizable float16 variants (`..._dynamic_...`). Builtin ops only.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf

from nst_tf import fast, images, mobile
from nst_tf.network import BUNDLED_DIR, ArbitraryStyleNetwork

FORMATS = ("saved_model", "tflite")
INT8_MODES = ("auto", "full", "dynamic")
MIN_SIDE = 16  # smaller inputs cannot be mirror-padded to the stride
BYTES_STYLE_SIZE = fast.STYLE_SIZE  # the bytes signatures resize style images to this long side
SIGNATURES = ("serving_default", "stylize_bytes", "stylize_bytes_alpha", "predict_style", "stylize_with_vector")
IMAGE_BOUNDS = {  # (max, mean) absolute error on [0, 1] images, against the Keras model
    "saved_model": (1e-3, 1e-4),
    "png": (2.0 / 255.0, 2e-3),  # the bytes signatures round to 8 bits
    "fp16": (0.05, 1e-2),
    "int8": (0.25, 0.03),
}
VECTOR_BOUNDS = {"fp16": 0.01, "int8": 0.05}  # mean abs error of a prediction model's style vector / mean |vector|
CALIBRATION_ALPHAS = (1.0, 0.0, 1.0, 0.5)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class ExportError(ValueError):
    """An export that cannot be written or that fails its parity checks (one-line message)."""


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """What to export, where, and how to check it."""

    output_dir: str = "export"
    model_name: str = "arbitrary_style"
    version: int = 1
    formats: tuple[str, ...] = FORMATS
    overwrite: bool = False
    content_size: int = 384  # TFLite transfer input (square)
    style_size: int = 256  # TFLite prediction input (square)
    int8: str = "auto"  # auto: full-integer if within IMAGE_BOUNDS['int8'], else dynamic-range
    calibration_samples: int = 16
    parity_pairs: int = 3
    latency_runs: int = 3
    threads: int = 2


@dataclasses.dataclass(frozen=True)
class TFLiteVariant:
    """One TFLite file: which half of the network, its quantization, and whether its input is resizable."""

    part: str  # "prediction" or "transfer"
    quantization: str  # "fp16" or "int8"
    dynamic: bool = False

    def filename(self, options: ExportOptions) -> str:
        """File name, following the Android example's naming."""
        suffix = "_dynamic" if self.dynamic else ""
        return f"{options.model_name}_{self.quantization}_{self.part}{suffix}_{options.version}.tflite"


COMBINED_SIGNATURES = ("prediction", "transfer")
TFLITE_VARIANTS = (
    TFLiteVariant("prediction", "fp16"), TFLiteVariant("transfer", "fp16"),
    TFLiteVariant("prediction", "int8"), TFLiteVariant("transfer", "int8"),
    TFLiteVariant("prediction", "fp16", dynamic=True), TFLiteVariant("transfer", "fp16", dynamic=True),
)


# -- input validation inside the serving graph -------------------------------------------------------------
def validated(value: tf.Tensor, checks: Sequence[tuple[tf.Tensor, str]]) -> tf.Tensor:
    """`value` once all (condition, message) checks hold; else InvalidArgumentError naming the first failure."""
    # One Assert for all checks: Grappler folds shape conditions and may run separate asserts in any order, so
    # chaining them with control dependencies does not reliably report the most basic problem first.
    conditions = tf.stack([tf.reshape(tf.cast(condition, tf.bool), []) for condition, _ in checks])
    first = tf.reduce_min(tf.where(conditions, len(checks), tf.range(len(checks))))
    message = tf.gather(tf.constant([m for _, m in checks] + ["ok"]), first)
    assertion = tf.debugging.Assert(tf.reduce_all(conditions), [message], summarize=1)
    with tf.control_dependencies([assertion] if assertion is not None else []):
        return tf.identity(value)


def _dims(value: tf.Tensor, rank: int) -> tf.Tensor:
    """The first `rank` dimensions of `value`, zero-padded: safe to index even when the rank is wrong."""
    return tf.concat([tf.shape(value), tf.zeros([rank], tf.int32)], axis=0)[:rank]


def _as_rank(value: tf.Tensor, rank: int) -> tf.Tensor:
    """Reshape a validated tensor to its first `rank` dims: later shape arithmetic never indexes out of range."""
    # Not tf.ensure_shape: Grappler trusts that shape before the assertion has run and fails elsewhere first.
    return tf.reshape(value, _dims(value, rank))


def _batch_ok(size: tf.Tensor, batch: tf.Tensor) -> tf.Tensor:
    """A batch dimension of 1 (broadcast) or the content batch size."""
    return tf.logical_or(tf.equal(size, 1), tf.equal(size, batch))


def check_images(x: tf.Tensor, name: str) -> tf.Tensor:
    """Validate a float image batch: rank 4, 3 channels, sides >= MIN_SIDE, finite values in [0, 1]."""
    x = tf.convert_to_tensor(x, tf.float32)
    dims = _dims(x, 4)
    x = validated(x, [
        (tf.equal(tf.rank(x), 4), f"{name}: expected a [batch, height, width, 3] image tensor"),
        (tf.equal(dims[3], 3), f"{name}: expected 3 channels (RGB)"),
        (dims[0] > 0, f"{name}: empty batch"),
        (tf.reduce_min(dims[1:3]) >= MIN_SIDE, f"{name}: height and width must be at least {MIN_SIDE} px"),
        (tf.reduce_all(tf.math.is_finite(x)), f"{name}: contains NaN or Inf"),
        (tf.logical_and(tf.reduce_min(x) >= 0.0, tf.reduce_max(x) <= 1.0),
         f"{name}: values must be in [0, 1] (float RGB; divide 8-bit images by 255)"),
    ])
    x = _as_rank(x, 4)
    x.set_shape([None, None, None, 3])
    return x


def check_batch(value: tf.Tensor, size: tf.Tensor, batch: tf.Tensor, name: str) -> tf.Tensor:
    """`value` once its batch `size` is 1 or the content batch size."""
    return validated(value, [(_batch_ok(size, batch), f"{name}: batch must be 1 or the content batch size")])


def check_alpha(alpha: tf.Tensor, batch: tf.Tensor) -> tf.Tensor:
    """Validate alpha (a scalar or one value per image, in [0, 1]) and broadcast it to [batch]."""
    alpha = tf.convert_to_tensor(alpha, tf.float32)
    alpha = validated(alpha, [
        (tf.rank(alpha) <= 1, "alpha: expected a scalar or a [batch] vector"),
        (_batch_ok(tf.size(alpha), batch), "alpha: batch must be 1 or the content batch size"),
        (tf.reduce_all(tf.logical_and(alpha >= 0.0, alpha <= 1.0)), "alpha: values must be in [0, 1]"),
    ])
    return tf.broadcast_to(tf.reshape(alpha, [-1])[:batch], [batch])


def check_style_vector(vector: tf.Tensor, batch: tf.Tensor, size: int) -> tf.Tensor:
    """Validate a [batch or 1, size] style vector (finite)."""
    vector = tf.convert_to_tensor(vector, tf.float32)
    dims = _dims(vector, 2)
    vector = validated(vector, [
        (tf.equal(tf.rank(vector), 2), f"style_vector: expected a [batch, {size}] tensor"),
        (tf.equal(dims[1], size), f"style_vector: expected {size} values per style"),
        (_batch_ok(dims[0], batch), "style_vector: batch must be 1 or the content batch size"),
        (tf.reduce_all(tf.math.is_finite(vector)), "style_vector: contains NaN or Inf"),
    ])
    vector = _as_rank(vector, 2)
    vector.set_shape([None, size])
    return vector


def check_encoded(data: tf.Tensor, name: str) -> tf.Tensor:
    """Validate encoded images (a string or a [batch] of strings): non-empty, a known format; return [N]."""
    data = tf.convert_to_tensor(data, tf.string)
    data = validated(data, [
        (tf.rank(data) <= 1, f"{name}: expected one encoded image or a [batch] of them"),
        (tf.size(data) > 0, f"{name}: empty batch"),
        (tf.reduce_all(tf.strings.length(data) > 0), f"{name}: empty bytes (expected an encoded JPEG or PNG image)"),
        (tf.reduce_all(_is_image_format(data)), f"{name}: not a JPEG, PNG, GIF or BMP image"),
    ])
    return tf.reshape(data, [-1])


def _is_image_format(data: tf.Tensor) -> tf.Tensor:
    """True where the bytes start with a JPEG, PNG, GIF or BMP signature."""
    head = tf.strings.substr(data, 0, 8)
    signatures = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
    return tf.reduce_any(
        tf.stack([tf.strings.substr(head, 0, len(s)) == s for s in signatures], axis=0), axis=0)


def _header_int(data: tf.Tensor, offset: int, size: int, big_endian: bool) -> tf.Tensor:
    """An unsigned integer of `size` bytes at `offset` of an encoded image header, as int64."""
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(data, offset, size), tf.uint8), tf.int64)
    raw = tf.pad(raw, [[0, size - tf.shape(raw)[0]]])  # a truncated header reads as zeros
    order = tf.range(size, dtype=tf.int64) if not big_endian else tf.range(size - 1, -1, -1, dtype=tf.int64)
    return tf.reduce_sum(raw * tf.bitwise.left_shift(tf.constant(1, tf.int64), 8 * order))


def header_pixels(data: tf.Tensor) -> tf.Tensor:
    """Width x height that an encoded JPEG/PNG/GIF/BMP declares, read without decoding it."""
    head = tf.strings.substr(data, 0, 2)
    png = lambda: _header_int(data, 16, 4, True) * _header_int(data, 20, 4, True)  # noqa: E731  IHDR
    gif = lambda: _header_int(data, 6, 2, False) * _header_int(data, 8, 2, False)  # noqa: E731
    def bmp() -> tf.Tensor:  # height is signed (negative: top-down rows)
        height = _header_int(data, 22, 4, False)
        return _header_int(data, 18, 4, False) * tf.abs(tf.where(height >= 2 ** 31, height - 2 ** 32, height))

    jpeg = lambda: tf.reduce_prod(tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64))  # noqa: E731
    return tf.case([(tf.equal(head, b"\xff\xd8"), jpeg), (tf.equal(head, b"\x89P"), png),
                    (tf.equal(head, b"GI"), gif)], default=bmp)


def decode(data: tf.Tensor, name: str) -> tf.Tensor:
    """One encoded image -> [1, H, W, 3] float32 in [0, 1] (16-bit PNGs scaled, alpha dropped).

    The declared size is checked first, so a decompression bomb is refused before it is decoded.
    """
    data = validated(data, [(header_pixels(data) <= images.MAX_PIXELS,
                             f"{name}: image too large to decode safely (over {images.MAX_PIXELS} pixels)")])
    image = tf.io.decode_image(data, channels=3, dtype=tf.float32, expand_animations=False)
    return check_images(image[None], name)


def resize_long_side(image: tf.Tensor, size: int) -> tf.Tensor:
    """Resize [1, H, W, 3] so the long side is `size` (antialiased, aspect kept)."""
    shape = tf.cast(tf.shape(image)[1:3], tf.float32)
    new = tf.maximum(tf.cast(tf.round(shape * (size / tf.reduce_max(shape))), tf.int32), 1)
    return tf.clip_by_value(tf.image.resize(image, new, method="area", antialias=True), 0.0, 1.0)


def encode_png(image: tf.Tensor) -> tf.Tensor:
    """[H, W, 3] float in [0, 1] -> PNG bytes (rounded to 8 bits like images.to_uint8)."""
    return tf.io.encode_png(tf.cast(tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255.0), tf.uint8))


# -- the serving module ----------------------------------------------------------------------------------
_ANY_FLOAT = tf.TensorSpec(None, tf.float32)
_ANY_STRING = tf.TensorSpec(None, tf.string)


def _spec(base: tf.TensorSpec, name: str) -> tf.TensorSpec:
    """A copy of `base` with a name (the signature input key)."""
    return tf.TensorSpec(base.shape, base.dtype, name=name)


class StyleTransferModule(tf.Module):
    """The exported object: serving signatures plus a TF Hub style __call__(content, style) -> [image]."""

    def __init__(self, net: ArbitraryStyleNetwork, style_size: int = BYTES_STYLE_SIZE):
        super().__init__(name="arbitrary_style")
        self.models = list(net.models)
        self._net = net
        self._style_size = style_size
        self._vector_size = net.vector_size

    def _stylize(self, content: tf.Tensor, style: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
        """Validated float inputs -> stylized images."""
        content = check_images(content, "content")
        style = check_images(style, "style")
        batch = tf.shape(content)[0]
        style = check_batch(style, tf.shape(style)[0], batch, "style")
        return fast.stylize_padded(self._net, content, self._net.predict_style(style), check_alpha(alpha, batch))

    @tf.function(input_signature=[_spec(_ANY_FLOAT, "content"), _spec(_ANY_FLOAT, "style"),
                                  _spec(_ANY_FLOAT, "alpha")], autograph=False)
    def stylize(self, content, style, alpha):
        """serving_default: float content and style images in [0, 1] and alpha -> stylized_image."""
        return {"stylized_image": self._stylize(content, style, alpha)}

    @tf.function(input_signature=[_spec(_ANY_FLOAT, "style")], autograph=False)
    def predict_style(self, style):
        """Style images -> style_vector [B, V]."""
        return {"style_vector": self._net.predict_style(check_images(style, "style"))}

    @tf.function(input_signature=[_spec(_ANY_FLOAT, "content"), _spec(_ANY_FLOAT, "style_vector"),
                                  _spec(_ANY_FLOAT, "alpha")], autograph=False)
    def stylize_with_vector(self, content, style_vector, alpha):
        """Content images, a style vector from predict_style, alpha -> stylized_image."""
        content = check_images(content, "content")
        batch = tf.shape(content)[0]
        vector = check_style_vector(style_vector, batch, self._vector_size)
        return {"stylized_image": fast.stylize_padded(self._net, content, vector, check_alpha(alpha, batch))}

    def _stylize_encoded(self, content: tf.Tensor, style: tf.Tensor, alpha: tf.Tensor) -> dict[str, tf.Tensor]:
        """Encoded content and style images -> PNG bytes, one per content image."""
        content = check_encoded(content, "content")
        style = check_encoded(style, "style")
        count = tf.size(content)
        style = check_batch(style, tf.size(style), count, "style")
        alpha = check_alpha(alpha, count)

        def one(i):
            image = decode(content[i], "content")
            style_image = resize_long_side(decode(style[tf.minimum(i, tf.size(style) - 1)], "style"),
                                           self._style_size)
            style_image = check_images(style_image, "style")
            out = fast.stylize_padded(self._net, image, self._net.predict_style(style_image), alpha[i])
            return encode_png(out[0])

        return {"stylized_image_bytes": tf.map_fn(one, tf.range(count), fn_output_signature=tf.string)}

    @tf.function(input_signature=[_spec(_ANY_STRING, "content"), _spec(_ANY_STRING, "style")], autograph=False)
    def stylize_bytes(self, content, style):
        """Encoded JPEG/PNG content and style -> stylized_image_bytes (PNG), alpha 1."""
        return self._stylize_encoded(content, style, tf.constant(1.0))

    @tf.function(input_signature=[_spec(_ANY_STRING, "content"), _spec(_ANY_STRING, "style"),
                                  _spec(_ANY_FLOAT, "alpha")], autograph=False)
    def stylize_bytes_alpha(self, content, style, alpha):
        """Encoded JPEG/PNG content and style, and alpha -> stylized_image_bytes (PNG)."""
        return self._stylize_encoded(content, style, alpha)

    @tf.function(autograph=False)
    def __call__(self, content, style):
        """TF Hub style: (content, style) float images in [0, 1] -> [stylized_image]."""
        return [self._stylize(content, style, tf.constant(1.0))]


def build_serving_module(net: ArbitraryStyleNetwork, style_size: int = BYTES_STYLE_SIZE) -> StyleTransferModule:
    """The tf.Module that write_saved_model() saves, with __call__ traced for any image shapes."""
    module = StyleTransferModule(net, style_size)
    module.__call__.get_concrete_function(_spec(_ANY_FLOAT, "content"), _spec(_ANY_FLOAT, "style"))
    return module


def serving_signatures(module: StyleTransferModule) -> dict[str, tf.types.experimental.ConcreteFunction]:
    """Signature name -> concrete function."""
    return {
        "serving_default": module.stylize.get_concrete_function(),
        "stylize_bytes": module.stylize_bytes.get_concrete_function(),
        "stylize_bytes_alpha": module.stylize_bytes_alpha.get_concrete_function(),
        "predict_style": module.predict_style.get_concrete_function(),
        "stylize_with_vector": module.stylize_with_vector.get_concrete_function(),
    }


def _replace_dir(tmp: str, target: str) -> None:
    """Move a finished temporary folder into place, replacing `target`."""
    if os.path.exists(target):
        shutil.rmtree(target)
    os.replace(tmp, target)


def write_saved_model(module: StyleTransferModule, directory: str) -> str:
    """Save the module with its signatures into `directory` (written beside it, then renamed)."""
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".tmp-{os.getpid()}-{os.path.basename(directory)}")  # TF Serving ignores it
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.mkdir(tmp)  # umask permissions (tempfile.mkdtemp would make it private)
    try:
        tf.saved_model.save(module, tmp, signatures=serving_signatures(module))
        _replace_dir(tmp, directory)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    return directory


# -- TFLite ---------------------------------------------------------------------------------------------
def tflite_signature(variant: TFLiteVariant, options: ExportOptions, vector_size: int) -> list[tf.TensorSpec]:
    """Input specs of a TFLite model (batch 1; H and W None for resizable variants)."""
    if variant.part == "prediction":
        side = None if variant.dynamic else options.style_size
        return [tf.TensorSpec([1, side, side, 3], tf.float32, name="style")]
    side = None if variant.dynamic else options.content_size
    return [tf.TensorSpec([1, side, side, 3], tf.float32, name="content"),
            tf.TensorSpec([1, 1, 1, vector_size], tf.float32, name="style_vector"),
            tf.TensorSpec([1], tf.float32, name="alpha")]


def tflite_function(net: ArbitraryStyleNetwork, part: str) -> Callable[..., dict[str, tf.Tensor]]:
    """The graph of one TFLite model; same math as predict_style / fast.stylize_padded."""
    size = net.vector_size
    if part == "prediction":
        def prediction(style):
            return {"style_vector": tf.reshape(net.predict_style(style), [-1, 1, 1, size])}
        return prediction

    def transfer(content, style_vector, alpha):
        return {"stylized_image": fast.stylize_padded(net, content, tf.reshape(style_vector, [-1, size]), alpha,
                                                      restate_channels=True)}
    return transfer


def _write_source(net: ArbitraryStyleNetwork, endpoints: dict[str, TFLiteVariant], options: ExportOptions,
                  directory: str) -> str:
    """A SavedModel for the converter (Keras ExportArchive, which the converter freezes): one endpoint per name."""
    archive = keras.export.ExportArchive()
    for model in net.models:
        archive.track(model)
    for name, variant in endpoints.items():
        archive.add_endpoint(name, tflite_function(net, variant.part),
                             input_signature=tflite_signature(variant, options, net.vector_size))
    archive.write_out(directory, verbose=False)
    return directory


def write_tflite_source(net: ArbitraryStyleNetwork, variant: TFLiteVariant, options: ExportOptions,
                        directory: str) -> str:
    """A single-signature SavedModel for one TFLite model."""
    return _write_source(net, {"serving_default": variant}, options, directory)


def write_combined_source(net: ArbitraryStyleNetwork, options: ExportOptions, directory: str) -> str:
    """A two-signature SavedModel (prediction, transfer; fixed sizes) for one TFLite file sharing the encoder."""
    return _write_source(net, {part: TFLiteVariant(part, "fp16") for part in COMBINED_SIGNATURES}, options,
                         directory)


def convert_tflite(source_dir: str, quantization: str,
                   representative: Callable[[], Iterator[dict[str, np.ndarray]]] | None = None,
                   signature_keys: Sequence[str] | None = None) -> bytes:
    """Convert a SavedModel: 'fp16', 'int8_full' (TFLITE_BUILTINS_INT8, float I/O) or 'int8_dynamic'."""
    converter = tf.lite.TFLiteConverter.from_saved_model(
        source_dir, signature_keys=list(signature_keys) if signature_keys else None)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8_full":
        if representative is None:
            raise ValueError("full-integer quantization needs a representative dataset")
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    elif quantization != "int8_dynamic":
        raise ValueError(f"unknown quantization {quantization!r}")
    with warnings.catch_warnings():  # the converter's calibrator uses the deprecated tf.lite.Interpreter
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        return converter.convert()


def tflite_ops(model: bytes) -> dict[str, int]:
    """Operator name -> count in a .tflite flatbuffer; custom ops (Flex...) appear as 'CUSTOM:<name>'."""
    from tensorflow.lite.python import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    parsed = schema.Model.GetRootAsModel(bytearray(model), 0)
    codes = []
    for i in range(parsed.OperatorCodesLength()):
        code = parsed.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            codes.append(f"CUSTOM:{(code.CustomCode() or b'').decode()}")
        else:
            codes.append(names.get(builtin, str(builtin)))
    counts: dict[str, int] = {}
    for g in range(parsed.SubgraphsLength()):
        graph = parsed.Subgraphs(g)
        for i in range(graph.OperatorsLength()):
            name = codes[graph.Operators(i).OpcodeIndex()]
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def non_builtin_ops(model: bytes) -> list[str]:
    """Custom or Flex (select TF) ops in a model; empty when it uses builtin ops only."""
    return [name for name in tflite_ops(model) if name.startswith("CUSTOM")]


def tflite_session(model: str | bytes, example: dict[str, np.ndarray],
                   threads: int = 2) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """A LiteRT interpreter sized for `example` (input name -> array): call it with inputs of that shape."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ValueError("checking TFLite models needs the LiteRT interpreter: pip install 'nst_tf[export]' "
                         "(ai-edge-litert)") from None

    kwargs = {"model_path": model} if isinstance(model, str) else {"model_content": bytes(model)}
    interpreter = Interpreter(num_threads=threads, **kwargs)
    runner = interpreter.get_signature_runner()
    inputs = {name: d["index"] for name, d in runner.get_input_details().items()}
    outputs = {name: d["index"] for name, d in runner.get_output_details().items()}
    del runner  # it holds the interpreter, which then refuses to resize
    if set(inputs) != set(example):
        raise ValueError(f"model inputs are {sorted(inputs)}, got {sorted(example)}")
    for name, value in example.items():
        interpreter.resize_tensor_input(inputs[name], list(np.shape(value)), strict=True)
    interpreter.allocate_tensors()

    def run(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, value in values.items():
            interpreter.set_tensor(inputs[name], np.asarray(value, np.float32))
        interpreter.invoke()
        return {name: interpreter.get_tensor(index) for name, index in outputs.items()}

    return run


def tflite_runners(model: str | bytes, threads: int = 2) -> dict[str, Callable[..., dict[str, np.ndarray]]]:
    """Signature name -> runner (keyword inputs -> outputs) of a multi-signature LiteRT model."""
    from ai_edge_litert.interpreter import Interpreter

    kwargs = {"model_path": model} if isinstance(model, str) else {"model_content": bytes(model)}
    interpreter = Interpreter(num_threads=threads, **kwargs)
    return {name: interpreter.get_signature_runner(name) for name in interpreter.get_signature_list()}


def time_calls(fn: Callable[[], object], runs: int, warmup: int = 1) -> dict[str, float]:
    """Median, min and max wall time of `fn()` in milliseconds over `runs` calls after `warmup`."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, runs)):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return {"median_ms": round(statistics.median(times), 2), "min_ms": round(min(times), 2),
            "max_ms": round(max(times), 2), "runs": len(times)}


# -- images for calibration and parity -----------------------------------------------------------------
def pick_images(folder: str, count: int) -> list[str]:
    """`count` image files spread evenly over the sorted contents of `folder`."""
    if not os.path.isdir(folder):
        return []
    paths = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
    if count <= 0 or not paths:
        return []
    step = max(1, len(paths) // count)
    return paths[::step][:count]


def _folder(data_dir: str, *names: str) -> str:
    """The first existing sub-folder of data_dir among `names`."""
    for name in names:
        if os.path.isdir(os.path.join(data_dir, name)):
            return os.path.join(data_dir, name)
    raise ExportError(f"{data_dir}: needs a {' or '.join(names)} folder of images")


def center_square(image: np.ndarray, size: int) -> np.ndarray:
    """The central square of an HxWx3 image, resized to size x size."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return images.resize(image[top:top + side, left:left + side], size, size)


@dataclasses.dataclass(frozen=True)
class ParityPair:
    """A real content and style image for parity checks (the content at an odd, non-square size)."""

    content_name: str
    style_name: str
    content: np.ndarray  # long side content_size + 3: not a multiple of the stride
    style: np.ndarray  # long side style_size
    content_square: np.ndarray  # content_size x content_size (fixed TFLite input)
    style_square: np.ndarray  # style_size x style_size


def parity_pairs(data_dir: str, options: ExportOptions) -> list[ParityPair]:
    """Held-out pairs from data_dir/content and data_dir/styles (calibration uses train_* folders)."""
    contents = pick_images(_folder(data_dir, "content"), options.parity_pairs)
    styles = pick_images(_folder(data_dir, "styles"), options.parity_pairs)
    if not contents or not styles:
        raise ExportError(f"{data_dir}: no images in content/ or styles/ for the parity checks")
    pairs = []
    for content_path, style_path in zip(contents, styles):
        content, style = images.load_image(content_path), images.load_image(style_path)
        pairs.append(ParityPair(
            os.path.basename(content_path), os.path.basename(style_path),
            images.resize_long_side(content, options.content_size + 3, content_path),
            images.resize_long_side(style, options.style_size, style_path),
            center_square(content, options.content_size), center_square(style, options.style_size)))
    return pairs


def calibration_data(net: ArbitraryStyleNetwork, data_dir: str,
                     options: ExportOptions) -> dict[str, list[dict[str, np.ndarray]]]:
    """Representative inputs for full-integer quantization, from data_dir/train_content and train_style."""
    count = options.calibration_samples
    contents = pick_images(_folder(data_dir, "train_content", "content"), count)
    styles = pick_images(_folder(data_dir, "train_style", "styles"), count)
    prediction, transfer = [], []
    for i, (content_path, style_path) in enumerate(zip(contents, styles)):
        style = center_square(images.load_image(style_path), options.style_size)[None]
        vector = net.predict_style(tf.constant(style)).numpy()
        content = center_square(images.load_image(content_path), options.content_size)[None]
        prediction.append({"style": style})
        transfer.append({"content": content, "style_vector": vector.reshape(1, 1, 1, -1),
                         "alpha": np.array([CALIBRATION_ALPHAS[i % len(CALIBRATION_ALPHAS)]], np.float32)})
    return {"prediction": prediction, "transfer": transfer}


# -- parity -----------------------------------------------------------------------------------------------
def errors(actual: np.ndarray, expected: np.ndarray) -> dict[str, float]:
    """Max and mean absolute error (and mean error relative to the mean magnitude of `expected`)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if actual.shape != expected.shape:
        raise ExportError(f"shape mismatch: got {actual.shape}, expected {expected.shape}")
    diff = np.abs(actual - expected)
    scale = float(np.mean(np.abs(expected))) or 1.0
    return {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()), "mean_rel": float(diff.mean() / scale)}


def worst(results: Sequence[dict[str, float]]) -> dict[str, float]:
    """The largest of each error over several comparisons."""
    return {key: max(r[key] for r in results) for key in results[0]}


def within(result: dict[str, float], bound: tuple[float, float]) -> bool:
    """True when max_abs and mean_abs are inside (max, mean)."""
    return result["max_abs"] <= bound[0] and result["mean_abs"] <= bound[1]


def tflite_within(parity: dict[str, dict[str, float]], quantization: str) -> bool:
    """A TFLite model's image error within IMAGE_BOUNDS and, for prediction models, its vector within VECTOR_BOUNDS."""
    vector_ok = "vector" not in parity or parity["vector"]["mean_rel"] <= VECTOR_BOUNDS[quantization]
    return within(parity["image"], IMAGE_BOUNDS[quantization]) and vector_ok


def keras_reference(net: ArbitraryStyleNetwork, content: np.ndarray, style: np.ndarray,
                    alpha: float = 1.0) -> np.ndarray:
    """The Keras model's output for one [H, W, 3] content and style image (what the exports must match)."""
    vector = net.predict_style(tf.constant(style[None]))
    return fast.stylize_padded(net, tf.constant(content[None]), vector, alpha).numpy()


def check_saved_model(loaded: tf.Module, net: ArbitraryStyleNetwork, pairs: Sequence[ParityPair],
                      style_size: int = BYTES_STYLE_SIZE) -> dict[str, dict[str, float]]:
    """Compare every signature (and __call__) of a reloaded SavedModel with the Keras model."""
    signatures = loaded.signatures
    results: dict[str, list[dict[str, float]]] = {name: [] for name in (*SIGNATURES, "__call__")}
    for i, pair in enumerate(pairs):
        alpha = 1.0 if i % 2 == 0 else 0.6
        content, style = tf.constant(pair.content[None]), tf.constant(pair.style[None])
        expected = keras_reference(net, pair.content, pair.style, alpha)
        out = signatures["serving_default"](content=content, style=style, alpha=tf.constant(alpha))
        results["serving_default"].append(errors(out["stylized_image"], expected))
        results["__call__"].append(errors(loaded(content, style)[0], keras_reference(net, pair.content, pair.style)))
        vector = signatures["predict_style"](style=style)["style_vector"]
        results["predict_style"].append(errors(vector, net.predict_style(style)))
        out = signatures["stylize_with_vector"](content=content, style_vector=vector, alpha=tf.constant([alpha]))
        results["stylize_with_vector"].append(errors(out["stylized_image"], expected))
        encoded_content, encoded_style = encode_png(pair.content), encode_png(pair.style)
        decoded_content = tf.image.convert_image_dtype(tf.io.decode_png(encoded_content), tf.float32)[None]
        decoded_style = tf.image.convert_image_dtype(tf.io.decode_png(encoded_style), tf.float32)[None]
        bytes_vector = net.predict_style(resize_long_side(decoded_style, style_size))
        for name, kwargs, a in (("stylize_bytes", {}, 1.0),
                                ("stylize_bytes_alpha", {"alpha": tf.constant(alpha)}, alpha)):
            png = signatures[name](content=encoded_content, style=encoded_style, **kwargs)["stylized_image_bytes"]
            reference = fast.stylize_padded(net, decoded_content, bytes_vector, a)
            results[name].append(errors(tf.io.decode_png(png[0]).numpy()[None] / 255.0, reference.numpy()))
    return {name: worst(r) for name, r in results.items()}


def saved_model_bound(signature: str) -> tuple[float, float]:
    """The parity bound of a signature."""
    return IMAGE_BOUNDS["png" if signature.startswith("stylize_bytes") else "saved_model"]


def tflite_example(variant: TFLiteVariant, pair: ParityPair, net: ArbitraryStyleNetwork) -> dict[str, np.ndarray]:
    """Inputs of a TFLite model for one pair: square images for fixed models, odd sizes for resizable ones."""
    style = pair.style if variant.dynamic else pair.style_square
    if variant.part == "prediction":
        return {"style": style[None]}
    content = pair.content if variant.dynamic else pair.content_square
    vector = net.predict_style(tf.constant(style[None])).numpy()
    return {"content": content[None], "style_vector": vector.reshape(1, 1, 1, -1),
            "alpha": np.array([1.0], np.float32)}


def check_tflite(model: bytes, variant: TFLiteVariant, net: ArbitraryStyleNetwork, pairs: Sequence[ParityPair],
                 threads: int = 2) -> dict[str, dict[str, float]]:
    """Errors of a TFLite model (LiteRT interpreter) against the Keras model on real images: 'image', 'vector'."""
    # 'image': the stylized image (a prediction model's vector goes through the Keras stylizer);
    # 'vector' (prediction models only): the style vector itself.
    image_errors, vector_errors = [], []
    for pair in pairs:
        example = tflite_example(variant, pair, net)
        outputs = tflite_session(model, example, threads)(example)
        content = pair.content if variant.dynamic else pair.content_square
        if variant.part == "prediction":
            expected_vector = net.predict_style(tf.constant(example["style"])).numpy()
            vector = outputs["style_vector"].reshape(expected_vector.shape)
            vector_errors.append(errors(vector, expected_vector))
            image = fast.stylize_padded(net, tf.constant(content[None]), tf.constant(vector)).numpy()
            reference = fast.stylize_padded(net, tf.constant(content[None]), tf.constant(expected_vector)).numpy()
            image_errors.append(errors(image, reference))
        else:
            reference = fast.stylize_padded(net, tf.constant(content[None]),
                                            tf.constant(example["style_vector"].reshape(1, -1))).numpy()
            image_errors.append(errors(outputs["stylized_image"], reference))
    result = {"image": worst(image_errors)}
    if vector_errors:
        result["vector"] = worst(vector_errors)
    return result


def chain(predict: Callable[..., dict[str, np.ndarray]], transfer: Callable[..., dict[str, np.ndarray]],
          content: np.ndarray, style: np.ndarray) -> np.ndarray:
    """`style` ([H, W, 3]) -> vector by `predict`, then `content` stylized by `transfer` at alpha 1: [1, H, W, 3]."""
    vector = predict(style=style[None])["style_vector"]
    return transfer(content=content[None], style_vector=vector, alpha=np.array([1.0], np.float32))["stylized_image"]


def check_pipeline(prediction: bytes, transfer: bytes, net: ArbitraryStyleNetwork, pairs: Sequence[ParityPair],
                   threads: int = 2) -> dict[str, float]:
    """Prediction model -> transfer model (as an app runs them) against the Keras model, square inputs."""
    results = []
    for pair in pairs:
        style = {"style": pair.style_square[None]}
        vector = tflite_session(prediction, style, threads)(style)["style_vector"]
        inputs = {"content": pair.content_square[None], "style_vector": vector, "alpha": np.array([1.0], np.float32)}
        image = tflite_session(transfer, inputs, threads)(inputs)["stylized_image"]
        results.append(errors(image, keras_reference(net, pair.content_square, pair.style_square)))
    return worst(results)


def check_combined(runners: dict[str, Callable[..., dict[str, np.ndarray]]], net: ArbitraryStyleNetwork,
                   pairs: Sequence[ParityPair]) -> dict[str, float]:
    """A combined file's prediction -> transfer signatures (tflite_runners) against the Keras model."""
    return worst([errors(chain(runners["prediction"], runners["transfer"], pair.content_square, pair.style_square),
                         keras_reference(net, pair.content_square, pair.style_square)) for pair in pairs])


def convert_int8(source: str, variant: TFLiteVariant, net: ArbitraryStyleNetwork, pairs: Sequence[ParityPair],
                 calibration: Sequence[dict[str, np.ndarray]], options: ExportOptions) -> tuple[bytes, dict]:
    """int8 per options.int8: full-integer (kept under 'auto' only within the int8 bounds), else dynamic-range."""
    record: dict = {}
    if options.int8 in ("auto", "full"):
        if not calibration:
            raise ExportError("full-integer int8 needs calibration images (data_dir/train_content, train_style)")

        def representative() -> Iterator[dict[str, np.ndarray]]:
            yield from calibration

        model = convert_tflite(source, "int8_full", representative)
        try:
            parity = check_tflite(model, variant, net, pairs, options.threads)
        except RuntimeError as exc:  # the interpreter cannot prepare it (e.g. an int8 kernel XNNPACK lacks)
            if options.int8 == "full":
                raise ExportError(f"{variant.part}: the full-integer int8 model does not run: {exc}") from None
            record["full_integer_attempt"] = {"error": str(exc).splitlines()[0], "within_bound": False,
                                              "calibration_samples": len(calibration)}
            record["scheme"] = "dynamic-range (int8 weights, float activations)"
            return convert_tflite(source, "int8_dynamic"), record
        record["full_integer_attempt"] = {**parity, "within_bound": tflite_within(parity, "int8"),
                                          "calibration_samples": len(calibration)}
        if options.int8 == "full" or record["full_integer_attempt"]["within_bound"]:
            record["scheme"] = "full-integer (TFLITE_BUILTINS_INT8, float32 input/output)"
            return model, record
    record["scheme"] = "dynamic-range (int8 weights, float activations)"
    return convert_tflite(source, "int8_dynamic"), record


def _write_bytes(data: bytes, path: str) -> None:
    """Write a file atomically (temporary file in the same folder, then rename), with umask permissions."""
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".tmp-{os.getpid()}-{os.path.basename(path)}")
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666), "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def export_tflite(net: ArbitraryStyleNetwork, options: ExportOptions, pairs: Sequence[ParityPair],
                  calibration: dict[str, list[dict[str, np.ndarray]]]) -> dict:
    """Convert, write and check every TFLite variant; returns their report entries and the pipelines."""
    directory = tflite_dir(options)
    os.makedirs(directory, exist_ok=True)
    entries, models = [], {}
    with tempfile.TemporaryDirectory(prefix="nst_tflite_") as scratch:
        sources: dict[tuple[str, bool], str] = {}
        for variant in TFLITE_VARIANTS:
            key = (variant.part, variant.dynamic)
            if key not in sources:
                sources[key] = write_tflite_source(net, variant, options,
                                                   os.path.join(scratch, f"{variant.part}_{int(variant.dynamic)}"))
            record: dict = {}
            if variant.quantization == "int8":
                model, record = convert_int8(sources[key], variant, net, pairs, calibration[variant.part], options)
            else:
                model, record = convert_tflite(sources[key], "fp16"), {"scheme": "float16 weights, float32 compute"}
            path = os.path.join(directory, variant.filename(options))
            _write_bytes(model, path)
            models[variant] = model
            entries.append(_tflite_entry(model, path, variant, record, net, pairs, options))
        combined = export_combined(net, options, pairs, os.path.join(scratch, "combined"), directory)
    pipelines = {}
    for quantization in ("fp16", "int8"):
        pipeline = check_pipeline(models[TFLiteVariant("prediction", quantization)],
                                  models[TFLiteVariant("transfer", quantization)], net, pairs, options.threads)
        pipelines[quantization] = {**pipeline, "within_bound": within(pipeline, IMAGE_BOUNDS[quantization])}
    return {"directory": directory, "files": entries, "pipelines": pipelines, "combined": combined}


def combined_filename(options: ExportOptions, quantization: str) -> str:
    """File name of the two-signature model."""
    return f"{options.model_name}_{quantization}_combined_{options.version}.tflite"


COMBINED_SCHEMES = {"fp16": ("fp16", "float16 weights, float32 compute"),
                    "int8": ("int8_dynamic", "dynamic-range (int8 weights, float activations)")}


def export_combined(net: ArbitraryStyleNetwork, options: ExportOptions, pairs: Sequence[ParityPair], scratch: str,
                    directory: str) -> list[dict]:
    """One file per quantization holding both signatures (prediction, transfer) over one copy of the weights."""
    source = write_combined_source(net, options, scratch)
    entries = []
    for quantization, (mode, scheme) in COMBINED_SCHEMES.items():
        model = convert_tflite(source, mode, signature_keys=COMBINED_SIGNATURES)
        path = os.path.join(directory, combined_filename(options, quantization))
        custom = non_builtin_ops(model)
        if custom:
            raise ExportError(f"{path}: uses non-builtin ops {', '.join(custom)}")
        _write_bytes(model, path)
        runners = tflite_runners(model, options.threads)
        parity = check_combined(runners, net, pairs)
        signatures = {}
        for part in COMBINED_SIGNATURES:
            variant = TFLiteVariant(part, quantization)
            signatures[part] = {"inputs": {t.name: list(t.shape)
                                           for t in tflite_signature(variant, options, net.vector_size)},
                                "outputs": _tflite_outputs(variant, options, net.vector_size)}
        entries.append({
            "file": os.path.basename(path), "path": path, "quantization": quantization, "scheme": scheme,
            "signatures": signatures, "size_bytes": len(model), "ops": tflite_ops(model), "parity": parity,
            "bound": list(IMAGE_BOUNDS[quantization]), "within_bound": within(parity, IMAGE_BOUNDS[quantization]),
            "latency": {**time_calls(lambda r=runners, p=pairs[0]: chain(r["prediction"], r["transfer"],
                                                                          p.content_square, p.style_square),
                                     options.latency_runs),
                        "threads": options.threads, "what": "prediction then transfer"},
        })
    return entries


def _tflite_outputs(variant: TFLiteVariant, options: ExportOptions, vector_size: int) -> dict[str, list[int]]:
    """Output name -> shape of a TFLite model (-1: resizable)."""
    if variant.part == "prediction":
        return {"style_vector": [1, 1, 1, vector_size]}
    side = -1 if variant.dynamic else options.content_size
    return {"stylized_image": [1, side, side, 3]}


def _tflite_entry(model: bytes, path: str, variant: TFLiteVariant, record: dict, net: ArbitraryStyleNetwork,
                  pairs: Sequence[ParityPair], options: ExportOptions) -> dict:
    """Report entry of one written TFLite file: interface, ops, parity and latency."""
    ops = tflite_ops(model)
    custom = non_builtin_ops(model)
    if custom:
        raise ExportError(f"{path}: uses non-builtin ops {', '.join(custom)}")
    parity = check_tflite(model, variant, net, pairs, options.threads)
    example = tflite_example(variant, pairs[0], net)
    session = tflite_session(model, example, options.threads)
    vector_size = net.vector_size
    return {
        "file": os.path.basename(path), "path": path, "part": variant.part, "quantization": variant.quantization,
        "dynamic": variant.dynamic, "scheme": record.pop("scheme"), **record,
        "inputs": {s.name: [-1 if d is None else d for d in s.shape]
                   for s in tflite_signature(variant, options, vector_size)},
        "outputs": _tflite_outputs(variant, options, vector_size),
        "size_bytes": len(model), "ops": ops, "parity": parity,
        "bound": list(IMAGE_BOUNDS[variant.quantization]),
        "within_bound": tflite_within(parity, variant.quantization),
        "latency": {**time_calls(lambda: session(example), options.latency_runs), "threads": options.threads,
                    "input": {k: list(v.shape) for k, v in example.items()}},
    }


# -- the whole export -------------------------------------------------------------------------------------
def saved_model_dir(options: ExportOptions) -> str:
    """<output_dir>/<model_name>/<version> (TF Serving's layout)."""
    return os.path.join(options.output_dir, options.model_name, str(options.version))


def tflite_dir(options: ExportOptions) -> str:
    """<output_dir>/tflite."""
    return os.path.join(options.output_dir, "tflite")


def planned_outputs(options: ExportOptions) -> list[str]:
    """Every path the export will write."""
    paths = []
    if "saved_model" in options.formats:
        paths.append(saved_model_dir(options))
    if "tflite" in options.formats:
        paths += [os.path.join(tflite_dir(options), v.filename(options)) for v in TFLITE_VARIANTS]
        paths += [os.path.join(tflite_dir(options), combined_filename(options, q)) for q in ("fp16", "int8")]
    return paths + [os.path.join(options.output_dir, "MODEL_CARD.md"),
                    os.path.join(options.output_dir, "export_report.json")]


def check_options(options: ExportOptions) -> None:
    """ExportError (named after the option) for option values that cannot work."""
    unknown = [f for f in options.formats if f not in FORMATS]
    if unknown or not options.formats:
        raise ExportError(f"unknown format(s) {', '.join(unknown) or '(none)'} (choose from {', '.join(FORMATS)})")
    if options.int8 not in INT8_MODES:
        raise ExportError(f"int8 must be one of {', '.join(INT8_MODES)}, got {options.int8!r}")
    if len(set(options.formats)) != len(options.formats):
        raise ExportError(f"formats repeats a format: {', '.join(options.formats)}")
    if options.version < 1:
        raise ExportError(f"version must be a positive integer, got {options.version}")
    if not options.model_name or not all(c.isalnum() or c in "_-." for c in options.model_name):
        raise ExportError(f"model_name {options.model_name!r} must use letters, digits, '_', '-' or '.'")
    for name in ("content_size", "style_size"):
        if getattr(options, name) < MIN_SIDE:
            raise ExportError(f"{name} must be at least {MIN_SIDE}, got {getattr(options, name)}")
    for name in ("parity_pairs", "latency_runs", "threads"):
        if getattr(options, name) < 1:
            raise ExportError(f"{name} must be positive, got {getattr(options, name)}")
    if options.calibration_samples < 1 and "tflite" in options.formats and options.int8 != "dynamic":
        raise ExportError("calibration_samples must be positive for full-integer int8 (or use int8=dynamic)")


def check_outputs(options: ExportOptions) -> None:
    """ExportError if an output already exists and options.overwrite is off."""
    if not options.overwrite:
        for path in planned_outputs(options)[:-2]:
            if os.path.exists(path):
                raise ExportError(f"{path}: already exists (pass --overwrite to replace it)")


def resolve_checkpoint(path: str | None) -> str | None:
    """A network folder: `path`, or its network/ sub-folder (an nst-train --model_dir); None for the bundled one."""
    if not path:
        return None
    nested = os.path.join(path, "network")
    if not os.path.isfile(os.path.join(path, "config.json")) and os.path.isfile(os.path.join(nested, "config.json")):
        return nested
    return path


def describe_checkpoint(directory: str | None) -> dict:
    """Path, config and weights checksum of the exported network folder."""
    directory = directory or BUNDLED_DIR
    with open(os.path.join(directory, "weights.npz"), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    bundled = os.path.abspath(directory) in (os.path.abspath(BUNDLED_DIR), os.path.abspath(mobile.BUNDLED_DIR))
    return {"path": directory, "bundled": bundled, "config": config, "weights_sha256": digest}


def folder_size(path: str) -> int:
    """Total size in bytes of the files under `path`."""
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def _environment(threads: int) -> dict:
    """Versions and machine, for the model card."""
    try:
        from importlib.metadata import version

        litert = version("ai-edge-litert")
    except Exception:  # noqa: BLE001 - only informative
        litert = "unknown"
    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "ai_edge_litert": litert, "machine": platform.machine(), "processor": platform.processor() or "",
            "cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()], "threads": threads}


def export_saved_model(net: ArbitraryStyleNetwork, options: ExportOptions, pairs: Sequence[ParityPair]) -> dict:
    """Write the SavedModel, reload it, check every signature and time serving_default."""
    directory = write_saved_model(build_serving_module(net), saved_model_dir(options))
    loaded = tf.saved_model.load(directory)
    parity = check_saved_model(loaded, net, pairs)
    signatures = {}
    for name in SIGNATURES:
        fn = loaded.signatures[name]
        signatures[name] = {
            "inputs": {k: s.dtype.name for k, s in sorted(fn.structured_input_signature[1].items())},
            "outputs": {k: s.dtype.name for k, s in sorted(fn.structured_outputs.items())}}
    content = tf.constant(pairs[0].content_square[None])
    style = tf.constant(pairs[0].style_square[None])
    serve = loaded.signatures["serving_default"]
    latency = time_calls(lambda: serve(content=content, style=style, alpha=tf.constant(1.0)), options.latency_runs)
    return {"path": directory, "size_bytes": folder_size(directory), "signatures": signatures, "parity": parity,
            "within_bound": {k: within(v, saved_model_bound(k)) for k, v in parity.items()},
            "latency": {**latency, "input": {"content": list(content.shape), "style": list(style.shape)}}}


def failures(report: dict, int8_mode: str) -> list[str]:
    """Parity checks outside their bounds (a forced full-integer int8 model is reported, not failed)."""
    found = []
    for name, ok in report.get("saved_model", {}).get("within_bound", {}).items():
        if not ok:
            found.append(f"SavedModel {name}: {report['saved_model']['parity'][name]}")
    for entry in report.get("tflite", {}).get("files", []):
        forced = int8_mode == "full" and entry["quantization"] == "int8"
        if not entry["within_bound"] and not forced:
            found.append(f"{entry['file']}: {entry['parity']['image']} (bound max/mean {entry['bound']})")
    for entry in report.get("tflite", {}).get("combined", []):
        if not entry["within_bound"]:
            found.append(f"{entry['file']}: {entry['parity']} (bound max/mean {entry['bound']})")
    for quantization, pipeline in report.get("tflite", {}).get("pipelines", {}).items():
        if not pipeline["within_bound"] and not (int8_mode == "full" and quantization == "int8"):
            found.append(f"{quantization} prediction -> transfer: {pipeline}")
    return found


def export(net: ArbitraryStyleNetwork, options: ExportOptions, data_dir: str, checkpoint: str | None = None) -> dict:
    """Write the requested formats, check them against `net` on real images, write the model card; the report."""
    check_options(options)
    check_outputs(options)
    if not os.path.isdir(data_dir):
        raise ExportError(f"{data_dir}: data folder not found (parity checks and int8 calibration need images)")
    os.makedirs(options.output_dir, exist_ok=True)
    pairs = parity_pairs(data_dir, options)
    report: dict = {
        "model_name": options.model_name, "version": options.version,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": describe_checkpoint(checkpoint), "options": dataclasses.asdict(options),
        "data_dir": data_dir,
        "parity_images": [[p.content_name, p.style_name] for p in pairs],
        "environment": _environment(options.threads),
        "keras_latency": time_calls(lambda: keras_reference(net, pairs[0].content_square, pairs[0].style_square),
                                    options.latency_runs),
    }
    if "saved_model" in options.formats:
        report["saved_model"] = export_saved_model(net, options, pairs)
    if "tflite" in options.formats:
        needs_calibration = options.int8 != "dynamic"
        calibration = (calibration_data(net, data_dir, options) if needs_calibration
                       else {"prediction": [], "transfer": []})
        report["tflite"] = export_tflite(net, options, pairs, calibration)
    report["failures"] = failures(report, options.int8)
    _write_bytes(json.dumps(report, indent=2).encode(), os.path.join(options.output_dir, "export_report.json"))
    _write_bytes(model_card(report).encode(), os.path.join(options.output_dir, "MODEL_CARD.md"))
    if report["failures"]:
        raise ExportError(f"parity check failed: {report['failures'][0]} (see {options.output_dir}/MODEL_CARD.md)")
    return report


# -- the model card ---------------------------------------------------------------------------------------
SIGNATURE_DOCS = {
    "serving_default": ("`content` float32 [B, H, W, 3], `style` float32 [B or 1, h, w, 3], both RGB in [0, 1]; "
                        "`alpha` float32 scalar or [B] in [0, 1]", "`stylized_image` float32 [B, H, W, 3] in [0, 1]"),
    "stylize_bytes": ("`content`, `style`: string, one or [B] (style: one or B) encoded JPEG/PNG/GIF/BMP; "
                      f"the style is resized to {BYTES_STYLE_SIZE} px long side",
                      "`stylized_image_bytes` string [B], PNG"),
    "stylize_bytes_alpha": ("as stylize_bytes, plus `alpha` float32 scalar or [B]",
                            "`stylized_image_bytes` string [B], PNG"),
    "predict_style": (f"`style` float32 [B, h, w, 3] in [0, 1] ({BYTES_STYLE_SIZE} px long side recommended)",
                      "`style_vector` float32 [B, V]"),
    "stylize_with_vector": ("`content` as serving_default, `style_vector` float32 [B or 1, V], `alpha`",
                            "`stylized_image` float32 [B, H, W, 3]"),
    "__call__": ("`(content, style)` positional, as serving_default with alpha 1 (the TF Hub Magenta calling "
                 "convention)", "a list; `[0]` is the stylized image"),
}


def _fmt(value: float) -> str:
    """A compact number for tables."""
    return f"{value:.2e}" if value and abs(value) < 1e-3 else f"{value:.4f}"


def _mb(size: int) -> str:
    """Bytes as MB with two decimals."""
    return f"{size / 1e6:.2f} MB"


def _ok(flag: bool) -> str:
    """Table mark for a bound check."""
    return "yes" if flag else "**NO**"


def _saved_model_section(report: dict) -> list[str]:
    """Model card lines for the SavedModel."""
    sm = report["saved_model"]
    name = report["model_name"]
    lines = [
        "## SavedModel (TF Serving, TF Hub)", "",
        f"`{sm['path']}` ({_mb(sm['size_bytes'])}), TF Serving layout `<base>/{name}/<version>/`.", "",
        "| signature | inputs | outputs |", "|---|---|---|",
    ]
    lines += [f"| `{k}` | {v[0]} | {v[1]} |" for k, v in SIGNATURE_DOCS.items()]
    lines += [
        "", "Content images of any size (each side >= 16 px) are mirror-padded to the encoder stride (8) plus a "
        f"{fast.MARGIN}-px margin a side ({fast.STRIDE // 2} px where a side is {2 * fast.MARGIN} px or less) and "
        "cropped back, exactly like `nst-stylize --method=fast`. Float inputs are not resized; the bytes signatures "
        f"resize the style image to {BYTES_STYLE_SIZE} px long side (the size the network was trained on).", "",
        "Bad inputs fail with `InvalidArgumentError` and a readable message instead of returning garbage: wrong rank "
        "(`expected a [batch, height, width, 3] image tensor`), not 3 channels, sides under 16 px, NaN/Inf, values "
        "outside [0, 1], style or alpha batch not 1 or B, alpha outside [0, 1], a style vector of the wrong size, "
        "empty bytes, bytes that are not a JPEG/PNG/GIF/BMP image.", "",
        "```bash",
        f"docker run -p 8501:8501 -v $PWD/{os.path.dirname(os.path.dirname(sm['path'])) or '.'}:/models "
        f"-e MODEL_NAME={name} tensorflow/serving",
        f"curl -d '{{\"signature_name\": \"stylize_bytes\", \"instances\": [{{\"content\": {{\"b64\": \"'$(base64 -w0 "
        f"photo.jpg)'\"}}, \"style\": {{\"b64\": \"'$(base64 -w0 painting.jpg)'\"}}}}]}}' "
        f"http://localhost:8501/v1/models/{name}:predict   # -> {{\"predictions\": [{{\"b64\": <PNG>}}]}}",
        "```", "",
        "```python",
        "import tensorflow_hub as hub",
        f"hub_module = hub.load('{sm['path']}')",
        "outputs = hub_module(tf.constant(content_image), tf.constant(style_image))  # [1, H, W, 3] in [0, 1]",
        "stylized_image = outputs[0]",
        "```", "",
        "Parity with the Keras model (worst over the parity images; bytes signatures compare the decoded 8-bit PNG):",
        "", "| signature | max abs error | mean abs error | bound (max / mean) | within |", "|---|---|---|---|---|",
    ]
    for key, value in sm["parity"].items():
        bound = saved_model_bound(key)
        lines.append(f"| `{key}` | {_fmt(value['max_abs'])} | {_fmt(value['mean_abs'])} | "
                     f"{_fmt(bound[0])} / {_fmt(bound[1])} | {_ok(sm['within_bound'][key])} |")
    lat = sm["latency"]
    lines += ["", f"Latency of `serving_default` (content {lat['input']['content']}, style {lat['input']['style']}): "
              f"median {lat['median_ms']:.0f} ms (min {lat['min_ms']:.0f}, max {lat['max_ms']:.0f}, "
              f"{lat['runs']} runs); "
              f"the Keras model: median {report['keras_latency']['median_ms']:.0f} ms.", ""]
    return lines


def _tflite_section(report: dict) -> list[str]:
    """Model card lines for the TFLite models."""
    tfl = report["tflite"]
    lines = [
        "## TFLite (Android, LiteRT)", "",
        f"In `{tfl['directory']}`, split like the TensorFlow Lite Android style-transfer example: a *prediction* "
        "model (style image -> style vector) and a *transfer* model (content image + style vector + alpha -> "
        "stylized image). All tensors are float32; images RGB in [0, 1]. Run them by signature input name "
        "(`runSignature` / `get_signature_runner`): the converter orders the transfer inputs alphabetically "
        "(alpha, content, style_vector). Builtin ops only (checked in the flatbuffer; no Flex/select TF ops).", "",
        "| file | inputs | output | quantization | size | image error max / mean | style vector rel. error | "
        "within bound | latency median (min-max), threads |", "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in tfl["files"]:
        inputs = ", ".join(f"`{k}` {v}" for k, v in e["inputs"].items())
        outputs = ", ".join(f"`{k}` {v}" for k, v in e["outputs"].items())
        vector = _fmt(e["parity"]["vector"]["mean_rel"]) if "vector" in e["parity"] else "-"
        lat = e["latency"]
        lines.append(
            f"| `{e['file']}` | {inputs} | {outputs} | {e['scheme']} | {_mb(e['size_bytes'])} | "
            f"{_fmt(e['parity']['image']['max_abs'])} / {_fmt(e['parity']['image']['mean_abs'])} | {vector} | "
            f"{_ok(e['within_bound'])} | {lat['median_ms']:.0f} ms ({lat['min_ms']:.0f}-{lat['max_ms']:.0f}), "
            f"{lat['threads']} |")
    lines += [
        "", "Image error: the stylized image against the Keras model on the parity images (for a prediction model, "
        "its style vector is fed to the Keras stylizer). `-1` in a shape: resizable (the `_dynamic` variants take "
        f"any height and width >= {MIN_SIDE} px; resize the input tensor, then allocate). Bounds (max / mean): "
        f"fp16 {IMAGE_BOUNDS['fp16'][0]} / {IMAGE_BOUNDS['fp16'][1]}, int8 {IMAGE_BOUNDS['int8'][0]} / "
        f"{IMAGE_BOUNDS['int8'][1]}; prediction models also keep the style vector's mean relative error within "
        f"fp16 {VECTOR_BOUNDS['fp16']}, int8 {VECTOR_BOUNDS['int8']}.", "",
        "Prediction model -> transfer model, as an app chains them (square inputs):", "",
        "| quantization | max abs error | mean abs error | within bound |", "|---|---|---|---|",
    ]
    for quantization, p in tfl["pipelines"].items():
        lines.append(f"| {quantization} | {_fmt(p['max_abs'])} | {_fmt(p['mean_abs'])} | {_ok(p['within_bound'])} |")
    if tfl.get("combined"):
        lines += [
            "", "### One file, two signatures", "",
            "The same two models in one file each, with the signatures `prediction` and `transfer` over one copy of "
            "the weights (the two halves share the VGG16 encoder, so one file is smaller than the pair). Run them "
            "with `interpreter.getSignatureRunner(\"prediction\")` / `runSignature(inputs, outputs, \"transfer\")` "
            "(Java, Kotlin) or `get_signature_runner(name)` (Python). Inputs and outputs as in the table above.", "",
            "| file | quantization | size | image error max / mean (prediction -> transfer) | within bound | "
            "latency median (min-max), threads |", "|---|---|---|---|---|---|",
        ]
        for e in tfl["combined"]:
            lat = e["latency"]
            lines.append(f"| `{e['file']}` | {e['scheme']} | {_mb(e['size_bytes'])} | {_fmt(e['parity']['max_abs'])} / "
                         f"{_fmt(e['parity']['mean_abs'])} | {_ok(e['within_bound'])} | {lat['median_ms']:.0f} ms "
                         f"({lat['min_ms']:.0f}-{lat['max_ms']:.0f}), {lat['threads']} |")
    lines += ["", "### int8: which scheme and why", ""]
    for e in tfl["files"]:
        if e["quantization"] != "int8":
            continue
        attempt = e.get("full_integer_attempt")
        if attempt and "error" in attempt:
            lines.append(f"- `{e['file']}`: full-integer (TFLITE_BUILTINS_INT8, {attempt['calibration_samples']} "
                         f"calibration images) converted, but the LiteRT interpreter could not run it "
                         f"(`{attempt['error']}`) -> **{e['scheme']}**.")
        elif attempt:
            vector = (f", style vector relative error {_fmt(attempt['vector']['mean_rel'])}"
                      if "vector" in attempt else "")
            lines.append(
                f"- `{e['file']}`: full-integer (TFLITE_BUILTINS_INT8, {attempt['calibration_samples']} calibration "
                f"images from train_content/train_style) measured image error max {_fmt(attempt['image']['max_abs'])}, "
                f"mean {_fmt(attempt['image']['mean_abs'])}{vector}: "
                f"{'within' if attempt['within_bound'] else 'outside'} the int8 bounds -> **{e['scheme']}**.")
        else:
            lines.append(f"- `{e['file']}`: {e['scheme']} (full-integer not attempted).")
    lines += ["", "Full-integer quantization gives each tensor one int8 scale. The per-channel means and standard "
              "deviations of relu4_1 (the style vector, and the statistics AdaIN normalises with) span orders of "
              "magnitude, so most of them are left with a few int8 steps; that is the likely cause of the large "
              "full-integer errors. Dynamic-range models keep int8 weights (half the size of fp16) but compute in "
              "float.", ""]
    ops = sorted({op for e in tfl["files"] for op in e["ops"]})
    lines += [f"Ops used: {', '.join(ops)}.", ""]
    return lines


def _checkpoint_name(ckpt: dict) -> str:
    """'bundled (nst_tf/models/<name>)' or the folder's path."""
    return f"bundled (nst_tf/models/{os.path.basename(ckpt['path'])})" if ckpt["bundled"] else ckpt["path"]


def _architecture(config_dict: dict) -> str:
    """One paragraph on the exported network's design, from its config.json."""
    config = mobile.config_from_json(json.dumps(config_dict))
    if isinstance(config, mobile.MobileConfig):
        return (f"Network: nst_tf.mobile, a small transformer (Johnson et al. 2016 / Ghiasi et al. 2017: channels "
                f"{list(config.channels)}, {config.residual_blocks} residual blocks, conditional instance norm "
                f"driven through a {config.bottleneck}-float bottleneck; reflect padding, nearest resize then "
                "convolution: no checkerboard artefacts) trained on the arbitrary-style network's losses (the bundled "
                "one first distilled from that network, then on the losses alone), whose style "
                f"predictor it shares (style image -> style vector of V = {config.vector_size} floats, the means "
                "and standard deviations of relu1_1..relu4_1; content + style vector + alpha -> image; alpha < 1 "
                "also predicts the content's own vector, a TFLite IF branch that alpha = 1 skips).")
    levels = ", ".join(n.replace("block", "relu").replace("_conv", "_") for n in config.levels)
    linear = (f" plus a learned linear transform at relu4_1 (Li et al. 2019, rank {config.linear_rank})"
              if config.linear_rank else "")
    matrix = (f", then the {config.linear_rank}x{config.linear_rank} style matrix of the linear transform"
              if config.linear_rank else "")
    head = (f" and a moment head ({config.moment_head} hidden units: a learned, alpha-scaled correction of the AdaIN "
            "target moments from the style's and the content's moments)" if config.moment_head else "")
    return ("Network: AdaIN (Huang & Belongie 2017) with a frozen VGG16 encoder to relu4_1 and a trained decoder "
            f"({config.skip_levels} AdaIN'd skip levels; reflect padding, nearest resize then convolution: no "
            f"checkerboard artefacts){linear}{head}, Magenta's two-part interface (style image -> style vector of "
            f"V = {config.vector_size} floats, the means and standard deviations of {levels}{matrix}; content + "
            "style vector + alpha -> image).")


def model_card(report: dict) -> str:
    """The MODEL_CARD.md text for an export report."""
    ckpt = report["checkpoint"]
    env = report["environment"]
    opts = report["options"]
    lines = [
        f"# {report['model_name']} (version {report['version']}): arbitrary-style transfer", "",
        f"Generated by `nst-export` on {report['created']}. {_architecture(ckpt['config'])}", "",
        f"Checkpoint: `{_checkpoint_name(ckpt)}`, config "
        f"`{json.dumps(ckpt['config'], sort_keys=True)}`, weights.npz sha256 `{ckpt['weights_sha256'][:16]}...`. "
        "The numbers below measure how faithfully the exports reproduce the Keras model; stylization quality "
        "on held-out pairs is measured by `benchmarks/fast_quality.py`.", "",
        "Parity images (held out from int8 calibration): "
        f"{', '.join(f'{c} x {s}' for c, s in report['parity_images'])} "
        f"from `{report['data_dir']}` (content/, styles/). Float SavedModel checks use the content at "
        f"{opts['content_size'] + 3} px long side (not a multiple of the stride) and the style at "
        f"{opts['style_size']} px; fixed-size TFLite models use centre squares of {opts['content_size']} and "
        f"{opts['style_size']} px.", "",
    ]
    if "saved_model" in report:
        lines += _saved_model_section(report)
    if "tflite" in report:
        lines += _tflite_section(report)
    lines += [
        "## Measurement", "",
        f"Python {env['python']}, TensorFlow {env['tensorflow']}, Keras {env['keras']}, ai-edge-litert "
        f"{env['ai_edge_litert']}; {env['machine']}, {env['cpus']} CPUs, load average {env['load_average']} at export "
        f"time (latencies are wall-clock medians of {opts['latency_runs']} runs after one warm-up, "
        f"{env['threads']} threads; other work on the machine inflates them). "
        "`benchmarks/tflite_latency.py` measures more carefully.", "",
    ]
    if report.get("failures"):
        lines += ["## Failed checks", ""] + [f"- {f}" for f in report["failures"]] + [""]
    return "\n".join(lines)


def summary(report: dict) -> list[str]:
    """One line per written artefact, with its worst parity error."""
    lines = []
    if "saved_model" in report:
        sm = report["saved_model"]
        worst_sig = max(sm["parity"], key=lambda k: sm["parity"][k]["max_abs"])
        lines.append(f"wrote SavedModel {sm['path']} ({_mb(sm['size_bytes'])}; signatures "
                     f"{', '.join(sm['signatures'])}; largest error {sm['parity'][worst_sig]['max_abs']:.2e} "
                     f"in {worst_sig})")
    for e in report.get("tflite", {}).get("files", []):
        image = e["parity"]["image"]
        lines.append(f"wrote {e['path']} ({_mb(e['size_bytes'])}, {e['scheme']}; image error max "
                     f"{image['max_abs']:.2e}, mean {image['mean_abs']:.2e}; {e['latency']['median_ms']:.0f} ms)")
    for e in report.get("tflite", {}).get("combined", []):
        lines.append(f"wrote {e['path']} ({_mb(e['size_bytes'])}, {e['scheme']}, signatures "
                     f"{', '.join(e['signatures'])}; image error max {e['parity']['max_abs']:.2e}, mean "
                     f"{e['parity']['mean_abs']:.2e}; {e['latency']['median_ms']:.0f} ms)")
    lines.append(f"wrote {os.path.join(report['options']['output_dir'], 'MODEL_CARD.md')}")
    return lines
