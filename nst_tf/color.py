"""Colour control (Gatys et al. 2017): luminance-only transfer and colour histogram matching."""

from __future__ import annotations

import numpy as np

# NTSC YIQ; rows give Y, I, Q from R, G, B.
RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]],
                      np.float32)
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ).astype(np.float32)
MODES = ("none", "luminance", "histogram")


def rgb_to_yiq(image: np.ndarray) -> np.ndarray:
    """[..., 3] RGB -> YIQ."""
    return image @ RGB_TO_YIQ.T


def yiq_to_rgb(image: np.ndarray) -> np.ndarray:
    """[..., 3] YIQ -> RGB (not clipped)."""
    return image @ YIQ_TO_RGB.T


def luminance(image: np.ndarray) -> np.ndarray:
    """The Y channel repeated as a grey RGB image."""
    y = rgb_to_yiq(image)[..., :1]
    return np.repeat(y, 3, axis=-1).astype(np.float32)


def match_luminance(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Grey style luminance with the mean and standard deviation of the content's luminance."""
    ys, yc = luminance(style)[..., 0], luminance(content)[..., 0]
    y = (ys - ys.mean()) * (yc.std() / (ys.std() + 1e-6)) + yc.mean()
    return np.clip(np.repeat(y[..., None], 3, axis=-1), 0.0, 1.0).astype(np.float32)


def combine_luminance(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The stylized image's luminance with the content's chroma (I, Q)."""
    yiq = rgb_to_yiq(content)
    yiq[..., 0] = rgb_to_yiq(stylized)[..., 0]
    return np.clip(yiq_to_rgb(yiq), 0.0, 1.0).astype(np.float32)


def _sqrtm(cov: np.ndarray, inverse: bool = False) -> np.ndarray:
    values, vectors = np.linalg.eigh(cov)
    values = np.maximum(values, 1e-8) ** (-0.5 if inverse else 0.5)
    return (vectors * values) @ vectors.T


def match_color(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Give `source` the colour mean and covariance of `target` (linear 'image analogies' transform)."""
    src = source.reshape(-1, 3).astype(np.float64)
    tgt = target.reshape(-1, 3).astype(np.float64)
    mu_s, mu_t = src.mean(0), tgt.mean(0)
    eye = np.eye(3) * 1e-5
    transform = _sqrtm(np.cov(tgt, rowvar=False) + eye) @ _sqrtm(np.cov(src, rowvar=False) + eye, inverse=True)
    out = (src - mu_s) @ transform.T + mu_t
    return np.clip(out.reshape(source.shape), 0.0, 1.0).astype(np.float32)
