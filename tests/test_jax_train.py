"""tools/jax_train.py and tools/jaxnst (the trainer's step in JAX, for accelerator machines without TensorFlow)
against nst_tf.train.

JAX (CPU) is in the test extra, so CI runs these; skipped where JAX is not installed. The tool's own runs (save,
resume, the student's network folder, the strength recipe) are slow-marked: benchmarks/slow_checks.py runs them.
"""

import importlib.util
import os
import sys
from dataclasses import replace

import keras
import numpy as np
import pytest
import tensorflow as tf

jax = pytest.importorskip("jax")

from nst_tf import network, network_io, train  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _temp_folder(prefix: str) -> str:
    """A temp folder removed when pytest exits (made at import, where no tmp_path fixture is at hand)."""
    import atexit
    import shutil
    import tempfile

    out = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, out, True)
    return out


def _port_design(directory: str) -> str:
    """The network folder `directory` in the design the JAX port trains: without the strength input (FiLM layers,
    ramps) and the palette layer, which tools/jax_train.py does not have; the folder itself when it has neither."""
    import json

    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    if not (config.get("strength_units") or config.get("palette")):
        return directory
    out = _temp_folder("nst_port_design_")
    with np.load(os.path.join(directory, "weights.npz")) as data:
        kept = {k: data[k] for k in data.files if not (k.split("/")[1].startswith("strength_") or "_film" in k)}
    network_io.write_folder(out, kept, json.dumps({**config, "strength_units": 0, "palette": False, "skip_fade": False},
                                                  sort_keys=True))
    return out


BUNDLED_DIR = _port_design(network.BUNDLED_DIR)  # the bundled network's weights in the port's design
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sys.path.insert(0, os.path.join(ROOT, "tools"))  # tools/jaxnst, as `python tools/jax_train.py` finds it
from jaxnst import data as jd  # noqa: E402
from jaxnst import losses as jl  # noqa: E402
from jaxnst import model as jm  # noqa: E402
from jaxnst import train as jtr  # noqa: E402


def _recipe(**changes) -> "jl.Recipe":
    """The loss weights these tests give the TensorFlow trainers below (photo content target)."""
    return jl.Recipe(**{"content_weight": 1.0, "style_weight": 10.0, "tv_weight": 1.0, "identity_weight": 10.0,
                        "style_layers": STYLE_LAYERS, **changes})


@pytest.fixture(scope="module")
def trainer(tmp_path_factory, lpips_weights):
    """The TensorFlow trainer started from the bundled network (AdaIN plus the trained linear transform)."""
    root = tmp_path_factory.mktemp("jax_port")
    rng = np.random.default_rng(0)
    for name in ("content", "style"):
        (root / name).mkdir()
        keras.utils.save_img(str(root / name / "a.png"), rng.random((40, 40, 3)))
    config = train.TrainConfig(content_dir=str(root / "content"), style_dir=str(root / "style"),
                               model_dir=str(root / "run"), weights=lpips_weights, batch_size=2,
                               content_target="photo", style_layers=",".join(STYLE_LAYERS),
                               identity_weight=10, style_weight=10, tv_weight=1, content_weight=1,
                               learning_rate=5e-4, lr_decay=5e-5)
    t = train.Trainer(config, network_config=network.ArbitraryStyleNetwork.load(BUNDLED_DIR).config)
    t.init_decoder_from(BUNDLED_DIR)
    assert t.net.config.linear_rank and np.any(t.net.transfer.get_layer("unzip").get_weights()[0])
    return t


@pytest.fixture(scope="module")
def adain_trainer(trainer, tmp_path_factory):
    """The same run without the linear transform (AdaIN alone), the bundled decoder's weights."""
    config = train.TrainConfig(**{**vars(trainer.config), "model_dir": str(tmp_path_factory.mktemp("adain"))})
    t = train.Trainer(config, network_config=replace(trainer.net.config, linear_rank=0))
    t.net.decoder.set_weights(trainer.net.decoder.get_weights())
    return t


@pytest.fixture(scope="module")
def head_trainer(trainer, tmp_path_factory):
    """The bundled network with a moment head whose weights are small random numbers (so that it acts)."""
    config = train.TrainConfig(**{**vars(trainer.config), "model_dir": str(tmp_path_factory.mktemp("head"))})
    t = train.Trainer(config, network_config=replace(trainer.net.config, moment_head=16))
    theirs = {m.name: m for m in trainer.net.trained_models}
    for model in t.net.trained_models:
        if model.name != "moment_head":
            model.set_weights(theirs[model.name].get_weights())
    rng = np.random.default_rng(3)
    for layer in t.net.moment_head.layers:
        if layer.weights:
            layer.set_weights([rng.normal(0, 0.02, w.shape).astype(np.float32) for w in layer.get_weights()])
    return t


def _jax_params(trainer):
    vgg = {layer.name: tuple(w.numpy() for w in layer.weights) for layer in trainer.loss_net.model.layers
           if layer.weights}
    dec = {layer.name: tuple(w.numpy() for w in layer.weights) for model in trainer.net.trained_models
           for layer in model.layers if layer.weights}
    return vgg, dec


def _batch():
    rng = np.random.default_rng(1)
    smooth = lambda: tf.image.resize(rng.random((2, 8, 8, 3)), [64, 64]).numpy().astype(np.float32)  # noqa: E731
    return smooth(), smooth()


@pytest.mark.parametrize("which", ["adain", "linear", "head"])
def test_loss_terms_match_tensorflow(which, request):
    trainer = request.getfixturevalue({"adain": "adain_trainer", "linear": "trainer", "head": "head_trainer"}[which])
    content, style = _batch()
    tf_terms, _ = trainer.compute_losses(tf.constant(content), tf.constant(style))
    vgg, dec = _jax_params(trainer)
    jax_terms = jl.loss_terms(dec, vgg, content, style, _recipe())
    assert set(jax_terms) == set(tf_terms)
    for key in tf_terms:
        np.testing.assert_allclose(np.asarray(jax_terms[key]), tf_terms[key].numpy(), rtol=2e-3, err_msg=key)
    assert float(np.min(tf_terms["style"])) > 0.1  # not a trivially matching zero
    trainer.config = replace(trainer.config, style_relative=True, style_target=0.05)
    try:
        tf_relative, _ = trainer.compute_losses(tf.constant(content), tf.constant(style))
    finally:
        trainer.config = replace(trainer.config, style_relative=False, style_target=0.0)
    jax_relative = jl.loss_terms(dec, vgg, content, style, _recipe(style_relative=True, style_target=0.05))
    np.testing.assert_allclose(np.asarray(jax_relative["style"]), tf_relative["style"].numpy(), rtol=2e-3)
    assert float(np.min(tf_relative["style"])) > 0.1
    trainer.config = replace(trainer.config, inversion_weight=2.0)
    try:
        tf_inversion, _ = trainer.compute_losses(tf.constant(content), tf.constant(style))
    finally:
        trainer.config = replace(trainer.config, inversion_weight=0.0)
    jax_inversion = jl.loss_terms(dec, vgg, content, style, _recipe(inversion_weight=2.0))
    np.testing.assert_allclose(np.asarray(jax_inversion["inversion"]), tf_inversion["inversion"].numpy(), rtol=2e-3)
    np.testing.assert_allclose(np.asarray(jax_inversion["total"]), tf_inversion["total"].numpy(), rtol=2e-3)
    assert float(np.min(tf_inversion["inversion"])) > 0.01


