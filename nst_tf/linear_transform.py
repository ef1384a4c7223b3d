"""The learned linear transform at relu4_1 (Li et al. 2019, "Learning Linear Transformations for Fast Image and Video
Style Transfer"), as the arbitrary-style network (nst_tf.network, linear_rank > 0) uses it.

AdaIN matches each channel's mean and std; the transform mixes channels so that the cross-channel covariance follows
the style too. A style net maps the style's relu4_1 to a rank x rank matrix S (the covariance of a learned
projection, then a dense layer: the style vector's tail); the content side makes C the same way, compresses the
normalised content features to `rank` channels, multiplies them by S @ C and projects back: a residual added to the
AdaIN'd relu4_1, its last projection zero-initialised (a network without it warm-starts unchanged).
"""

from __future__ import annotations

import keras

from nst_tf.layers import Covariance, InstanceNormalized, MatrixMix, reflect_conv

RELU4_CHANNELS = 512  # VGG16's relu4_1


def covariance_head(x, rank: int, prefix: str):
    """Normalised features -> [B, rank * rank]: three convolutions, their covariance, a dense layer (LST's CNN)."""
    x = reflect_conv(x, 128, f"{prefix}_conv1")
    x = reflect_conv(x, 64, f"{prefix}_conv2")
    x = reflect_conv(x, rank, f"{prefix}_conv3", activation=None)
    return keras.layers.Dense(rank * rank, name=f"{prefix}_fc")(Covariance(name=f"{prefix}_cov")(x))


def build_style_net(rank: int, channels: int = RELU4_CHANNELS) -> keras.Model:
    """A style's relu4_1 features -> its [B, rank * rank] style matrix S (the style vector's tail)."""
    features = keras.Input((None, None, channels), name="relu4_1")
    matrix = covariance_head(InstanceNormalized(name="snet_norm")(features), rank, "snet")
    return keras.Model(features, matrix, name="style_net")


def build_transfer(rank: int, channels: int = RELU4_CHANNELS) -> keras.Model:
    """(content relu4_1, style matrix S) -> the residual added to the AdaIN'd relu4_1 (zero at initialisation)."""
    features = keras.Input((None, None, channels), name="relu4_1")
    style_matrix = keras.Input((rank * rank,), name="style_matrix")
    normalized = InstanceNormalized(name="cnet_norm")(features)
    content_matrix = covariance_head(normalized, rank, "cnet")
    compressed = keras.layers.Conv2D(rank, 1, name="compress")(normalized)
    mixed = MatrixMix(name="mix")([compressed, style_matrix, content_matrix])
    residual = keras.layers.Conv2D(channels, 1, kernel_initializer="zeros", name="unzip")(mixed)
    return keras.Model([features, style_matrix], residual, name="transfer")
