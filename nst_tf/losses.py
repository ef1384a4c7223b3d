"""Gatys losses as small pure functions on feature tensors.

Every loss is dimensionless: Gram matrices are averaged over pixel positions, and content and
style errors are relative to the size of their target, so the same weights work at any image
size, for any layer width and for either preprocessing (Caffe or torchvision scale).
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

_EPS = 1e-8


def gram_matrix(features: tf.Tensor) -> tf.Tensor:
    """Gram matrix of [B, H, W, C] features averaged over positions: [B, C, C]."""
    features = tf.cast(features, tf.float32)
    positions = tf.cast(tf.shape(features)[1] * tf.shape(features)[2], tf.float32)
    return tf.einsum("bhwc,bhwd->bcd", features, features) / positions


def relative_squared_error(value: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """||value - target||^2 / ||target||^2 per batch item: [B]."""
    value, target = tf.cast(value, tf.float32), tf.cast(target, tf.float32)
    axes = tf.range(1, tf.rank(value))
    error = tf.reduce_sum(tf.square(value - target), axis=axes)
    return error / (tf.reduce_sum(tf.square(target), axis=axes) + _EPS)


def content_loss(features: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Relative squared error between feature maps: [B]."""
    return relative_squared_error(features, target)


def style_loss(features: tf.Tensor, target_gram: tf.Tensor) -> tf.Tensor:
    """Relative squared error between the Gram matrix of `features` and a target Gram: [B]."""
    return relative_squared_error(gram_matrix(features), target_gram)


def relative_style_loss(style: tf.Tensor, own: tf.Tensor, target: float = 0.0) -> tf.Tensor:
    """Style loss as a fraction of the content's own (held constant), beyond `target`: max(style / own - target, 0)."""
    ratio = tf.cast(style, tf.float32) / (tf.stop_gradient(tf.cast(own, tf.float32)) + _EPS)
    return tf.nn.relu(ratio - target)


def total_variation_loss(images: tf.Tensor) -> tf.Tensor:
    """Mean squared difference between neighbouring pixels (both directions): [B]."""
    images = tf.cast(images, tf.float32)
    dy = images[:, 1:, :, :] - images[:, :-1, :, :]
    dx = images[:, :, 1:, :] - images[:, :, :-1, :]
    return tf.reduce_mean(tf.square(dy), axis=[1, 2, 3]) + tf.reduce_mean(tf.square(dx), axis=[1, 2, 3])


