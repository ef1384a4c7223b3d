"""Tiled inference (nst_tf.tiling): the grid, the stats path of both networks, tiled against untiled, no seams on a
flat photo, images smaller than a tile, and the one-line out-of-memory error."""

import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, last_line
from PIL import Image

from nst_tf import fast, tiling
from nst_tf.cli import common
from nst_tf.mobile import MobileConfig, MobileStyleNetwork
from nst_tf.network import ArbitraryStyleNetwork, NetworkConfig


def _randomised(net):
    """Every weight of `net` random (the zero-initialised heads, FiLM and projections too), so that each path of
    the stats code matters."""
    rng = np.random.default_rng(1)
    for model in net.models:
        for layer in model.layers:
            weights = layer.get_weights()
            if weights and not layer.name.startswith("block"):  # the encoder keeps its (random) VGG16 weights
                layer.set_weights([rng.normal(0.0, 0.5 / np.sqrt(max(1, w.size // w.shape[-1])), w.shape)
                                   .astype(np.float32) for w in weights])
    return net


@pytest.fixture(scope="module")
def nets():
    """A small arbitrary-style network with every option (linear transform, moment head, strength, palette) and a
    small phone-sized one (strength, palette, skips), random weights."""
    keras.utils.set_random_seed(0)
    arbitrary = ArbitraryStyleNetwork(NetworkConfig(decoder_channels=(16, 16, 16, 8, 8, 8), linear_rank=4,
                                                    moment_head=8, strength_units=4, palette=True))
    mobile = MobileStyleNetwork(MobileConfig(channels=(4, 8, 8), residual_blocks=1, bottleneck=8, strength_units=4,
                                             palette=True, skips=True))
    return {"arbitrary": _randomised(arbitrary), "mobile": _randomised(mobile)}


@pytest.fixture(scope="module")
def photo():
    """A smooth random 'photo' of odd size (not a multiple of the stride), values in [0, 1]: 2 x 3 windows of 256."""
    rng = np.random.default_rng(0)
    small = rng.uniform(size=(13, 19, 3)).astype(np.float32)
    return tf.image.resize(small, (181, 251), method="bicubic").numpy().clip(0.0, 1.0)


def _vector(net):
    style = tf.constant(np.random.default_rng(2).uniform(size=(1, 48, 48, 3)), tf.float32)
    return net.predict_style(style)


@pytest.mark.parametrize("length", [8, 264, 272, 1000, 1048, 3032])
@pytest.mark.parametrize("tile", [256, 264, 512])
def test_windows_cover_the_axis_with_weights_summing_to_one(length, tile):
    windows = tiling.axis_windows(length, tile)
    total = np.zeros(length)
    for w in windows:
        assert w.span[1] - w.span[0] <= tile and w.span[0] % 8 == 0 and w.span[1] % 8 == 0
        assert w.core[0] % 8 == 0 and w.span[0] <= w.core[0] < w.core[1] <= w.span[1]
        # every weighted position has CONTEXT pixels of the image around it, or the image border
        assert w.core[0] - w.span[0] >= tiling.CONTEXT or w.span[0] == 0
        assert w.span[1] - w.core[1] >= tiling.CONTEXT or w.span[1] == length
        weights = np.zeros(length)
        weights[w.span[0]:w.span[1]] = w.weights
        assert np.all(weights[:w.core[0]] == 0) and np.all(weights[w.core[1]:] == 0)
        total += weights
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    assert (len(windows) == 1) == (length <= tile)


def test_padding_is_the_untiled_paths():
    """pad_amounts mirrors fast.stylize_padded (a stand-in network returns what it is given)."""

    class Echo:
        def stylize(self, x, vector, strength):  # noqa: ARG002
            self.padded = x
            return x

    for height, width in ((301, 437), (20, 33), (64, 64), (9, 40)):
        content = np.random.default_rng(0).uniform(size=(height, width, 3)).astype(np.float32)
        echo = Echo()
        fast.stylize_padded(echo, tf.constant(content[None]), None)
        top, bottom, left, right = tiling.pad_amounts(height, width)
        np.testing.assert_array_equal(echo.padded.numpy()[0],
                                      np.pad(content, ((top, bottom), (left, right), (0, 0)), mode="reflect"))


@pytest.mark.parametrize("kind", ["arbitrary", "mobile"])
def test_stats_path_with_the_images_own_statistics_is_the_default_path(nets, kind):
    net = nets[kind]
    content = tf.constant(np.random.default_rng(3).uniform(size=(1, 64, 96, 3)), tf.float32)
    vector = _vector(net)
    for strength in (1.0, 0.4, 1.6):
        expected = net.stylize(content, vector, strength, clip=False)
        stats = net.image_stats(content, vector, strength)
        before_palette = net.stylize(content, vector, strength, clip=False, stats=stats)
        assert float(tf.reduce_max(tf.abs(before_palette - expected))) > 1e-3  # the palette layer was left out
        from nst_tf import palette

        mean, variance = tf.nn.moments(palette.to_opponent(before_palette), axes=[1, 2])
        out = net.stylize(content, vector, strength, clip=False,
                          stats={**stats, "output/mean": mean, "output/variance": variance})
        np.testing.assert_allclose(out.numpy(), expected.numpy(), atol=1e-5)


@pytest.mark.parametrize("kind", ["arbitrary", "mobile"])
def test_tiled_matches_untiled_at_odd_sizes(nets, photo, kind):
    """181 x 251 px in windows of 256 (2 x 3 tiles): the whole-image statistics accumulated over the tiles are the
    untiled ones, and each core has more context than the networks' receptive field, so the outputs agree to float
    precision (the issue's bound is 2/255 mean absolute error). Strength 0.5 also blends in the content's own
    vector (the arbitrary network's style matrix and palette of the whole photo)."""
    net = nets[kind]
    vector = _vector(net)
    for strength in (0.5,) if kind == "arbitrary" else (1.0, 0.5):
        untiled = fast.stylize_padded(net, tf.constant(photo[None]), vector, strength).numpy()[0]
        tiled = tiling.stylize_tiled(net, photo, vector, strength, tile=256)
        assert tiled.shape == photo.shape
        error = np.abs(tiled - untiled)
        assert error.mean() <= 2 / 255 and error.max() < 2e-3, (strength, error.mean(), error.max())
    downscaled = tiling.stylize_tiled(net, photo, vector, 1.0, tile=256, stats="downscaled", stats_size=126)
    assert np.abs(downscaled - fast.stylize_padded(net, tf.constant(photo[None]), vector).numpy()[0]).mean() < 0.1


def test_tiles_statistics_are_the_whole_images(nets, photo):
    net = nets["arbitrary"]
    vector = _vector(net)
    top, bottom, left, right = tiling.pad_amounts(*photo.shape[:2])
    padded = np.pad(photo, ((top, bottom), (left, right), (0, 0)), mode="reflect")
    rows, cols = tiling.axis_windows(padded.shape[0], 256), tiling.axis_windows(padded.shape[1], 256)
    assert len(rows) * len(cols) > 1
    accumulated = tiling.tiles_stats(net, padded, vector, 1.0, rows, cols)
    whole = net.image_stats(tf.constant(padded[None]), vector)
    assert accumulated.keys() == whole.keys()
    for key, value in whole.items():
        np.testing.assert_allclose(accumulated[key].numpy(), value.numpy(), rtol=1e-3, atol=1e-4, err_msg=key)


def test_image_smaller_than_one_tile(nets):
    net = nets["mobile"]
    vector = _vector(net)
    content = np.random.default_rng(4).uniform(size=(30, 41, 3)).astype(np.float32)
    untiled = fast.stylize_padded(net, tf.constant(content[None]), vector).numpy()[0]
    np.testing.assert_allclose(tiling.stylize_tiled(net, content, vector, tile=256), untiled, atol=1e-4)
    style = np.random.default_rng(5).uniform(size=(48, 48, 3)).astype(np.float32)
    np.testing.assert_array_equal(fast.stylize(net, content, [style], tile=256), fast.stylize(net, content, [style],
                                                                                              tile=0))


def test_flat_grey_photo_shows_no_tile_grid(nets):
    """A flat grey photo in 2 x 2 tiles: the output on the seams (where tiles are blended) deviates from the tile
    interiors by less than 1/255 (away from the photo's own border, where the network draws its border band)."""
    net = nets["arbitrary"]
    grey = np.full((400, 400, 3), 0.5, np.float32)
    out = tiling.stylize_tiled(net, grey, _vector(net), tile=384)
    top, _, _, _ = tiling.pad_amounts(400, 400)
    windows = tiling.axis_windows(400 + 2 * top, 384)
    assert len(windows) == 2
    seam = np.zeros(400 + 2 * top, bool)
    for w in windows:
        seam[w.span[0]:w.span[1]] |= (w.weights > 0) & (w.weights < 1)
    seam = seam[top:top + 400]
    inner = np.zeros(400, bool)
    inner[64:-64] = True  # away from the photo's own border
    on_seams = out[np.ix_(inner, inner)][(seam[inner][:, None] | seam[inner][None, :])]
    interior = out[np.ix_(inner & ~seam, inner & ~seam)].reshape(-1, 3)
    assert on_seams.size and interior.size
    deviation = np.abs(on_seams - interior.mean(axis=0)).max()
    assert deviation < 1 / 255, deviation


def test_out_of_memory_is_one_line_naming_the_size(nets, monkeypatch):
    net = nets["mobile"]
    style = np.random.default_rng(5).uniform(size=(48, 48, 3)).astype(np.float32)
    content = np.random.default_rng(4).uniform(size=(300, 280, 3)).astype(np.float32)

    def exhausted(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[1,16,4000,3000]")

    monkeypatch.setattr(net, "stylize", exhausted)
    with pytest.raises(MemoryError) as caught:
        fast.stylize(net, content, [style], tile=256)
    message = str(caught.value)
    assert message == common.out_of_memory_line(caught.value)
    assert "280x300 px in tiles of 256 px" in message and "--tile=" in message and "--size" in message
    assert "\n" not in message


def test_cli_out_of_memory_one_line_exit_and_no_file(tmp_path):
    """nst-stylize --method=fast with an allocation that fails (numpy's own MemoryError, forced by asking for an
    impossible array inside the fast path): one line, exit 1, no output file."""
    content, style, output = tmp_path / "photo.png", tmp_path / "style.png", tmp_path / "out.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)).save(content)
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(style)
    code = ("import sys, numpy as np\n"
            "from nst_tf import fast\n"
            "fast.stylize_padded = lambda *a, **k: np.empty((1 << 40, 1 << 20), np.float32)\n"
            "from nst_tf.cli import stylize\n"
            f"sys.argv = ['nst-stylize', '--method=fast', '--model=mobile', '--size=0', '--content={content}', "
            f"'--style={style}', '--output={output}']\n"
            "stylize.run()\n")
    import subprocess

    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 1, proc.stderr
    assert last_line(proc.stderr) == ("error: out of memory stylizing 90x70 px untiled: use tiles (--tile=256) or a "
                                      "smaller --size")
    assert "Traceback" not in proc.stderr and not output.exists()


def test_choose_tile_follows_the_free_memory(nets):
    net = nets["arbitrary"]
    assert tiling.choose_tile(net, available=0) == tiling.MIN_TILE
    assert tiling.choose_tile(net, available=1 << 50) == min(tiling.MAX_TILE, int(
        np.sqrt(tiling.MEMORY_CAP / tiling.BYTES_PER_PIXEL["arbitrary"])) // 8 * 8)
    small, large = tiling.choose_tile(net, available=2 << 30), tiling.choose_tile(net, available=4 << 30)
    assert small % 8 == 0 and tiling.MIN_TILE <= small < large
    assert tiling.available_memory() > 0
    with pytest.raises(ValueError, match="multiple of 8"):
        tiling.check_tile(300)


def test_tflite_reference_loop(nets, photo, tmp_path):
    """The stats and tile models of a small phone-sized network as TFLite (builtin ops only) and the tile-run-blend
    loop on the LiteRT interpreter: the untiled Keras output, to float precision (the photo is under the stats
    model's 1024 px, so its statistics are the whole photo's), and the SavedModels (TF Serving) give the same."""
    pytest.importorskip("ai_edge_litert")
    from nst_tf import export
    from nst_tf.export import tiled_tflite

    net = nets["mobile"]
    vector = _vector(net)
    models = tiled_tflite.write_tiled_models(net, str(tmp_path), "float32")
    for model in models.values():
        assert export.non_builtin_ops(model) == []
    out = tiled_tflite.stylize_tiled_tflite(models, photo, vector.numpy(), 0.7, tile=256)
    untiled = fast.stylize_padded(net, tf.constant(photo[None]), vector, 0.7).numpy()[0]
    error = np.abs(out - untiled)
    assert error.mean() <= 2 / 255 and error.max() < 1e-2, (error.mean(), error.max())
    served = tiled_tflite.stylize_tiled_with(tiled_tflite.saved_model_runner(str(tmp_path / "stats")),
                                             tiled_tflite.saved_model_runner(str(tmp_path / "tile")),
                                             photo, vector.numpy(), 0.7, tile=256)
    np.testing.assert_allclose(served, out, atol=1e-2)
