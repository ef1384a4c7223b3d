"""The strength control and the palette layer: hand-computed moments, exact warm starts, the trainer's sampled path."""

import json
from dataclasses import replace

import keras
import numpy as np
import pytest
import tensorflow as tf

from nst_tf import fast, losses, network, palette, strength, train
from nst_tf import weights as weights_lib
from nst_tf.mobile import MobileConfig, MobileStyleNetwork
from nst_tf.network import ArbitraryStyleNetwork, NetworkConfig

SMALL = NetworkConfig(decoder_channels=(16, 16, 8, 8, 8, 8), preprocessing="caffe")
STRONG = replace(SMALL, strength_units=8, palette=True)
SMALL_MOBILE = MobileConfig(channels=(8, 8, 8), residual_blocks=1, bottleneck=8, preprocessing="caffe")


def test_check_strength_and_column():
    assert strength.check_strength(2) == 2.0
    with pytest.raises(ValueError, match=r"strength must be in \[0, 2\], got 2.5"):
        strength.check_strength(2.5)
    column = strength.as_column(tf.constant([0.5, 3.0]), tf.constant(2)).numpy()
    np.testing.assert_array_equal(column, [[0.5], [2.0]])
    np.testing.assert_array_equal(strength.blend_amount(tf.constant([0.25, 1.5])).numpy(), [0.25, 1.0])
    np.testing.assert_array_equal(strength.loss_scale(tf.constant([0.5, 2.0])).numpy(), [0.25, 4.0])


def test_pixel_moments_by_hand():
    rgb = np.array([[[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]]], np.float32)  # a red and a blue pixel
    luminance = 1 / np.sqrt(3)  # both pixels: (1 + 0 + 0) / sqrt(3)
    red_green = np.array([1, 0]) / np.sqrt(2)
    yellow_blue = np.array([1, -2]) / np.sqrt(6)
    expected_mean = [luminance, red_green.mean(), yellow_blue.mean()]
    expected_std = np.sqrt(np.array([0.0, red_green.var(), yellow_blue.var()]) + 1e-4)
    np.testing.assert_allclose(palette.pixel_moments(rgb).numpy()[0], [*expected_mean, *expected_std], atol=1e-6)
    np.testing.assert_allclose(palette.from_opponent(palette.to_opponent(rgb)).numpy(), rgb, atol=1e-6)


def test_match_palette_gives_the_target_moments():
    rng = np.random.default_rng(0)
    image = rng.uniform(0.2, 0.6, (1, 16, 12, 3)).astype(np.float32)
    painting = rng.uniform(0.0, 1.0, (1, 10, 10, 3)).astype(np.float32) ** 2
    target = palette.pixel_moments(painting)
    matched = palette.pixel_moments(palette.match_palette(image, target)).numpy()
    np.testing.assert_allclose(matched, target.numpy(), atol=2e-3)  # the stds up to the variance floor (1e-4)


def test_palette_loss_by_hand():
    a = np.array([[[[0.1, 0.1, 0.1], [0.5, 0.5, 0.5]]]], np.float32)
    b = np.array([[[[0.7, 0.7, 0.7], [0.2, 0.2, 0.2]]]], np.float32)  # another order: sorting pairs 0.1-0.2, 0.5-0.7
    red = tf.constant([[1.0], [0.0], [0.0]])
    expected = ((0.1 - 0.2) ** 2 + (0.5 - 0.7) ** 2) / 2
    np.testing.assert_allclose(losses.palette_loss(a, b, directions=red).numpy(), [expected], rtol=1e-5)
    np.testing.assert_allclose(losses.palette_loss(a, a[:, :, ::-1]).numpy(), [0.0], atol=1e-7)  # order-free
    four = np.array([[[[0.0] * 3, [0.1] * 3, [0.6] * 3, [0.7] * 3]]], np.float32)  # 4 pixels against 2: quantiles
    np.testing.assert_allclose(losses.palette_loss(four, b, directions=red).numpy(),
                               [(0.2 ** 2 + 0.1 ** 2 + 0.1 ** 2 + 0.0) / 4], atol=1e-6)  # against 0.2, 0.2, 0.7, 0.7
    with tf.GradientTape() as tape:
        x = tf.Variable(a)
        loss = losses.palette_loss(x, b, directions=red)
    assert np.abs(tape.gradient(loss, x).numpy()).sum() > 0


def _random_network(config, weights_file):
    net = ArbitraryStyleNetwork(config)
    net.load_encoder_weights(weights_lib.resolve(weights_file, "vgg16"))
    return net


