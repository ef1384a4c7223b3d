"""The optimiser: Adam and L-BFGS lower the loss, stay in range, and are deterministic."""

import numpy as np
import pytest
import tensorflow as tf

from nst_tf import features, losses, optimize, scales
from nst_tf.objective import LossWeights, Objective, style_targets
from nst_tf.optimizers import Adam
from nst_tf.sliced import sliced_targets


@pytest.fixture(scope="module")
def extractor(random_vgg16_weights):
    return features.build_extractor(random_vgg16_weights, "vgg16", ["block3_conv1"],
                                    ["block1_conv1", "block2_conv1", "block3_conv1"])


def opts(**kw) -> optimize.Options:
    """Options at the test images' size (64 px long side)."""
    return optimize.Options(**{"scales": (64,), "steps": (5,), **kw})


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    content = np.clip(np.linspace(0, 1, 48 * 64 * 3).reshape(48, 64, 3) + rng.normal(0, 0.05, (48, 64, 3)), 0, 1)
    style = rng.uniform(size=(40, 40, 3))
    return content.astype(np.float32), style.astype(np.float32)


@pytest.mark.parametrize("name", ["adam", "lbfgs"])
def test_optimizers_lower_the_loss_and_stay_in_range(extractor, pair, name):
    content, style = pair
    totals = []
    result = optimize.stylize(extractor, content, [style], opts(steps=(15,), optimizer=name),
                              callback=lambda step, terms, image: totals.append(terms["total"]))
    assert totals[-1] < 0.5 * totals[0], totals
    assert result.shape == content.shape and result.min() >= 0.0 and result.max() <= 1.0


def test_lbfgs_beats_adam_per_iteration(extractor, pair):
    content, style = pair
    final = {}
    for name in ("adam", "lbfgs"):
        trace = []
        optimize.stylize(extractor, content, [style], opts(steps=(10,), optimizer=name, init="noise"),
                         callback=lambda step, terms, image, trace=trace: trace.append(terms["total"]))
        final[name] = trace[-1]
    assert final["lbfgs"] < final["adam"], final


def test_deterministic_with_seed(extractor, pair):
    content, style = pair
    a = optimize.stylize(extractor, content, [style], opts(steps=(3,), init="noise", seed=7))
    b = optimize.stylize(extractor, content, [style], opts(steps=(3,), init="noise", seed=7))
    c = optimize.stylize(extractor, content, [style], opts(steps=(3,), init="noise", seed=8))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.01


def test_initial_images(pair):
    content, style = pair
    np.testing.assert_array_equal(optimize.initial_image("content", content, style, 0), content)
    noise = optimize.initial_image("noise", content, style, 0)
    assert noise.shape == content.shape and 0.4 < noise.mean() < 0.6
    assert optimize.initial_image("style", content, style, 0).shape == content.shape
    with pytest.raises(ValueError, match="unknown init"):
        optimize.initial_image("zeros", content, style, 0)


def test_objective_zero_at_its_own_targets(extractor, pair):
    content, _ = pair
    targets = style_targets(extractor, [content])
    objective = Objective(extractor, content, targets, LossWeights(tv=0.0))
    terms = objective.terms(content[None])
    assert float(terms["content"]) == pytest.approx(0.0, abs=1e-6)
    assert float(terms["style"]) == pytest.approx(0.0, abs=1e-6)


def test_bad_arguments(extractor, pair):
    content, style = pair
    with pytest.raises(ValueError, match="steps must be positive"):
        optimize.stylize(extractor, content, [style], opts(steps=(0,)))
    with pytest.raises(ValueError, match="at least one style"):
        optimize.stylize(extractor, content, [], opts())
    with pytest.raises(ValueError, match="style blend"):
        style_targets(extractor, [style], [1.0, 2.0])
    with pytest.raises(ValueError, match="2 step counts for 3 scales"):
        optimize.stylize(extractor, content, [style], opts(scales=(16, 32, 64), steps=(1, 2)))


def test_scale_ladder():
    assert scales.scale_ladder(512, 256) == (256, 362, 512)
    assert scales.scale_ladder(1024, 256) == (256, 362, 512, 724, 1024)
    assert scales.scale_ladder(200, 256) == (200,)