def _small_batch():
    rng = np.random.default_rng(9)
    smooth = lambda: tf.image.resize(rng.random((2, 8, 8, 3)), [32, 32]).numpy().astype(np.float32)  # noqa: E731
    return smooth(), smooth()


def test_photo_and_layout_terms_and_block5_match_tensorflow(adain_trainer, monkeypatch):
    """The current strength run's loss options on 32-px crops: the AdaIN content target with --photo_weight and
    --layout_weight, under the strength control (strengths 0.7 and 1.6 on both sides), block5_conv1 among the style
    layers: every term, the photo and layout terms included, as nst_tf.train's, in its order. (The gradients: the
    slow strength tests below, with these flags.)"""
    content, style = _small_batch()
    strengths = np.array([[0.7], [1.6]], np.float32)
    changes = dict(content_target="adain", photo_weight=3.0, layout_weight=10.0, strength_max=2.0)
    monkeypatch.setattr(adain_trainer, "config", replace(adain_trainer.config, **changes))
    monkeypatch.setattr(adain_trainer, "sample_strength", lambda batch: tf.constant(strengths))
    assert adain_trainer.style_layers == STYLE_LAYERS
    tf_terms, output = adain_trainer.compute_losses(tf.constant(content), tf.constant(style))
    vgg, dec = _jax_params(adain_trainer)
    jax_terms = jl.loss_terms(dec, vgg, content, style, _recipe(**changes), strengths)
    assert list(jax_terms) == list(tf_terms) == ["identity", "layout", "photo", "content", "style", "tv", "total"]
    for key in tf_terms:
        np.testing.assert_allclose(np.asarray(jax_terms[key]), tf_terms[key].numpy(), rtol=1e-5, err_msg=key)
    # the layout term is 10 x the output's layout error against the photo's (4 x 4 pooled here), divided by 1 + s^2
    layout = train.losses.layout_loss(output, tf.constant(content)).numpy()
    np.testing.assert_allclose(tf_terms["layout"].numpy(), 10.0 * layout / (1.0 + strengths[:, 0] ** 2), rtol=1e-5)
    assert np.all(layout > 0.05), layout  # not a trivially matching zero
    # the photo term is 3 x the output's block4_conv2 error against the photo's, divided by 1 + s^2 like the others
    photo = train.PHOTO_CONTENT_LAYER
    error = train.losses.content_loss(adain_trainer._loss_features(output)[photo],
                                      adain_trainer._loss_features(tf.constant(content))[photo]).numpy()
    np.testing.assert_allclose(tf_terms["photo"].numpy(), 3.0 * error / (1.0 + strengths[:, 0] ** 2), rtol=1e-5)
    assert np.all(error > 0.1) and not np.allclose(tf_terms["photo"].numpy(), tf_terms["content"].numpy(), rtol=0.1)
    without = jl.loss_terms(dec, vgg, content, style, _recipe(**changes, style_layers=jm.LEVELS), strengths)
    assert not np.allclose(np.asarray(without["style"]), tf_terms["style"].numpy(), rtol=1e-2)  # block5 counts


def test_layout_loss_matches_tensorflow():
    """jaxnst.losses.layout_loss is nst_tf.losses.layout_loss on random images (sizes that pool by 8 evenly and
    not), value and gradient, and at another pool size."""
    from nst_tf import losses

    rng = np.random.default_rng(11)
    summed = lambda a, t, k: jax.numpy.sum(jl.layout_loss(a, t, k))  # noqa: E731
    for shape, pool in (((3, 32, 32, 3), 8), ((2, 37, 53, 3), 8), ((2, 24, 20, 3), 4)):
        images, target = (rng.random(shape).astype(np.float32) for _ in range(2))
        with tf.GradientTape() as tape:
            x = tf.constant(images)
            tape.watch(x)
            theirs = losses.layout_loss(x, tf.constant(target), pool)
            total = tf.reduce_sum(theirs)
        ours = jl.layout_loss(images, target, pool)
        np.testing.assert_allclose(np.asarray(ours), theirs.numpy(), rtol=1e-5, err_msg=str(shape))
        assert np.all(theirs.numpy() > 0.5)  # unrelated random images: about 2
        grad = jax.grad(summed)(images, target, pool)
        np.testing.assert_allclose(np.asarray(grad), tape.gradient(total, x).numpy(), rtol=1e-4,
                                   atol=1e-4 * float(np.abs(grad).max()), err_msg=str(shape))
    photo = tf.image.resize(rng.random((1, 4, 4, 3)), [32, 32]).numpy().astype(np.float32)  # pooled variance >> 1e-6
    np.testing.assert_allclose(np.asarray(jl.layout_loss(0.5 * photo + 0.2, photo)), 0.0, atol=1e-4)  # any tones
    np.testing.assert_allclose(np.asarray(jl.layout_loss(1.0 - photo, photo)), 4.0, rtol=1e-4)  # inverted


def test_vgg_features_match_keras_at_every_layer(lpips_weights):
    """jaxnst.model.vgg_features at every VGG16 layer (each convolution after its ReLU, each pooling) is
    nst_tf.features.FeatureExtractor's, so any --style_layers works alike in both trainers."""
    from nst_tf import features, weights

    extractor = features.FeatureExtractor(weights.resolve(lpips_weights, "vgg16"), content_layers=(),
                                          style_layers=jm.VGG16_ORDER)
    vgg = {layer.name: tuple(w.numpy() for w in layer.weights) for layer in extractor.model.layers if layer.weights}
    images = np.random.default_rng(10).random((1, 32, 32, 3)).astype(np.float32)
    ours = jm.vgg_features(vgg, images, jm.VGG16_ORDER)
    for name, theirs in zip(jm.VGG16_ORDER, extractor(tf.constant(images))[1]):
        scale = float(np.abs(theirs.numpy()).max())
        assert scale > 0, name
        np.testing.assert_allclose(np.asarray(ours[name]), theirs.numpy(), atol=1e-5 * scale, err_msg=name)


