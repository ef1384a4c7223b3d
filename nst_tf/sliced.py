"""Sliced optimal transport for the optimiser: sliced Wasserstein style targets and a palette transfer.

Heitz et al. (CVPR 2021) match whole distributions of VGG features by comparing their sorted 1-D projections;
the same idea on pixel colours (Pitié et al. 2005, Rabin et al. 2011) gives a photo the painting's palette.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from nst_tf import losses
from nst_tf.features import FeatureExtractor

PROJECTIONS = ("fresh", "fixed")


@dataclass(frozen=True)
class SlicedTarget:
    """One layer's sliced Wasserstein target: sorted projections on fixed directions, or the styles' points.

    fixed: `directions` [C, K] and `values` = (the blend's sorted projections [K, M],), weights (1.0,);
    fresh: `directions` None and `values` = each style's points [M, C] with its blend weight, projected each step.
    """

    directions: tf.Tensor | None
    values: tuple[tf.Tensor, ...]
    weights: tuple[float, ...]

    def sorted_target(self, directions: tf.Tensor, n: int | tf.Tensor) -> tf.Tensor:
        """The target's quantiles at n levels on `directions` (several styles: their 1-D barycentre): [K, n]."""
        if self.directions is not None:
            return losses.quantiles(self.values[0], n)
        parts = [losses.quantiles(losses.sorted_projections(v[None], directions)[0], n) * w
                 for v, w in zip(self.values, self.weights)]
        return tf.add_n(parts)


def _points(extractor: FeatureExtractor, style: np.ndarray, limit: int) -> list[tf.Tensor]:
    """Per-layer feature points [M, C] of one image, at most `limit` per layer (an even stride through them)."""
    _, feats = extractor(tf.constant(style[None], tf.float32))
    out = []
    for f in feats:
        flat = tf.reshape(tf.cast(f, tf.float32), [-1, f.shape[-1]])
        stride = max(1, -(-int(flat.shape[0]) // limit)) if limit else 1
        out.append(flat[::stride])
    return out


def blend_weights(blend: Sequence[float] | None, n: int) -> list[float]:
    """Normalised blend weights of n styles (None: equal); ValueError for a bad blend."""
    weights = [1.0] * n if blend is None else [float(b) for b in blend]
    if len(weights) != n or any(b < 0 for b in weights) or sum(weights) <= 0:
        raise ValueError(f"style blend {weights} must give one non-negative weight per style, sum > 0")
    return [w / sum(weights) for w in weights]


def sliced_targets(extractor: FeatureExtractor, styles: Sequence[np.ndarray], blend: Sequence[float] | None = None,
                   projections: str = "fresh", seed: int = 0, limit: int = 0) -> list[list[SlicedTarget]]:
    """Sliced Wasserstein targets [[layer]]: the styles' feature points (at most `limit` per layer, 0: all).

    With several styles the target is their blend-weighted 1-D Wasserstein barycentre on each direction
    (the weighted mean of their quantile functions).
    """
    if not styles:
        raise ValueError("at least one style image is needed")
    if projections not in PROJECTIONS:
        raise ValueError(f"unknown projections '{projections}' (use {', '.join(PROJECTIONS)})")
    weights = blend_weights(blend, len(styles))
    points = [_points(extractor, style, limit) for style in styles]  # [style][layer]
    layers = []
    for i in range(len(points[0])):
        values = tuple(p[i] for p in points)
        if projections == "fresh":
            layers.append(SlicedTarget(None, values, tuple(weights)))
            continue
        directions = losses.orthonormal_projections(int(values[0].shape[-1]), seed=seed + i)
        n = max(int(v.shape[0]) for v in values)
        target = SlicedTarget(None, values, tuple(weights)).sorted_target(directions, n)
        layers.append(SlicedTarget(directions, (target,), (1.0,)))
    return [layers]


def sorted_quantiles(values: np.ndarray, n: int) -> np.ndarray:
    """Values [M] sorted and resampled at the n quantile levels (i + 0.5) / n, linearly interpolated: [n]
    (numpy, in float64; losses.quantiles on tensors)."""
    levels = (np.arange(n) + 0.5) / n
    return np.interp(levels * len(values) - 0.5, np.arange(len(values)), np.sort(values))


def transfer_palette(image: np.ndarray, styles: Sequence[np.ndarray], blend: Sequence[float] | None = None,
                     iterations: int = 10, seed: int = 0) -> np.ndarray:
    """`image` with the styles' colour distribution: sliced optimal transport of its RGB pixels, rank kept."""
    rng = np.random.default_rng(seed)
    weights = blend_weights(blend, len(styles))
    pixels = image.reshape(-1, 3).astype(np.float64)
    targets = [s.reshape(-1, 3).astype(np.float64) for s in styles]
    for _ in range(iterations):
        rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        projected = pixels @ rotation
        for k in range(3):
            wanted = sum(w * sorted_quantiles(t @ rotation[:, k], len(pixels)) for t, w in zip(targets, weights))
            projected[np.argsort(projected[:, k], kind="stable"), k] = wanted
        pixels = projected @ rotation.T
    return np.clip(pixels.reshape(image.shape), 0.0, 1.0).astype(np.float32)
