"""The Python API: `nst_tf.stylize(photo, painting)` and the few calls around it (what `import nst_tf` exposes).

Images may be file paths, PIL images or numpy arrays (HxWx3, uint8 or float in [0, 1]); results are PIL images.
Every bad input raises `NSTError` (a ValueError) with a one-line message naming that input. TensorFlow is
imported on the first call that needs it, not by `import nst_tf`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from PIL import Image

from nst_tf import controls as controls_lib
from nst_tf import images

ImageInput = str | os.PathLike | Image.Image | np.ndarray
# progress(step, total, losses): total is None when unknown; returning False stops the optimiser early
Progress = Callable[[int, int | None, dict[str, float]], bool | None]
METHODS = ("optimize", "fast")
COLOR_MODES = ("none", "luminance", "histogram")
STRENGTH_MAX = 2.0
DEFAULT_SIZE = 512
STYLE_SIZE = 256  # the fast network's style analysis size (nst_tf.fast.STYLE_SIZE)

_lock = threading.Lock()
_networks: dict[str, object] = {}
_extractors: dict[tuple, object] = {}


class NSTError(ValueError):
    """A bad input to nst_tf's API (an image, a control, a network or weights); one line naming it."""


class _Stopped(Exception):
    """The progress callback asked the optimiser to stop."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    return f"a {type(value).__name__}"


def _from_pil(image: Image.Image, name: str) -> np.ndarray:
    width, height = image.size
    if width == 0 or height == 0:
        raise NSTError(f"{name}: zero-size image ({width}x{height} px)")
    if width * height > images.MAX_PIXELS:
        raise NSTError(f"{name}: image too large ({width}x{height} px, limit {images.MAX_PIXELS} px)")
    try:
        image.load()
        return images._to_rgb_array(image)
    except (OSError, ValueError) as exc:
        raise NSTError(f"{name}: cannot decode image ({_first_line(exc)})") from None


def _from_array(array: np.ndarray, name: str) -> np.ndarray:
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] != 3 or min(array.shape[:2]) == 0:
        raise NSTError(f"{name}: expected an HxWx3 array (uint8, or float in [0, 1]), got shape {array.shape}")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if not np.issubdtype(array.dtype, np.floating):
        raise NSTError(f"{name}: expected uint8 or float pixels, got dtype {array.dtype}")
    if not np.isfinite(array).all():
        raise NSTError(f"{name}: the array holds NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if low < -1e-3 or high > 1.0 + 1e-3:
        raise NSTError(f"{name}: float pixels must be in [0, 1], got [{low:g}, {high:g}] (uint8 arrays: 0..255)")
    return np.clip(array, 0.0, 1.0).astype(np.float32)


def to_array(image: ImageInput, name: str = "image") -> np.ndarray:
    """Any image input -> float32 RGB [H, W, 3] in [0, 1]; NSTError naming `name` (or the file) if it is bad."""
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        try:
            return images.load_image(path)
        except images.ImageError as exc:
            raise NSTError(_first_line(exc)) from None
    if isinstance(image, Image.Image):
        return _from_pil(image, name)
    if isinstance(image, np.ndarray):
        return _from_array(image, name)
    raise NSTError(f"{name}: expected a file path, a PIL image or a numpy array, got {_describe(image)}")


def to_pil(image: np.ndarray | Image.Image) -> Image.Image:
    """A float [H, W, 3] array in [0, 1] (or a PIL image) -> an RGB PIL image."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    return Image.fromarray(images.to_uint8(image))


def load_image(image: ImageInput, *, array: bool = False) -> Image.Image | np.ndarray:
    """Read an image as nst_tf reads its inputs (EXIF rotation applied, transparency on white, any mode to RGB).

    Args:
        image: a file path, a PIL image or a numpy array (HxWx3 uint8, or float in [0, 1]).
        array: return a float32 [H, W, 3] array in [0, 1] instead of a PIL image.

    Raises:
        NSTError: the file is missing, not an image, truncated or too large (the message names it).
    """
    pixels = to_array(image, "image")
    return pixels if array else to_pil(pixels)


