"""Tiled inference of the feed-forward networks: a photo of any size in memory bounded by the tile size.

Both networks normalise with whole-image statistics (the arbitrary-style network AdaINs every encoder level with
the content's own moments and its linear transform reads the content's covariance; the phone-sized one has an
instance norm after every convolution; the palette layer reads the output's colour moments). A tile must use the
whole image's statistics, not its own, or every tile gets its own colours and contrast. So:

1. the image is mirror-padded as fast.stylize_padded pads it, and cut into windows (multiples of the stride, at
   multiples of the stride, so the encoder's pooling grid is the untiled one); each window is a core plus
   CONTEXT pixels on every side that is not the image border, and neighbouring cores overlap;
2. the whole-image statistics are accumulated over the windows' cores (`stats='tiles'`, group by group: a group
   needs the statistics before it, e.g. each instance norm's input depends on the norms before it), or taken from
   a downscaled copy of the whole image (`stats='downscaled'`: one pass, approximate);
3. every window is stylized with those statistics (net.stylize(..., stats=)), its core weighted by linear ramps
   OVERLAP pixels wide where cores meet (the weights of all tiles sum to one) and added into a float32 canvas;
4. the palette layer (networks with one) is applied to the assembled canvas, with the canvas's own moments: it is
   an affine map of each pixel, so this is exactly what the untiled network does.

Memory: the network's working set for one window (bytes per pixel measured per network: BYTES_PER_PIXEL) plus
the padded photo and the canvas (24 bytes per pixel). The window side is chosen from the free memory
(choose_tile) unless given.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from nst_tf import palette as palette_lib
from nst_tf.network import MARGIN, STRIDE

CONTEXT = 64  # pixels of each window beyond its core, feeding the core's receptive field, then dropped
OVERLAP = 32  # width of the linear ramps where neighbouring cores meet
MIN_TILE = 256  # window sides: at least CONTEXT * 2 + 3 * OVERLAP + STRIDE, so that ramps never meet
MAX_TILE = 2048
# Peak memory of one window's forward pass, in bytes per window pixel: the growth of the peak RSS from 512 to
# 1024 px windows (benchmarks/fast_large.py, part "probe": 3822 MiB over 786432 pixels for the arbitrary-style
# network, 530 MiB for the phone-sized one; eager TensorFlow, float32, this 2-core machine).
BYTES_PER_PIXEL = {"arbitrary": 5100, "mobile": 710}
MEMORY_SHARE = 0.5  # of the available memory that the automatic tile size plans to use
MEMORY_CAP = 3 << 30  # and at most this (the canvas and the photo come on top)
STATS_MODES = ("tiles", "downscaled")
STATS_SIZE = 1024  # long side of the downscaled copy of stats='downscaled'


class OutOfMemory(MemoryError):
    """The fast path ran out of memory; the message is one line naming the size and the fix."""


def out_of_memory_message(width: int, height: int, tile: int | None) -> str:
    """One line for an out-of-memory error at this size (and tile side, 0 or None: untiled)."""
    smaller = max(MIN_TILE, (tile or max(width, height)) // 2 // STRIDE * STRIDE)
    if tile:
        return (f"out of memory stylizing {width}x{height} px in tiles of {tile} px: use smaller tiles "
                f"(--tile={smaller}) or a smaller --size")
    return f"out of memory stylizing {width}x{height} px untiled: use tiles (--tile={smaller}) or a smaller --size"


# -- memory ------------------------------------------------------------------------------------------------------


def available_memory() -> int:
    """Bytes of memory available to this process: MemAvailable (or free pages), less under a cgroup limit."""
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except OSError:
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = 4 << 30
    try:  # cgroup v2: the container's own limit
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            current = int(f.read().strip())
        if limit != "max":
            available = min(available, int(limit) - current)
    except (OSError, ValueError):
        pass
    return max(available, 0)


def margin_of(net) -> int:
    """The mirror margin a side that `net` is run with: its own `margin` if it has one, else MARGIN."""
    return getattr(net, "margin", MARGIN)


def network_kind(net) -> str:
    """'mobile' for the phone-sized network, 'arbitrary' otherwise (the BYTES_PER_PIXEL key)."""
    return "mobile" if hasattr(net, "transformer") else "arbitrary"


def choose_tile(net, available: int | None = None) -> int:
    """The window side that keeps one window's forward pass within MEMORY_SHARE of the available memory (at most
    MEMORY_CAP), a multiple of the stride in [MIN_TILE, MAX_TILE]."""
    budget = min(MEMORY_SHARE * (available_memory() if available is None else available), MEMORY_CAP)
    side = int(math.sqrt(max(budget, 0) / BYTES_PER_PIXEL[network_kind(net)])) // STRIDE * STRIDE
    return min(MAX_TILE, max(MIN_TILE, side))


def check_tile(tile: int) -> int:
    """`tile` if it is a usable window side (0: untiled); ValueError naming the rule otherwise."""
    if tile != 0 and (tile < MIN_TILE or tile % STRIDE):
        raise ValueError(f"tile must be 0 (untiled) or a multiple of {STRIDE} of at least {MIN_TILE} px, got {tile}")
    return tile


# -- the grid ----------------------------------------------------------------------------------------------------


def pad_amounts(height: int, width: int, margin: int = MARGIN) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) mirror padding of fast.stylize_padded: to the stride, plus `margin` a side (half
    the stride where a side is 2 * margin or less)."""
    margin = margin if min(height, width) > 2 * margin else STRIDE // 2
    pad_h, pad_w = (-height) % STRIDE + 2 * margin, (-width) % STRIDE + 2 * margin
    return pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2


