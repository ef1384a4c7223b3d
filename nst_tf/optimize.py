"""Gatys style transfer, coarse to fine: the scale ladder, starting images, tiles and colour controls.

Each scale resizes content and styles, builds the style targets and an Objective (nst_tf.objective) and runs
an optimiser (nst_tf.optimizers) from the upsampled result of the previous scale; large scales are optimised in
overlapping tiles blended with feathered seams.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from nst_tf import color
from nst_tf.features import FeatureExtractor
from nst_tf.objective import LossWeights, Objective, style_targets
from nst_tf.optimizers import Adam, make_optimizer
from nst_tf.scales import feather, tile_starts
from nst_tf.sliced import sliced_targets, transfer_palette

INITS = ("content", "noise", "style", "palette", "fast")
STYLE_LOSSES = ("gram", "sliced_wasserstein")


def initial_image(init: str | np.ndarray, content: np.ndarray, style: np.ndarray | None, seed: int) -> np.ndarray:
    """Starting image: content, uniform noise, the (first) style resized, the content with the style's palette,
    or a given array."""
    if isinstance(init, np.ndarray):
        if init.shape != content.shape:
            raise ValueError(f"initial image has shape {init.shape}, content has {content.shape}")
        return np.clip(init, 0.0, 1.0).astype(np.float32)
    if init == "content":
        return content.astype(np.float32, copy=True)
    if init == "noise":
        rng = np.random.default_rng(seed)
        return rng.uniform(0.0, 1.0, content.shape).astype(np.float32)
    if init == "style":
        if style is None:
            raise ValueError("init=style needs a style image")
        return tf.image.resize(style, content.shape[:2], method="area").numpy().astype(np.float32)
    if init == "palette":
        if style is None:
            raise ValueError("init=palette needs a style image")
        return transfer_palette(content, [style], seed=seed)
    if init == "fast":
        raise ValueError("init=fast needs the style images: use fast_image(content, styles)")
    raise ValueError(f"unknown init '{init}' (use {', '.join(INITS)})")


@dataclass(frozen=True)
class Options:
    """How to optimise: the scale ladder, steps per scale, optimiser, colour and tiling controls."""

    scales: tuple[int, ...] = (512,)
    steps: tuple[int, ...] = (300,)  # per scale; a single value applies to every scale
    weights: LossWeights = LossWeights()
    optimizer: str = "adam"
    learning_rate: float = 0.02
    average: float = 0.0  # EMA decay of Adam's iterates; 0 = off
    init: str | np.ndarray = "content"  # content, noise, style, or an image to resume from
    seed: int = 0
    style_blend: tuple[float, ...] | None = None
    style_scale: float = 1.0
    preserve_colors: str = "none"
    tile: int = 0  # optimise (and analyse styles) in tiles at scales whose long side exceeds this (0: never)
    tile_overlap: int = 64
    jit_compile: bool = False
    fast_model: str | None = None  # init="fast": the feed-forward network's folder (None: the bundled one)
    style_loss: str = "gram"  # gram or sliced_wasserstein
    projections: str = "fresh"  # sliced Wasserstein directions: fresh each step, or fixed per run
    points: int = 4096  # sliced Wasserstein: positions compared per layer and step (a random subset; 0: all)
    optimizers: tuple[str, ...] | None = None  # per scale (overrides `optimizer`), e.g. ("adam", "adam", "lbfgs")
    learning_rates: tuple[float, ...] | None = None  # per scale (overrides `learning_rate`)

    def per_scale(self, name: str) -> list:
        """`optimizers` or `learning_rates` for each scale (the single `optimizer`/`learning_rate` if unset)."""
        values = getattr(self, name + "s") or (getattr(self, name),)
        values = list(values) * len(self.scales) if len(values) == 1 else list(values)
        if len(values) != len(self.scales):
            raise ValueError(f"{len(values)} {name}s for {len(self.scales)} scales")
        return values

    def steps_per_scale(self) -> list[int]:
        """Steps for each scale."""
        steps = list(self.steps) * len(self.scales) if len(self.steps) == 1 else list(self.steps)
        if len(steps) != len(self.scales):
            raise ValueError(f"{len(self.steps)} step counts for {len(self.scales)} scales")
        if any(n <= 0 for n in steps):
            raise ValueError(f"steps must be positive, got {list(self.steps)}")
        return steps


StepCallback = Callable[[int, dict[str, float], Callable[[], np.ndarray]], None]


def _resize(image: np.ndarray, height: int, width: int, method: str = "bilinear") -> np.ndarray:
    return tf.image.resize(image, (height, width), method=method, antialias=method != "nearest").numpy()


def _long_side(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    if max(h, w) == size:
        return image
    scale = size / max(h, w)
    return _resize(image, max(1, round(h * scale)), max(1, round(w * scale)), "area" if scale < 1 else "bilinear")


class _Counter:
    def __init__(self, callback: StepCallback | None):
        self.callback, self.step = callback, 0

    def __call__(self, terms: dict[str, tf.Tensor], image_fn: Callable[[], np.ndarray]) -> None:
        self.step += 1
        if self.callback is not None:
            self.callback(self.step, {k: float(v) for k, v in terms.items()}, image_fn)


def _targets(extractor: FeatureExtractor, styles: list[np.ndarray], options: Options, per_region: bool) -> list:
    """Style targets of this scale for the chosen style loss (Gram matrices or sliced Wasserstein targets)."""
    if options.style_loss == "sliced_wasserstein":
        limit = options.points or (262144 if options.tile else 0)
        return sliced_targets(extractor, styles, options.style_blend, options.projections, options.seed, limit)
    return style_targets(extractor, styles, options.style_blend, per_region=per_region, tile=options.tile)


def fast_image(content: np.ndarray, styles: Sequence[np.ndarray], blend: Sequence[float] | None = None,
               model: str | None = None) -> np.ndarray:
    """The feed-forward network's result for `content` (its default strength), as a starting image."""
    from nst_tf import fast

    net = fast.load_network(model)
    small = [_long_side(s, fast.STYLE_SIZE) for s in styles]
    return np.clip(fast.stylize(net, content, small, blend=blend), 0.0, 1.0).astype(np.float32)