def save_image(image: Image.Image | np.ndarray, path: str | os.PathLike, *, quality: int = 95) -> None:
    """Write an image atomically (a temporary file in the same folder, then a rename): .jpg, .png, .webp or .bmp.

    Args:
        image: a PIL image or an array (HxWx3 uint8, or float in [0, 1]).
        path: where to write it; an existing file is replaced whole, never half-written.
        quality: JPEG/WebP quality.
    """
    path = os.fspath(path)
    pixels = to_array(image, "image") if not isinstance(image, (str, os.PathLike)) else None
    if pixels is None:
        raise NSTError(f"{path}: save_image takes an image, not a path ({image})")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise NSTError(f"{path}: output directory {directory} does not exist")
    try:
        images.save_image(pixels, path, quality=quality)
    except images.ImageError as exc:
        raise NSTError(_first_line(exc)) from None


def load_network(name_or_path: str | None = None):
    """The feed-forward network for method="fast": 'arbitrary' (the default), 'mobile', or a network folder.

    Raises:
        NSTError: the folder is missing or does not hold a network (config.json + weights.npz).
    """
    from nst_tf import fast

    try:
        return fast.load_network(name_or_path)
    except (OSError, ValueError) as exc:
        raise NSTError(_first_line(exc)) from None


def _network(model: object):
    """A loaded network: the one given, or a cached one by name or folder."""
    if model is not None and not isinstance(model, (str, os.PathLike)):
        return model
    key = os.fspath(model) if model is not None else "arbitrary"
    with _lock:
        if key not in _networks:
            _networks[key] = load_network(None if model is None else key)
        return _networks[key]


def _extractor(values: Mapping[str, object]):
    """The loss network the controls name, cached (building it reads the weights)."""
    from nst_tf.weights import WeightsError

    key = tuple(values[k] for k in ("weights", "backbone", "content_layers", "style_layers", "preprocessing",
                                    "precision"))
    with _lock:
        if key not in _extractors:
            try:
                _extractors[key] = controls_lib.extractor(values)
            except (WeightsError, OSError, ValueError) as exc:
                message = _first_line(exc)
                raise NSTError(message if str(values["weights"]) in message else
                               f"weights={values['weights']}: {message}") from None
        return _extractors[key]


def _styles(style: ImageInput | Sequence[ImageInput]) -> list[tuple[str, np.ndarray]]:
    """(name, pixels) of one style input or a list of them."""
    items = list(style) if isinstance(style, (list, tuple)) else [style]
    if not items:
        raise NSTError("style: at least one style image is needed")
    named = [("style" if len(items) == 1 else f"style[{i}]", item) for i, item in enumerate(items)]
    return [(os.fspath(s) if isinstance(s, (str, os.PathLike)) else n, to_array(s, n)) for n, s in named]


def _blend(style_blend: Sequence[float] | None, n_styles: int) -> list[float] | None:
    if style_blend is None:
        return None
    try:
        weights = [float(w) for w in style_blend]
    except (TypeError, ValueError):
        raise NSTError(f"style_blend={style_blend!r}: expected one number per style") from None
    if len(weights) != n_styles:
        raise NSTError(f"style_blend has {len(weights)} weights for {n_styles} styles")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise NSTError(f"style_blend={weights}: weights must be non-negative, sum > 0")
    return weights


def _resized(pixels: np.ndarray, size: int, name: str) -> np.ndarray:
    try:
        return images.resize_long_side(pixels, size, name)
    except images.ImageError as exc:
        raise NSTError(_first_line(exc)) from None


def apply_colors(result: np.ndarray, content: np.ndarray, mode: str) -> np.ndarray:
    """Keep the photo's colours in a stylized image: 'luminance' (the result's lightness, the photo's colour),
    'histogram' (the result's colours moved to the photo's colour statistics) or 'none'."""
    from nst_tf import color

    if mode not in COLOR_MODES:
        raise NSTError(f"preserve_colors={mode!r}: choose from {', '.join(COLOR_MODES)}")
    if mode == "none":
        return result
    content = images.resize(content, *result.shape[:2])
    if mode == "luminance":
        return color.combine_luminance(result, content)
    return color.match_color(result, content)


