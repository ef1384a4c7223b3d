"""How close a stylized image is to the painting's look and to the photo, the way benchmarks measure it.

All three take RGB float arrays [H, W, 3] in [0, 1] and return a float (lower is closer):
- `viewing_style_loss`: image and painting at a 256-px long side (a viewer's distance), relative Gram error
  averaged over the extractor's style layers (VGG16, block1_conv1..block5_conv1 by default);
- `palette_distance`: sliced Wasserstein distance between the two sets of pixel colours in CIELAB (ΔE-like units);
- `content_loss`: relative feature error against the photo (block4_conv2), at the image's own size.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from nst_tf import losses
from nst_tf.features import FeatureExtractor, build_extractor
from nst_tf.sliced import sorted_quantiles

VIEWING_SIZE = 256
_XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                          [0.019334, 0.119193, 0.950227]], np.float64)
_D65_WHITE = np.array([0.950456, 1.0, 1.088754])


def measuring_extractor(weights: str = "lpips") -> FeatureExtractor:
    """The loss network the measures use: offline ImageNet VGG16 (torchvision weights), default layers."""
    return build_extractor(weights)


def _long_side(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to a long side of `size` px (area filter when shrinking)."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    shape = (max(1, round(h * scale)), max(1, round(w * scale)))
    method = "area" if scale < 1 else "bilinear"
    return tf.image.resize(np.asarray(image, np.float32), shape, method=method).numpy()


def rgb_to_lab(image: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] -> CIELAB (D65): [..., 3] with L in [0, 100]."""
    rgb = np.clip(np.asarray(image, np.float64), 0.0, 1.0)
    linear = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = linear @ _XYZ_FROM_RGB.T / _D65_WHITE
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def sliced_wasserstein_distance(a: np.ndarray, b: np.ndarray, directions: int = 64, seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance between point sets [N, D] and [M, D] (quantiles compared when N != M)."""
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(a.shape[1], directions))
    axes /= np.linalg.norm(axes, axis=0, keepdims=True)
    n = max(len(a), len(b))
    total = 0.0
    for k in range(directions):
        qa, qb = sorted_quantiles(a @ axes[:, k], n), sorted_quantiles(b @ axes[:, k], n)
        total += float(np.mean((qa - qb) ** 2))
    return float(np.sqrt(total / directions))


def palette_distance(image: np.ndarray, painting: np.ndarray, size: int = VIEWING_SIZE) -> float:
    """Sliced Wasserstein distance between the pixel colours (CIELAB) of image and painting at `size` px."""
    a = rgb_to_lab(_long_side(image, size)).reshape(-1, 3)
    b = rgb_to_lab(_long_side(painting, size)).reshape(-1, 3)
    return sliced_wasserstein_distance(a, b)


def viewing_style_loss(extractor: FeatureExtractor, image: np.ndarray, painting: np.ndarray,
                       size: int = VIEWING_SIZE) -> float:
    """Relative Gram error, mean over style layers, of image against painting, both at a `size`-px long side."""
    _, ours = extractor(tf.constant(_long_side(image, size)[None]))
    _, theirs = extractor(tf.constant(_long_side(painting, size)[None]))
    per_layer = [losses.style_loss(f, losses.gram_matrix(t)) for f, t in zip(ours, theirs)]
    return float(tf.reduce_mean(tf.stack(per_layer)))


def content_loss(extractor: FeatureExtractor, image: np.ndarray, content: np.ndarray) -> float:
    """Relative feature error, mean over content layers, of image against the photo resized to the image's size."""
    h, w = image.shape[:2]
    photo = tf.image.resize(np.asarray(content, np.float32), (h, w), method="area" if content.shape[0] > h
                            else "bilinear")
    ours, _ = extractor(tf.constant(np.asarray(image, np.float32)[None]))
    theirs, _ = extractor(photo[None])
    return float(tf.reduce_mean(tf.stack([losses.content_loss(f, t) for f, t in zip(ours, theirs)])))


def layout_error(image: np.ndarray, content: np.ndarray, size: int = VIEWING_SIZE) -> float:
    """Light-and-dark layout error of image against the photo, both at a `size`-px long side (losses.layout_loss:
    0 the photo's layout in any tones, 2 unrelated, 4 inverted)."""
    ours = _long_side(np.asarray(image, np.float32), size)
    photo = tf.image.resize(np.asarray(content, np.float32), ours.shape[:2], antialias=True).numpy()
    return float(losses.layout_loss(ours[None], photo[None])[0])