def _optimize_tiled(extractor: FeatureExtractor, content: np.ndarray, start: np.ndarray,
                    targets: list[list[tf.Tensor]], options: Options, steps: int, counter: _Counter,
                    masks: np.ndarray | None) -> np.ndarray:
    """Optimise overlapping tiles of equal size with global style targets; blend them with feathered seams."""
    height, width = content.shape[:2]
    th, tw = min(options.tile, height), min(options.tile, width)
    ys, xs = tile_starts(height, th, options.tile_overlap), tile_starts(width, tw, options.tile_overlap)
    cut = lambda a, y, x: None if a is None else a[y:y + th, x:x + tw]  # noqa: E731
    objective = Objective(extractor, cut(content, 0, 0), targets, options.weights, cut(masks, 0, 0), options.points)
    var = tf.Variable(start[None, :th, :tw], dtype=tf.float32)
    adam = Adam(objective, var, options.learning_rate, average=options.average, jit_compile=options.jit_compile)
    window = feather(th, tw, options.tile_overlap)
    total, weight = np.zeros_like(start), np.zeros(start.shape[:2] + (1,), np.float32)
    for y in ys:
        for x in xs:
            objective.set_content(cut(content, y, x), cut(masks, y, x))
            adam.reset(start[None, y:y + th, x:x + tw])
            for _ in range(steps):
                counter(adam.step(), lambda: adam.result().numpy()[0])
            total[y:y + th, x:x + tw] += window * adam.result().numpy()[0]
            weight[y:y + th, x:x + tw] += window
    return total / weight


def stylize(extractor: FeatureExtractor, content: np.ndarray, styles: Sequence[np.ndarray],
            options: Options = Options(), callback: StepCallback | None = None,
            masks: np.ndarray | None = None) -> np.ndarray:
    """Gatys style transfer, coarse to fine; returns the [H, W, 3] result at the last scale, in [0, 1].

    `content` and `styles` may be any size: each scale resizes them (styles to `style_scale` times the
    scale). `masks` ([H, W, R] regions at the content's size) assigns style r to region r.
    """
    steps = options.steps_per_scale()
    if not styles:
        raise ValueError("at least one style image is needed")
    if options.preserve_colors not in color.MODES:
        raise ValueError(f"unknown colour mode '{options.preserve_colors}' (use {', '.join(color.MODES)})")
    if options.style_scale <= 0:
        raise ValueError(f"style scale must be positive, got {options.style_scale}")
    if masks is not None and options.style_blend is not None:
        raise ValueError("a mask assigns one style per region; style blend weights cannot be used with it")
    if options.style_loss not in STYLE_LOSSES:
        raise ValueError(f"unknown style loss '{options.style_loss}' (use {', '.join(STYLE_LOSSES)})")
    if masks is not None and options.style_loss != "gram":
        raise ValueError("a mask needs the Gram style loss (style_loss=gram)")
    for name in ("optimizer", "learning_rate"):
        options.per_scale(name)  # the right number of values, checked before any work
    tf.random.set_seed(options.seed)
    work = content
    if options.preserve_colors == "histogram":
        styles = [color.match_color(s, content) for s in styles]
    elif options.preserve_colors == "luminance":
        work, styles = color.luminance(content), [color.match_luminance(s, content) for s in styles]
    counter = _Counter(callback)
    image, previous = None, None
    for size, n_steps, optimizer, learning_rate in zip(options.scales, steps, options.per_scale("optimizer"),
                                                      options.per_scale("learning_rate")):
        scaled = _long_side(work, size)
        h, w = scaled.shape[:2]
        style_size = max(16, round(size * options.style_scale))
        targets = _targets(extractor, [_long_side(s, style_size) for s in styles], options, masks is not None)
        scaled_masks = None if masks is None else _resize(masks, h, w, "nearest")
        if image is None and isinstance(options.init, np.ndarray):
            start = np.clip(_resize(options.init, h, w), 0.0, 1.0)
        elif image is None and options.init == "palette":
            start = transfer_palette(scaled, [_long_side(s, style_size) for s in styles], options.style_blend,
                                     seed=options.seed)
        elif image is None and options.init == "fast":
            start = fast_image(scaled, styles, options.style_blend, options.fast_model)
        elif image is None:
            start = initial_image(options.init, scaled, _long_side(styles[0], style_size), options.seed)
        else:
            start = np.clip(_resize(image, h, w), 0.0, 1.0)
        if options.tile and max(h, w) > options.tile:
            image, previous = _optimize_tiled(extractor, scaled, start, targets, options, n_steps, counter,
                                              scaled_masks), None
            continue
        objective = Objective(extractor, scaled, targets, options.weights, scaled_masks, options.points)
        var = tf.Variable(start[None], dtype=tf.float32)
        opt = make_optimizer(optimizer, objective, var, learning_rate, options.average, options.jit_compile)
        if isinstance(opt, Adam) and isinstance(previous, Adam):
            opt.warm_start(previous)
        for _ in range(n_steps):
            counter(opt.step(), lambda opt=opt: opt.result().numpy()[0])
        image, previous = opt.result().numpy()[0], opt
    if options.preserve_colors == "luminance":
        image = color.combine_luminance(image, _resize(content, *image.shape[:2]))
    return np.clip(image, 0.0, 1.0).astype(np.float32)
