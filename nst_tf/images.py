"""Reading and writing images safely: every failure is one line naming the file."""

from __future__ import annotations

import os
import tempfile
import warnings

import numpy as np
from PIL import Image, ImageOps

# Refuse images that would take more than ~1 GB as float32 RGB; Pillow's own
# bomb check (DecompressionBombError) fires at 2x this limit and we turn its
# warning (between 1x and 2x) into an error too.
MAX_PIXELS = 89_478_485
MIN_SIDE = 16
WRITABLE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP"}


class ImageError(ValueError):
    """A bad input or output image; its message is one line naming the file."""


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """Convert any Pillow mode (L, LA, P, RGBA, CMYK, I;16, I, F) to float32 RGB in [0, 1]."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr = np.clip(arr / peak, 0.0, 1.0)
        return np.repeat(arr[..., None], 3, axis=-1)
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    img = img.convert("RGB")
    return np.asarray(img, dtype=np.float32) / 255.0


def load_image(path: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Load an image file as a float32 RGB array in [0, 1], EXIF rotation applied."""
    if not os.path.exists(path):
        raise ImageError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ImageError(f"{path}: is a directory, not an image")
    if os.path.getsize(path) == 0:
        raise ImageError(f"{path}: empty file (0 bytes)")
    previous = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = max_pixels
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise ImageError(
                        f"{path}: image too large to decode safely ({width}x{height} px, "
                        f"limit {max_pixels} px)"
                    )
                if width == 0 or height == 0:
                    raise ImageError(f"{path}: zero-size image ({width}x{height} px)")
                img.load()
                img = ImageOps.exif_transpose(img)
                return _to_rgb_array(img)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{path}: image too large to decode safely (decompression bomb)") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file (unrecognised format)") from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied") from None
    except (OSError, SyntaxError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageError(f"{path}: cannot decode image ({reason})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def resize_long_side(image: np.ndarray, size: int, name: str = "image") -> np.ndarray:
    """Resize an HxWx3 array so that its long side is `size` pixels (aspect kept)."""
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    height, width = image.shape[:2]
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    if min(new_h, new_w) < MIN_SIDE:
        raise ImageError(
            f"{name}: too narrow ({width}x{height} px becomes {new_w}x{new_h} at size {size}; "
            f"each side must be at least {MIN_SIDE} px)"
        )
    return resize(image, new_h, new_w)


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an HxWx3 float array with a high-quality (Lanczos/area) filter."""
    if image.shape[:2] == (height, width):
        return image.astype(np.float32, copy=True)
    img = Image.fromarray(to_uint8(image))
    img = img.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(img, dtype=np.float32) / 255.0


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Convert a float image in [0, 1] to uint8, clipping out-of-range values."""
    return (np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def check_writable(path: str, overwrite: bool = False) -> None:
    """Fail early, before any work, if `path` cannot be written as an image."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in WRITABLE_FORMATS:
        raise ImageError(
            f"{path}: unsupported output format '{ext or '(none)'}' "
            f"(use one of {', '.join(sorted(WRITABLE_FORMATS))})"
        )
    if os.path.isdir(path):
        raise ImageError(f"{path}: is a directory")
    if os.path.exists(path) and not overwrite:
        raise ImageError(f"{path}: already exists (pass --overwrite to replace it)")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ImageError(f"{path}: output directory {directory} does not exist")
    try:  # os.access is not enough (root, read-only mounts, /proc): really create a file
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError:
        raise ImageError(f"{path}: output directory {directory} is not writable") from None


def save_image(image: np.ndarray, path: str, quality: int = 95) -> None:
    """Write an image atomically: a temporary file in the same folder, then a rename."""
    ext = os.path.splitext(path)[1].lower()
    fmt = WRITABLE_FORMATS.get(ext)
    if fmt is None:
        raise ImageError(f"{path}: unsupported output format '{ext}'")
    directory = os.path.dirname(os.path.abspath(path))
    img = Image.fromarray(to_uint8(image))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=ext, dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            kwargs = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
            img.save(handle, format=fmt, **kwargs)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise ImageError(f"{path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def contact_sheet(panels: list[np.ndarray], height: int = 256, gap: int = 4) -> np.ndarray:
    """Side-by-side panels (e.g. content | style | result) scaled to one height, white gaps."""
    scaled = [resize(p, height, max(1, round(p.shape[1] * height / p.shape[0]))) for p in panels]
    spacer = np.ones((height, gap, 3), np.float32)
    parts = [scaled[0]]
    for panel in scaled[1:]:
        parts += [spacer, panel]
    return np.concatenate(parts, axis=1)


def stack_rows(rows: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Contact-sheet rows one above the other, padded white to the widest, white gaps."""
    width = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, gap), (0, width - r.shape[1]), (0, 0)), constant_values=1.0)
                           for r in rows], axis=0)
