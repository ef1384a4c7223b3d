"""Losses against hand-computed values."""

import numpy as np
import pytest
import tensorflow as tf

from nst_tf import losses


def test_gram_matrix_hand_computed():
    # 1x2x1x2 features: positions (1, 2) and (3, 4) -> F^T F = [[1+9, 2+12], [2+12, 4+16]] / 2 positions
    features = tf.constant([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    gram = losses.gram_matrix(features).numpy()
    np.testing.assert_allclose(gram, [[[5.0, 7.0], [7.0, 10.0]]])


def test_gram_matrix_is_size_independent():
    tile = np.random.default_rng(0).normal(size=(1, 4, 4, 3)).astype(np.float32)
    big = np.tile(tile, (1, 3, 2, 1))  # the same statistics over 6x as many positions
    np.testing.assert_allclose(losses.gram_matrix(big), losses.gram_matrix(tile), rtol=1e-5)


def test_content_loss_is_relative_squared_error():
    target = tf.constant([[[[3.0, 4.0]]]])  # ||target||^2 = 25
    value = tf.constant([[[[3.0, 6.0]]]])  # ||value - target||^2 = 4
    assert losses.content_loss(value, target).numpy() == pytest.approx([4.0 / 25.0])
    assert losses.content_loss(target, target).numpy() == pytest.approx([0.0])


def test_style_loss_hand_computed():
    features = tf.constant([[[[1.0, 0.0]], [[0.0, 1.0]]]])  # gram = [[0.5, 0], [0, 0.5]]
    target = tf.constant([[[1.0, 0.0], [0.0, 1.0]]])  # ||target||^2 = 2; diff^2 = 0.25 + 0.25
    assert losses.style_loss(features, target).numpy() == pytest.approx([0.5 / 2.0])


def test_style_loss_independent_of_feature_scale():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 1, 5, 5, 4)).astype(np.float32)
    target = losses.gram_matrix(b)
    scaled = losses.style_loss(10 * a, 100 * target).numpy()
    np.testing.assert_allclose(scaled, losses.style_loss(a, target).numpy(), rtol=1e-5)


def test_total_variation_hand_computed():
    # 2x2 single-channel image [[0, 1], [2, 4]]: dy = [2, 3] -> mean 6.5; dx = [1, 2] -> mean 2.5
    image = tf.constant([[[0.0], [1.0]], [[2.0], [4.0]]])[None]
    assert losses.total_variation_loss(image).numpy() == pytest.approx([6.5 + 2.5])
    assert losses.total_variation_loss(tf.ones([1, 3, 3, 3])).numpy() == pytest.approx([0.0])


def test_weighted_sum_and_layer_weights():
    values = [tf.constant([1.0]), tf.constant([3.0])]
    assert losses.weighted_sum(values, [1.0, 3.0]).numpy() == pytest.approx([(1 + 9) / 4])
    assert losses.layer_weights(None, 3) == [1.0, 1.0, 1.0]
    assert losses.layer_weights("1,0.5", 2) == [1.0, 0.5]
    with pytest.raises(ValueError, match="2 values for 3 layers"):
        losses.layer_weights("1,2", 3)
    with pytest.raises(ValueError, match="non-negative"):
        losses.layer_weights("-1,2", 2)


def test_reconstruction_loss_by_hand():
    images = tf.fill([2, 4, 4, 3], 0.5)
    target = tf.concat([tf.zeros([1, 4, 4, 3]), tf.fill([1, 4, 4, 3], 0.25)], axis=0)
    np.testing.assert_allclose(losses.reconstruction_loss(images, target).numpy(), [0.25, 0.0625])


def test_relative_style_loss_hand_computed():
    style, own = tf.constant([0.3, 2.0, 0.1]), tf.constant([1.0, 4.0, 0.5])  # fractions 0.3, 0.5, 0.2
    np.testing.assert_allclose(losses.relative_style_loss(style, own).numpy(), [0.3, 0.5, 0.2], rtol=1e-6)
    np.testing.assert_allclose(losses.relative_style_loss(style, own, 0.25).numpy(), [0.05, 0.25, 0.0], atol=1e-6)
    with tf.GradientTape() as tape:  # the photo's own loss is a constant: d(style / own)/d own = 0
        tape.watch([style, own])
        value = tf.reduce_sum(losses.relative_style_loss(style, own, 0.25))
    d_style, d_own = tape.gradient(value, [style, own])
    np.testing.assert_allclose(d_style.numpy(), [1.0, 0.25, 0.0], rtol=1e-6)  # 1/own above the target, else 0
    assert d_own is None or not np.any(d_own.numpy())
