"""Optimisers of an image's pixels against an Objective: Adam and L-BFGS, each step one compiled `tf.function`.

Each step is forward, gradient and update in one call; Python only loops over steps (nst_tf.optimize).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from nst_tf.objective import Objective

OPTIMIZERS = ("adam", "lbfgs")


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
