"""The arbitrary-style network: its configuration, the two-part interface, any-size input, saving, the linear
transform and the moment head."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from nst_tf import fast
from nst_tf.network import ArbitraryStyleNetwork, NetworkConfig, build_decoder


@pytest.fixture(scope="module")
def net():
    return ArbitraryStyleNetwork.load()  # the bundled weights


def test_config_levels_and_old_files():
    assert NetworkConfig().vector_size == 2 * (64 + 128 + 256 + 512)
    assert NetworkConfig(skip_levels=1).levels == ("block3_conv1", "block4_conv1")
    old = '{"decoder_channels": [256, 128, 128, 64, 64, 32], "preprocessing": "torch", "upsample": "nearest"}'
    assert NetworkConfig.from_json(old).skip_levels == 0  # saved before skips existed: relu4_1 only
    assert NetworkConfig.from_json(old).vector_size == 1024
    with pytest.raises(ValueError, match="skip_levels"):
        NetworkConfig(skip_levels=4)


def test_decoder_is_checkerboard_free():
    decoder = build_decoder(NetworkConfig())
    kinds = {type(layer).__name__ for layer in decoder.layers}
    assert "Conv2DTranspose" not in kinds and "ResizeUpsampling" in kinds and "ReflectionPadding2D" in kinds
    assert all(layer.padding == "valid" for layer in decoder.layers if type(layer).__name__ == "Conv2D")


def test_two_part_interface_matches_combined(net):
    rng = np.random.default_rng(0)
    content = tf.constant(rng.uniform(size=(2, 64, 48, 3)), tf.float32)
    style = tf.constant(rng.uniform(size=(1, 40, 40, 3)), tf.float32)
    vector = net.predict_style(style)
    assert vector.shape == (1, net.vector_size)
    combined = net(content, style)
    np.testing.assert_allclose(net.stylize(content, vector).numpy(), combined.numpy(), atol=1e-6)
    assert combined.shape == content.shape
    assert float(tf.reduce_min(combined)) >= 0 and float(tf.reduce_max(combined)) <= 1


def test_alpha_zero_ignores_style(net):
    rng = np.random.default_rng(1)
    content = tf.constant(rng.uniform(size=(1, 32, 32, 3)), tf.float32)
    a = net.stylize(content, net.predict_style(tf.constant(rng.uniform(size=(1, 32, 32, 3)), tf.float32)), 0.0)
    b = net.stylize(content, net.predict_style(tf.zeros([1, 32, 32, 3])), 0.0)
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_any_size_and_blending(net):
    rng = np.random.default_rng(2)
    content = rng.uniform(size=(37, 53, 3)).astype(np.float32)
    s1, s2 = (rng.uniform(size=(48, 48, 3)).astype(np.float32) for _ in range(2))
    out = fast.stylize(net, content, [s1, s2], strength=0.8, blend=[3, 1])
    assert out.shape == content.shape
    v = fast.style_vector(net, [s1, s2], [3, 1])
    expected = 0.75 * net.predict_style(s1[None]) + 0.25 * net.predict_style(s2[None])
    np.testing.assert_allclose(v.numpy(), expected.numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match=r"strength must be in \[0, 2\]"):
        fast.stylize(net, content, [s1], strength=2.5)
    with pytest.raises(ValueError, match="style blend"):
        fast.style_vector(net, [s1], [1, 2])


def test_save_load_round_trip(net, tmp_path):
    net.save(str(tmp_path))
    again = ArbitraryStyleNetwork.load(str(tmp_path))
    x = tf.constant(np.random.default_rng(3).uniform(size=(1, 32, 32, 3)), tf.float32)
    np.testing.assert_allclose(again(x, x).numpy(), net(x, x).numpy(), atol=1e-6)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        ArbitraryStyleNetwork.load(str(tmp_path))


def test_bundled_weights_small():
    import os

    from nst_tf.network import BUNDLED_DIR

    size = sum(os.path.getsize(os.path.join(BUNDLED_DIR, f)) for f in os.listdir(BUNDLED_DIR))
    assert size < 20 * 1024 * 1024


def _variant(net: ArbitraryStyleNetwork, **changes) -> ArbitraryStyleNetwork:
    """`net` with other config fields; the parts both have keep `net`'s weights, the others their initialisation."""
    other = ArbitraryStyleNetwork(dataclasses.replace(net.config, **changes))
    theirs = {m.name: m for m in net.models}
    for model in other.models:
        if model.name not in theirs:
            continue
        source = {layer.name: layer for layer in theirs[model.name].layers}
        for layer in model.layers:  # by layer: a variant without the strength input has no FiLM layers
            if layer.weights and layer.name in source:
                layer.set_weights(source[layer.name].get_weights())
    return other


