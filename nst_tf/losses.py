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
