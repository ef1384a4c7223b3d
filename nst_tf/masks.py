"""Spatial control: a mask image split into regions, one style per region."""

from __future__ import annotations

import numpy as np
from PIL import Image

from nst_tf.images import ImageError, load_image

MIN_REGION_FRACTION = 0.01  # grey levels covering less than this are anti-aliasing, not regions


def regions_from_mask(mask: np.ndarray, n_styles: int, name: str = "mask") -> np.ndarray:
    """An [H, W, 3] mask image -> [H, W, R] one-hot regions, ordered by grey level (dark first)."""
    grey = np.round(mask.mean(axis=-1) * 255).astype(np.int32)
    levels, counts = np.unique(grey, return_counts=True)
    main = levels[counts >= MIN_REGION_FRACTION * grey.size]
    if len(main) > n_styles:
        raise ImageError(f"{name}: has {len(main)} regions (grey levels {', '.join(map(str, main))}) "
                         f"but only {n_styles} style(s)")
    if len(main) < 2:
        raise ImageError(f"{name}: has a single region; a mask needs one region per style")
    if len(main) < n_styles:
        raise ImageError(f"{name}: has {len(main)} regions for {n_styles} styles")
    nearest = np.abs(grey[..., None] - main[None, None, :]).argmin(axis=-1)
    return np.eye(len(main), dtype=np.float32)[nearest]


def load_regions(path: str, height: int, width: int, n_styles: int) -> np.ndarray:
    """Load a mask file, resize it to the content size (nearest neighbour) and split it into regions."""
    mask = load_image(path)
    if mask.shape[:2] != (height, width):
        img = Image.fromarray((mask * 255).astype(np.uint8)).resize((width, height), Image.Resampling.NEAREST)
        mask = np.asarray(img, np.float32) / 255.0
    return regions_from_mask(mask, n_styles, path)