@dataclass(frozen=True)
class Window:
    """One window along one axis: its span (start, stop), its core (start, stop) and the blending weight of each
    position of the span (zero outside the core)."""

    span: tuple[int, int]
    core: tuple[int, int]
    weights: np.ndarray


def axis_windows(length: int, tile: int, context: int = CONTEXT, overlap: int = OVERLAP) -> list[Window]:
    """Windows of at most `tile` covering an axis of `length` (multiples of the stride): cores of tile - 2 context
    at multiples of the stride, consecutive ones overlapping by at least `overlap`, blended by linear ramps of that
    width centred in each overlap; the weights of all windows sum to one at every position."""
    if length <= tile:
        return [Window((0, length), (0, length), np.ones(length, np.float32))]
    core = tile - 2 * context
    if core < 3 * overlap + 3 * STRIDE:  # ramps within both cores of their overlap, never meeting
        raise ValueError(f"tile {tile} is too small for a context of {context} and an overlap of {overlap}")
    gaps = math.ceil((length - core) / (core - overlap - STRIDE))
    starts = [round(i * (length - core) / gaps / STRIDE) * STRIDE for i in range(gaps + 1)]
    cuts = [(starts[i + 1] + starts[i] + core) / 2 for i in range(gaps)]  # the middle of each overlap
    positions = np.arange(length, dtype=np.float64) + 0.5
    windows = []
    for i, start in enumerate(starts):
        weight = np.ones(length)
        if i > 0:
            weight *= np.clip((positions - cuts[i - 1]) / overlap + 0.5, 0.0, 1.0)
        if i < gaps:
            weight *= np.clip((cuts[i] - positions) / overlap + 0.5, 0.0, 1.0)
        span = (max(0, start - context), min(length, start + core + context))
        windows.append(Window(span, (start, start + core), weight[span[0]:span[1]].astype(np.float32)))
    return windows


def pooled(weights: np.ndarray, factor: int) -> np.ndarray:
    """Window weights at 1/factor of the resolution (the mean of each factor pixels): they still sum to one."""
    return weights.reshape(-1, factor).mean(axis=1) if factor > 1 else weights


# -- statistics --------------------------------------------------------------------------------------------------


