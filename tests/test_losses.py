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


def test_layout_loss_hand_computed():
    """2x2 pooled luminance by hand: grey levels (0, 1 / 1, 2) against (0, 0 / 0, 4), each standardised."""
    def image(levels):  # a 4x4 grey image whose 2x2 blocks have the given levels
        return np.kron(np.asarray(levels, np.float32), np.ones((2, 2)))[None, :, :, None].repeat(3, -1) / 4

    ours, theirs = image([[0, 1], [1, 2]]), image([[0, 0], [0, 4]])
    z = lambda v: (v - v.mean()) / v.std()  # noqa: E731
    expected = np.mean((z(np.array([0, 1, 1, 2.])) - z(np.array([0, 0, 0, 4.]))) ** 2)
    np.testing.assert_allclose(losses.layout_loss(ours, theirs, pool=2).numpy(), [expected], rtol=1e-4)
    # tones and contrast are free, the light-and-dark order is not: 0 for any positive affine map, 4 when inverted
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, 32, dtype=np.float32)[None, None, :, None]
    x = np.clip(ramp + rng.normal(0, 0.1, (2, 32, 32, 3)), 0, 1).astype(np.float32)
    np.testing.assert_allclose(losses.layout_loss(0.3 * x + 0.5, x).numpy(), [0, 0], atol=1e-3)
    np.testing.assert_allclose(losses.layout_loss(1 - x, x).numpy(), [4, 4], atol=1e-2)
    # the benchmark's measure: both at a 256-px long side, whatever size the output and the photo have
    from nst_tf import metrics

    photo = np.clip(np.linspace(0, 1, 300, dtype=np.float32)[None, :, None] + rng.normal(0, 0.05, (200, 300, 3)), 0, 1)
    big = tf.image.resize(photo, (400, 600)).numpy()
    assert metrics.layout_error(big, photo) < 0.01
    assert metrics.layout_error(1 - big, photo) > 3.9


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


def test_sliced_wasserstein_hand_computed():
    # Points (3, 1) and (1, 2) against target points (0, 0) and (2, 4), projected on the two axes:
    # axis 0 sorted [1, 3] vs [0, 2] -> 1 + 1; axis 1 sorted [1, 2] vs [0, 4] -> 1 + 4; mean 7/4.
    # Normalised by the target's mean squared projection (0 + 4 + 0 + 16) / 4 = 5 -> 0.35.
    features = tf.constant([[[[3.0, 1.0]], [[1.0, 2.0]]]])  # [1, 2, 1, 2]
    target = tf.constant([[0.0, 0.0], [2.0, 4.0]])
    axes = tf.eye(2)
    target_sorted = losses.sorted_projections(target[None], axes)[0]
    np.testing.assert_allclose(target_sorted.numpy(), [[0.0, 2.0], [0.0, 4.0]])
    assert losses.sliced_wasserstein_loss(features, target_sorted, axes).numpy() == pytest.approx([0.35])
    # Rotated by 45 degrees: projections (x + y, x - y) / sqrt(2). Ours: (4, 2) and (3, -1) -> sorted [3, 4], [-1, 2];
    # target: (0, 0) and (6, -2) -> sorted [0, 6], [-2, 0]; squared errors (9 + 4 + 1 + 4) / 2 = 9, mean 9/4;
    # the target's mean squared projection (36 + 4) / 2 / 4 = 5 -> 0.45.
    diagonal = tf.constant([[1.0, 1.0], [1.0, -1.0]]) / np.sqrt(2.0)
    target_sorted = losses.sorted_projections(target[None], diagonal)[0]
    assert losses.sliced_wasserstein_loss(features, target_sorted, diagonal).numpy() == pytest.approx([0.45])


def test_sliced_wasserstein_compares_quantiles_of_sets_of_different_size():
    # 2 points against 4 target values on one axis: the target's quantiles at levels 1/4 and 3/4 of [0, 1, 2, 3]
    # are 0.5 and 2.5, so points at exactly those values have zero loss, in any order; shifted by 1 they have a
    # squared error of 1, relative to the quantiles' mean square (0.25 + 6.25) / 2 = 3.25.
    target_sorted = losses.sorted_projections(tf.constant([[[3.0], [0.0], [2.0], [1.0]]]), tf.eye(1))[0]
    np.testing.assert_allclose(losses.quantiles(target_sorted, 2).numpy(), [[0.5, 2.5]])
    features = tf.constant([[[[2.5]], [[0.5]]]])
    assert losses.sliced_wasserstein_loss(features, target_sorted, tf.eye(1)).numpy() == pytest.approx([0.0], abs=1e-7)
    assert losses.sliced_wasserstein_loss(features + 1.0, target_sorted, tf.eye(1)).numpy() == pytest.approx([1 / 3.25])


