"""Training batches without TensorFlow: random crops of image folders with Pillow (nst_tf.data's crops), and the
per-step random inputs of the loss (strengths as nst_tf.train.Trainer.sample_strength draws them, the palette
term's directions as nst_tf.losses.palette_loss draws them)."""

from __future__ import annotations

import concurrent.futures
import os
import queue
import threading

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
PALETTE_PROJECTIONS = 16  # nst_tf.losses.palette_loss's default


def list_images(folder: str) -> list[str]:
    """Image files under `folder`, sorted."""
    files = sorted(os.path.join(root, n) for root, _, names in os.walk(folder) for n in names
                   if n.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise SystemExit(f"{folder}: no images")
    return files


def load_images(files: list[str]) -> list[Image.Image]:
    """Decode every readable image to RGB once (unreadable ones are skipped and counted)."""
    images, skipped = [], 0
    for path in files:
        try:
            with Image.open(path) as im:
                images.append(im.convert("RGB"))
        except Exception:  # any decoding failure: skip the file
            skipped += 1
    print(f"{len(images)} images read, {skipped} skipped", flush=True)
    return images


def random_crop(image: Image.Image, crop: int, min_scale: float, max_scale: float, rng) -> np.ndarray:
    """nst_tf.data.random_crop: short side to crop * U(min, max), random crop, random flip; float32 [0, 1]."""
    w, h = image.size
    scale = rng.uniform(min_scale, max_scale) * crop / min(w, h)
    size = (max(round(w * scale), crop), max(round(h * scale), crop))
    y = int(rng.integers(0, size[1] - crop + 1))
    x = int(rng.integers(0, size[0] - crop + 1))
    out = image.resize(size, Image.BILINEAR).crop((x, y, x + crop, y + crop))
    if rng.random() < 0.5:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(out, np.float32) / 255.0


class Batches:
    """Prefetched (content, style) batches of random crops, made by a thread pool; epochs shuffled."""

    def __init__(self, content: list[Image.Image], style: list[Image.Image], batch: int, crop: int, seed: int,
                 workers: int = 8, depth: int = 16, put=lambda a: a, style_crop: int = 0):
        self.sources = [(content, 1.0, 1.6, crop), (style, 1.0, 1.3, style_crop or crop)]
        self.batch, self.put = batch, put
        self.rng = np.random.default_rng(seed)
        self.orders = [[], []]
        self.pool = concurrent.futures.ThreadPoolExecutor(workers)
        self.queue: queue.Queue = queue.Queue(depth)
        threading.Thread(target=self._fill, daemon=True).start()

    def _next_index(self, which: int) -> int:
        if not self.orders[which]:
            self.orders[which] = list(self.rng.permutation(len(self.sources[which][0])))
        return self.orders[which].pop()

    def _fill(self) -> None:
        while True:
            jobs = []
            for which, (images, lo, hi, crop) in enumerate(self.sources):
                seeds = self.rng.integers(0, 2**31, self.batch)
                picks = [self._next_index(which) for _ in range(self.batch)]
                jobs.append([self.pool.submit(random_crop, images[i], crop, lo, hi, np.random.default_rng(s))
                             for i, s in zip(picks, seeds)])
            self.queue.put(tuple(self.put(np.stack([j.result() for j in js])) for js in jobs))

    def __next__(self):
        return self.queue.get()


def weighted_images(spec: str) -> list[Image.Image]:
    """The images of `spec` ("DIR[:N],DIR[:N]..."), each folder's repeated N times (default 1)."""
    images = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        folder, sep, repeat = part.rpartition(":")  # as nst_tf.data.scan_sources reads it
        if not sep or not repeat.isdigit():
            folder, repeat = part, "1"
        images += load_images(list_images(folder)) * int(repeat)
    return images


def sample_strength(rng: np.random.Generator, batch: int, strength_max: float, strength_zero: float) -> np.ndarray:
    """[batch, 1] float32 strengths: uniform in [0, strength_max), 0 for a `strength_zero` share of them; 1 when
    strength_max is 0 (a run without the strength control)."""
    if not strength_max:
        return np.ones((batch, 1), np.float32)
    drawn = rng.uniform(0.0, strength_max, (batch, 1))
    return np.where(rng.random((batch, 1)) < strength_zero, 0.0, drawn).astype(np.float32)


def random_directions(rng: np.random.Generator, count: int = PALETTE_PROJECTIONS) -> np.ndarray:
    """[3, count] float32 random unit directions of RGB (the palette term's)."""
    gaussian = rng.normal(size=(3, count))
    return (gaussian / np.linalg.norm(gaussian, axis=0, keepdims=True)).astype(np.float32)
