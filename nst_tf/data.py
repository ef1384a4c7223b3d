"""tf.data input pipelines: image folders and lists -> shuffled random crops, bad files skipped and counted."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import tensorflow as tf
from PIL import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


@dataclass(frozen=True)
class FolderScan:
    """The readable images of a folder and the files that were skipped."""

    files: list[str]
    skipped: list[str]


def scan_folder(folder: str, check: bool = True) -> FolderScan:
    """List image files under `folder` (recursively); with `check`, skip the ones Pillow cannot read."""
    if not os.path.isdir(folder):
        raise ValueError(f"{folder}: not a folder")
    paths = [os.path.join(root, name) for root, _, names in sorted(os.walk(folder)) for name in sorted(names)
             if name.lower().endswith(IMAGE_EXTENSIONS)]
    return _scan(paths, folder, check)


def read_image_list(path: str) -> list[str]:
    """The image paths of a text list (one per line, '#' comments; relative to the list's folder)."""
    base = os.path.dirname(os.path.abspath(path))
    with open(path, encoding="utf-8") as f:
        lines = [line.split("#", 1)[0].strip() for line in f]
    paths = [os.path.normpath(os.path.join(base, line)) for line in lines if line]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise ValueError(f"{path}: {len(missing)} listed image(s) not found, e.g. {missing[0]}")
    if not paths:
        raise ValueError(f"{path}: lists no images")
    return paths


def _scan(paths: list[str], source: str, check: bool) -> FolderScan:
    """`paths` of `source`; with `check`, the ones Pillow cannot read skipped (with a warning) and counted."""
    files, skipped = [], []
    for path in paths:
        if check:
            try:
                with Image.open(path) as img:
                    img.verify()
            except Exception:  # any decoding failure means: skip this file
                skipped.append(path)
                continue
        files.append(path)
    if not files:
        raise ValueError(f"{source}: no readable images (found {len(skipped)} unreadable)")
    if skipped:
        warnings.warn(f"{source}: skipped {len(skipped)} unreadable image(s), e.g. {skipped[0]}", stacklevel=3)
    return FolderScan(files, skipped)


def scan_sources(spec: str, check: bool = True) -> FolderScan:
    """The images of `spec`: comma-separated folders, .txt image lists or image files, each optionally SOURCE:N.

    A source repeated N times is sampled N times as often, e.g. "train_style,extra_styles.txt:80"; a single
    image file (e.g. one painting, for a single-style specialist) is a source of one image.
    """
    files, skipped = [], []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        source, sep, repeat = part.rpartition(":")
        if not sep or not repeat.isdigit():
            source, repeat = part, "1"
        if int(repeat) < 1:
            raise ValueError(f"{part}: the repeat count must be at least 1")
        if source.lower().endswith(".txt"):
            if not os.path.isfile(source):
                raise ValueError(f"{source}: no such image list")
            scan = _scan(read_image_list(source), source, check)
        elif source.lower().endswith(IMAGE_EXTENSIONS):
            if not os.path.isfile(source):
                raise ValueError(f"{source}: no such image file")
            scan = _scan([source], source, check)
        else:
            scan = scan_folder(source, check)
        files += scan.files * int(repeat)
        skipped += scan.skipped
    if not files:
        raise ValueError(f"{spec!r}: names no image sources")
    return FolderScan(files, skipped)


def decode(path: tf.Tensor) -> tf.Tensor:
    """Read and decode an image file to float32 RGB in [0, 1]."""
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    return tf.image.convert_image_dtype(image, tf.float32)


def random_crop(image: tf.Tensor, crop: int, min_scale: float, max_scale: float) -> tf.Tensor:
    """Resize so the short side is crop * U(min_scale, max_scale) (upscaling small images), crop, flip."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.random.uniform([], min_scale, max_scale) * crop / tf.reduce_min(shape)
    size = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), crop)
    image = tf.image.resize(image, size, method="bilinear", antialias=True)  # antialias: area-like when shrinking
    image = tf.image.random_crop(image, [crop, crop, 3])
    return tf.clip_by_value(tf.image.random_flip_left_right(image), 0.0, 1.0)


def crop_dataset(files: list[str], crop: int, min_scale: float = 1.0, max_scale: float = 1.5,
                 seed: int | None = None) -> tf.data.Dataset:
    """An infinite, shuffled dataset of random crops from `files` (decode errors dropped)."""
    ds = tf.data.Dataset.from_tensor_slices(files)
    ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.ignore_errors()
    # stateful random ops in a parallel map draw in no fixed order: with a seed the crops are drawn one at a time, so
    # the same seed gives the same batches (nst-train --seed)
    parallel = None if seed is not None else tf.data.AUTOTUNE
    return ds.map(lambda im: random_crop(im, crop, min_scale, max_scale), num_parallel_calls=parallel)


def training_dataset(content_files: list[str], style_files: list[str], batch_size: int, crop: int,
                     style_crop: int | None = None, seed: int | None = None) -> tf.data.Dataset:
    """Batches of (content crops, style crops), prefetched."""
    content = crop_dataset(content_files, crop, 1.0, 1.6, seed)
    style = crop_dataset(style_files, style_crop or crop, 1.0, 1.3, None if seed is None else seed + 1)
    ds = tf.data.Dataset.zip((content.batch(batch_size, drop_remainder=True),
                              style.batch(batch_size, drop_remainder=True)))
    return ds.prefetch(tf.data.AUTOTUNE)
