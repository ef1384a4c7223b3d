"""The SavedModel for TF Serving and TF Hub: the serving module, its signatures, the atomic save."""

from __future__ import annotations

import os
import shutil

import tensorflow as tf

from nst_tf import fast
from nst_tf.export.checks import (
    check_batch,
    check_encoded,
    check_images,
    check_strength,
    check_style_vector,
    decode,
    encode_png,
    resize_long_side,
)
from nst_tf.strength import DEFAULT_STRENGTH

BYTES_STYLE_SIZE = fast.STYLE_SIZE  # the bytes signatures resize style images to this long side
SIGNATURES = ("serving_default", "stylize_bytes", "stylize_bytes_strength", "predict_style", "stylize_with_vector")


_ANY_FLOAT = tf.TensorSpec(None, tf.float32)
_ANY_STRING = tf.TensorSpec(None, tf.string)


def _spec(base: tf.TensorSpec, name: str) -> tf.TensorSpec:
    """A copy of `base` with a name (the signature input key)."""
    return tf.TensorSpec(base.shape, base.dtype, name=name)


def _default_strength() -> tf.Tensor:
    """The strength of the signatures without a strength input: 1, the painting's look."""
    return tf.constant(DEFAULT_STRENGTH)


class StyleTransferModule(tf.Module):
    """The exported object: serving signatures plus a TF Hub style __call__(content, style[, strength]) -> [image]."""

    def __init__(self, net: fast.Network, style_size: int = BYTES_STYLE_SIZE):
        super().__init__(name="arbitrary_style")
        self.models = list(net.models)
        self._net = net
        self._style_size = style_size
        self._vector_size = net.vector_size

    def _stylize(self, content: tf.Tensor, style: tf.Tensor, strength: tf.Tensor) -> tf.Tensor:
        """Validated float inputs -> stylized images."""
        content = check_images(content, "content")
        style = check_images(style, "style")
        batch = tf.shape(content)[0]
        style = check_batch(style, tf.shape(style)[0], batch, "style")
        return fast.stylize_padded(self._net, content, self._net.predict_style(style),
                                   check_strength(strength, batch))

    @tf.function(input_signature=[_spec(_ANY_FLOAT, "content"), _spec(_ANY_FLOAT, "style"),
                                  _spec(_ANY_FLOAT, "strength")], autograph=False)
    def stylize(self, content, style, strength):
        """serving_default: float content and style images in [0, 1] and the strength -> stylized_image."""
        return {"stylized_image": self._stylize(content, style, strength)}

    @tf.function(input_signature=[_spec(_ANY_FLOAT, "style")], autograph=False)
    def predict_style(self, style):
        """Style images -> style_vector [B, V]."""
        return {"style_vector": self._net.predict_style(check_images(style, "style"))}

    @tf.function(input_signature=[_spec(_ANY_FLOAT, "content"), _spec(_ANY_FLOAT, "style_vector"),
                                  _spec(_ANY_FLOAT, "strength")], autograph=False)
    def stylize_with_vector(self, content, style_vector, strength):
        """Content images, a style vector from predict_style, the strength -> stylized_image."""
        content = check_images(content, "content")
        batch = tf.shape(content)[0]
        vector = check_style_vector(style_vector, batch, self._vector_size)
        return {"stylized_image": fast.stylize_padded(self._net, content, vector, check_strength(strength, batch))}

    def _stylize_encoded(self, content: tf.Tensor, style: tf.Tensor, strength: tf.Tensor) -> dict[str, tf.Tensor]:
        """Encoded content and style images -> PNG bytes, one per content image."""
        content = check_encoded(content, "content")
        style = check_encoded(style, "style")
        count = tf.size(content)
        style = check_batch(style, tf.size(style), count, "style")
        strength = check_strength(strength, count)

        def one(i):
            image = decode(content[i], "content")
            style_image = resize_long_side(decode(style[tf.minimum(i, tf.size(style) - 1)], "style"),
                                           self._style_size)
            style_image = check_images(style_image, "style")
            out = fast.stylize_padded(self._net, image, self._net.predict_style(style_image), strength[i])
            return encode_png(out[0])

        return {"stylized_image_bytes": tf.map_fn(one, tf.range(count), fn_output_signature=tf.string)}

    @tf.function(input_signature=[_spec(_ANY_STRING, "content"), _spec(_ANY_STRING, "style")], autograph=False)
    def stylize_bytes(self, content, style):
        """Encoded JPEG/PNG content and style -> stylized_image_bytes (PNG), strength 1."""
        return self._stylize_encoded(content, style, _default_strength())

    @tf.function(input_signature=[_spec(_ANY_STRING, "content"), _spec(_ANY_STRING, "style"),
                                  _spec(_ANY_FLOAT, "strength")], autograph=False)
    def stylize_bytes_strength(self, content, style, strength):
        """Encoded JPEG/PNG content and style, and the strength -> stylized_image_bytes (PNG)."""
        return self._stylize_encoded(content, style, strength)

    @tf.function(autograph=False)
    def __call__(self, content, style, strength=None):
        """TF Hub style: (content, style[, strength]) float images in [0, 1] -> [stylized_image]; strength 1 when
        not given (both forms are traced: see build_serving_module)."""
        return [self._stylize(content, style, _default_strength() if strength is None else strength)]


def build_serving_module(net: fast.Network, style_size: int = BYTES_STYLE_SIZE) -> StyleTransferModule:
    """The tf.Module that write_saved_model() saves, with __call__ traced for any image shapes, with and without the
    strength (a restored function answers only the forms traced before saving)."""
    module = StyleTransferModule(net, style_size)
    content, style = _spec(_ANY_FLOAT, "content"), _spec(_ANY_FLOAT, "style")
    module.__call__.get_concrete_function(content, style)
    module.__call__.get_concrete_function(content, style, _spec(_ANY_FLOAT, "strength"))
    return module


def serving_signatures(module: StyleTransferModule) -> dict[str, tf.types.experimental.ConcreteFunction]:
    """Signature name -> concrete function."""
    return {
        "serving_default": module.stylize.get_concrete_function(),
        "stylize_bytes": module.stylize_bytes.get_concrete_function(),
        "stylize_bytes_strength": module.stylize_bytes_strength.get_concrete_function(),
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
