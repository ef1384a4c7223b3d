"""AdaIN and the moment statistics: style vectors, AdaIN, their layout over levels, blending."""

import numpy as np
import tensorflow as tf

from nst_tf.adain import adain, blend_vectors, levels_vector, moments_vector, multi_adain, split_vector


def test_moments_vector_hand_computed():
    # one channel with values 1, 3 -> mean 2, std sqrt(1 + eps); second channel constant 5
    features = tf.constant([[[[1.0, 5.0], [3.0, 5.0]]]])
    vector = moments_vector(features).numpy()
    np.testing.assert_allclose(vector, [[2.0, 5.0, np.sqrt(1.0 + 1e-5), np.sqrt(1e-5)]], rtol=1e-6)


def test_adain_gives_target_statistics():
    rng = np.random.default_rng(0)
    features = tf.constant(rng.normal(3.0, 2.0, (2, 6, 5, 4)), tf.float32)
    target = tf.constant(np.concatenate([rng.normal(size=(2, 4)), rng.uniform(0.5, 2, (2, 4))], -1), tf.float32)
    out = adain(features, target)
    np.testing.assert_allclose(moments_vector(out).numpy(), target.numpy(), atol=1e-3)


def test_levels_vector_layout_by_hand():
    # level 1: one channel, values 1, 3 -> [2, ~1]; level 2: two channels, constants 4 and 6 -> [4, 6, ~0, ~0]
    shallow = tf.constant([[[[1.0], [3.0]]]])
    deep = tf.constant([[[[4.0, 6.0]]]])
    eps = np.sqrt(1e-5)
    vector = levels_vector([shallow, deep])
    np.testing.assert_allclose(vector.numpy(), [[2.0, np.sqrt(1 + 1e-5), 4.0, 6.0, eps, eps]], rtol=1e-6)
    parts = split_vector(vector, (1, 2))
    np.testing.assert_allclose(parts[0].numpy(), [[2.0, np.sqrt(1 + 1e-5)]], rtol=1e-6)
    np.testing.assert_allclose(parts[1].numpy(), [[4.0, 6.0, eps, eps]], rtol=1e-6)


def test_multi_adain_gives_each_level_its_statistics():
    rng = np.random.default_rng(4)
    levels = [tf.constant(rng.normal(1.0, 3.0, (1, 8, 8, c)), tf.float32) for c in (3, 5)]
    target = [np.concatenate([rng.normal(size=(1, c)), rng.uniform(0.5, 2, (1, c))], -1) for c in (3, 5)]
    out = multi_adain(levels, tf.constant(np.concatenate(target, -1), tf.float32))
    for o, t in zip(out, target):
        np.testing.assert_allclose(moments_vector(o).numpy(), t, atol=1e-3)


def test_blend_vectors():
    style, content = tf.constant([[4.0, 8.0]]), tf.constant([[0.0, 0.0]])
    np.testing.assert_allclose(blend_vectors(style, content, 0.25).numpy(), [[1.0, 2.0]])
    np.testing.assert_allclose(blend_vectors(style, content, 1.5).numpy(), [[4.0, 8.0]])  # clipped to 1
