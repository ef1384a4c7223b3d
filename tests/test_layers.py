"""The Keras layers: reflect padding, covariance and the linear transform's matrix mix, by hand."""

import numpy as np
import tensorflow as tf

from nst_tf.layers import Covariance, MatrixMix, reflect_pad


def test_reflect_pad_by_hand_and_as_tf_pad():
    row = tf.constant([[[[1.0], [2.0], [3.0]]]])  # [1, 1, 3, 1]: one row, width 3
    x = tf.concat([row, row + 10.0], axis=1)  # rows 1 2 3 / 11 12 13
    padded = reflect_pad(x, 1)[0, :, :, 0].numpy()
    np.testing.assert_array_equal(padded, [[12, 11, 12, 13, 12], [2, 1, 2, 3, 2], [12, 11, 12, 13, 12],
                                           [2, 1, 2, 3, 2]])
    images = tf.random.normal([2, 7, 9, 3], seed=7)
    for pad in (1, 2, 4):
        expected = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
        np.testing.assert_array_equal(reflect_pad(images, pad).numpy(), expected.numpy())


def test_covariance_and_matrix_mix_by_hand():
    rng = np.random.default_rng(7)
    z = rng.normal(size=(1, 2, 3, 2)).astype(np.float32)
    flat = z.reshape(6, 2)
    np.testing.assert_allclose(Covariance()(tf.constant(z)).numpy()[0], (flat.T @ flat / 6).ravel(), rtol=1e-5)
    s, c = np.array([[1.0, 2.0], [0.0, 1.0]], np.float32), np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    mixed = MatrixMix()([tf.constant(z), tf.constant(s.reshape(1, 4)), tf.constant(c.reshape(1, 4))]).numpy()
    t = s @ c / 2  # T = S @ C / rank
    np.testing.assert_allclose(mixed[0, 1, 2], t @ z[0, 1, 2], rtol=1e-5)
