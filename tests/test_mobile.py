"""nst_tf.mobile: conditional instance norm by hand, the transformer's shapes, alpha, weights and the TFLite graph."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from nst_tf import fast, mobile, network, network_io

SMALL = mobile.MobileConfig(channels=(4, 8, 8), residual_blocks=1, bottleneck=6)


@pytest.fixture(scope="module")
def net():
    """A small mobile network with random transformer weights (conditioning included) and the bundled predictor."""
    tf.keras.utils.set_random_seed(0)
    n = mobile.MobileStyleNetwork(SMALL)
    n.load_encoder_from()
    rng = np.random.default_rng(0)
    arrays = network_io.weight_arrays(n.transformer)
    for key, w in arrays.items():
        if w.ndim == 2 or key.endswith("/1"):  # dense (bottleneck, conditioning) weights and every bias
            arrays[key] = rng.normal(0, 0.05, w.shape).astype(np.float32)
    network_io.set_weight_arrays(n.transformer, arrays)
    return n


def test_instance_norm_hand_computed():
    x = np.array([[[[1.0], [3.0]], [[5.0], [7.0]]]], np.float32)  # one channel: mean 4, variance 5
    out = mobile.instance_norm(tf.constant(x), tf.constant([[2.0]]), tf.constant([[0.5]])).numpy()
    expected = (x - 4.0) / np.sqrt(5.0 + 1e-5) * 2.0 + 0.5
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_untrained_conditioning_is_plain_instance_norm():
    layer = mobile.ConditionalInstanceNorm(3)
    x = tf.random.normal([2, 5, 6, 3], seed=1) * 3.0 + 2.0
    out = layer([x, tf.random.normal([2, 4], seed=2)]).numpy()  # zero-initialised dense: scale 1, shift 0
    np.testing.assert_allclose(out.mean(axis=(1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 2)), 1.0, atol=1e-3)


def test_parse_channels():
    assert mobile.parse_channels("32,64,128") == (32, 64, 128)
    for bad in ("8,16", "8,16,0", "a,b,c", ""):
        with pytest.raises(ValueError, match=f"three positive widths, got {bad}$"):
            mobile.parse_channels(bad)


def test_config_counts_and_json():
    config = mobile.MobileConfig()
    assert config.vector_size == network.NetworkConfig().vector_size == 1920  # vectors interchangeable
    norms = [layer for layer in mobile.build_transformer(config).layers
             if isinstance(layer, mobile.ConditionalInstanceNorm)]
    assert len(norms) == 3 + 2 * config.residual_blocks + 2
    assert mobile.MobileConfig.from_json(config.to_json()) == config
    assert json.loads(config.to_json())["kind"] == "mobile"


def test_any_size_in_range(net):
    style = np.random.default_rng(1).random((40, 48, 3)).astype(np.float32)
    for h, w in ((37, 53), (16, 16), (64, 29)):
        content = np.random.default_rng(h).random((h, w, 3)).astype(np.float32)
        out = fast.stylize(net, content, [style])
        assert out.shape == (h, w, 3)
        assert out.min() >= 0.0 and out.max() <= 1.0


def test_style_vector_changes_output(net):
    content = tf.random.uniform([1, 32, 32, 3], seed=3)
    a = net.stylize(content, tf.fill([1, 1920], 0.1)).numpy()
    b = net.stylize(content, tf.fill([1, 1920], 3.0)).numpy()
    assert np.abs(a - b).mean() > 1e-3


def test_alpha_blends_with_the_contents_own_vector(net):
    content = tf.random.uniform([1, 32, 40, 3], seed=4)
    style_vector = net.predict_style(tf.random.uniform([1, 32, 32, 3], seed=5))
    own = net.content_vector(content)
    assert own.shape == (1, 1920)
    full = net.transformer([content, style_vector]).numpy()
    zero = net.transformer([content, own]).numpy()
    half = net.transformer([content, 0.5 * style_vector + 0.5 * own]).numpy()
    np.testing.assert_allclose(net.stylize(content, style_vector, 1.0).numpy(), full, atol=1e-6)
    np.testing.assert_allclose(net.stylize(content, style_vector, 0.0).numpy(), zero, atol=1e-6)
    np.testing.assert_allclose(net.stylize(content, style_vector, tf.constant([0.5])).numpy(), half, atol=1e-6)


def test_save_load_and_load_network(net, tmp_path):
    net.save(str(tmp_path / "m"))
    with np.load(tmp_path / "m" / "weights.npz") as data:
        assert all(k.startswith("transformer/") for k in data.files)  # the predictor comes from the bundle
    loaded = fast.load_network(str(tmp_path / "m"))
    assert isinstance(loaded, mobile.MobileStyleNetwork) and loaded.config == SMALL
    content = tf.random.uniform([1, 24, 24, 3], seed=6)
    vector = net.predict_style(content)
    np.testing.assert_allclose(loaded.stylize(content, vector).numpy(), net.stylize(content, vector).numpy(),
                               atol=2e-3)  # weights stored as float16
    assert isinstance(fast.load_network(None), network.ArbitraryStyleNetwork)


def test_load_errors(net, tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        fast.load_network(str(tmp_path))
    folder = tmp_path / "other"
    net.save(str(folder))
    with open(folder / "config.json", "w") as f:
        f.write(mobile.MobileConfig(channels=(4, 8, 16), residual_blocks=1, bottleneck=6).to_json())
    with pytest.raises(ValueError, match="weights.npz: does not fit"):
        fast.load_network(str(folder))


def test_bundled_mobile_network():
    if not os.path.isdir(mobile.BUNDLED_DIR):
        pytest.skip("no bundled mobile network")
    size = sum(os.path.getsize(os.path.join(mobile.BUNDLED_DIR, f)) for f in os.listdir(mobile.BUNDLED_DIR))
    assert size < 3 * 2**20
    loaded = fast.load_network("mobile")  # the CLIs' --model=mobile
    assert isinstance(loaded, mobile.MobileStyleNetwork) and loaded.config.style_pool == 2


def test_arbitrary_loader_names_a_mobile_folder(net, tmp_path):
    net.save(str(tmp_path / "m"))
    with pytest.raises(ValueError, match="config.json: a phone-sized network"):
        network.ArbitraryStyleNetwork.load(str(tmp_path / "m"))