def test_strength_input_starts_exactly_where_the_network_was(random_vgg16_weights):
    """Zero-initialised FiLM: the decoder with a strength input computes the old decoder's output at any strength."""
    old = _random_network(SMALL, random_vgg16_weights)
    new = _random_network(replace(SMALL, strength_units=8), random_vgg16_weights)
    for layer in old.decoder.layers:
        if layer.weights:
            new.decoder.get_layer(layer.name).set_weights(layer.get_weights())
    content = tf.random.uniform([1, 40, 48, 3], seed=1)
    vector = old.predict_style(tf.random.uniform([1, 32, 32, 3], seed=2))
    for value in (0.0, 0.5, 1.0, 2.0):
        np.testing.assert_allclose(new.stylize(content, vector, value).numpy(), old.stylize(content, vector, value)
                                   .numpy(), atol=1e-6)


def test_strength_zero_uses_the_content_vector_and_palette(random_vgg16_weights):
    net = _random_network(STRONG, random_vgg16_weights)
    assert net.vector_size == SMALL.vector_size + palette.SIZE
    content = tf.random.uniform([2, 40, 48, 3], seed=1)
    vector = net.predict_style(tf.random.uniform([1, 32, 32, 3], seed=2))
    own = net.vector_of(net.encode(content), content)
    # strength 0 = the content's own vector whatever the style: the style vector does not matter
    np.testing.assert_allclose(net.stylize(content, vector, 0.0).numpy(), net.stylize(content, own, 0.0).numpy(),
                               atol=1e-5)
    out = net.stylize(content, vector, [1.0, 2.0], clip=False)  # one strength per image
    assert out.shape == (2, 40, 48, 3)
    # the palette's means exactly; its stds up to the variance floor (a random decoder's colours are nearly flat)
    moments, target = palette.pixel_moments(out).numpy(), np.repeat(vector[:, -6:], 2, 0)
    np.testing.assert_allclose(moments[:, :3], target[:, :3], atol=1e-4)
    np.testing.assert_allclose(moments[:, 3:], target[:, 3:], rtol=0.15)  # stds: a random decoder's are ~ the floor


def test_fast_stylize_checks_the_strength(random_vgg16_weights):
    net = _random_network(STRONG, random_vgg16_weights)
    content = np.random.default_rng(0).uniform(size=(20, 30, 3)).astype(np.float32)
    assert fast.stylize(net, content, [content], strength=2.0).shape == (20, 30, 3)
    with pytest.raises(ValueError, match="strength must be in"):
        fast.stylize(net, content, [content], strength=-0.1)


def test_mobile_strength_input_and_palette(tmp_path):
    config = replace(SMALL_MOBILE, strength_units=4, palette=True)
    net = MobileStyleNetwork(config)
    content = tf.random.uniform([1, 32, 40, 3], seed=1)
    vector = net.predict_style(tf.random.uniform([1, 32, 32, 3], seed=2))
    assert vector.shape == (1, config.vector_size) and config.vector_size == SMALL_MOBILE.vector_size + 6
    out = net.stylize(content, vector, 1.5, clip=False)
    moments, target = palette.pixel_moments(out).numpy(), vector[:, -6:].numpy()
    np.testing.assert_allclose(moments[:, :3], target[:, :3], atol=1e-4)
    np.testing.assert_allclose(moments[:, 3:], target[:, 3:], rtol=0.15)  # stds: a random decoder's are ~ the floor
    net.save(str(tmp_path / "m"), include_encoder=True)
    loaded = fast.load_network(str(tmp_path / "m"))
    assert loaded.config == config


def _config(folders, model_dir, weights, **kw):
    base = dict(content_dir=str(folders / "content"), style_dir=str(folders / "style"), model_dir=str(model_dir),
                weights=weights, steps=1, batch_size=2, crop=32, log_every=1, image_every=100, checkpoint_every=1,
                strength_max=2.0, palette_weight=10.0, identity_weight=1.0)
    return train.TrainConfig(**{**base, **kw})


