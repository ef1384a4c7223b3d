"""Scale ladders and tiles for coarse-to-fine optimisation (pure numpy, no TensorFlow)."""

from __future__ import annotations

import numpy as np


def scale_ladder(size: int, start: int = 256, factor: float = 2 ** 0.5) -> tuple[int, ...]:
    """Long sides from `start` up to `size` by `factor` (x sqrt 2 by default), ending exactly at `size`."""
    if size <= start:
        return (size,)
    sizes, current = [], float(start)
    while current < size / 1.1:
        sizes.append(int(round(current)))
        current *= factor
    return (*sizes, size)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of equal tiles covering [0, length) with at least `overlap` pixels of overlap."""
    if length <= tile:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, length - tile, stride))
    return [*starts, length - tile]


def feather(height: int, width: int, overlap: int) -> np.ndarray:
    """A [H, W, 1] blending window: 1 inside, linear ramps over `overlap` pixels at the borders."""
    def ramp(n):
        r = np.minimum(np.arange(n) + 1, np.arange(n)[::-1] + 1).astype(np.float32)
        return np.clip(r / max(overlap, 1), 1e-3, 1.0)
    return (ramp(height)[:, None] * ramp(width)[None, :])[..., None]