def reconstruction_loss(images: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Mean squared pixel error per example: [B]."""
    return tf.reduce_mean(tf.square(tf.cast(images, tf.float32) - tf.cast(target, tf.float32)), axis=[1, 2, 3])


def layout_loss(images: tf.Tensor, target: tf.Tensor, pool: int = 8) -> tf.Tensor:
    """Light-and-dark layout error per batch item, [B]: the mean squared difference of the two images' luminances,
    average-pooled by `pool` and standardised over positions (0: the same layout in any tones; 2: unrelated; 4:
    inverted). Palette and contrast are free; which regions are the lighter ones is not."""
    def standardized_luminance(x: tf.Tensor) -> tf.Tensor:
        x = tf.cast(x, tf.float32)
        luminance = tf.nn.avg_pool2d(tf.reduce_sum(x * [0.299, 0.587, 0.114], -1, keepdims=True), pool, pool, "VALID")
        mean, variance = tf.nn.moments(luminance, axes=[1, 2, 3], keepdims=True)
        return (luminance - mean) * tf.math.rsqrt(variance + 1e-6)

    return tf.reduce_mean(tf.square(standardized_luminance(images) - standardized_luminance(target)), axis=[1, 2, 3])


def weighted_sum(values: Sequence[tf.Tensor], weights: Sequence[float]) -> tf.Tensor:
    """Sum of per-layer losses times their weights, divided by the sum of weights: [B]."""
    if len(values) != len(weights):
        raise ValueError(f"{len(values)} losses but {len(weights)} weights")
    total = float(sum(weights))
    if total <= 0:
        raise ValueError("layer weights must sum to a positive number")
    return tf.add_n([w * v for w, v in zip(weights, values)]) / total


def layer_weights(spec: str | Sequence[float] | None, n: int, name: str = "layer weights") -> list[float]:
    """Parse per-layer weights ('1,1,0.5' or a list); None means equal weights."""
    if spec is None or spec == "" or spec == []:
        return [1.0] * n
    values = [float(v) for v in spec.split(",")] if isinstance(spec, str) else [float(v) for v in spec]
    if len(values) != n:
        raise ValueError(f"{name}: {len(values)} values for {n} layers")
    if any(v < 0 for v in values) or sum(values) <= 0:
        raise ValueError(f"{name}: must be non-negative and sum to a positive number")
    return values


def masked_gram_matrix(features: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Gram matrix over the positions of a soft [B, H, W, 1] mask, averaged by mask weight: [B, C, C]."""
    features = tf.cast(features, tf.float32)
    mask = tf.cast(mask, tf.float32)
    weight = tf.reduce_sum(mask, axis=[1, 2, 3])[:, None, None]
    return tf.einsum("bhwc,bhwd->bcd", features * mask, features) / (weight + _EPS)


def palette_loss(images: tf.Tensor, target: tf.Tensor, projections: int = 16,
                 directions: tf.Tensor | None = None) -> tf.Tensor:
    """Sliced Wasserstein distance between the pixel colours of images and target ([B, H, W, 3] each): [B].

    Both sets of pixels are projected on `projections` random unit directions of RGB (or the given [3, K]
    `directions`), sorted, and compared quantile by quantile (squared difference); target pixels are resampled at
    the images' quantiles when the counts differ (`step_quantiles`).
    """
    if directions is None:
        directions = tf.math.l2_normalize(tf.random.normal([3, projections]), axis=0)
    values = sorted_projections(images, directions)  # [B, K, N]
    wanted = step_quantiles(sorted_projections(target, directions), tf.shape(values)[-1])
    return tf.reduce_mean(tf.square(values - wanted), axis=[1, 2])


def orthonormal_projections(channels: int, count: int | None = None, seed: int | None = None) -> tf.Tensor:
    """`count` (default all) random orthonormal directions in feature space, as columns: [C, count]."""
    count = channels if count is None else min(int(count), channels)
    shape = [channels, channels]
    gaussian = (tf.random.normal(shape) if seed is None
                else tf.random.stateless_normal(shape, seed=tf.constant([seed, 0], tf.int32)))
    q, r = tf.linalg.qr(gaussian)
    q = q * tf.where(tf.linalg.diag_part(r) < 0, -1.0, 1.0)[None, :]  # Haar-distributed: fix QR's sign choice
    return q[:, :count]


def sorted_projections(features: tf.Tensor, projections: tf.Tensor) -> tf.Tensor:
    """Features [B, ..., C] as per-item point sets projected on [C, K] directions, each sorted: [B, K, N]."""
    features = tf.cast(features, tf.float32)
    batch, channels = tf.shape(features)[0], tf.shape(features)[-1]
    points = tf.reshape(features, [batch, -1, channels])
    return tf.sort(tf.transpose(tf.einsum("bnc,ck->bnk", points, projections), [0, 2, 1]), axis=-1)


def _level_ranks(n: int | tf.Tensor, m: int | tf.Tensor) -> tf.Tensor:
    """The n quantile levels (i + 0.5) / n scaled to m sorted values: (i + 0.5) * m / n, [n]."""
    return (tf.cast(tf.range(n), tf.float32) + 0.5) * tf.cast(m, tf.float32) / tf.cast(n, tf.float32)


def step_quantiles(sorted_values: tf.Tensor, n: int | tf.Tensor) -> tf.Tensor:
    """Resample sorted values [..., M] at the n quantile levels (i + 0.5) / n, not interpolated (the value at
    index floor((i + 0.5) * M / n)): [..., n]."""
    m = tf.shape(sorted_values)[-1]
    return tf.gather(sorted_values, tf.cast(_level_ranks(n, m), tf.int32), axis=-1)


def quantiles(sorted_values: tf.Tensor, n: int | tf.Tensor) -> tf.Tensor:
    """Resample sorted values [..., M] at the n quantile levels (i + 0.5) / n, linearly interpolated: [..., n]."""
    sorted_values = tf.cast(sorted_values, tf.float32)
    m = tf.shape(sorted_values)[-1]
    position = _level_ranks(n, m) - 0.5
    position = tf.clip_by_value(position, 0.0, tf.cast(m - 1, tf.float32))
    below = tf.cast(tf.floor(position), tf.int32)
    above = tf.minimum(below + 1, m - 1)
    frac = position - tf.cast(below, tf.float32)
    return (1.0 - frac) * tf.gather(sorted_values, below, axis=-1) + frac * tf.gather(sorted_values, above, axis=-1)


def sliced_wasserstein_loss(features: tf.Tensor, target_sorted: tf.Tensor, projections: tf.Tensor) -> tf.Tensor:
    """Sliced Wasserstein loss (Heitz et al., CVPR 2021) against a target's sorted projections [K, M]: [B]."""
    values = sorted_projections(features, projections)  # [B, K, N]
    target = quantiles(target_sorted, tf.shape(values)[-1])[None]  # [1, K, N]: the target's quantiles at N levels
    error = tf.reduce_mean(tf.square(values - target), axis=[1, 2])
    return error / (tf.reduce_mean(tf.square(target)) + _EPS)