def test_trainer_samples_the_strength_weighs_the_style_and_resumes(train_folders, tmp_path, random_vgg16_weights):
    config = _config(train_folders, tmp_path / "run", random_vgg16_weights)
    trainer = train.Trainer(config, network_config=STRONG)
    strengths = trainer.sample_strength(tf.constant(4000)).numpy()
    assert 0.0 <= strengths.min() < 0.05 and 1.95 < strengths.max() <= 2.0  # uniform over [0, 2]
    rng = np.random.default_rng(1)
    batch = tuple(tf.constant(rng.uniform(size=(2, 32, 32, 3)), tf.float32) for _ in range(2))
    fixed = {}
    for value in (0.0, 1.0, 2.0):  # style and palette weighed by k = strength^2, every output term by 1 / (1 + k)
        trainer.sample_strength = lambda b, v=value: tf.fill([b, 1], v)
        tf.random.set_seed(0)
        fixed[value], _ = trainer.compute_losses(*batch)
    assert float(tf.reduce_sum(fixed[0.0]["style"])) == 0.0 and float(tf.reduce_sum(fixed[0.0]["palette"])) == 0.0
    # the decoder's weights are the same for the three: at 1 and 2 the outputs differ only through the (zero) FiLM
    np.testing.assert_allclose(fixed[2.0]["style"].numpy(), (4 / 5) / (1 / 2) * fixed[1.0]["style"].numpy(), rtol=1e-4)
    np.testing.assert_allclose(fixed[2.0]["content"].numpy(), (1 / 5) / (1 / 2) * fixed[1.0]["content"].numpy(),
                               rtol=1e-4)
    del trainer.sample_strength
    zero_share = train.Trainer(replace(config, strength_zero=0.5, model_dir=str(tmp_path / "z")), network_config=STRONG)
    drawn = zero_share.sample_strength(tf.constant(4000)).numpy()
    assert 0.45 < np.mean(drawn == 0.0) < 0.55 and drawn.max() > 1.9
    trainer.fit()
    resumed = train.Trainer(replace(config, steps=2), network_config=STRONG)
    assert resumed.current_step == 1
    for a, b in zip(resumed.net.decoder.get_weights(), trainer.net.decoder.get_weights()):
        np.testing.assert_array_equal(a, b)
    resumed.fit()
    assert resumed.current_step == 2
    saved = fast.load_network(str(tmp_path / "run" / "network"))
    assert saved.config == STRONG


def test_mobile_trainer_with_strength_warm_starts_from_one_without(train_folders, tmp_path, random_vgg16_weights):
    source = MobileStyleNetwork(SMALL_MOBILE)
    source.save(str(tmp_path / "source"), include_encoder=True)
    config = replace(SMALL_MOBILE, strength_units=4, palette=True)
    trainer = train.Trainer(_config(train_folders, tmp_path / "run", random_vgg16_weights, content_target="photo"),
                            network_config=config)
    fresh = trainer.init_decoder_from(str(tmp_path / "source"))
    assert set(fresh) == {"strength_embed1", "strength_excess", "strength_embed2", "strength_shift"}
    last = trainer.fit()
    assert {"identity", "content", "style", "palette", "tv"} <= set(last) and np.isfinite(last["total"])


def test_mobile_skips_warm_start_exactly(train_folders, tmp_path, random_vgg16_weights):
    """Skips added to a trained phone-sized network start at zero: the warm-started network computes what the source
    did at every strength, and the skip layers are the fresh ones; a network with skips does not fit one without."""
    config = replace(SMALL_MOBILE, strength_units=4, palette=True)
    source = MobileStyleNetwork(config)
    rng = np.random.default_rng(0)
    for layer in source.transformer.layers:  # the strength and conditioning projections trained (non-zero)
        if layer.get_weights():
            layer.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32) for w in layer.get_weights()])
    source.save(str(tmp_path / "source"), include_encoder=True)
    source = fast.load_network(str(tmp_path / "source"))  # float16 weights, as saved
    run_config = _config(train_folders, tmp_path / "run", random_vgg16_weights, content_target="photo")
    trainer = train.Trainer(run_config, network_config=replace(config, skips=True))
    assert set(trainer.init_decoder_from(str(tmp_path / "source"))) == {"skip1", "skip1_film", "skip2", "skip2_film"}
    trainer.net.encoder.set_weights(source.encoder.get_weights())
    content = tf.random.uniform([1, 32, 40, 3], seed=1)
    vector = source.predict_style(tf.random.uniform([1, 32, 32, 3], seed=2))
    for value in (0.0, 0.5, 1.0, 2.0):
        np.testing.assert_allclose(trainer.net.stylize(content, vector, value).numpy(),
                                   source.stylize(content, vector, value).numpy(), atol=1e-6)
    trainer.net.save(str(tmp_path / "skips"), include_encoder=True)
    plain = train.Trainer(replace(run_config, model_dir=str(tmp_path / "plain")), network_config=config)
    with pytest.raises(train.TrainingError, match="does not fit"):
        plain.init_decoder_from(str(tmp_path / "skips"))


