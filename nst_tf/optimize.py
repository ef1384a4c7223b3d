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

from nst_tf import losses
from nst_tf.features import FeatureExtractor

INITS = ("content", "noise", "style")
OPTIMIZERS = ("adam", "lbfgs")


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms and of each content/style layer (None: equal)."""

    content: float = 1.0
    style: float = 10.0
    tv: float = 1.0
    content_layers: tuple[float, ...] | None = None
    style_layers: tuple[float, ...] | None = None


class Objective:
    """Total Gatys loss of an image against a content image and one or more blended styles."""

    def __init__(
        self,
        extractor: FeatureExtractor,
        content: np.ndarray,
        styles: Sequence[np.ndarray],
        weights: LossWeights = LossWeights(),
        style_blend: Sequence[float] | None = None,
    ):
        if not styles:
            raise ValueError("at least one style image is needed")
        blend = [1.0] * len(styles) if style_blend is None else [float(b) for b in style_blend]
        if len(blend) != len(styles) or any(b < 0 for b in blend) or sum(blend) <= 0:
            raise ValueError(f"style blend {blend} must give one non-negative weight per style, sum > 0")
        self.extractor = extractor
        self.weights = weights
        self.content_layer_weights = losses.layer_weights(
            weights.content_layers, len(extractor.content_layers), "content layer weights")
        self.style_layer_weights = losses.layer_weights(
            weights.style_layers, len(extractor.style_layers), "style layer weights")
        content_feats, _ = extractor(tf.constant(content[None], tf.float32))
        self.content_targets = [tf.constant(f) for f in content_feats]
        self.style_targets = [tf.constant(g) for g in self.blended_grams(styles, blend)]

    def blended_grams(self, styles: Sequence[np.ndarray], blend: Sequence[float]) -> list[tf.Tensor]:
        """Per-layer Gram targets: the blend-weighted mean of each style image's Grams."""
        total = float(sum(blend))
        grams = None
        for style, b in zip(styles, blend):
            _, feats = self.extractor(tf.constant(style[None], tf.float32))
            these = [losses.gram_matrix(f) * (b / total) for f in feats]
            grams = these if grams is None else [g + t for g, t in zip(grams, these)]
        return grams

    def terms(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        """Weighted loss terms and their total (scalars) for a [1, H, W, 3] image."""
        content_feats, style_feats = self.extractor(image)
        w = self.weights
        out = {}
        if content_feats:
            per_layer = [losses.content_loss(f, t) for f, t in zip(content_feats, self.content_targets)]
            out["content"] = w.content * tf.reduce_mean(losses.weighted_sum(per_layer, self.content_layer_weights))
        if style_feats:
            per_layer = [losses.style_loss(f, t) for f, t in zip(style_feats, self.style_targets)]
            out["style"] = w.style * tf.reduce_mean(losses.weighted_sum(per_layer, self.style_layer_weights))
        out["tv"] = w.tv * tf.reduce_mean(losses.total_variation_loss(image))
        out["total"] = tf.add_n(list(out.values()))
        return out


def initial_image(init: str | np.ndarray, content: np.ndarray, style: np.ndarray | None, seed: int) -> np.ndarray:
    """Starting image: content, uniform noise, the (first) style resized, or a given array."""
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
    raise ValueError(f"unknown init '{init}' (use {', '.join(INITS)})")


class Adam:
    """Adam on the image pixels, projected to [0, 1] after each step; one compiled step."""

    def __init__(self, objective: Objective, image: tf.Variable, learning_rate: float = 0.02,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8, jit_compile: bool = False):
        self.objective, self.image = objective, image
        self.lr, self.b1, self.b2, self.eps = learning_rate, beta_1, beta_2, epsilon
        self.m = tf.Variable(tf.zeros_like(image), trainable=False)
        self.v = tf.Variable(tf.zeros_like(image), trainable=False)
        self.t = tf.Variable(0.0, trainable=False)
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
        return terms


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


def make_optimizer(name: str, objective: Objective, image: tf.Variable,
                   learning_rate: float = 0.02, jit_compile: bool = False) -> Adam | LBFGS:
    """An optimiser by name: 'adam' or 'lbfgs'."""
    if name == "adam":
        return Adam(objective, image, learning_rate, jit_compile=jit_compile)
    if name == "lbfgs":
        return LBFGS(objective, image, jit_compile=jit_compile)
    raise ValueError(f"unknown optimizer '{name}' (use {', '.join(OPTIMIZERS)})")


StepCallback = Callable[[int, dict[str, float], tf.Variable], None]


def stylize(
    extractor: FeatureExtractor,
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    steps: int,
    weights: LossWeights = LossWeights(),
    optimizer: str = "adam",
    init: str | np.ndarray = "content",
    seed: int = 0,
    learning_rate: float = 0.02,
    style_blend: Sequence[float] | None = None,
    callback: StepCallback | None = None,
    jit_compile: bool = False,
) -> np.ndarray:
    """Run Gatys style transfer and return the [H, W, 3] result in [0, 1]."""
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    tf.random.set_seed(seed)
    objective = Objective(extractor, content, styles, weights, style_blend)
    start = initial_image(init, content, styles[0], seed)
    image = tf.Variable(start[None], dtype=tf.float32, trainable=True)
    opt = make_optimizer(optimizer, objective, image, learning_rate, jit_compile)
    for step in range(1, steps + 1):
        terms = opt.step()
        if callback is not None:
            callback(step, {k: float(v) for k, v in terms.items()}, image)
    return image.numpy()[0]
