"""The arbitrary-style network: AdaIN math, the two-part interface, any-size input, saving."""

import dataclasses
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, last_line

from nst_tf import fast
from nst_tf.network import (
    ArbitraryStyleNetwork,
    Covariance,
    MatrixMix,
    NetworkConfig,
    adain,
    average_folders,
    blend_vectors,
    build_decoder,
    levels_vector,
    moments_vector,
    multi_adain,
    reflect_pad,
    split_vector,
    write_folder,
)


@pytest.fixture(scope="module")
def net():
    return ArbitraryStyleNetwork.load()  # the bundled weights


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


def test_config_levels_and_old_files():
    assert NetworkConfig().vector_size == 2 * (64 + 128 + 256 + 512)
    assert NetworkConfig(skip_levels=1).levels == ("block3_conv1", "block4_conv1")
    old = '{"decoder_channels": [256, 128, 128, 64, 64, 32], "preprocessing": "torch", "upsample": "nearest"}'
    assert NetworkConfig.from_json(old).skip_levels == 0  # saved before skips existed: relu4_1 only
    assert NetworkConfig.from_json(old).vector_size == 1024
    with pytest.raises(ValueError, match="skip_levels"):
        NetworkConfig(skip_levels=4)


def test_blend_vectors():
    style, content = tf.constant([[4.0, 8.0]]), tf.constant([[0.0, 0.0]])
    np.testing.assert_allclose(blend_vectors(style, content, 0.25).numpy(), [[1.0, 2.0]])
    np.testing.assert_allclose(blend_vectors(style, content, 1.5).numpy(), [[4.0, 8.0]])  # clipped to 1


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


def test_average_folders_by_hand(tmp_path):
    config = NetworkConfig().to_json()
    write_folder(str(tmp_path / "a"), {"decoder/x/0": np.array([1.0, 2.0]), "decoder/y/0": np.array([[3.0]])}, config)
    write_folder(str(tmp_path / "b"), {"decoder/x/0": np.array([3.0, 5.0]), "decoder/y/0": np.array([[6.0]])}, config)
    average_folders([str(tmp_path / "a"), str(tmp_path / "b")], str(tmp_path / "mean"))
    with np.load(tmp_path / "mean" / "weights.npz") as mean:
        np.testing.assert_array_equal(mean["decoder/x/0"], [2.0, 3.5])
        np.testing.assert_array_equal(mean["decoder/y/0"], [[4.5]])
        assert mean["decoder/x/0"].dtype == np.float16  # as every saved network
    assert (tmp_path / "mean" / "config.json").read_text() == config
    write_folder(str(tmp_path / "c"), {"decoder/x/0": np.array([1.0, 2.0])}, config)
    with pytest.raises(ValueError, match="not the architecture"):
        average_folders([str(tmp_path / "a"), str(tmp_path / "c")], str(tmp_path / "bad"))
    with pytest.raises(FileNotFoundError, match=r"/nope/config.json: missing \(a model folder holds"):
        average_folders([str(tmp_path / "a"), str(tmp_path / "nope")], str(tmp_path / "bad"))
    assert not (tmp_path / "bad").exists()  # nothing written on either error
    tool = [sys.executable, os.path.join(ROOT, "tools", "average_networks.py")]  # its command line
    proc = subprocess.run([*tool, f"--out={tmp_path / 'cli2'}", str(tmp_path / "a"), str(tmp_path / "c")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and last_line(proc.stderr).startswith(f"error: {tmp_path / 'c'}: not the arch")
    assert not (tmp_path / "cli2" / "weights.npz").exists()
    # weighted: 0.75 a + 0.25 b; and a network without the moment head counts as one with a zero head
    headed = NetworkConfig(moment_head=2).to_json()
    write_folder(str(tmp_path / "h"), {"decoder/x/0": np.array([3.0, 5.0]), "decoder/y/0": np.array([[6.0]]),
                                       "moment_head/mhead_1/0": np.array([7.0]),
                                       "moment_head/mhead_2/0": np.array([8.0])}, headed)
    average_folders([str(tmp_path / "a"), str(tmp_path / "h")], str(tmp_path / "mix"), weights=[3, 1])
    with np.load(tmp_path / "mix" / "weights.npz") as mix:
        np.testing.assert_array_equal(mix["decoder/x/0"], [1.5, 2.75])
        np.testing.assert_array_equal(mix["moment_head/mhead_1/0"], [7.0])  # the same first layer in both
        np.testing.assert_array_equal(mix["moment_head/mhead_2/0"], [2.0])  # 0.75 * 0 + 0.25 * 8
    assert (tmp_path / "mix" / "config.json").read_text() == headed
    with pytest.raises(ValueError, match="2 weights for 1 folders"):
        average_folders([str(tmp_path / "a")], str(tmp_path / "bad"), weights=[1, 1])


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        ArbitraryStyleNetwork.load(str(tmp_path))


def test_bundled_weights_small():
    import os

    from nst_tf.network import BUNDLED_DIR

    size = sum(os.path.getsize(os.path.join(BUNDLED_DIR, f)) for f in os.listdir(BUNDLED_DIR))
    assert size < 20 * 1024 * 1024


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


def _variant(net: ArbitraryStyleNetwork, **changes) -> ArbitraryStyleNetwork:
    """`net` with other config fields; the parts both have keep `net`'s weights, the others their initialisation."""
    other = ArbitraryStyleNetwork(dataclasses.replace(net.config, **changes))
    theirs = {m.name: m for m in net.models}
    for model in other.models:
        if model.name in theirs:
            model.set_weights(theirs[model.name].get_weights())
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
    by_hand = tf.clip_by_value(net.decode(net.styled_levels(levels, shifted)), 0, 1)
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
    extras = {"linear_rank": 0, "moment_head": 0, "strength_units": 0, "palette": False}
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
