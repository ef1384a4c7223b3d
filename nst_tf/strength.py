"""The strength control of the feed-forward networks: one scalar from the photo (0) to very painterly (2).

Trained in, after Babaeizadeh & Ghiasi ("Adjustable Real-time Style Transfer", ICLR 2020): the trainer draws a
strength per example, weighs the style terms by `loss_scale(strength)` and feeds the strength to the network, whose
layers are modulated by it (FiLM: a per-channel scale and shift computed from an embedding of the strength). Below
1 the strength also blends the style vector with the content's own (what `alpha` did), so 0 asks the network for
the photo itself; above 1 only the learned modulation changes. Every projection out of the embedding starts at
zero, so a network warm-started from one without strength computes exactly what it did, at every strength.
"""

from __future__ import annotations

import keras
import tensorflow as tf

STRENGTH_MAX = 2.0  # the top of the trained range
DEFAULT_STRENGTH = 1.0


def check_strength(value: float, name: str = "strength") -> float:
    """`value` as a float in [0, STRENGTH_MAX]; ValueError naming the range otherwise."""
    value = float(value)
    if not 0.0 <= value <= STRENGTH_MAX:
        raise ValueError(f"{name} must be in [0, {STRENGTH_MAX:g}], got {value:g}")
    return value


def as_column(strength, batch: tf.Tensor) -> tf.Tensor:
    """A scalar, [B] or [B, 1] strength -> [batch, 1] float32, clipped to [0, STRENGTH_MAX]."""
    column = tf.reshape(tf.cast(strength, tf.float32), [-1, 1])
    return tf.clip_by_value(tf.broadcast_to(column, [batch, 1]), 0.0, STRENGTH_MAX)


def blend_amount(strength: tf.Tensor) -> tf.Tensor:
    """How far the style vector replaces the content's own: min(strength, 1)."""
    return tf.clip_by_value(strength, 0.0, 1.0)


def loss_scale(strength: tf.Tensor) -> tf.Tensor:
    """The factor on the style terms for a strength in training: strength squared (0 -> content only, 2 -> 4x)."""
    return tf.square(strength)


class FiLM(keras.layers.Layer):
    """x * (1 + scale) + shift, per channel, with [B, 2C] parameters (scale then shift)."""

    def call(self, inputs):  # noqa: D102
        x, params = inputs
        channels = x.shape[-1]
        return x * (1.0 + params[:, None, None, :channels]) + params[:, None, None, channels:]


class Excess(keras.layers.Layer):
    """max(strength - 1, 0): the part of the strength above the painting's look."""

    def call(self, strength):  # noqa: D102
        return tf.nn.relu(strength - 1.0)


class SkipFade(keras.layers.Layer):
    """The share of the photo's shallow (skip) features the decoder gets: 1 up to strength 1, then falling linearly
    to 0 at STRENGTH_MAX, where only the AdaIN'd relu4_1 is left (Huang & Belongie's painterly decoder). [B, 1]
    strength -> [B, 1, 1, 1], to scale feature maps."""

    def call(self, strength):  # noqa: D102
        share = tf.clip_by_value((STRENGTH_MAX - strength) / (STRENGTH_MAX - 1.0), 0.0, 1.0)
        return tf.reshape(share, [-1, 1, 1, 1])


def embed(strength: keras.KerasTensor, units: int) -> keras.KerasTensor:
    """[B, 1] strength -> [B, units] features that every FiLM layer reads.

    Two sets of ramps are added before the second layer: ramps of the strength (kinks spread over [0, 2]), and ramps
    of its excess over 1 with zero bias, which are zero up to 1: the range above the painting's look gets features
    of its own (without them a network trained on [0, 2] gave strengths 1 and 2 the same look), and adding them to
    a network trained without them changes nothing up to strength 1.
    """
    x = keras.layers.Dense(units, activation="relu", name="strength_embed1",
                           kernel_initializer=keras.initializers.RandomNormal(stddev=2.0),
                           bias_initializer=keras.initializers.RandomUniform(-2.0, 2.0))(strength)
    excess = keras.layers.Dense(units, activation="relu", name="strength_excess",
                                kernel_initializer=keras.initializers.RandomNormal(stddev=2.0))(
        Excess(name="strength_over_1")(strength))
    x = keras.layers.Add(name="strength_ramps")([x, excess])
    return keras.layers.Dense(units, activation="relu", name="strength_embed2")(x)


def film(x: keras.KerasTensor, embedding: keras.KerasTensor | None, name: str) -> keras.KerasTensor:
    """FiLM of `x` by a zero-initialised projection of the strength embedding (x itself when there is none)."""
    if embedding is None:
        return x
    params = keras.layers.Dense(2 * x.shape[-1], kernel_initializer="zeros", name=f"{name}_film")(embedding)
    return FiLM(name=f"{name}_filmed")([x, params])


def replay_embed(layer, strength: tf.Tensor) -> tf.Tensor:
    """embed()'s layers, taken by name from a built model (`layer` = model.get_layer), applied to a strength."""
    ramps = layer("strength_ramps")([layer("strength_embed1")(strength),
                                     layer("strength_excess")(layer("strength_over_1")(strength))])
    return layer("strength_embed2")(ramps)


def fill_excess(arrays: dict, part: str, model: keras.Model) -> dict:
    """`arrays` (a weights file's `<part>/<layer>/<i>` entries) plus zero weights for `model`'s strength_excess layer
    when the file predates it: zero ramps, so the network computes what it did when it was saved."""
    if "strength_excess" not in [layer.name for layer in model.layers] or f"{part}/strength_excess/0" in arrays:
        return arrays
    kernel, bias = model.get_layer("strength_excess").get_weights()
    return {**arrays, f"{part}/strength_excess/0": kernel * 0, f"{part}/strength_excess/1": bias * 0}