def test_photo_weight_and_style_layers_reach_the_tool():
    """--photo_weight and --style_layers on jax_train.py's command line reach the recipe; the run then needs VGG16's
    block4_conv2 to block5_conv1 from the pack (every convolution on the way, not only the layers it reads); the
    recipe refuses the photo term without the AdaIN target and for the student, and layers VGG16 does not have."""
    args = _recipe_args(*CURRENT_RUN_FLAGS)
    recipe = jtr.recipe_from(args, palette=True, skip_fade=True)
    assert (recipe.photo_weight, recipe.layout_weight, recipe.identity_weight, recipe.style_layers) == \
        (3.0, 10.0, 20.0, STYLE_LAYERS)
    assert recipe.content_layers == ("block4_conv1", "block4_conv2")
    parts, _ = jtr.read_network(FADE_DIR)
    assert jtr.missing_layers(parts["encoder"], jtr.trained_params(parts), recipe) == \
        ["block4_conv2", "block4_conv3", "block5_conv1"]
    with pytest.raises(SystemExit, match="missing layers"):
        jtr.setup(args)
    student = ["--content_target=adain", "--student=student_init.npz", "--content_dir=c", "--style_dir=s", "--out=o"]
    with pytest.raises(SystemExit, match="--student trains the previous phone-sized design"):
        jtr.setup(_jax_train().parse([f"--network={BUNDLED_DIR}", "--photo_weight=3", *student]))
    with pytest.raises(SystemExit, match="student_init.npz"):  # without the photo term it goes on to the file
        jtr.setup(_jax_train().parse([f"--network={BUNDLED_DIR}", *student]))
    with pytest.raises(ValueError, match="photo_weight needs content_target='adain'"):
        jl.Recipe(photo_weight=1.0)
    with pytest.raises(ValueError, match="not the student"):
        jl.student_terms({}, {}, {}, None, None, jl.Recipe(content_target="adain", photo_weight=1.0))
    with pytest.raises(ValueError, match="unknown VGG16 layer 'block6_conv1'"):
        jl.Recipe(style_layers=("block1_conv1", "block6_conv1"))
    assert jm.vgg_path(("block3_pool", "block1_conv1")) == jm.vgg_path(("block3_conv3",))


def test_pack_holds_what_the_run_reaches_through(adain_trainer):
    """device_pack.py pack's pack.npz: the VGG16 convolutions past the encoder up to the run's deepest layer, as
    float16; with the bundled encoder they are every layer the current run's recipe needs."""
    dp = _load_tool("device_pack")
    vgg = adain_trainer.loss_net.model  # VGG16 to block5_conv1
    names = lambda *a: {k.split("/")[1] for k in dp.loss_layer_arrays(vgg, dp.run_loss_layers(*a))}  # noqa: E731
    assert names("adain") == set() and names("photo") == names("adain", 3.0) == {"block4_conv2"}
    assert names("adain", 0.0, ",".join(STYLE_LAYERS)) == {"block4_conv2", "block4_conv3", "block5_conv1"}
    arrays = dp.loss_layer_arrays(vgg, dp.run_loss_layers("adain", 3.0, ",".join(STYLE_LAYERS)))
    assert all(w.dtype == np.float16 for w in arrays.values())
    np.testing.assert_array_equal(arrays["encoder/block5_conv1/0"],
                                  vgg.get_layer("block5_conv1").get_weights()[0].astype(np.float16))
    with pytest.raises(ValueError, match="unknown VGG16 layer 'block6_conv1'"):
        dp.loss_layer_arrays(vgg, ("block6_conv1",))
    parts, _ = jtr.read_network(FADE_DIR)
    packed = {**parts["encoder"], **{k.split("/")[1]: None for k in arrays}}
    recipe = jtr.recipe_from(_recipe_args(*CURRENT_RUN_FLAGS), palette=True, skip_fade=True)
    assert not jtr.missing_layers(packed, jtr.trained_params(parts), recipe)


def test_trips_fit_the_device_limit():
    dp = _load_tool("device_pack")
    assert dp.plan_trips({"a": 10, "b": 7, "c": 5, "d": 3}, 12) == [["a"], ["b", "c"], ["d"]]
    assert dp.plan_trips({"a": 4, "b": 4}, 12) == [["a", "b"]]
    with pytest.raises(ValueError, match="a: "):
        dp.plan_trips({"a": 13 * 2**20}, 12 * 2**20)


def test_linear_transform_changes_the_output(trainer, adain_trainer):
    content, style = _batch()
    vgg, dec = _jax_params(adain_trainer)
    _, linear = _jax_params(trainer)
    assert set(jm.LINEAR_LAYERS) <= set(linear) and not set(jm.LINEAR_LAYERS) & set(dec)
    plain = jl.loss_terms(dec, vgg, content, style, _recipe())
    mixed = jl.loss_terms(linear, vgg, content, style, _recipe())
    assert not np.allclose(np.asarray(plain["style"]), np.asarray(mixed["style"]), rtol=1e-3)


def test_moment_head_changes_the_output(head_trainer):
    content, style = _batch()
    vgg, headed = _jax_params(head_trainer)
    dec = {k: v for k, v in headed.items() if k not in jm.HEAD_LAYERS}
    assert set(jm.HEAD_LAYERS) <= set(headed)
    plain = jl.loss_terms(dec, vgg, content, style, _recipe())
    corrected = jl.loss_terms(headed, vgg, content, style, _recipe())
    assert not np.allclose(np.asarray(plain["style"]), np.asarray(corrected["style"]), rtol=1e-3)
    np.testing.assert_allclose(np.asarray(plain["identity"]), np.asarray(corrected["identity"]), rtol=1e-5)


@pytest.mark.slow  # the JAX port (GPU training) against TensorFlow: benchmarks/slow_checks.py, not CI
def test_gradients_match_tensorflow(trainer):
    content, style = _batch()
    tf_grads, _, bad = trainer._replica_gradients(tf.constant(content), tf.constant(style))
    assert int(bad) == 0
    vgg, dec = _jax_params(trainer)

    def loss(d):
        return jax.numpy.mean(jl.loss_terms(d, vgg, content, style, _recipe())["total"])

    jax_grads = jax.grad(loss)(dec)
    names = [v.path.split("/")[-2] for v in trainer.net.decoder.trainable_variables]
    kinds = [0 if "kernel" in v.path else 1 for v in trainer.net.decoder.trainable_variables]
    for name, kind, g in zip(names, kinds, tf_grads):
        ours = np.asarray(jax_grads[name][kind])
        rel = np.linalg.norm(ours - g.numpy()) / (np.linalg.norm(g.numpy()) + 1e-12)
        assert rel < 1e-2, (name, kind, rel)  # TF's own float32 CPU gradients are ~5e-3 from float64 here