class _Sums:
    """Weighted sums over tiles of one site's features: moments ('norm') or covariance ('cov'), in float64."""

    def __init__(self, kind: str):
        self.kind, self.total, self.first, self.second, self.shift = kind, 0.0, 0.0, 0.0, None

    def add(self, features: tf.Tensor, weight: np.ndarray) -> None:
        """Add one tile's [1, h, w, C] features with [h, w] weights."""
        w = tf.constant(weight, tf.float32)
        self.total += float(weight.sum(dtype=np.float64))
        if self.kind == "cov":
            flat = tf.reshape(features, [-1, features.shape[-1]])
            self.first += tf.matmul(flat, flat * tf.reshape(w, [-1, 1]), transpose_a=True).numpy().astype(np.float64)
            return
        if self.shift is None:  # moments about a shift near the mean: no cancellation in E[x^2] - E[x]^2
            self.shift = tf.reduce_mean(features, axis=[0, 1, 2])
        centred = features[0] - self.shift
        weighted = centred * w[:, :, None]
        self.first += tf.reduce_sum(weighted, axis=[0, 1]).numpy().astype(np.float64)
        self.second += tf.reduce_sum(weighted * centred, axis=[0, 1]).numpy().astype(np.float64)

    def stats(self, site: str) -> dict[str, tf.Tensor]:
        """The site's statistics as reduce_stats names them."""
        if self.kind == "cov":
            return {site: tf.constant((self.first / self.total).reshape(1, -1), tf.float32)}
        mean = self.first / self.total
        variance = np.maximum(self.second / self.total - mean ** 2, 0.0)
        return {f"{site}/mean": tf.constant((mean + self.shift.numpy())[None], tf.float32),
                f"{site}/variance": tf.constant(variance[None], tf.float32)}


def tiles_stats(net, padded: np.ndarray, vector: tf.Tensor, strength: float, rows: list[Window],
                cols: list[Window]) -> dict[str, tf.Tensor]:
    """The whole-image statistics of `net` on the padded image, accumulated over the windows' cores: what an untiled
    run computes (up to the windows' context), a pass over the tiles per statistics group."""
    stats: dict[str, tf.Tensor] = {}
    whole = set(getattr(net, "whole_sites", ()))
    for group in net.stat_groups():
        if whole & set(group):  # one value of the whole image, cheap to compute at its size (a downscaled copy)
            stats.update({k: v[1] for k, v in net.stat_features(
                tf.constant(padded[None]), vector, strength, stats, sorted(whole & set(group))).items()})
            group = [s for s in group if s not in whole]
            if not group:
                continue
        sums: dict[str, _Sums] = {}
        for row in rows:
            for col in cols:
                tile = tf.constant(padded[None, row.span[0]:row.span[1], col.span[0]:col.span[1]])
                for site, (kind, features) in net.stat_features(tile, vector, strength, stats, group).items():
                    factor = tile.shape[1] // features.shape[1]
                    weight = pooled(row.weights, factor)[:, None] * pooled(col.weights, factor)[None, :]
                    sums.setdefault(site, _Sums(kind)).add(features, weight)
                    del features
        for site, site_sums in sums.items():
            stats.update(site_sums.stats(site))
    return stats


def downscaled_stats(net, content: np.ndarray, vector: tf.Tensor, strength: float,
                     size: int = STATS_SIZE) -> dict[str, tf.Tensor]:
    """The whole-image statistics of `net` on a copy of the content with long side `size` (antialiased), padded as
    the untiled path pads it: one pass, approximate (feature statistics depend on the scale)."""
    return net.image_stats(downscaled_copy(content, size, margin_of(net)), vector, strength)


def downscaled_copy(content: np.ndarray, size: int = STATS_SIZE, margin: int = MARGIN) -> tf.Tensor:
    """[1, h, w, 3]: the content with long side at most `size` (antialiased), mirror-padded as the untiled path
    pads it (what the statistics of stats='downscaled' are computed on)."""
    height, width = content.shape[:2]
    scale = min(1.0, size / max(height, width))
    small = tf.image.resize(content, (max(1, round(height * scale)), max(1, round(width * scale))), antialias=True)
    top, bottom, left, right = pad_amounts(*small.shape[:2], margin)
    return tf.pad(small[None], [[0, 0], [top, bottom], [left, right], [0, 0]], mode="REFLECT")