def test_excess_ramps_zero_up_to_one_and_fresh_in_a_warm_start(train_folders, tmp_path, random_vgg16_weights):
    """A network saved before the ramps of the excess over 1 existed loads with them at zero (the same output at every
    strength), and a warm start from it initialises them afresh (non-zero, so they can learn)."""
    net = _random_network(STRONG, random_vgg16_weights)
    net.save(str(tmp_path / "net"))
    arrays = dict(np.load(tmp_path / "net" / "weights.npz"))
    np.savez(tmp_path / "net" / "weights.npz", **{k: v for k, v in arrays.items() if "strength_excess" not in k})
    old = ArbitraryStyleNetwork.load(str(tmp_path / "net"))
    assert not np.any(old.decoder.get_layer("strength_excess").get_weights()[0])
    trainer = train.Trainer(_config(train_folders, tmp_path / "run", random_vgg16_weights), network_config=STRONG)
    assert "strength_excess" in trainer.init_decoder_from(str(tmp_path / "net"))
    assert np.any(trainer.net.decoder.get_layer("strength_excess").get_weights()[0])
    trainer.net.encoder.set_weights(old.encoder.get_weights())
    content = tf.random.uniform([1, 40, 48, 3], seed=1)
    vector = old.predict_style(tf.random.uniform([1, 32, 32, 3], seed=2))
    for value in (0.0, 0.7, 1.0):  # the ramps are zero up to strength 1: the warm start is exact there
        np.testing.assert_allclose(trainer.net.stylize(content, vector, value).numpy(),
                                   old.stylize(content, vector, value).numpy(), atol=1e-5)


FADE = replace(STRONG, skip_fade=True)


def _random_skips(decoder, seed: int = 0):
    """`decoder` with random weights in its (zero-initialised) skip projections and FiLM projections, as training
    leaves them: without them the skips add nothing and fading them changes nothing."""
    rng = np.random.default_rng(seed)
    for layer in decoder.layers:
        if layer.weights and (layer.name.endswith("_film") or layer.name in ("skip1", "skip2", "skip3")):
            kernel, bias = layer.get_weights()
            layer.set_weights([rng.normal(0, 0.3, kernel.shape).astype(np.float32),
                               rng.normal(0, 0.1, bias.shape).astype(np.float32)])
    return decoder