def test_adam_update_matches_keras():
    rng = np.random.default_rng(2)
    start = rng.normal(size=(3, 4)).astype(np.float32)
    grads = [rng.normal(size=(3, 4)).astype(np.float32) * s for s in (1.0, 0.1, 3.0)]
    var = tf.Variable(start)
    schedule = keras.optimizers.schedules.InverseTimeDecay(0.01, 1, 0.5)
    optimizer = keras.optimizers.Adam(schedule)
    params = {"w": (start,)}
    state = {"iterations": np.int32(0), "m": {"w": (np.zeros_like(start),)}, "v": {"w": (np.zeros_like(start),)}}
    for g in grads:
        optimizer.apply_gradients([(tf.constant(g), var)])
        params, state = jtr.adam_update(params, {"w": (g,)}, state, 0.01, 0.5)
    np.testing.assert_allclose(np.asarray(params["w"][0]), var.numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(var.numpy(), start, atol=1e-3)  # the steps did move it


@pytest.mark.slow  # 220 s on the shared 2-core machine (six tools/jax_train.py runs, each compiling its step)
def test_run_saves_and_resumes(tmp_path, lpips_weights):
    import subprocess
    import sys

    from nst_tf import weights as weights_lib

    dp = _load_tool("device_pack")
    vgg = weights_lib.build_backbone("vgg16", lpips_weights)
    assert {k.split("/")[1] for k in dp.loss_layer_arrays(vgg, ("block5_conv1",))} == \
        {"block4_conv2", "block4_conv3", "block5_conv1"}
    trimmed = dp.loss_layer_arrays(vgg, dp.run_loss_layers("photo"))  # the default style layers: the run below
    assert {k.split("/")[1] for k in trimmed} == {"block4_conv2"}
    np.savez(tmp_path / "pack.npz", **trimmed)
    rng = np.random.default_rng(5)
    for name in ("content", "style"):
        (tmp_path / name).mkdir()
        for i in range(3):
            keras.utils.save_img(str(tmp_path / name / f"{i}.png"), rng.random((40, 48, 3)))
    base = [sys.executable, os.path.join(ROOT, "tools", "jax_train.py"), f"--pack={tmp_path / 'pack.npz'}",
            f"--content_dir={tmp_path / 'content'}", f"--style_dir={tmp_path / 'style'}", "--crop=32",
            "--batch_size=2", "--log_every=1"]
    run = lambda *a: subprocess.run(base + list(a), capture_output=True, text=True, timeout=600)  # noqa: E731
    first = run(f"--out={tmp_path / 'a'}", "--max_steps=2")
    assert first.returncode == 0, first.stderr[-2000:]
    with np.load(tmp_path / "a" / "adam.npz") as state:
        assert int(state["step"]) == 2 and int(state["iterations"]) == 2
    before = dict(np.load(tmp_path / "a" / "decoder_final.npz"))
    second = run(f"--out={tmp_path / 'a'}", f"--resume={tmp_path / 'a'}", "--max_steps=4")
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"resumed from {tmp_path / 'a'} at step 2" in second.stdout
    with np.load(tmp_path / "a" / "adam.npz") as state:
        assert int(state["step"]) == 4 and int(state["iterations"]) == 4
    after = dict(np.load(tmp_path / "a" / "decoder_final.npz"))
    assert any(not np.array_equal(before[k], after[k]) for k in before)
    bad = run(f"--out={tmp_path / 'b'}", f"--resume={tmp_path / 'content'}", "--max_steps=1")
    assert bad.returncode != 0 and "adam.npz: cannot resume from it" in bad.stderr.strip().splitlines()[-1]
    # the student: nst_tf.mobile's transformer from device_pack's initial weights, then unpacked to a network folder
    dp.save_float16(tmp_path / "student_init.npz", dp.student_init(0, "8,16,24"))  # widths other than the default
    student = run(f"--out={tmp_path / 's'}", f"--student={tmp_path / 'student_init.npz'}", "--max_steps=2")
    assert student.returncode == 0, student.stderr[-2000:]
    assert '"distill"' in student.stdout
    unpack = [sys.executable, os.path.join(ROOT, "tools", "device_pack.py"), "unpack",
              f"--transformer={tmp_path / 's' / 'transformer_final.npz'}", f"--out={tmp_path / 'net'}",
              "--student_channels=8,16,24"]
    unpacked = subprocess.run(unpack, capture_output=True, text=True, timeout=300)
    assert unpacked.returncode == 0, unpacked.stderr[-2000:]
    from nst_tf import fast, mobile

    student_net = fast.load_network(str(tmp_path / "net"))
    assert isinstance(student_net, mobile.MobileStyleNetwork) and student_net.config.channels == (8, 16, 24)
    inferred = subprocess.run(unpack[:-2] + [f"--out={tmp_path / 'net2'}"], capture_output=True, text=True,
                              timeout=300)  # no --student_channels: the widths come from the file
    assert inferred.returncode == 0, inferred.stderr[-2000:]
    assert fast.load_network(str(tmp_path / "net2")).config.channels == (8, 16, 24)
    # the linear transform: device_pack's initial weights added by --init to a network without one (the bundled
    # encoder and decoder), then unpacked with --linear_rank
    with np.load(os.path.join(BUNDLED_DIR, "weights.npz")) as data:
        keep = [k for k in data.files if k.split("/")[0] in ("encoder", "decoder")]
        np.savez(tmp_path / "adain.npz", **{k: data[k] for k in keep})
    dp.save_float16(tmp_path / "linear_init.npz", dp.linear_init(8))
    linear = run(f"--out={tmp_path / 'l'}", f"--network={tmp_path / 'adain.npz'}",
                 f"--init={tmp_path / 'linear_init.npz'}", "--max_steps=2")
    assert linear.returncode == 0, linear.stderr[-2000:]
    trained = dict(np.load(tmp_path / "l" / "decoder_final.npz"))
    assert np.any(trained["decoder/unzip/0"] != 0)  # the zero projection has started to learn
    unpack = unpack[:3] + [f"--decoder={tmp_path / 'l' / 'decoder_final.npz'}", f"--out={tmp_path / 'lnet'}",
                           "--linear_rank=8", "--moment_head=0"]
    unpacked = subprocess.run(unpack, capture_output=True, text=True, timeout=300)
    assert unpacked.returncode == 0, unpacked.stderr[-2000:]
    net = fast.load_network(str(tmp_path / "lnet"))
    assert net.config.linear_rank == 8
    np.testing.assert_allclose(net.transfer.get_layer("unzip").get_weights()[0], trained["decoder/unzip/0"],
                               rtol=1e-2, atol=1e-4)  # saved as float16
    # a new moment head on the bundled network without its own (its trained transform carried over), then unpacked
    # with --moment_head
    with np.load(os.path.join(BUNDLED_DIR, "weights.npz")) as data:
        np.savez(tmp_path / "headless.npz", **{k: data[k] for k in data.files if not k.startswith("moment_head/")})
    dp.save_float16(tmp_path / "head_init.npz", dp.head_init(net.config, 8))
    head = run(f"--out={tmp_path / 'h'}", f"--network={tmp_path / 'headless.npz'}",
               f"--init={tmp_path / 'head_init.npz'}", "--max_steps=2")
    assert head.returncode == 0, head.stderr[-2000:]
    trained = dict(np.load(tmp_path / "h" / "decoder_final.npz"))
    assert np.any(trained["decoder/mhead_2/0"] != 0)
    bundled = network.ArbitraryStyleNetwork.load(BUNDLED_DIR)
    unzip = bundled.transfer.get_layer("unzip").get_weights()[0]
    assert np.abs(trained["decoder/unzip/0"] - unzip).max() < 0.01  # 2 Adam steps from the trained transform
    unpack = unpack[:3] + [f"--decoder={tmp_path / 'h' / 'decoder_final.npz'}", f"--out={tmp_path / 'hnet'}",
                           "--moment_head=8"]
    unpacked = subprocess.run(unpack, capture_output=True, text=True, timeout=300)
    assert unpacked.returncode == 0, unpacked.stderr[-2000:]
    net = fast.load_network(str(tmp_path / "hnet"))
    assert net.config.moment_head == 8 and net.config.linear_rank == bundled.config.linear_rank
    np.testing.assert_allclose(net.moment_head.get_layer("mhead_2").get_weights()[0], trained["decoder/mhead_2/0"],
                               rtol=1e-2, atol=1e-4)


def test_random_crop_sizes_and_range():
    from PIL import Image

    image = Image.fromarray(np.random.default_rng(3).integers(0, 255, (30, 50, 3), dtype=np.uint8))
    rng = np.random.default_rng(4)
    crops = [jd.random_crop(image, 64, 1.0, 1.6, rng) for _ in range(5)]  # smaller than the crop: resized up
    assert all(c.shape == (64, 64, 3) and c.dtype == np.float32 for c in crops)
    assert min(c.min() for c in crops) >= 0.0 and max(c.max() for c in crops) <= 1.0


def _student(blocks=2):
    """A small nst_tf.mobile transformer with random weights (conditioning included), Keras and JAX forms."""
    from nst_tf import mobile

    keras.utils.set_random_seed(3)
    model = mobile.build_transformer(mobile.MobileConfig(channels=(4, 8, 8), residual_blocks=blocks, bottleneck=6))
    rng = np.random.default_rng(0)
    arrays = network_io.weight_arrays(model)
    for key, w in arrays.items():
        if w.ndim == 2 or key.endswith("/1"):
            arrays[key] = rng.normal(0, 0.05, w.shape).astype(np.float32)
    network_io.set_weight_arrays(model, arrays)
    params = {}
    for key, w in arrays.items():
        layer, index = key.split("/")
        params.setdefault(layer, [None, None])[int(index)] = w
    return model, {k: tuple(v) for k, v in params.items()}


def test_student_transform_matches_keras():
    model, params = _student()
    rng = np.random.default_rng(1)
    content = rng.random((2, 32, 44, 3)).astype(np.float32)
    vector = (rng.random((2, 1920)) * 3).astype(np.float32)
    assert jm.student_blocks(params) == 2
    ours = np.asarray(jm.transform(params, content, vector, 2))
    np.testing.assert_allclose(ours, model([content, vector]).numpy(), atol=2e-5)


def test_student_terms(trainer):
    from nst_tf import adain

    _, params = _student()
    content, style = _batch()
    vgg, dec = _jax_params(trainer)
    terms = jl.student_terms(params, dec, vgg, content, style, _recipe(distill_weight=10.0))
    assert set(terms) == {"content", "style", "tv", "identity", "distill", "total"}
    # the style vector is nst_tf.network's, and distill is 10 x the squared pixel error to the teacher's output
    levels = trainer.net.encode(tf.constant(style))
    own = np.asarray(jm.levels_vector([np.asarray(f) for f in levels]))
    np.testing.assert_allclose(own, adain.levels_vector(levels).numpy(), rtol=1e-4, atol=1e-5)
    teacher = trainer.net.stylize(tf.constant(content), trainer.net.vector_of(levels)).numpy()
    vector = adain.levels_vector(levels).numpy()
    output = np.asarray(jm.transform(params, content, vector, 2))
    expected = 10.0 * np.mean(np.square(output - teacher), axis=(1, 2, 3))
    np.testing.assert_allclose(np.asarray(terms["distill"]), expected, rtol=1e-3)
    np.testing.assert_allclose(np.asarray(terms["total"]),
                               sum(np.asarray(v) for k, v in terms.items() if k != "total"), rtol=1e-5)


def test_student_terms_match_the_tensorflow_trainer(trainer, tmp_path):
    """nst-train --network=mobile's step (TensorFlow) and jax_train.py --student's agree on every term."""
    from nst_tf import mobile

    student = train.Trainer(
        train.TrainConfig(**{**trainer.config.__dict__, "model_dir": str(tmp_path / "student"), "distill_weight": 10.0,
                             "layout_weight": 10.0, "teacher": BUNDLED_DIR}),
        network_config=mobile.MobileConfig(channels=(4, 8, 8), residual_blocks=2, bottleneck=6))
    model, params = _student()
    student.net.transformer.set_weights(model.get_weights())
    content, style = _batch()
    tf_terms, _ = student.compute_losses(tf.constant(content), tf.constant(style))
    vgg, dec = _jax_params(trainer)
    jax_terms = jl.student_terms(params, dec, vgg, content, style, _recipe(distill_weight=10.0, layout_weight=10.0))
    assert list(jax_terms) == list(tf_terms) and "layout" in tf_terms
    for key in tf_terms:
        np.testing.assert_allclose(np.asarray(jax_terms[key]), tf_terms[key].numpy(), rtol=2e-3, err_msg=key)
    assert float(np.min(tf_terms["layout"])) > 0.1  # not a trivially matching zero


# -- the strength recipe (configs/train_arbitrary_strength.cfg) from checkpoints/arbitrary_strength -----------------
STRENGTH_DIR = os.path.join(ROOT, "checkpoints", "arbitrary_strength")
STRENGTH_RECIPE = os.path.join(ROOT, "configs", "train_arbitrary_strength.cfg")
STRENGTHS = np.array([[0.0], [0.7], [1.6]], np.float32)  # the photo, a blend, and above 1 (the excess ramps)
CURRENT_RUN = {"identity_weight": 20.0, "style_layers": ",".join(STYLE_LAYERS), "photo_weight": 3.0,  # issue 23's
               "layout_weight": 10.0}
CURRENT_RUN_FLAGS = tuple(f"--{k}={v}" for k, v in CURRENT_RUN.items())  # run on the recipe (docs/training.md)


def _with_skip_fade(directory: str, fade: bool = True) -> str:
    """The network folder `directory` with skip_fade on, as the recipe asks (its skip projections fade out above
    strength 1; no weights of its own, so the same weights.npz, linked), or off (`fade` False)."""
    import json

    out = _temp_folder("nst_skip_fade_")
    os.symlink(os.path.abspath(os.path.join(directory, "weights.npz")), os.path.join(out, "weights.npz"))
    with open(os.path.join(directory, "config.json")) as f:
        config = {**json.load(f), "skip_fade": fade}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, sort_keys=True)
    return out