def test_tiles_cover_with_overlap():
    assert scales.tile_starts(100, 100, 10) == [0]
    starts = scales.tile_starts(1000, 300, 64)
    assert starts[0] == 0 and starts[-1] == 700
    assert all(b - a <= 300 - 64 for a, b in zip(starts, starts[1:]))
    window = scales.feather(8, 8, 4)
    assert window[4, 4, 0] == 1.0 and window[0, 0, 0] < 0.1


def test_multiscale_and_tiling_run(extractor, pair):
    content, style = pair
    result = optimize.stylize(extractor, content, [style], opts(scales=(32, 64), steps=(2, 2), average=0.5))
    assert result.shape == content.shape
    calls = []
    tiled = optimize.stylize(extractor, content, [style], opts(scales=(64,), steps=(2,), tile=40, tile_overlap=8),
                             callback=lambda step, terms, image: calls.append(step))
    assert tiled.shape == content.shape and 0 <= tiled.min() and tiled.max() <= 1
    assert len(calls) == 2 * 2 * 2  # 2x2 tiles of 40 px over 48x64, 2 steps each


def test_adam_warm_start_resizes_moments(extractor, pair):
    content, style = pair
    targets = style_targets(extractor, [style])
    small = Objective(extractor, content[::2, ::2], targets)
    a = Adam(small, tf.Variable(content[None, ::2, ::2]))
    a.step()
    b = Adam(Objective(extractor, content, targets), tf.Variable(content[None]))
    b.warm_start(a)
    assert float(b.t) == 1.0 and b.m.shape == (1, 48, 64, 3) and float(tf.reduce_max(tf.abs(b.m))) > 0


def test_tiled_style_grams_match_whole_image(lpips_weights, data_dir):
    """Style statistics of a large image, analysed in windows, agree with the whole-image analysis."""
    from nst_tf import images

    extractor = features.build_extractor(lpips_weights)
    style = images.resize_long_side(images.load_image(f"{data_dir}/styles/starry_night.jpg"), 400)
    whole = style_targets(extractor, [style])[0]
    tiled = style_targets(extractor, [style], tile=256)[0]
    errors = [float(losses.relative_squared_error(t, w)[0]) for t, w in zip(tiled, whole)]
    print(f"relative squared error of tiled Grams per layer: {np.round(errors, 4).tolist()}")
    assert max(errors) < 0.02


def test_tiles_blend_without_seams(extractor, pair, monkeypatch):
    """Tiles enter the output through feathered windows: where two overlap, the output ramps from one tile's result to
    the other's (no step at a tile's edge); where one tile alone covers, it is that tile's result. Checked with a
    stand-in optimiser whose result is a flat grey of its own for each tile, so the blending alone shapes the image."""
    content, style = pair
    shades = iter([0.2, 0.8, 0.4, 0.6])  # the 2 x 2 tiles of 40 px over 48 x 64, row by row

    class FlatTile:
        def __init__(self, objective, image, *args, **kwargs):
            self.shape, self.value = image.shape, None

        def reset(self, start):
            self.value = next(shades)

        def step(self):
            return {"total": tf.constant(0.0)}

        def result(self):
            return tf.fill(self.shape, self.value)

    monkeypatch.setattr(optimize, "Adam", FlatTile)
    out = optimize.stylize(extractor, content, [style], opts(scales=(64,), steps=(1,), tile=40, tile_overlap=8))
    assert out.shape == (48, 64, 3)
    # tiles start at y 0, 8 and x 0, 24: one tile alone above row 8 / below row 40, left of column 24 / right of 40
    for rows, cols, shade in ((slice(0, 8), slice(0, 24), 0.2), (slice(0, 8), slice(40, 64), 0.8),
                              (slice(40, 48), slice(0, 24), 0.4), (slice(40, 48), slice(40, 64), 0.6)):
        np.testing.assert_allclose(out[rows, cols], shade, atol=1e-6)
    across, down = np.abs(np.diff(out, axis=1)).max(), np.abs(np.diff(out, axis=0)).max()
    print(f"largest step between neighbouring pixels: across {across:.3f}, down {down:.3f} (tiles differ by up "
          f"to 0.6; a hard seam steps by 0.3 or more)")
    assert across < 0.6 / 8 + 1e-3 and down < 0.6 / 8 + 1e-3  # a ramp over the 8-px overlap, at most
    blend = out[10:38, 26:38, 0]  # inside all four tiles' overlap: a mix, strictly between the shades
    assert 0.2 < blend.min() and blend.max() < 0.8


