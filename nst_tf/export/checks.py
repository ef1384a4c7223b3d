"""Input validation inside the serving graph: readable InvalidArgumentErrors instead of garbage out."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from nst_tf import images
from nst_tf.export.options import MIN_SIDE
from nst_tf.strength import STRENGTH_MAX


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


def check_strength(strength: tf.Tensor, batch: tf.Tensor) -> tf.Tensor:
    """Validate the strength (a scalar or one value per image, in [0, STRENGTH_MAX]) and broadcast it to [batch]."""
    strength = tf.convert_to_tensor(strength, tf.float32)
    strength = validated(strength, [
        (tf.rank(strength) <= 1, "strength: expected a scalar or a [batch] vector"),
        (_batch_ok(tf.size(strength), batch), "strength: batch must be 1 or the content batch size"),
        (tf.reduce_all(tf.logical_and(strength >= 0.0, strength <= STRENGTH_MAX)),
         f"strength: values must be in [0, {STRENGTH_MAX:g}] (0: the photo, 1: the painting's look)"),
    ])
    return tf.broadcast_to(tf.reshape(strength, [-1])[:batch], [batch])


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