# -- the tiled run -----------------------------------------------------------------------------------------------


def apply_palette(canvas: np.ndarray, palette: np.ndarray, rows: int = 256) -> None:
    """The palette layer on a whole [H, W, 3] float32 image in place: its opponent-channel moments become those in
    `palette` ([6]: means, stds), as palette.match_palette does, a band of rows at a time."""
    opponent = palette_lib.OPPONENT.astype(np.float64)
    first, second, count = np.zeros(3), np.zeros(3), canvas.shape[0] * canvas.shape[1]
    shift = canvas[: min(rows, canvas.shape[0])].reshape(-1, 3).mean(axis=0) @ opponent.T
    for top in range(0, canvas.shape[0], rows):
        band = canvas[top:top + rows].reshape(-1, 3) @ opponent.T - shift
        first += band.sum(axis=0)
        second += (band * band).sum(axis=0)
    mean = first / count
    variance = np.maximum(second / count - mean ** 2, 0.0)
    scale = palette[3:] / np.sqrt(variance + palette_lib._EPS)  # noqa: SLF001 - the layer's own epsilon
    offset = palette[:3] - (mean + shift) * scale
    for top in range(0, canvas.shape[0], rows):
        band = canvas[top:top + rows]
        band[...] = ((band.reshape(-1, 3) @ opponent.T * scale + offset) @ opponent).reshape(band.shape)


def stylize_tiled(net, content: np.ndarray, vector: tf.Tensor, strength: float = 1.0, tile: int | None = None,
                  stats: str = "tiles", stats_size: int = STATS_SIZE,
                  on_tile: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Stylize one [H, W, 3] image in [0, 1] in overlapping tiles of at most `tile` px (None: choose_tile) with the
    whole image's statistics (`stats`: 'tiles', accumulated over the tiles, or 'downscaled', from a copy of long
    side `stats_size`); the same size out, in [0, 1]. on_tile(done, total) after each stylized tile."""
    if stats not in STATS_MODES:
        raise ValueError(f"stats must be one of {STATS_MODES}, got {stats!r}")
    tile = check_tile(choose_tile(net) if tile is None else tile) or MAX_TILE * 64
    content = np.asarray(content, np.float32)
    height, width = content.shape[:2]
    top, bottom, left, right = pad_amounts(height, width, margin_of(net))
    padded = np.pad(content, ((top, bottom), (left, right), (0, 0)), mode="reflect")
    rows, cols = axis_windows(padded.shape[0], tile), axis_windows(padded.shape[1], tile)
    vector = tf.convert_to_tensor(vector, tf.float32)
    if stats == "tiles":
        image_stats = tiles_stats(net, padded, vector, strength, rows, cols)
    else:
        image_stats = downscaled_stats(net, content, vector, strength, stats_size)
    canvas = np.zeros(padded.shape, np.float32)
    done = 0
    for row in rows:
        for col in cols:
            window = tf.constant(padded[None, row.span[0]:row.span[1], col.span[0]:col.span[1]])
            out = net.stylize(window, vector, strength, clip=False, stats=image_stats).numpy()[0]
            (r0, r1), (c0, c1) = (np.subtract(row.core, row.span[0]), np.subtract(col.core, col.span[0]))
            weight = row.weights[r0:r1, None, None] * col.weights[None, c0:c1, None]
            canvas[row.core[0]:row.core[1], col.core[0]:col.core[1]] += out[r0:r1, c0:c1] * weight
            done += 1
            if on_tile is not None:
                on_tile(done, len(rows) * len(cols))
    del padded
    if net.config.palette:
        target = net.target_vector(vector, strength, image_stats)[0, -palette_lib.SIZE:].numpy()
        apply_palette(canvas, target.astype(np.float64))
    result = canvas[top:top + height, left:left + width]
    np.clip(result, 0.0, 1.0, out=result)
    return result