def test_linear_transform_starts_as_adain_then_mixes_channels(net, tmp_path):
    net = _variant(net, linear_rank=0, moment_head=0)  # the bundled encoder and decoder: AdaIN alone
    keras.utils.set_random_seed(0)  # the transform's random layers: the same whatever ran before in this process
    linear = _variant(net, linear_rank=4)
    assert linear.vector_size == net.vector_size + 16
    assert [m.name for m in linear.models] == ["encoder", "decoder", "style_net", "transfer"]
    rng = np.random.default_rng(8)
    content = tf.constant(rng.uniform(size=(1, 40, 48, 3)), tf.float32)
    style = tf.constant(rng.uniform(size=(1, 32, 32, 3)), tf.float32)
    vector = linear.predict_style(style)
    moments = net.config.moments_size  # the matrix goes between the moments and the palette, if any
    np.testing.assert_allclose(np.concatenate([vector[:, :moments], vector[:, moments + 16:]], axis=1),
                               net.predict_style(style).numpy(), rtol=1e-6)
    # zero-initialised projection: exactly the AdaIN network, so a warm start changes nothing
    np.testing.assert_allclose(linear.stylize(content, vector).numpy(), net.stylize(content, net.predict_style(style))
                               .numpy(), atol=1e-6)
    unzip = linear.transfer.get_layer("unzip")
    kernel, bias = unzip.get_weights()
    unzip.set_weights([rng.normal(0, 2.0, kernel.shape).astype(np.float32), bias])
    mixed = linear.stylize(content, vector)
    assert float(tf.reduce_max(tf.abs(mixed - net.stylize(content, net.predict_style(style))))) > 0.01
    other = linear.predict_style(tf.constant(rng.uniform(size=(1, 32, 32, 3)), tf.float32))
    np.testing.assert_allclose(linear.stylize(content, vector, 0.0).numpy(), linear.stylize(content, other, 0.0)
                               .numpy(), atol=1e-5)  # alpha 0: the content's own vector, matrix included
    linear.save(str(tmp_path))
    again = ArbitraryStyleNetwork.load(str(tmp_path))
    assert again.config.linear_rank == 4
    np.testing.assert_allclose(again.stylize(content, again.predict_style(style)).numpy(), mixed.numpy(), atol=2e-2)