def _decoder_inputs(seed: int, batch: int = 2):
    """Random relu1_1..relu4_1-shaped inputs of a 32 x 40 px image (the decoder's AdaIN'd levels)."""
    rng = np.random.default_rng(seed)
    return [tf.constant(rng.normal(size=(batch, 32 // f, 40 // f, c)), tf.float32)
            for f, c in ((1, 64), (2, 128), (4, 256), (8, 512))]


def test_skip_fade_share_by_hand():
    share = strength.SkipFade()(tf.constant([[0.0], [1.0], [1.5], [2.0]])).numpy()
    assert share.shape == (4, 1, 1, 1)
    # (2 - s) / (2 - 1) clipped to [0, 1]: 2 -> 1 at 0 and 1, 0.5 / 1 at 1.5, 0 / 1 at 2
    np.testing.assert_array_equal(share.reshape(-1), [1.0, 1.0, 0.5, 0.0])


def test_skip_fade_config_round_trip_and_checks():
    assert json.loads(FADE.to_json())["skip_fade"] is True
    assert NetworkConfig.from_json(FADE.to_json()) == FADE
    old = json.loads(STRONG.to_json())
    del old["skip_fade"]  # a network saved before skip_fade existed
    loaded = NetworkConfig.from_json(json.dumps(old))
    assert loaded.skip_fade is False and loaded == STRONG
    with pytest.raises(ValueError, match="skip_fade needs strength_units > 0 and skip_levels > 0"):
        replace(SMALL, skip_fade=True)  # no strength input
    with pytest.raises(ValueError, match="skip_fade needs strength_units > 0 and skip_levels > 0"):
        replace(FADE, skip_levels=0)  # no skips to fade


def test_skip_fade_decoder_is_the_plain_one_up_to_strength_1_then_drops_the_skips():
    """The same weights with and without skip_fade: equal outputs up to strength 1; at 1.5 the faded decoder is the
    plain one with half of every skip projection (conv and FiLM shift halved: the projection is linear in them); at
    2 the skip inputs do not reach the output."""
    keras.utils.set_random_seed(0)
    plain = _random_skips(network.build_decoder(STRONG))
    faded = network.build_decoder(FADE)
    assert {layer.name for layer in faded.layers if layer.weights} == \
        {layer.name for layer in plain.layers if layer.weights}  # no weights of its own: a warm start fits
    for layer in plain.layers:
        if layer.weights:
            faded.get_layer(layer.name).set_weights(layer.get_weights())
    levels = _decoder_inputs(1)

    def run(decoder, value, inputs=levels):
        return decoder([*inputs, tf.fill([2, 1], value)]).numpy()

    for value in (0.0, 0.5, 1.0):
        np.testing.assert_array_equal(run(faded, value), run(plain, value))
    for value in (1.5, 2.0):
        assert np.abs(run(faded, value) - run(plain, value)).mean() > 1e-3
    halved = network.build_decoder(STRONG)
    halved.set_weights(plain.get_weights())
    for level in (1, 2, 3):
        kernel, bias = plain.get_layer(f"skip{level}").get_weights()
        halved.get_layer(f"skip{level}").set_weights([kernel / 2, bias / 2])
        kernel, bias = plain.get_layer(f"skip{level}_film").get_weights()
        shift = kernel.shape[-1] // 2  # scale then shift
        kernel, bias = kernel.copy(), bias.copy()
        kernel[:, shift:] /= 2
        bias[shift:] /= 2
        halved.get_layer(f"skip{level}_film").set_weights([kernel, bias])
    np.testing.assert_allclose(run(faded, 1.5), run(halved, 1.5), atol=1e-5)
    other = [*_decoder_inputs(2)[:3], levels[3]]  # other skip inputs, the same relu4_1
    np.testing.assert_array_equal(run(faded, 2.0, other), run(faded, 2.0))
    assert np.abs(run(faded, 1.9, other) - run(faded, 1.9)).mean() > 1e-4  # below 2 they still count
    assert np.abs(run(plain, 2.0, other) - run(plain, 2.0)).mean() > 1e-3  # and without skip_fade at 2


def test_skip_fade_network_stylizes_tiled_and_saves(random_vgg16_weights, tmp_path):
    """fast.stylize of a skip_fade network: the tiled path (whole-image statistics) gives the untiled output at a
    strength where the skips are half faded, strengths 1 and 2 differ, and the network saves and loads."""
    keras.utils.set_random_seed(0)
    net = _random_network(FADE, random_vgg16_weights)
    _random_skips(net.decoder)
    net.save(str(tmp_path / "net"))
    net = fast.load_network(str(tmp_path / "net"))
    assert net.config == FADE
    rng = np.random.default_rng(3)
    photo = rng.uniform(size=(150, 270, 3)).astype(np.float32)
    style = rng.uniform(size=(48, 48, 3)).astype(np.float32)
    untiled = fast.stylize(net, photo, [style], strength=1.5, tile=0)
    tiled = fast.stylize(net, photo, [style], strength=1.5, tile=256)
    np.testing.assert_allclose(tiled, untiled, atol=2e-4)
    assert np.abs(fast.stylize(net, photo, [style], strength=2.0, tile=0) - fast.stylize(
        net, photo, [style], strength=1.0, tile=0)).mean() > 1e-3


def test_warm_start_into_skip_fade_is_exact_up_to_strength_1(train_folders, tmp_path, random_vgg16_weights):
    """Trainer.init_decoder_from a network without skip_fade into one with it: every layer copied (skip_fade has no
    weights), the same output up to strength 1, another above."""
    keras.utils.set_random_seed(0)
    source = _random_network(STRONG, random_vgg16_weights)
    _random_skips(source.decoder)
    source.save(str(tmp_path / "source"))
    old = ArbitraryStyleNetwork.load(str(tmp_path / "source"))
    trainer = train.Trainer(_config(train_folders, tmp_path / "run", random_vgg16_weights), network_config=FADE)
    assert trainer.init_decoder_from(str(tmp_path / "source")) == []
    trainer.net.encoder.set_weights(old.encoder.get_weights())
    content = tf.random.uniform([1, 40, 48, 3], seed=1)
    vector = old.predict_style(tf.random.uniform([1, 32, 32, 3], seed=2))
    for value in (0.0, 0.5, 1.0):
        np.testing.assert_allclose(trainer.net.stylize(content, vector, value).numpy(),
                                   old.stylize(content, vector, value).numpy(), atol=1e-5)
    assert np.abs(trainer.net.stylize(content, vector, 2.0).numpy() - old.stylize(content, vector, 2.0).numpy()
                  ).mean() > 1e-3
