"""Gatys optimisation: a weighted loss on a tf.Variable image, minimised by Adam or L-BFGS.

The objective holds the fixed targets (content features, style Gram matrices) computed once.
Each optimiser step is one compiled `tf.function` (forward, gradient, update); Python only
loops over steps and reports progress.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from nst_tf import color, losses
from nst_tf.features import FeatureExtractor
from nst_tf.scales import feather, tile_starts
from nst_tf.sliced import SlicedTarget, sliced_targets, transfer_palette

INITS = ("content", "noise", "style", "palette", "fast")
OPTIMIZERS = ("adam", "lbfgs")
STYLE_LOSSES = ("gram", "sliced_wasserstein")


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms and of each content/style layer (None: equal)."""

    content: float = 1.0
    style: float = 10.0
    tv: float = 1.0
    content_layers: tuple[float, ...] | None = None
    style_layers: tuple[float, ...] | None = None


def _grams(extractor: FeatureExtractor, style: np.ndarray, tile: int = 0, margin: int = 64) -> list[tf.Tensor]:
    """Per-layer Gram matrices of one image; above `tile` px it is analysed in overlapping windows.

    Gram matrices are sums over positions, so windows add up: each window contributes only its core
    (its border `margin`, where zero padding distorts the features, is covered by the neighbours).
    """
    height, width = style.shape[:2]
    if not tile or max(height, width) <= tile:
        _, feats = extractor(tf.constant(style[None], tf.float32))
        return [losses.gram_matrix(f) for f in feats]
    margin = min(margin, tile // 4)
    core = tile - 2 * margin
    sums, counts = None, None
    for y0 in range(0, height, core):
        for x0 in range(0, width, core):
            y1, x1 = min(y0 + core, height), min(x0 + core, width)
            wy0, wx0 = max(0, y0 - margin), max(0, x0 - margin)
            wy1, wx1 = min(height, y1 + margin), min(width, x1 + margin)
            _, feats = extractor(tf.constant(style[None, wy0:wy1, wx0:wx1], tf.float32))
            these, n = [], []
            for f in feats:
                stride = (wy1 - wy0) / f.shape[1]
                ty0, ty1 = round((y0 - wy0) / stride), round((y1 - wy0) / stride)
                tx0, tx1 = round((x0 - wx0) / stride), round((x1 - wx0) / stride)
                part = tf.cast(f[:, ty0:max(ty1, ty0 + 1), tx0:max(tx1, tx0 + 1)], tf.float32)
                these.append(tf.einsum("bhwc,bhwd->bcd", part, part))
                n.append(float(part.shape[1] * part.shape[2]))
            sums = these if sums is None else [a + b for a, b in zip(sums, these)]
            counts = n if counts is None else [a + b for a, b in zip(counts, n)]
    return [g / c for g, c in zip(sums, counts)]


def style_targets(extractor: FeatureExtractor, styles: Sequence[np.ndarray], blend: Sequence[float] | None = None,
                  per_region: bool = False, tile: int = 0) -> list[list[tf.Tensor]]:
    """Gram targets [region][layer]: one blended set, or (per_region) one set per style image."""
    if not styles:
        raise ValueError("at least one style image is needed")
    grams = [_grams(extractor, style, tile) for style in styles]
    if per_region:
        return grams
    weights = [1.0] * len(styles) if blend is None else [float(b) for b in blend]
    if len(weights) != len(styles) or any(b < 0 for b in weights) or sum(weights) <= 0:
        raise ValueError(f"style blend {weights} must give one non-negative weight per style, sum > 0")
    total = float(sum(weights))
    return [[tf.add_n([g[i] * (w / total) for g, w in zip(grams, weights)]) for i in range(len(grams[0]))]]


class Objective:
    """Total Gatys loss of an image against content features and style Grams (optionally per mask region).

    Content targets and masks live in variables, so one compiled step serves many tiles of equal size.
    Style targets are Gram matrices (`style_targets`) or `SlicedTarget`s (`sliced_targets`); with the latter,
    `points` > 0 compares a random subset of that many positions per layer and step (0: all positions).
    """

    def __init__(self, extractor: FeatureExtractor, content: np.ndarray, targets: list[list[tf.Tensor]],
                 weights: LossWeights = LossWeights(), masks: np.ndarray | None = None, points: int = 0):
        self.sliced = isinstance(targets[0][0], SlicedTarget) if targets and targets[0] else False
        if self.sliced and masks is not None:
            raise ValueError("masks need the Gram style loss (style_loss=gram)")
        self.points = int(points)
        if masks is not None and masks.shape[-1] != len(targets):
            raise ValueError(f"{masks.shape[-1]} mask regions but {len(targets)} style target sets")
        if masks is None and len(targets) != 1:
            raise ValueError("several style target sets need a mask")
        self.extractor, self.weights, self.targets = extractor, weights, targets
        self.content_layer_weights = losses.layer_weights(
            weights.content_layers, len(extractor.content_layers), "content layer weights")
        self.style_layer_weights = losses.layer_weights(
            weights.style_layers, len(extractor.style_layers), "style layer weights")
        content_feats, style_feats = extractor(tf.constant(content[None], tf.float32))
        self.content_targets = [tf.Variable(f, trainable=False) for f in content_feats]
        self.masks = None
        if masks is not None:
            self.masks = [tf.Variable(self._resize_masks(masks, f.shape[1:3]), trainable=False) for f in style_feats]

    @staticmethod
    def _resize_masks(masks: np.ndarray, size) -> tf.Tensor:
        return tf.image.resize(tf.constant(masks[None], tf.float32), size, method="area")

    def set_content(self, content: np.ndarray, masks: np.ndarray | None = None) -> None:
        """Point the objective at another content image (and masks) of the same size, e.g. the next tile."""
        content_feats, _ = self.extractor(tf.constant(content[None], tf.float32))
        for var, f in zip(self.content_targets, content_feats):
            var.assign(f)
        if self.masks is not None and masks is not None:
            for var in self.masks:
                var.assign(self._resize_masks(masks, var.shape[1:3]))

    def _sliced_layer_loss(self, index: int, features: tf.Tensor) -> tf.Tensor:
        target: SlicedTarget = self.targets[0][index]
        channels = features.shape[-1]
        points = tf.reshape(tf.cast(features, tf.float32), [features.shape[0], -1, channels])
        if self.points and points.shape[1] > self.points:
            chosen = tf.random.shuffle(tf.range(points.shape[1]))[:self.points]
            points = tf.gather(points, chosen, axis=1)
        directions = target.directions
        if directions is None:
            directions = losses.orthonormal_projections(channels)
        return losses.sliced_wasserstein_loss(points, target.sorted_target(directions, points.shape[1]), directions)

    def _style_layer_loss(self, index: int, features: tf.Tensor) -> tf.Tensor:
        if self.sliced:
            return self._sliced_layer_loss(index, features)
        if self.masks is None:
            return losses.style_loss(features, self.targets[0][index])
        masks = self.masks[index]
        area = tf.reduce_mean(masks, axis=[1, 2]) + 1e-8  # [1, R]
        area = area / tf.reduce_sum(area, axis=-1, keepdims=True)
        per_region = [losses.relative_squared_error(losses.masked_gram_matrix(features, masks[..., r:r + 1]),
                                                    self.targets[r][index]) for r in range(len(self.targets))]
        return tf.add_n([area[:, r] * loss for r, loss in enumerate(per_region)])

    def terms(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        """Weighted loss terms and their total (scalars) for a [1, H, W, 3] image."""
        content_feats, style_feats = self.extractor(image)
        w = self.weights
        out = {}
        if content_feats:
            per_layer = [losses.content_loss(f, t) for f, t in zip(content_feats, self.content_targets)]
            out["content"] = w.content * tf.reduce_mean(losses.weighted_sum(per_layer, self.content_layer_weights))
        if style_feats:
            per_layer = [self._style_layer_loss(i, f) for i, f in enumerate(style_feats)]
            out["style"] = w.style * tf.reduce_mean(losses.weighted_sum(per_layer, self.style_layer_weights))
        out["tv"] = w.tv * tf.reduce_mean(losses.total_variation_loss(image))
        out["total"] = tf.add_n(list(out.values()))
        return out


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


class Adam:
    """Adam on the image pixels, projected to [0, 1] after each step; one compiled step.

    With `average` > 0 it also keeps an exponential moving average of the iterates (bias-corrected),
    which `result()` returns: averaging removes the last steps' high-frequency jitter.
    """

    def __init__(self, objective: Objective, image: tf.Variable, learning_rate: float = 0.02,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8, average: float = 0.0,
                 jit_compile: bool = False):
        self.objective, self.image = objective, image
        self.lr, self.b1, self.b2, self.eps, self.average = learning_rate, beta_1, beta_2, epsilon, average
        self.m = tf.Variable(tf.zeros_like(image), trainable=False)
        self.v = tf.Variable(tf.zeros_like(image), trainable=False)
        self.t = tf.Variable(0.0, trainable=False)
        self.ema = tf.Variable(tf.zeros_like(image), trainable=False)
        self.ema_t = tf.Variable(0.0, trainable=False)
        self.step = tf.function(self._step, jit_compile=jit_compile)

    def _step(self) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            terms = self.objective.terms(self.image)
        grad = tape.gradient(terms["total"], self.image)
        self.t.assign_add(1.0)
        self.m.assign(self.b1 * self.m + (1.0 - self.b1) * grad)
        self.v.assign(self.b2 * self.v + (1.0 - self.b2) * tf.square(grad))
        m_hat = self.m / (1.0 - tf.pow(self.b1, self.t))
        v_hat = self.v / (1.0 - tf.pow(self.b2, self.t))
        self.image.assign(tf.clip_by_value(self.image - self.lr * m_hat / (tf.sqrt(v_hat) + self.eps), 0.0, 1.0))
        self.ema_t.assign_add(1.0)
        self.ema.assign(self.average * self.ema + (1.0 - self.average) * self.image)
        return terms

    def result(self) -> tf.Tensor:
        """The current image, or the bias-corrected average of the iterates when averaging."""
        if self.average <= 0.0 or float(self.ema_t) == 0.0:
            return tf.identity(self.image)
        return self.ema / (1.0 - tf.pow(self.average, self.ema_t))

    def reset(self, image: np.ndarray | tf.Tensor) -> None:
        """Start afresh from `image` (same shape): zero moments and average."""
        self.image.assign(image)
        for var in (self.m, self.v, self.ema):
            var.assign(tf.zeros_like(var))
        self.t.assign(0.0)
        self.ema_t.assign(0.0)

    def warm_start(self, previous: Adam) -> None:
        """Carry Adam's moments over from a coarser scale, resized and rescaled to this scale.

        The losses are averages over positions, so a pixel's gradient scales with 1 / pixel count:
        the first moment is rescaled by the ratio of pixel counts and the second by its square,
        which keeps Adam's step size (m / sqrt(v)) where the coarse scale left it.
        """
        size = self.image.shape[1:3]
        ratio = float(previous.image.shape[1] * previous.image.shape[2]) / float(size[0] * size[1])
        self.m.assign(ratio * tf.image.resize(previous.m, size, method="bilinear"))
        self.v.assign(ratio ** 2 * tf.maximum(tf.image.resize(previous.v, size, method="bilinear"), 0.0))
        self.t.assign(previous.t)


class LBFGS:
    """Limited-memory BFGS with an Armijo backtracking line search, projected to [0, 1].

    The two-loop recursion runs over a fixed ring buffer of `history` (s, y) pairs; one
    compiled call performs one iteration: direction, line search, curvature update.
    """

    def __init__(self, objective: Objective, image: tf.Variable, history: int = 10,
                 first_step: float = 0.05, max_backtracks: int = 8, jit_compile: bool = False):
        self.objective, self.image, self.history = objective, image, history
        n = int(np.prod(image.shape))
        self.s = tf.Variable(tf.zeros([history, n]), trainable=False)
        self.y = tf.Variable(tf.zeros([history, n]), trainable=False)
        self.rho = tf.Variable(tf.zeros([history]), trainable=False)
        self.ptr = tf.Variable(0, trainable=False)
        self.pairs = tf.Variable(0, trainable=False)
        self.evaluations = tf.Variable(0, trainable=False)
        self.first_step, self.max_backtracks = first_step, max_backtracks
        self.step = tf.function(self._step, jit_compile=jit_compile)

    def _value_and_grad(self, flat: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        self.evaluations.assign_add(1)
        image = tf.reshape(flat, self.image.shape)
        with tf.GradientTape() as tape:
            tape.watch(image)
            terms = self.objective.terms(image)
        return terms, tf.reshape(tape.gradient(terms["total"], image), [-1])

    def _direction(self, grad: tf.Tensor) -> tf.Tensor:
        q = grad
        alphas = []
        for j in range(self.history):  # newest to oldest; empty slots have rho = 0
            i = (self.ptr - 1 - j) % self.history
            alpha = self.rho[i] * tf.reduce_sum(self.s[i] * q)
            q = q - alpha * self.y[i]
            alphas.append((i, alpha))
        newest = (self.ptr - 1) % self.history
        yy = tf.reduce_sum(self.y[newest] * self.y[newest])
        gamma = tf.where(self.pairs > 0, 1.0 / (self.rho[newest] * yy + 1e-30),
                         self.first_step / (tf.reduce_max(tf.abs(grad)) + 1e-30))
        r = gamma * q
        for i, alpha in reversed(alphas):  # oldest to newest
            beta = self.rho[i] * tf.reduce_sum(self.y[i] * r)
            r = r + self.s[i] * (alpha - beta)
        return -r

    def _step(self) -> dict[str, tf.Tensor]:
        x = tf.reshape(self.image, [-1])
        terms, grad = self._value_and_grad(x)
        f = terms["total"]
        direction = self._direction(grad)
        # Not a descent direction (should not happen): fall back to steepest descent.
        descent = tf.reduce_sum(direction * grad) < 0.0
        direction = tf.where(descent, direction, -grad * self.first_step / (tf.reduce_max(tf.abs(grad)) + 1e-30))

        def candidate(t):
            x_new = tf.clip_by_value(x + t * direction, 0.0, 1.0)
            new_terms, g_new = self._value_and_grad(x_new)
            return x_new, new_terms["total"], g_new

        t0 = tf.constant(1.0)
        x_new, f_new, g_new = candidate(t0)

        def not_accepted(t, x_new, f_new, g_new, k):
            armijo = f_new <= f + 1e-4 * tf.reduce_sum(grad * (x_new - x))
            return tf.logical_and(tf.logical_not(armijo), k < self.max_backtracks)

        def backtrack(t, x_new, f_new, g_new, k):
            t = t * 0.5
            x_new, f_new, g_new = candidate(t)
            return t, x_new, f_new, g_new, k + 1

        _, x_new, f_new, g_new, _ = tf.while_loop(
            not_accepted, backtrack, (t0, x_new, f_new, g_new, tf.constant(0)))
        accepted = f_new < f
        s, y = x_new - x, g_new - grad
        sy = tf.reduce_sum(s * y)
        store = tf.logical_and(accepted, sy > 1e-10)
        if_store = lambda new, old: tf.where(store, new, old)  # noqa: E731
        self.s.assign(if_store(tf.tensor_scatter_nd_update(self.s, [[self.ptr]], [s]), self.s))
        self.y.assign(if_store(tf.tensor_scatter_nd_update(self.y, [[self.ptr]], [y]), self.y))
        self.rho.assign(if_store(tf.tensor_scatter_nd_update(self.rho, [[self.ptr]], [1.0 / sy]), self.rho))
        self.pairs.assign(if_store(tf.minimum(self.pairs + 1, self.history), self.pairs))
        self.ptr.assign(if_store((self.ptr + 1) % self.history, self.ptr))
        # No progress along the quasi-Newton direction: forget the history and retry later.
        reset = tf.logical_not(accepted)
        self.rho.assign(tf.where(reset, tf.zeros_like(self.rho), self.rho))
        self.pairs.assign(tf.where(reset, 0, self.pairs))
        self.image.assign(tf.reshape(tf.where(accepted, x_new, x), self.image.shape))
        return terms

    def result(self) -> tf.Tensor:
        """The current image."""
        return tf.identity(self.image)


def make_optimizer(name: str, objective: Objective, image: tf.Variable, learning_rate: float = 0.02,
                   average: float = 0.0, jit_compile: bool = False) -> Adam | LBFGS:
    """An optimiser by name: 'adam' or 'lbfgs'."""
    if name == "adam":
        return Adam(objective, image, learning_rate, average=average, jit_compile=jit_compile)
    if name == "lbfgs":
        return LBFGS(objective, image, jit_compile=jit_compile)
    raise ValueError(f"unknown optimizer '{name}' (use {', '.join(OPTIMIZERS)})")


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
