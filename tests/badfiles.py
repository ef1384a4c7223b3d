"""A corpus of awkward and broken image files, made on the fly for robustness tests."""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image


def _photo(size=(64, 48)) -> Image.Image:
    """A small RGB image with structure (gradients), so decoding errors are visible."""
    w, h = size
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None, None]
    arr = np.concatenate([np.broadcast_to(x, (h, w, 1)), np.broadcast_to(y, (h, w, 1)),
                          np.broadcast_to((x + y) / 2, (h, w, 1))], axis=-1)
    return Image.fromarray(arr.astype(np.uint8))


def make_corpus(folder: str) -> dict[str, tuple[str, str]]:
    """Write the corpus; returns {case: (path, 'ok' | 'error')}."""
    os.makedirs(folder, exist_ok=True)
    cases: dict[str, tuple[str, str]] = {}

    def put(name: str, data: bytes, expect: str) -> None:
        path = os.path.join(folder, name)
        with open(path, "wb") as f:
            f.write(data)
        cases[os.path.splitext(name)[0]] = (path, expect)

    def encode(img: Image.Image, fmt: str, **kw) -> bytes:
        buf = io.BytesIO()
        img.save(buf, format=fmt, **kw)
        return buf.getvalue()

    good_jpeg = encode(_photo(), "JPEG", quality=90)
    good_png = encode(_photo(), "PNG")
    put("zero_bytes.jpg", b"", "error")
    put("text_renamed.jpg", b"this is not an image\n" * 10, "error")
    put("truncated_jpeg.jpg", good_jpeg[: len(good_jpeg) // 2], "error")
    put("truncated_png.png", good_png[: len(good_png) // 2], "error")
    put("one_by_one.png", encode(Image.new("RGB", (1, 1), (200, 30, 30)), "PNG"), "ok")
    put("one_by_10000.png", encode(Image.new("RGB", (1, 10000), (30, 200, 30)), "PNG"), "error")
    sixteen = Image.fromarray((np.arange(64 * 48).reshape(48, 64) * 21).astype(np.uint16))
    put("sixteen_bit.png", encode(sixteen, "PNG"), "ok")
    put("cmyk.jpg", encode(_photo().convert("CMYK"), "JPEG"), "ok")
    palette = _photo().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    put("palette_transparent.png", encode(palette, "PNG", transparency=0), "ok")
    put("grayscale.jpg", encode(_photo().convert("L"), "JPEG"), "ok")
    put("rgba.png", encode(_photo().convert("RGBA"), "PNG"), "ok")
    for orientation in (6, 8):
        exif = Image.Exif()
        exif[0x0112] = orientation
        put(f"exif_orientation_{orientation}.jpg", encode(_photo((64, 32)), "JPEG", exif=exif.tobytes()), "ok")
    bomb = Image.new("1", (20000, 20000))  # 400 Mpx, a few kB as PNG
    put("decompression_bomb.png", encode(bomb, "PNG"), "error")
    return cases