FADE_DIR = _with_skip_fade(STRENGTH_DIR)  # checkpoints/arbitrary_strength with the recipe's skip_fade
NO_FADE_DIR = _with_skip_fade(STRENGTH_DIR, False)  # and without it (a network of the recipe before run 4)


def _jax_train():
    return _load_tool("jax_train")


# the recipe's loss layers past the encoder (block5_conv1; block4_conv2 for the photo term) need a pack.npz: checks of
# something else run it on the encoder's layers alone
ENCODER_ONLY_FLAGS = ("--style_layers=block1_conv1,block2_conv1,block3_conv1,block4_conv1", "--photo_weight=0")


def _recipe_args(*extra):
    """jax_train.py's arguments for the strength recipe (the flag file read as the tool reads it)."""
    return _jax_train().parse([f"--recipe={STRENGTH_RECIPE}", f"--network={FADE_DIR}", "--content_dir=c",
                               "--style_dir=s", "--out=o", *extra])


@pytest.fixture(scope="module")
def strength_trainer(tmp_path_factory, lpips_weights):
    """The TensorFlow trainer of the strength recipe (its flag file's loss weights and strength sampling, with the
    current run's flags: CURRENT_RUN), warm-started from checkpoints/arbitrary_strength with skip_fade on
    (FADE_DIR), batches of three."""
    flags = _jax_train().read_recipe(STRENGTH_RECIPE)
    fields = {f.name: f.default for f in train.TrainConfig.__dataclass_fields__.values()}
    typed = {k: (v if isinstance(fields[k], bool) else type(fields[k])(v)) for k, v in flags.items()
             if k in fields and k not in ("content_dir", "style_dir", "weights")}
    root = tmp_path_factory.mktemp("jax_strength")
    config = train.TrainConfig(**{**typed, **CURRENT_RUN, "content_dir": str(root), "style_dir": str(root),
                                  "model_dir": str(root / "run"), "weights": lpips_weights, "batch_size": 3})
    assert config.content_target == "adain" and config.strength_max == 2 and config.palette_weight > 0
    assert config.viewing_weight > 0 and config.viewing_target == "whole"
    with open(os.path.join(FADE_DIR, "config.json")) as f:
        net_config = network.NetworkConfig.from_json(f.read())
    assert net_config.skip_fade
    t = train.Trainer(config, network_config=net_config)
    assert t.init_decoder_from(FADE_DIR) == []
    return t


