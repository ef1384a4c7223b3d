"""The output's palette: pixel colour moments of a style image, and a layer that gives them to an image.

Colours are compared in an orthonormal opponent space (luminance, red-green, yellow-blue), whose inverse is its
transpose: matching the mean and standard deviation of each opponent channel moves an image's palette towards a
painting's (its brightness, contrast and dominant hues) while the network keeps drawing the structure. It is an
AdaIN on pixels: the same op the network applies to its feature maps, with six floats of the style vector.
Built from 1x1 convolutions, moments and rsqrt: TFLite builtins.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

SIZE = 6  # floats of a palette: the mean and the std of each opponent channel
_EPS = 1e-4  # on variances: a flat channel's std floors at 0.01 (of the [0, 1] range)
OPPONENT = np.array([[1, 1, 1], [1, -1, 0], [1, 1, -2]], np.float32)
OPPONENT = OPPONENT / np.linalg.norm(OPPONENT, axis=1, keepdims=True)  # rows: orthonormal, inverse = transpose


def _mix(images: tf.Tensor, matrix: np.ndarray) -> tf.Tensor:
    """[B, H, W, 3] @ matrix.T at every pixel, as a 1x1 convolution."""
    return tf.nn.conv2d(images, tf.constant(matrix.T[None, None], tf.float32), 1, "VALID")


def to_opponent(images: tf.Tensor) -> tf.Tensor:
    """RGB -> opponent channels (orthonormal)."""
    return _mix(tf.convert_to_tensor(images, tf.float32), OPPONENT)


def from_opponent(images: tf.Tensor) -> tf.Tensor:
    """Opponent channels -> RGB (the transpose of to_opponent)."""
    return _mix(images, OPPONENT.T)


def pixel_moments(images: tf.Tensor) -> tf.Tensor:
    """[B, H, W, 3] RGB -> [B, 6] palette: mean then std of each opponent channel."""
    mean, variance = tf.nn.moments(to_opponent(images), axes=[1, 2])
    return tf.concat([mean, tf.sqrt(variance + _EPS)], axis=-1)


def match_palette(images: tf.Tensor, palette: tf.Tensor) -> tf.Tensor:
    """Give [B, H, W, 3] images the opponent-channel mean and std in `palette` ([B, 6]); not clipped."""
    opponent = to_opponent(images)
    mean, variance = tf.nn.moments(opponent, axes=[1, 2], keepdims=True)
    normalized = (opponent - mean) * tf.math.rsqrt(variance + _EPS)
    return from_opponent(normalized * palette[:, None, None, 3:] + palette[:, None, None, :3])