def test_moment_head_starts_as_the_network_then_corrects_the_targets(net, tmp_path):
    net = _variant(net, moment_head=0)  # the bundled network without its head
    headed = _variant(net, moment_head=8)
    assert headed.vector_size == net.vector_size  # the head is in the stylizer: the style vector is unchanged
    assert [m.name for m in headed.models][-1] == "moment_head"
    rng = np.random.default_rng(9)
    content = tf.constant(rng.uniform(size=(1, 40, 48, 3)), tf.float32)
    style = tf.constant(rng.uniform(size=(1, 32, 32, 3)), tf.float32)
    vector = net.predict_style(style)
    np.testing.assert_array_equal(headed.predict_style(style).numpy(), vector.numpy())
    plain = net.stylize(content, vector)
    np.testing.assert_allclose(headed.stylize(content, vector).numpy(), plain.numpy(), atol=1e-6)  # zero head
    last = headed.moment_head.get_layer("mhead_2")
    kernel, bias = last.get_weights()
    bias = rng.normal(0, 0.5, bias.shape).astype(np.float32)
    last.set_weights([kernel, bias])  # zero kernel: the bias is a constant correction
    corrected = headed.stylize(content, vector)
    assert float(tf.reduce_max(tf.abs(corrected - plain))) > 0.01
    # by hand: AdaIN to the moments shifted by the bias
    levels = net.encode(content)
    moments = vector[:, :net.config.moments_size] + bias.reshape(1, -1)
    shifted = tf.concat([moments, vector[:, net.config.moments_size:]], axis=-1)
    by_hand = tf.clip_by_value(net.finish(net.decode(net.styled_levels(levels, shifted)), shifted), 0, 1)
    np.testing.assert_allclose(corrected.numpy(), by_hand.numpy(), atol=1e-5)
    # alpha 0 scales the correction away: the content's own look, as without the head
    np.testing.assert_allclose(headed.stylize(content, vector, 0.0).numpy(), net.stylize(content, vector, 0.0).numpy(),
                               atol=1e-5)
    headed.save(str(tmp_path))
    again = ArbitraryStyleNetwork.load(str(tmp_path))
    assert again.config.moment_head == 8
    np.testing.assert_allclose(again.stylize(content, vector).numpy(), corrected.numpy(), atol=2e-2)


def _adain_alone(net: ArbitraryStyleNetwork) -> ArbitraryStyleNetwork:
    """`net`'s encoder and decoder without the parts a hand computation would have to repeat (transform, head...)."""
    extras = {"linear_rank": 0, "moment_head": 0, "strength_units": 0, "palette": False, "skip_fade": False}
    fields = {f.name for f in dataclasses.fields(net.config)}
    return _variant(net, **{k: v for k, v in extras.items() if k in fields})


def test_two_part_interface_against_a_hand_computation(net):
    """predict_style is each used level's per-channel mean and std (sqrt(variance + 1e-5)) of the encoder's features,
    shallow to deep; stylize gives every content level those statistics (AdaIN by hand, in numpy) and decodes."""
    plain = _adain_alone(net)
    rng = np.random.default_rng(11)
    content = rng.uniform(size=(2, 40, 48, 3)).astype(np.float32)
    style = rng.uniform(size=(1, 32, 40, 3)).astype(np.float32) ** 2  # darker than the content: other moments

    def hand_moments(levels):
        parts = [np.concatenate([f.mean(axis=(1, 2)), np.sqrt(f.var(axis=(1, 2)) + 1e-5)], axis=-1) for f in levels]
        return np.concatenate(parts, axis=-1)

    def encoded(images):
        features = [f.numpy().astype(np.float64) for f in plain.encoder(tf.constant(images))]
        return features[len(features) - len(plain.config.levels):]  # the used levels, shallow to deep

    style_levels = encoded(style)
    vector = hand_moments(style_levels)
    assert vector.shape == (1, plain.vector_size)
    np.testing.assert_allclose(plain.predict_style(style).numpy(), vector, rtol=1e-4, atol=1e-4)
    styled = []
    for f, target in zip(encoded(content), style_levels):
        normalized = (f - f.mean(axis=(1, 2), keepdims=True)) / np.sqrt(f.var(axis=(1, 2), keepdims=True) + 1e-5)
        styled.append(normalized * np.sqrt(target.var(axis=(1, 2), keepdims=True) + 1e-5)
                      + target.mean(axis=(1, 2), keepdims=True))
    decoded = plain.decoder([tf.constant(s, tf.float32) for s in styled] if len(styled) > 1 else
                            tf.constant(styled[0], tf.float32))
    by_hand = np.clip(decoded.numpy(), 0.0, 1.0)
    assert by_hand.shape == content.shape and by_hand.std() > 0.01
    for output in (plain.stylize(content, vector.astype(np.float32)), plain(content, style)):
        np.testing.assert_allclose(output.numpy(), by_hand, atol=2e-4)
    # the bundled network's own vector: those moments first (its style matrix and any further parts after them)
    np.testing.assert_allclose(net.predict_style(style).numpy()[:, :vector.shape[1]], vector, rtol=1e-4, atol=1e-4)