def _strength_batch():
    rng = np.random.default_rng(4)
    smooth = lambda: tf.image.resize(rng.random((3, 8, 8, 3)), [64, 64]).numpy().astype(np.float32)  # noqa: E731
    directions = jd.random_directions(np.random.default_rng(5))
    return smooth(), smooth(), directions


@pytest.fixture()
def fixed_draws(strength_trainer, monkeypatch):
    """The TensorFlow trainer with STRENGTHS and the palette term's directions fixed (it draws both at random)."""
    content, style, directions = _strength_batch()
    monkeypatch.setattr(strength_trainer, "sample_strength", lambda batch: tf.constant(STRENGTHS))
    palette_loss = train.losses.palette_loss
    monkeypatch.setattr(train.losses, "palette_loss",
                        lambda images, target: palette_loss(images, target, directions=tf.constant(directions)))
    return content, style, directions


def test_recipe_flags_reach_the_tool():
    args = _recipe_args("--batch_size=2")
    assert (args.content_target, args.crop, args.batch_size, args.strength_max, args.strength_zero) == \
        ("adain", 256, 2, 2.0, 0.15)  # the command line wins over the flag file
    assert args.skip_fade and args.palette  # the recipe's switches (checked against the network's config.json)
    recipe = jtr.recipe_from(args, palette=True, skip_fade=True)
    assert (recipe.content_weight, recipe.style_weight, recipe.palette_weight, recipe.viewing_weight,
            recipe.viewing_target) == (1.5, 20.0, 100.0, 2.0, "whole")
    for start, message in ((network.BUNDLED_DIR, "strength_units is 0"), (NO_FADE_DIR, "skip_fade is False")):
        with pytest.raises(SystemExit, match=message):  # the recipe's architecture against the network's
            _jax_train().parse([f"--recipe={STRENGTH_RECIPE}", f"--network={start}", "--content_dir=c",
                                "--style_dir=s", "--out=o"])


def test_skip_fade_comes_from_the_network():
    """setup() takes skip_fade from the network folder's config.json; --skip_fade on the command line is for a
    weights.npz and refused for a folder without it."""
    assert jtr.setup(_recipe_args(*ENCODER_ONLY_FLAGS))[3].skip_fade
    plain = _jax_train().parse([f"--network={NO_FADE_DIR}", "--content_target=adain", "--content_dir=c",
                                "--style_dir=s", "--out=o"])
    assert not jtr.setup(plain)[3].skip_fade
    with pytest.raises(SystemExit, match="the network has no skip_fade"):
        jtr.setup(_jax_train().parse([f"--network={NO_FADE_DIR}", "--skip_fade", "--content_dir=c",
                                      "--style_dir=s", "--out=o"]))
    weights_only = _jax_train().parse([f"--network={os.path.join(FADE_DIR, 'weights.npz')}", "--skip_fade",
                                       "--palette", "--content_target=adain", "--content_dir=c", "--style_dir=s",
                                       "--out=o"])
    assert jtr.setup(weights_only)[3].skip_fade


@pytest.mark.slow  # the JAX port (GPU training) against TensorFlow: benchmarks/slow_checks.py, not CI
def test_skip_fade_forward_matches_keras():
    """The JAX forward pass with skip_fade is the Keras network's at strengths 0, 1, 1.5 and 2; above 1 it is not
    the network without the fade (which jm.stylize without skip_fade still gives)."""
    faded, plain = network.ArbitraryStyleNetwork.load(FADE_DIR), network.ArbitraryStyleNetwork.load(NO_FADE_DIR)
    assert faded.config.skip_fade and not plain.config.skip_fade
    parts, _ = jtr.read_network(FADE_DIR)
    vgg, params = parts["encoder"], jtr.trained_params(parts)
    rng = np.random.default_rng(8)
    content = tf.image.resize(rng.random((1, 6, 8, 3)), [48, 64]).numpy().astype(np.float32)
    style = tf.image.resize(rng.random((1, 8, 8, 3)), [64, 64]).numpy().astype(np.float32)
    vector = faded.predict_style(style).numpy()
    for s in (0.0, 1.0, 1.5, 2.0):
        expected = faded.stylize(content, vector, s, clip=False).numpy()
        ours = np.asarray(jm.stylize(params, vgg, content, vector, s, palette=True, skip_fade=True))
        np.testing.assert_allclose(ours, expected, atol=2e-5, err_msg=f"strength {s}")
        without = plain.stylize(content, vector, s, clip=False).numpy()
        np.testing.assert_allclose(np.asarray(jm.stylize(params, vgg, content, vector, s, palette=True)), without,
                                   atol=2e-5, err_msg=f"strength {s} without the fade")
        if s > 1:
            assert np.abs(expected - without).mean() > 1e-3, s  # the fade acts above 1
        else:
            np.testing.assert_array_equal(expected, without)  # and nowhere else


def test_recipe_flags_the_tool_lacks_are_refused(tmp_path):
    (tmp_path / "r.cfg").write_text("# a recipe\n--style_weight=3\n--sharpness_weight=2\n")
    with pytest.raises(SystemExit, match="sharpness_weight"):
        _jax_train().parse([f"--recipe={tmp_path / 'r.cfg'}", "--content_dir=c", "--style_dir=s", "--out=o"])


def test_strength_draws():
    rng = np.random.default_rng(0)
    drawn = jd.sample_strength(rng, 4000, 2.0, 0.15)
    assert drawn.shape == (4000, 1) and drawn.dtype == np.float32 and drawn.min() >= 0 and drawn.max() < 2
    assert 0.12 < np.mean(drawn == 0) < 0.18 and 0.9 < np.mean(drawn[drawn > 0]) < 1.1
    assert np.all(jd.sample_strength(rng, 3, 0.0, 0.5) == 1)
    directions = jd.random_directions(rng)
    np.testing.assert_allclose(np.linalg.norm(directions, axis=0), 1.0, rtol=1e-6)


