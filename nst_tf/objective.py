"""The Gatys objective: loss weights, style targets and the weighted loss of an image.

The objective holds the fixed targets (content features; style Gram matrices or sliced Wasserstein targets)
computed once; each optimiser step (nst_tf.optimizers) differentiates its `terms`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from nst_tf import losses
from nst_tf.features import FeatureExtractor
from nst_tf.sliced import SlicedTarget, blend_weights


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms and of each content/style layer (None: equal)."""

    content: float = 1.0
    style: float = 10.0
    tv: float = 1.0
    content_layers: tuple[float, ...] | None = None
    style_layers: tuple[float, ...] | None = None


def _grams(extractor: FeatureExtractor, style: np.ndarray, tile: int = 0, margin: int = 64) -> list[tf.Tensor]:
    """Per-layer Gram matrices of one image; above `tile` px it is analysed in overlapping windows.

    Gram matrices are sums over positions, so windows add up: each window contributes only its core
    (its border `margin`, where zero padding distorts the features, is covered by the neighbours).
    """
    height, width = style.shape[:2]
    if not tile or max(height, width) <= tile:
        _, feats = extractor(tf.constant(style[None], tf.float32))
        return [losses.gram_matrix(f) for f in feats]
    margin = min(margin, tile // 4)
    core = tile - 2 * margin
    sums, counts = None, None
    for y0 in range(0, height, core):
        for x0 in range(0, width, core):
            y1, x1 = min(y0 + core, height), min(x0 + core, width)
            wy0, wx0 = max(0, y0 - margin), max(0, x0 - margin)
            wy1, wx1 = min(height, y1 + margin), min(width, x1 + margin)
            _, feats = extractor(tf.constant(style[None, wy0:wy1, wx0:wx1], tf.float32))
            these, n = [], []
            for f in feats:
                stride = (wy1 - wy0) / f.shape[1]
                ty0, ty1 = round((y0 - wy0) / stride), round((y1 - wy0) / stride)
                tx0, tx1 = round((x0 - wx0) / stride), round((x1 - wx0) / stride)
                part = tf.cast(f[:, ty0:max(ty1, ty0 + 1), tx0:max(tx1, tx0 + 1)], tf.float32)
                these.append(tf.einsum("bhwc,bhwd->bcd", part, part))
                n.append(float(part.shape[1] * part.shape[2]))
            sums = these if sums is None else [a + b for a, b in zip(sums, these)]
            counts = n if counts is None else [a + b for a, b in zip(counts, n)]
    return [g / c for g, c in zip(sums, counts)]


def style_targets(extractor: FeatureExtractor, styles: Sequence[np.ndarray], blend: Sequence[float] | None = None,
                  per_region: bool = False, tile: int = 0) -> list[list[tf.Tensor]]:
    """Gram targets [region][layer]: one blended set, or (per_region) one set per style image."""
    if not styles:
        raise ValueError("at least one style image is needed")
    grams = [_grams(extractor, style, tile) for style in styles]
    if per_region:
        return grams
    weights = blend_weights(blend, len(styles))
    return [[tf.add_n([g[i] * w for g, w in zip(grams, weights)]) for i in range(len(grams[0]))]]


class Objective:
    """Total Gatys loss of an image against content features and style Grams (optionally per mask region).

    Content targets and masks live in variables, so one compiled step serves many tiles of equal size.
    Style targets are Gram matrices (`style_targets`) or `SlicedTarget`s (`sliced_targets`); with the latter,
    `points` > 0 compares a random subset of that many positions per layer and step (0: all positions).
    """

    def __init__(self, extractor: FeatureExtractor, content: np.ndarray, targets: list[list[tf.Tensor]],
                 weights: LossWeights = LossWeights(), masks: np.ndarray | None = None, points: int = 0):
        self.sliced = isinstance(targets[0][0], SlicedTarget) if targets and targets[0] else False
        if self.sliced and masks is not None:
            raise ValueError("masks need the Gram style loss (style_loss=gram)")
        self.points = int(points)
        if masks is not None and masks.shape[-1] != len(targets):
            raise ValueError(f"{masks.shape[-1]} mask regions but {len(targets)} style target sets")
        if masks is None and len(targets) != 1:
            raise ValueError("several style target sets need a mask")
        self.extractor, self.weights, self.targets = extractor, weights, targets
        self.content_layer_weights = losses.layer_weights(
            weights.content_layers, len(extractor.content_layers), "content layer weights")
        self.style_layer_weights = losses.layer_weights(
            weights.style_layers, len(extractor.style_layers), "style layer weights")
        content_feats, style_feats = extractor(tf.constant(content[None], tf.float32))
        self.content_targets = [tf.Variable(f, trainable=False) for f in content_feats]
        self.masks = None
        if masks is not None:
            self.masks = [tf.Variable(self._resize_masks(masks, f.shape[1:3]), trainable=False) for f in style_feats]

    @staticmethod
    def _resize_masks(masks: np.ndarray, size) -> tf.Tensor:
        return tf.image.resize(tf.constant(masks[None], tf.float32), size, method="area")

    def set_content(self, content: np.ndarray, masks: np.ndarray | None = None) -> None:
        """Point the objective at another content image (and masks) of the same size, e.g. the next tile."""
        content_feats, _ = self.extractor(tf.constant(content[None], tf.float32))
        for var, f in zip(self.content_targets, content_feats):
            var.assign(f)
        if self.masks is not None and masks is not None:
            for var in self.masks:
                var.assign(self._resize_masks(masks, var.shape[1:3]))

    def _sliced_layer_loss(self, index: int, features: tf.Tensor) -> tf.Tensor:
        target: SlicedTarget = self.targets[0][index]
        channels = features.shape[-1]
        points = tf.reshape(tf.cast(features, tf.float32), [features.shape[0], -1, channels])
        if self.points and points.shape[1] > self.points:
            chosen = tf.random.shuffle(tf.range(points.shape[1]))[:self.points]
            points = tf.gather(points, chosen, axis=1)
        directions = target.directions
        if directions is None:
            directions = losses.orthonormal_projections(channels)
        return losses.sliced_wasserstein_loss(points, target.sorted_target(directions, points.shape[1]), directions)

    def _style_layer_loss(self, index: int, features: tf.Tensor) -> tf.Tensor:
        if self.sliced:
            return self._sliced_layer_loss(index, features)
        if self.masks is None:
            return losses.style_loss(features, self.targets[0][index])
        masks = self.masks[index]
        area = tf.reduce_mean(masks, axis=[1, 2]) + 1e-8  # [1, R]
        area = area / tf.reduce_sum(area, axis=-1, keepdims=True)
        per_region = [losses.relative_squared_error(losses.masked_gram_matrix(features, masks[..., r:r + 1]),
                                                    self.targets[r][index]) for r in range(len(self.targets))]
        return tf.add_n([area[:, r] * loss for r, loss in enumerate(per_region)])

    def terms(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        """Weighted loss terms and their total (scalars) for a [1, H, W, 3] image."""
        content_feats, style_feats = self.extractor(image)
        w = self.weights
        out = {}
        if content_feats:
            per_layer = [losses.content_loss(f, t) for f, t in zip(content_feats, self.content_targets)]
            out["content"] = w.content * tf.reduce_mean(losses.weighted_sum(per_layer, self.content_layer_weights))
        if style_feats:
            per_layer = [self._style_layer_loss(i, f) for i, f in enumerate(style_feats)]
            out["style"] = w.style * tf.reduce_mean(losses.weighted_sum(per_layer, self.style_layer_weights))
        out["tv"] = w.tv * tf.reduce_mean(losses.total_variation_loss(image))
        out["total"] = tf.add_n(list(out.values()))
        return out
