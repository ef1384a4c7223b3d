"""The optimiser: Adam and L-BFGS lower the loss, stay in range, and are deterministic."""

import numpy as np
import pytest

from nst_tf import features, optimize


@pytest.fixture(scope="module")
def extractor(random_vgg16_weights):
    return features.build_extractor(random_vgg16_weights, "vgg16", ["block3_conv1"],
                                    ["block1_conv1", "block2_conv1", "block3_conv1"])


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
    result = optimize.stylize(extractor, content, [style], 15, optimizer=name,
                              callback=lambda step, terms, image: totals.append(terms["total"]))
    assert totals[-1] < 0.5 * totals[0], totals
    assert result.shape == content.shape and result.min() >= 0.0 and result.max() <= 1.0


def test_lbfgs_beats_adam_per_iteration(extractor, pair):
    content, style = pair
    final = {}
    for name in ("adam", "lbfgs"):
        trace = []
        optimize.stylize(extractor, content, [style], 10, optimizer=name, init="noise",
                         callback=lambda step, terms, image, trace=trace: trace.append(terms["total"]))
        final[name] = trace[-1]
    assert final["lbfgs"] < final["adam"], final


def test_deterministic_with_seed(extractor, pair):
    content, style = pair
    a = optimize.stylize(extractor, content, [style], 3, init="noise", seed=7)
    b = optimize.stylize(extractor, content, [style], 3, init="noise", seed=7)
    c = optimize.stylize(extractor, content, [style], 3, init="noise", seed=8)
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
    objective = optimize.Objective(extractor, content, [content], optimize.LossWeights(tv=0.0))
    terms = objective.terms(content[None])
    assert float(terms["content"]) == pytest.approx(0.0, abs=1e-6)
    assert float(terms["style"]) == pytest.approx(0.0, abs=1e-6)


def test_bad_arguments(extractor, pair):
    content, style = pair
    with pytest.raises(ValueError, match="steps must be positive"):
        optimize.stylize(extractor, content, [style], 0)
    with pytest.raises(ValueError, match="at least one style"):
        optimize.Objective(extractor, content, [])
    with pytest.raises(ValueError, match="style blend"):
        optimize.Objective(extractor, content, [style], style_blend=[1.0, 2.0])