def test_sliced_wasserstein_gradient():
    # The same case as the hand-computed one: each point is pulled towards the target value of its rank.
    # d loss / d x_point = 2 * (own projection - matched target) / (K * N) / 5 along each axis:
    # (3, 1): axis 0 matched to 2 (+1), axis 1 matched to 0 (+1) -> (0.1, 0.1); (1, 2): (+1, -2) -> (0.1, -0.2).
    features = tf.Variable([[[[3.0, 1.0]], [[1.0, 2.0]]]])
    target_sorted = losses.sorted_projections(tf.constant([[[0.0, 0.0], [2.0, 4.0]]]), tf.eye(2))[0]
    with tf.GradientTape() as tape:
        value = losses.sliced_wasserstein_loss(features, target_sorted, tf.eye(2))
    grad = tape.gradient(value, features).numpy()
    np.testing.assert_allclose(grad.reshape(2, 2), [[0.1, 0.1], [0.1, -0.2]], rtol=1e-5)
    # and it agrees with finite differences on random data and random orthonormal directions
    rng = np.random.default_rng(2)
    x = tf.Variable(rng.normal(size=(1, 2, 2, 3)).astype(np.float64))
    directions = tf.cast(losses.orthonormal_projections(3, seed=3), tf.float64)
    target64 = tf.constant(rng.normal(size=(3, 7)))
    fn = lambda v: losses.sliced_wasserstein_loss(tf.cast(v, tf.float32), tf.cast(  # noqa: E731
        tf.sort(target64, axis=-1), tf.float32), tf.cast(directions, tf.float32))
    with tf.GradientTape() as tape:
        value = fn(x)
    analytic = tape.gradient(value, x).numpy().ravel()
    numeric = []
    for i in range(x.shape.num_elements()):
        step = np.zeros(x.shape.num_elements())
        step[i] = 1e-3
        step = step.reshape(x.shape)
        numeric.append((float(fn(x + step)[0]) - float(fn(x - step)[0])) / 2e-3)
    np.testing.assert_allclose(analytic, numeric, atol=2e-3)


def test_orthonormal_projections():
    q = losses.orthonormal_projections(6, seed=1).numpy()
    np.testing.assert_allclose(q.T @ q, np.eye(6), atol=1e-5)
    assert losses.orthonormal_projections(6, count=2, seed=1).shape == (6, 2)
    np.testing.assert_array_equal(losses.orthonormal_projections(6, seed=1), q)  # seeded: reproducible


def test_sliced_wasserstein_lowers_the_palette_distance_more_than_gram(lpips_weights, data_dir):
    """On a tiny photo x painting pair (48 px), 20 Adam steps on the sliced Wasserstein loss bring the photo's colours
    nearer the painting's than the same steps on the Gram loss (style term only, so Adam's steps do not depend on the
    two losses' scales; the real VGG16's first three blocks)."""
    from nst_tf import features, images, metrics, optimize
    from nst_tf.objective import LossWeights

    extractor = features.build_extractor(lpips_weights, None, ["block3_conv1"],
                                         ["block1_conv1", "block2_conv1", "block3_conv1"])
    content = images.resize_long_side(images.load_image(f"{data_dir}/content/golden_gate.jpg"), 48)
    style = images.resize_long_side(images.load_image(f"{data_dir}/styles/starry_night.jpg"), 48)
    weights = LossWeights(content=0.0, style=1.0, tv=0.0)
    before = metrics.palette_distance(content, style, size=48)
    after = {}
    for loss in ("gram", "sliced_wasserstein"):
        options = optimize.Options(scales=(48,), steps=(20,), learning_rate=0.05, weights=weights, style_loss=loss)
        after[loss] = metrics.palette_distance(optimize.stylize(extractor, content, [style], options), style, size=48)
    print(f"palette distance: photo {before:.1f}, after Gram {after['gram']:.1f}, after SW "
          f"{after['sliced_wasserstein']:.1f}")  # 11.0, 7.8, 7.1 when written
    assert after["sliced_wasserstein"] < after["gram"] < before