def test_strength_network_matches_and_round_trips(tmp_path):
    """The JAX forward pass of checkpoints/arbitrary_strength is the network's at strengths 0, 1 and 2; pack (its
    trained parts, as for an untracked folder) -> the weights a run returns (float16) -> unpack gives a folder that
    nst-stylize loads and that stylizes exactly as the checkpoint does."""
    import shutil
    from argparse import Namespace

    from nst_tf import fast

    net = network.ArbitraryStyleNetwork.load(STRENGTH_DIR)
    parts, config = jtr.read_network(STRENGTH_DIR)
    vgg, params = parts["encoder"], jtr.trained_params(parts)
    assert config["palette"] and not jtr.missing_layers(vgg, params, jl.Recipe(content_target="adain"))
    rng = np.random.default_rng(6)
    content = tf.image.resize(rng.random((1, 6, 8, 3)), [48, 64]).numpy().astype(np.float32)
    style = tf.image.resize(rng.random((1, 8, 8, 3)), [64, 64]).numpy().astype(np.float32)
    vector = net.predict_style(style).numpy()
    feats = jm.vgg_features(vgg, style, jm.LEVELS)
    np.testing.assert_allclose(np.asarray(jm.vector_of(params, [feats[n] for n in jm.LEVELS], style, True)), vector,
                               rtol=1e-5, atol=1e-4)  # |vector| up to ~20
    outputs = {s: net.stylize(content, vector, s, clip=False).numpy() for s in (0.0, 1.0, 2.0)}
    for s, expected in outputs.items():
        ours = jm.stylize(params, vgg, content, vector, s, palette=True, skip_fade=config["skip_fade"])
        np.testing.assert_allclose(np.asarray(ours), expected, atol=2e-5, err_msg=f"strength {s}")
    assert np.abs(outputs[2.0] - outputs[1.0]).mean() > 1e-3  # the strength above 1 acts (FiLM, excess ramps)
    dp = _load_tool("device_pack")
    shutil.copytree(STRENGTH_DIR, tmp_path / "start")  # untracked: pack copies its trained parts
    packed = dp.pack_network(str(tmp_path / "start"), str(tmp_path / "device"))
    assert packed == str(tmp_path / "device" / "network")
    with np.load(os.path.join(packed, "weights.npz")) as arrays:
        assert not any(k.startswith("encoder/") for k in arrays.files)
    parts, _ = jtr.read_network(packed)
    jtr.save_params(jtr.trained_params(parts), str(tmp_path / "decoder_f16.npz"), "decoder", np.float16)
    dp.unpack(Namespace(transformer=None, decoder=str(tmp_path / "decoder_f16.npz"), out=str(tmp_path / "net"),
                        model=STRENGTH_DIR, linear_rank=None, moment_head=None, student_channels=""))
    returned = fast.load_network(str(tmp_path / "net"))
    assert returned.config == net.config
    for s, expected in outputs.items():
        np.testing.assert_array_equal(returned.stylize(content, vector, s, clip=False).numpy(), expected)


@pytest.mark.slow  # the JAX port (GPU training) against TensorFlow: benchmarks/slow_checks.py, not CI
def test_strength_terms_match_tensorflow(strength_trainer, fixed_draws):
    """Every term of the strength recipe with the current run's flags (identity, the layout and photo terms, content
    against the AdaIN target, style to block5_conv1 with the viewing-scale term, TV, palette, total) per example, at
    strengths 0, 0.7 and 1.6 with the same palette directions."""
    content, style, directions = fixed_draws
    tf_terms, _ = strength_trainer.compute_losses(tf.constant(content), tf.constant(style))
    vgg, params = _jax_params(strength_trainer)
    recipe = jtr.recipe_from(_recipe_args(*CURRENT_RUN_FLAGS), palette=True, skip_fade=True)
    jax_terms = jl.loss_terms(params, vgg, content, style, recipe, STRENGTHS, directions)
    assert list(jax_terms) == list(tf_terms) == ["identity", "layout", "photo", "content", "style", "tv", "palette",
                                                 "total"]
    for key in tf_terms:
        np.testing.assert_allclose(np.asarray(jax_terms[key]), tf_terms[key].numpy(), rtol=1e-4, atol=1e-7,
                                   err_msg=key)
    unfaded = jl.loss_terms(params, vgg, content, style, replace(recipe, skip_fade=False), STRENGTHS, directions)
    np.testing.assert_array_equal(np.asarray(unfaded["identity"]), np.asarray(jax_terms["identity"]))  # strength 0
    gap = np.abs(np.asarray(unfaded["style"]) - tf_terms["style"].numpy()) / tf_terms["style"].numpy().clip(1e-9)
    assert gap[2] > 1e-3, gap  # at strength 1.6 the fade (skips at 40%) counts: the match above is not a given
    assert np.all(tf_terms["style"].numpy()[1:] > 0.1) and np.all(tf_terms["palette"].numpy()[1:] > 1e-3)
    assert tf_terms["style"].numpy()[0] == 0 and tf_terms["palette"].numpy()[0] == 0  # k = s^2 = 0 at strength 0
    variants = {"plain": dict(viewing_weight=0.0), "shrunk": dict(viewing_target="shrunk")}
    tf_style = {}
    for name, change in variants.items():  # without the viewing term, and with it against the shrunk style crop
        strength_trainer.config = replace(strength_trainer.config, **change)
        try:
            tf_style[name] = strength_trainer.compute_losses(tf.constant(content), tf.constant(style))[0]["style"]
        finally:
            strength_trainer.config = replace(strength_trainer.config, viewing_weight=recipe.viewing_weight,
                                              viewing_target=recipe.viewing_target)
        ours = jl.loss_terms(params, vgg, content, style, replace(recipe, **change), STRENGTHS, directions)["style"]
        np.testing.assert_allclose(np.asarray(ours), tf_style[name].numpy(), rtol=1e-4, atol=1e-7, err_msg=name)
    assert np.all(tf_terms["style"].numpy()[1:] > 1.05 * tf_style["plain"].numpy()[1:])  # the viewing term counts
    gap = np.abs(tf_terms["style"].numpy() - tf_style["shrunk"].numpy())[1:] / tf_terms["style"].numpy()[1:]
    assert np.all(gap > 1e-3), gap  # and its whole-crop target is not the shrunk one