def _check_strength(strength: float) -> float:
    try:
        value = float(strength)
    except (TypeError, ValueError):
        raise NSTError(f"strength={strength!r}: expected a number in [0, {STRENGTH_MAX:g}]") from None
    if not 0.0 <= value <= STRENGTH_MAX:
        raise NSTError(f"strength must be in [0, {STRENGTH_MAX:g}], got {value:g}")
    return value


def stylize(content: ImageInput, style: ImageInput | Sequence[ImageInput], *, method: str = "optimize",
            size: int | None = None, strength: float = 1.0, style_blend: Sequence[float] | None = None,
            preset: str | None = None, preserve_colors: str | None = None, progress: Progress | None = None,
            model: object = None, style_size: int = STYLE_SIZE, mask: str | None = None,
            **controls: object) -> Image.Image:
    """Repaint `content` in the style of `style`; returns the result as an RGB PIL image.

    Args:
        content: the photo: a file path, a PIL image or an array (HxWx3 uint8, or float in [0, 1]).
        style: the painting, or a list of them (blended; see `style_blend`).
        method: "optimize" (Gatys optimisation: slow, best) or "fast" (one pass of the feed-forward network).
        size: long side of the result in pixels (default 512, or the preset's).
        strength: 0..2. fast: 0 gives the photo back, 1 the painting's look, 2 more painterly. optimize: multiplies
            the style weight (0: the photo, 2: twice the style).
        style_blend: one non-negative weight per style image (default equal).
        preset: method="optimize": a bundled preset's settings by name (nst_tf.presets: preview, quality,
            large); keywords given here win.
        preserve_colors: "none" (default), "luminance" or "histogram": keep the photo's colours.
        progress: method="optimize": called as progress(step, total_steps, losses) after every step (losses: a
            dict of floats); return False to stop early and get the image so far. method="fast": called once.
        model: method="fast": "arbitrary" (default), "mobile", a network folder, or a network from load_network.
        style_size: method="fast": long side at which style images are analysed.
        mask: method="optimize": a mask image file with one region (grey level, dark first) per style image.
        **controls: method="optimize": nst-stylize's optimiser settings by their flag names (nst_tf.controls):
            steps (300, or one per scale), scales ("auto", [256, 362, 512]), min_scale, content_weight,
            style_weight, tv_weight, content_layers, style_layers, style_layer_weights, style_scale, optimizer
            ("adam" or "lbfgs"), learning_rate, average, init ("content", "noise", "style", or an image to start
            from), seed, tile, tile_overlap, precision, jit_compile, weights ("imagenet" (default, downloaded
            once by Keras), "lpips", "hed" or a .weights.h5 file), backbone, preprocessing.

    Raises:
        NSTError: a bad image (named by its path, or as content/style/init), control, network or weights.
    """
    if method not in METHODS:
        raise NSTError(f"method={method!r}: choose from {', '.join(METHODS)}")
    strength = _check_strength(strength)
    if style_size <= 0:
        raise NSTError(f"style_size must be positive, got {style_size}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        raise NSTError(f"size must be a positive integer, got {size!r}")
    if method == "fast":
        unused = [k for k, v in (("preset", preset), ("mask", mask)) if v] + sorted(controls)
        if unused:
            raise NSTError(f"{', '.join(unused)}: optimiser settings; method='fast' does not take them")
        return _stylize_fast(content, style, size or DEFAULT_SIZE, strength, style_blend, preserve_colors or "none",
                             progress, model, style_size)
    if model is not None:
        raise NSTError("model: the fast network; method='optimize' does not take it")
    given = dict(controls)
    if size is not None:
        given["size"] = size
    if preserve_colors is not None:
        given["preserve_colors"] = preserve_colors
    init = given.pop("init", None)
    try:
        values = controls_lib.resolve(given, preset)
    except controls_lib.ControlError as exc:
        raise NSTError(str(exc)) from None
    return _stylize_optimize(content, style, values, strength, style_blend, init, progress, mask)


def _stylize_fast(content, style, size, strength, style_blend, preserve_colors, progress, model, style_size):
    """method="fast": the feed-forward network at `size`, styles seen at `style_size`."""
    if preserve_colors not in COLOR_MODES:
        raise NSTError(f"preserve_colors={preserve_colors!r}: choose from {', '.join(COLOR_MODES)}")
    photo = _resized(to_array(content, "content"), size, _name(content, "content"))
    styles = _styles(style)
    blend = _blend(style_blend, len(styles))
    small = [_resized(pixels, style_size, name) for name, pixels in styles]
    net = _network(model)
    from nst_tf import fast

    try:
        result = fast.stylize(net, photo, small, strength=strength, blend=blend)
    except ValueError as exc:
        raise NSTError(_first_line(exc)) from None
    result = apply_colors(np.clip(result, 0.0, 1.0), photo, preserve_colors)
    if progress is not None:
        progress(1, 1, {})
    return to_pil(result)


def _name(image: object, default: str) -> str:
    return os.fspath(image) if isinstance(image, (str, os.PathLike)) else default


def total_steps(values: Mapping[str, object], height: int, width: int) -> int:
    """How many steps the optimiser takes for a content of this size (tiles counted one by one)."""
    from nst_tf.scales import tile_starts

    scales, steps = values["scales"], values["steps"]
    steps = list(steps) * len(scales) if len(steps) == 1 else list(steps)
    total = 0
    for size, n in zip(scales, steps):
        scale = size / max(height, width)
        h, w = max(1, round(height * scale)), max(1, round(width * scale))
        tile, overlap = values["tile"], values["tile_overlap"]
        tiles = 1
        if tile and max(h, w) > tile:
            tiles = len(tile_starts(h, min(tile, h), overlap)) * len(tile_starts(w, min(tile, w), overlap))
        total += n * tiles
    return total


def _stylize_optimize(content, style, values, strength, style_blend, init, progress, mask):
    """method="optimize": Gatys optimisation with the resolved controls."""
    photo = _resized(to_array(content, "content"), values["size"], _name(content, "content"))
    styles = _styles(style)
    blend = _blend(style_blend, len(styles))
    for name, pixels in styles:  # too thin at the first scale?
        _resized(pixels, max(16, round(values["scales"][0] * values["style_scale"])), name)
    from nst_tf import masks, optimize

    if init is None:
        init = values["init"]
    if isinstance(init, str) and init in optimize.INITS:
        pass
    elif isinstance(init, (str, os.PathLike, Image.Image, np.ndarray)):
        init = to_array(init, "init")
    else:
        raise NSTError(f"init: expected a name ({', '.join(optimize.INITS)}) or an image, got {_describe(init)}")
    regions = None
    if mask is not None:
        if blend is not None:
            raise NSTError("mask gives each style its own region; style_blend cannot be used with it")
        try:
            regions = masks.load_regions(os.fspath(mask), *photo.shape[:2], len(styles))
        except (images.ImageError, ValueError) as exc:
            raise NSTError(_first_line(exc)) from None
    values = dict(values, style_weight=values["style_weight"] * strength)
    options = controls_lib.options(values, init, blend)
    extractor = _extractor(values)
    total = total_steps(values, *photo.shape[:2])
    latest = {}

    def on_step(step, losses, image_fn):
        latest["image_fn"] = image_fn
        if progress is not None and progress(step, total, losses) is False:
            raise _Stopped

    try:
        result = optimize.stylize(extractor, photo, [pixels for _, pixels in styles], options, on_step, regions)
    except _Stopped:
        result = images.resize(np.clip(latest["image_fn"](), 0.0, 1.0), *photo.shape[:2])
        if values["preserve_colors"] == "luminance":
            result = apply_colors(result, photo, "luminance")
    except ValueError as exc:
        raise NSTError(_first_line(exc)) from None
    return to_pil(result)
