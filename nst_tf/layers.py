"""The Keras layers of the feed-forward networks (nst_tf.network, nst_tf.mobile): VGG input normalisation, reflect
padding, resize upsampling, instance normalisation, covariance and the linear transform's matrix mix.

Every layer maps onto TFLite builtins. The layers are not registered for Keras serialisation: networks are saved as
weight arrays keyed by model and layer name (nst_tf.network_io), and exports trace the models (nst_tf.export).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from nst_tf.features import PREPROCESSORS

EPS = 1e-5  # added to variances by every instance normalisation (InstanceNormalized, nst_tf.adain)


class VGGPreprocessing(keras.layers.Layer):
    """RGB in [0, 1] -> the input normalisation of the VGG weights ('torch' or 'caffe')."""

    def __init__(self, mode: str = "torch", **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, images):  # noqa: D102
        return PREPROCESSORS[self.mode](images)

    def get_config(self):  # noqa: D102
        return {**super().get_config(), "mode": self.mode}


def reflect_pad(x: tf.Tensor, pad: int) -> tf.Tensor:
    """tf.pad(x, ..., mode="REFLECT") on height and width, built from one-row slices and concatenations.

    Same values. TFLite's MIRROR_PAD kernel is not delegated to XNNPACK: it took 9.4 ms on a 384 x 384 x 16 map
    here, the slices and concatenations 2.0 ms. (Reversed slices or MIRROR_PAD after MIRROR_PAD lose the channel
    count in the TFLite converter when height and width are dynamic; one-row slices keep it.)
    """
    for axis in (1, 2):
        def rows(start: int, stop: int | None, x=x, axis=axis) -> tf.Tensor:
            return x[:, start:stop] if axis == 1 else x[:, :, start:stop]

        before = [rows(i, i + 1) for i in range(pad, 0, -1)]  # rows pad .. 1
        after = [rows(-i - 1, -i) for i in range(1, pad + 1)]  # rows n-2 .. n-1-pad
        x = tf.concat([*before, x, *after], axis=axis)
    return x


class ReflectionPadding2D(keras.layers.Layer):
    """Pad height and width by `pad` pixels, mirroring the border (as tf.pad's REFLECT mode)."""

    def __init__(self, pad: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.pad = pad

    def call(self, x):  # noqa: D102
        return reflect_pad(x, self.pad)

    def get_config(self):  # noqa: D102
        return {**super().get_config(), "pad": self.pad}


def reflect_conv(x, channels: int, name: str, activation: str | None = "relu"):
    """A 3x3 convolution after a reflect padding of 1 (named `name` and `name`_pad): the same size out."""
    x = ReflectionPadding2D(1, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(channels, 3, padding="valid", activation=activation, name=name)(x)


class ResizeUpsampling(keras.layers.Layer):
    """Upsampling as one resize op (TFLite RESIZE_NEAREST_NEIGHBOR); the channel count stays static.

    Keras' UpSampling2D does nearest upsampling with repeat (tile + reshape to a computed shape), which
    loses the channel count when height and width are dynamic, and the TFLite converter then needs Flex ops.
    """

    def __init__(self, size: tuple[int, int] = (2, 2), interpolation: str = "nearest", **kwargs):
        super().__init__(**kwargs)
        self.size = tuple(size)
        self.interpolation = interpolation

    def call(self, x):  # noqa: D102
        shape = tf.shape(x)
        return tf.image.resize(x, [shape[1] * self.size[0], shape[2] * self.size[1]], method=self.interpolation)

    def compute_output_shape(self, input_shape):  # noqa: D102
        b, h, w, c = input_shape
        return (b, None if h is None else h * self.size[0], None if w is None else w * self.size[1], c)

    def get_config(self):  # noqa: D102
        return {**super().get_config(), "size": self.size, "interpolation": self.interpolation}


class InstanceNormalized(keras.layers.Layer):
    """Each image's features with zero mean and unit std per channel over positions (no affine part)."""

    def call(self, x):  # noqa: D102
        mean, variance = tf.nn.moments(x, axes=[1, 2], keepdims=True)
        return (x - mean) * tf.math.rsqrt(variance + EPS)


class Covariance(keras.layers.Layer):
    """[B, H, W, C] features -> [B, C * C]: products of channel pairs averaged over positions, flattened."""

    def call(self, x):  # noqa: D102
        channels = x.shape[-1]
        flat = tf.reshape(x, [tf.shape(x)[0], -1, channels])
        positions = tf.cast(tf.shape(flat)[1], x.dtype)
        return tf.reshape(tf.matmul(flat, flat, transpose_a=True) / positions, [-1, channels * channels])

    def compute_output_shape(self, input_shape):  # noqa: D102
        return (input_shape[0], input_shape[-1] ** 2)


class MatrixMix(keras.layers.Layer):
    """(z [B, H, W, r], S [B, r * r], C [B, r * r]) -> T z at every position, T = S @ C / r."""

    def call(self, inputs):  # noqa: D102
        z, style, content = inputs
        rank = z.shape[-1]
        t = tf.matmul(tf.reshape(style, [-1, rank, rank]), tf.reshape(content, [-1, rank, rank])) / rank
        return tf.matmul(z, t[:, None], transpose_b=True)  # batch dims (B, H) against (B, 1): static channels