@pytest.mark.slow  # the JAX port (GPU training) against TensorFlow: benchmarks/slow_checks.py, not CI
def test_strength_step_matches_tensorflow(strength_trainer, fixed_draws):
    """One step of the strength recipe: the gradients of every trained layer, and the Keras Adam update (from the
    TensorFlow gradients exactly; from JAX's own, by the share of weights that move alike)."""
    content, style, directions = fixed_draws
    variables = strength_trainer.trainable_variables
    keys = [(v.path.split("/")[-2], 0 if v.path.endswith(("kernel", "kernel:0")) else 1) for v in variables]
    vgg, params = _jax_params(strength_trainer)
    recipe = jtr.recipe_from(_recipe_args(*CURRENT_RUN_FLAGS), palette=True, skip_fade=True)
    cfg = strength_trainer.config
    tf_grads, _, bad = strength_trainer._replica_gradients(tf.constant(content), tf.constant(style))
    assert int(bad) == 0

    def loss(p, v, c, s, k, d):
        return jax.numpy.mean(jl.loss_terms(p, v, c, s, recipe, k, d)["total"])

    # arguments, not closed-over constants: XLA would constant-fold the VGG passes of the images (minutes)
    jax_grads = jax.jit(jax.grad(loss))(params, vgg, content, style, STRENGTHS, directions)
    largest = max(np.linalg.norm(g.numpy()) for g in tf_grads)
    for (name, kind), g in zip(keys, tf_grads):
        ours, theirs = np.asarray(jax_grads[name][kind]), g.numpy()
        gap = np.linalg.norm(ours - theirs)
        if np.linalg.norm(theirs) > 1e-4 * largest:  # float32 round-off: up to 6.3e-5 on run 2's network, 3.3e-3
            # (dec2_2; most layers 2e-3) on run 5's, whose terms agree to 4e-6 as before; 4.7e-3 (dec2_2's kernel)
            # with the current run's flags, where TensorFlow's gradients are 4.7e-3 from JAX's in float64 and JAX's
            # float32 ones within 1.4e-4 of it: TensorFlow's own round-off, so the bound is test_gradients_match_
            # tensorflow's; a missing or misweighted term moves these by tens of percent
            assert gap < 1e-2 * np.linalg.norm(theirs), (name, kind, gap / np.linalg.norm(theirs))
        else:  # zero: dead ReLUs (the checkpoint's moment head and cnet_conv2), or dec1_1's bias (a constant the
            assert gap < 1e-6 * largest, (name, kind, gap)  # palette layer removes), float noise at most
    zeros = jax.tree_util.tree_map(np.zeros_like, params)
    start = {"iterations": jax.numpy.int32(0), "m": zeros, "v": zeros}
    stepped, _ = jtr.adam_update(params, jax_grads, start, cfg.learning_rate, cfg.lr_decay)
    from_tf_grads = {n: list(w) for n, w in params.items()}
    for (name, kind), g in zip(keys, tf_grads):
        from_tf_grads[name][kind] = g.numpy()
    from_tf_grads, _ = jtr.adam_update(params, {n: tuple(w) for n, w in from_tf_grads.items()}, start,
                                       cfg.learning_rate, cfg.lr_decay)
    before = [v.numpy() for v in variables]
    try:
        strength_trainer.optimizer.apply_gradients(zip(tf_grads, variables))
        after = [v.numpy() for v in variables]
    finally:
        for v, w in zip(variables, before):
            v.assign(w)
    alike = moved = total = 0
    for (name, kind), w0, w1 in zip(keys, before, after):
        np.testing.assert_allclose(np.asarray(from_tf_grads[name][kind]), w1, rtol=1e-5, atol=1e-7, err_msg=name)
        alike += int(np.sum(np.abs(np.asarray(stepped[name][kind]) - w1) <= 0.01 * cfg.learning_rate))
        moved += int(np.sum(np.abs(w1 - w0) > 0.5 * cfg.learning_rate))  # Adam's first step: about lr
        total += w1.size
    # Adam's first step is about lr * sign(g): weights whose gradient is at float round-off (2e-3 of the layer's, see
    # above) may step the other way. Run 2's network: 32% moved by half a step or more (the dead layers and tiny
    # gradients do not), 99.987% alike within lr / 100; run 5's: 34% and 99.56%. The exact check is the one above.
    assert moved / total > 0.25 and alike / total > 0.99, (moved / total, alike / total)


@pytest.mark.slow  # three tools/jax_train.py runs of the strength recipe, each compiling its step, and an unpack
def test_strength_run_resumes_and_unpacks(tmp_path):
    """The strength recipe from checkpoints/arbitrary_strength (with skip_fade, FADE_DIR) on the command line, as on
    a GPU machine: two steps, a resumed third, the float16 weights in --return_dir, unpacked to a folder that
    stylizes at strength 0..2."""
    import subprocess

    rng = np.random.default_rng(7)
    for name in ("content", "style"):
        (tmp_path / name).mkdir()
        for i in range(3):
            keras.utils.save_img(str(tmp_path / name / f"{i}.png"), rng.random((40, 48, 3)))
    base = [sys.executable, os.path.join(ROOT, "tools", "jax_train.py"), f"--recipe={STRENGTH_RECIPE}",
            f"--network={FADE_DIR}", f"--content_dir={tmp_path / 'content'}", f"--style_dir={tmp_path / 'style'}",
            "--crop=32", "--batch_size=2", "--log_every=1", f"--out={tmp_path / 'run'}",
            f"--return_dir={tmp_path / 'back'}", *ENCODER_ONLY_FLAGS]
    run = lambda *a: subprocess.run(base + list(a), capture_output=True, text=True, timeout=900)  # noqa: E731
    first = run("--max_steps=2")
    assert first.returncode == 0, first.stderr[-2000:]
    assert '"palette"' in first.stdout and "content_target='adain'" in first.stdout
    returned = dict(np.load(tmp_path / "back" / "decoder_f16.npz"))
    assert all(w.dtype == np.float16 for w in returned.values()) and "decoder/strength_excess/0" in returned
    with np.load(os.path.join(STRENGTH_DIR, "weights.npz")) as start:
        shared = [k for k in returned if k in start.files]  # the decoder's own layers (every part is decoder/ here)
        assert shared and any(not np.array_equal(start[k], returned[k]) for k in shared)
    second = run(f"--resume={tmp_path / 'run'}", "--max_steps=3")
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"resumed from {tmp_path / 'run'} at step 2" in second.stdout
    with np.load(tmp_path / "run" / "adam.npz") as state:
        assert int(state["step"]) == 3 and int(state["iterations"]) == 3
    import json

    summaries = [json.loads(line) for line in open(tmp_path / "back" / "log.jsonl") if "final_step" in line]
    assert [s["final_step"] for s in summaries] == [2, 3]  # the log came back with the weights, both runs in it
    bad = run(f"--network={network.BUNDLED_DIR}", "--max_steps=1")  # the recipe needs the strength input
    assert bad.returncode != 0 and "strength_units is 0" in bad.stderr.strip().splitlines()[-1]
    unpack = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "device_pack.py"), "unpack",
                             f"--decoder={tmp_path / 'back' / 'decoder_f16.npz'}", f"--model={FADE_DIR}",
                             f"--out={tmp_path / 'net'}"], capture_output=True, text=True, timeout=300)
    assert unpack.returncode == 0, unpack.stderr[-2000:]
    from nst_tf import fast

    net = fast.load_network(str(tmp_path / "net"))
    assert net.config.strength_units and net.config.palette and net.config.skip_fade
    content = rng.random((1, 32, 32, 3)).astype(np.float32)
    vector = net.predict_style(rng.random((1, 32, 32, 3)).astype(np.float32))
    outputs = [net.stylize(content, vector, s).numpy() for s in (0.0, 1.0, 2.0)]
    assert all(np.isfinite(o).all() for o in outputs) and np.abs(outputs[2] - outputs[0]).mean() > 1e-3