def test_iterate_averaging_is_the_bias_corrected_mean_of_the_iterates(extractor, pair):
    """--average: the result is sum_k (1 - d) d^(n-k) x_k / (1 - d^n) over the iterates x_1..x_n (whose path the
    average does not change), and it has less of the last steps' jitter than the last iterate."""
    content, style = pair
    iterates = []
    last = optimize.stylize(extractor, content, [style], opts(steps=(8,), learning_rate=0.05),
                            callback=lambda step, terms, image: iterates.append(image()))
    np.testing.assert_array_equal(last, iterates[-1])
    decay, n = 0.7, len(iterates)
    averaged = optimize.stylize(extractor, content, [style], opts(steps=(8,), learning_rate=0.05, average=decay))
    by_hand = sum((1 - decay) * decay ** (n - k) * x for k, x in enumerate(iterates, 1)) / (1 - decay ** n)
    np.testing.assert_allclose(averaged, np.clip(by_hand, 0.0, 1.0), atol=1e-5)
    jitter = lambda x: float(np.abs(np.diff(x, axis=0)).mean() + np.abs(np.diff(x, axis=1)).mean())  # noqa: E731
    print(f"total variation: last iterate {jitter(last):.4f}, averaged {jitter(averaged):.4f}, "
          f"content {jitter(content):.4f}")
    assert jitter(averaged) < jitter(last)


@pytest.mark.parametrize("projections", ["fresh", "fixed"])
def test_sliced_wasserstein_style_loss_lowers_the_loss(extractor, pair, projections):
    content, style = pair
    totals = []
    result = optimize.stylize(extractor, content, [style],
                              opts(steps=(15,), style_loss="sliced_wasserstein", projections=projections, points=500),
                              callback=lambda step, terms, image: totals.append(terms["style"]))
    assert totals[-1] < 0.7 * totals[0], totals
    assert result.shape == content.shape and result.min() >= 0.0 and result.max() <= 1.0


def test_sliced_targets_are_zero_at_their_own_image_and_blend(extractor, pair):
    content, style = pair
    for projections in ("fresh", "fixed"):
        targets = sliced_targets(extractor, [content], projections=projections)
        objective = Objective(extractor, content, targets, LossWeights(tv=0.0))
        assert float(objective.terms(content[None])["style"]) == pytest.approx(0.0, abs=1e-6)
    # a blend of one image with itself is that image; of two images it lies between them
    same = sliced_targets(extractor, [content, content], [0.3, 0.7], projections="fixed")
    objective = Objective(extractor, content, same, LossWeights(tv=0.0))
    assert float(objective.terms(content[None])["style"]) == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="style blend"):
        sliced_targets(extractor, [style], [1.0, 2.0])
    with pytest.raises(ValueError, match="Gram style loss"):
        optimize.stylize(extractor, content, [style, style], opts(style_loss="sliced_wasserstein"),
                         masks=np.ones(content.shape[:2] + (2,), np.float32) / 2)


def test_palette_init_takes_the_style_colours(pair):
    from nst_tf import metrics

    content, _ = pair
    style = np.random.default_rng(1).uniform(size=content.shape).astype(np.float32)  # same size: no resampling
    start = optimize.initial_image("palette", content, style, 0)
    assert start.shape == content.shape
    assert metrics.palette_distance(start, style, 64) < 0.2 * metrics.palette_distance(content, style, 64)


def test_per_scale_optimizers_and_learning_rates(extractor, pair):
    content, style = pair
    options = opts(scales=(32, 64), steps=(3, 2), optimizers=("adam", "lbfgs"), learning_rates=(0.05, 0.02))
    assert options.per_scale("optimizer") == ["adam", "lbfgs"]
    assert optimize.stylize(extractor, content, [style], options).shape == content.shape
    with pytest.raises(ValueError, match="3 optimizers for 2 scales"):
        optimize.stylize(extractor, content, [style], opts(scales=(32, 64), optimizers=("adam",) * 3))


def test_fast_init_starts_from_the_network(extractor, pair):
    """init=fast: the first scale starts from the feed-forward network's result (a tiny step keeps it there)."""
    content, style = pair
    expected = optimize.fast_image(content, [style])
    result = optimize.stylize(extractor, content, [style], opts(steps=(1,), init="fast", learning_rate=1e-6))
    np.testing.assert_allclose(result, expected, atol=1e-3)
    assert np.abs(expected - content).mean() > 0.02  # and that is not the photo
