"""tools/jax_train.py (the trainer's step in JAX, for accelerator machines without TensorFlow) against nst_tf.train.

JAX (CPU) is in the test extra, so CI runs these; skipped where JAX is not installed. The tool's own runs (save,
resume, the student's network folder) are slow-marked: benchmarks/slow_checks.py runs them.
"""

import importlib.util
import os
from dataclasses import replace

import keras
import numpy as np
import pytest
import tensorflow as tf

jax = pytest.importorskip("jax")

from nst_tf import network, train  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _port_design(directory: str) -> str:
    """The network folder `directory` in the design the JAX port trains: without the strength input (FiLM layers,
    ramps) and the palette layer, which tools/jax_train.py does not have; the folder itself when it has neither."""
    import json
    import tempfile

    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    if not (config.get("strength_units") or config.get("palette")):
        return directory
    out = tempfile.mkdtemp(prefix="nst_port_design_")
    with np.load(os.path.join(directory, "weights.npz")) as data:
        kept = {k: data[k] for k in data.files if not (k.split("/")[1].startswith("strength_") or "_film" in k)}
    network.write_folder(out, kept, json.dumps({**config, "strength_units": 0, "palette": False}, sort_keys=True))
    return out


BUNDLED_DIR = _port_design(network.BUNDLED_DIR)  # the bundled network's weights in the port's design
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


jt = _load_tool("jax_train")


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
    weights = {"content": 1.0, "style": 10.0, "tv": 1.0, "identity": 10.0}
    jax_terms = jt.loss_terms(dec, vgg, content, style, weights, STYLE_LAYERS)
    assert set(jax_terms) == set(tf_terms)
    for key in tf_terms:
        np.testing.assert_allclose(np.asarray(jax_terms[key]), tf_terms[key].numpy(), rtol=2e-3, err_msg=key)
    assert float(np.min(tf_terms["style"])) > 0.1  # not a trivially matching zero
    trainer.config = replace(trainer.config, style_relative=True, style_target=0.05)
    try:
        tf_relative, _ = trainer.compute_losses(tf.constant(content), tf.constant(style))
    finally:
        trainer.config = replace(trainer.config, style_relative=False, style_target=0.0)
    jax_relative = jt.loss_terms(dec, vgg, content, style, {**weights, "style_target": 0.05}, STYLE_LAYERS)
    np.testing.assert_allclose(np.asarray(jax_relative["style"]), tf_relative["style"].numpy(), rtol=2e-3)
    assert float(np.min(tf_relative["style"])) > 0.1
    trainer.config = replace(trainer.config, inversion_weight=2.0)
    try:
        tf_inversion, _ = trainer.compute_losses(tf.constant(content), tf.constant(style))
    finally:
        trainer.config = replace(trainer.config, inversion_weight=0.0)
    jax_inversion = jt.loss_terms(dec, vgg, content, style, {**weights, "inversion": 2.0}, STYLE_LAYERS)
    np.testing.assert_allclose(np.asarray(jax_inversion["inversion"]), tf_inversion["inversion"].numpy(), rtol=2e-3)
    np.testing.assert_allclose(np.asarray(jax_inversion["total"]), tf_inversion["total"].numpy(), rtol=2e-3)
    assert float(np.min(tf_inversion["inversion"])) > 0.01


def test_linear_transform_changes_the_output(trainer, adain_trainer):
    content, style = _batch()
    vgg, dec = _jax_params(adain_trainer)
    _, linear = _jax_params(trainer)
    assert set(jt.LINEAR_LAYERS) <= set(linear) and not set(jt.LINEAR_LAYERS) & set(dec)
    weights = {"content": 1.0, "style": 10.0, "tv": 1.0, "identity": 10.0}
    plain = jt.loss_terms(dec, vgg, content, style, weights, STYLE_LAYERS)
    mixed = jt.loss_terms(linear, vgg, content, style, weights, STYLE_LAYERS)
    assert not np.allclose(np.asarray(plain["style"]), np.asarray(mixed["style"]), rtol=1e-3)


def test_moment_head_changes_the_output(head_trainer):
    content, style = _batch()
    vgg, headed = _jax_params(head_trainer)
    dec = {k: v for k, v in headed.items() if k not in jt.HEAD_LAYERS}
    assert set(jt.HEAD_LAYERS) <= set(headed)
    weights = {"content": 1.0, "style": 10.0, "tv": 1.0, "identity": 10.0}
    plain = jt.loss_terms(dec, vgg, content, style, weights, STYLE_LAYERS)
    corrected = jt.loss_terms(headed, vgg, content, style, weights, STYLE_LAYERS)
    assert not np.allclose(np.asarray(plain["style"]), np.asarray(corrected["style"]), rtol=1e-3)
    np.testing.assert_allclose(np.asarray(plain["identity"]), np.asarray(corrected["identity"]), rtol=1e-5)


def test_gradients_match_tensorflow(trainer):
    content, style = _batch()
    tf_grads, _, bad = trainer._replica_gradients(tf.constant(content), tf.constant(style))
    assert int(bad) == 0
    vgg, dec = _jax_params(trainer)
    weights = {"content": 1.0, "style": 10.0, "tv": 1.0, "identity": 10.0}

    def loss(d):
        return jax.numpy.mean(jt.loss_terms(d, vgg, content, style, weights, STYLE_LAYERS)["total"])

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
        params, state = jt.adam_update(params, {"w": (g,)}, state, 0.01, 0.5)
    np.testing.assert_allclose(np.asarray(params["w"][0]), var.numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(var.numpy(), start, atol=1e-3)  # the steps did move it


@pytest.mark.slow  # 220 s on the shared 2-core machine (six tools/jax_train.py runs, each compiling its step)
def test_run_saves_and_resumes(tmp_path, lpips_weights):
    import subprocess
    import sys

    from nst_tf import weights as weights_lib

    dp = _load_tool("device_pack")
    vgg = weights_lib.build_backbone("vgg16", lpips_weights)
    assert {k.split("/")[1] for k in dp.loss_layer_arrays(vgg)} == {"block4_conv2", "block4_conv3", "block5_conv1"}
    trimmed = dp.loss_layer_arrays(vgg, block5=False)  # what the default style layers need: the run below uses it
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
    crops = [jt.random_crop(image, 64, 1.0, 1.6, rng) for _ in range(5)]  # smaller than the crop: resized up
    assert all(c.shape == (64, 64, 3) and c.dtype == np.float32 for c in crops)
    assert min(c.min() for c in crops) >= 0.0 and max(c.max() for c in crops) <= 1.0


def _student(blocks=2):
    """A small nst_tf.mobile transformer with random weights (conditioning included), Keras and JAX forms."""
    from nst_tf import mobile

    keras.utils.set_random_seed(3)
    model = mobile.build_transformer(mobile.MobileConfig(channels=(4, 8, 8), residual_blocks=blocks, bottleneck=6))
    rng = np.random.default_rng(0)
    arrays = mobile.weight_arrays(model)
    for key, w in arrays.items():
        if w.ndim == 2 or key.endswith("/1"):
            arrays[key] = rng.normal(0, 0.05, w.shape).astype(np.float32)
    mobile.set_weight_arrays(model, arrays)
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
    assert jt.student_blocks(params) == 2
    ours = np.asarray(jt.transform(params, content, vector, 2))
    np.testing.assert_allclose(ours, model([content, vector]).numpy(), atol=2e-5)


def test_student_terms(trainer):
    from nst_tf import network

    _, params = _student()
    content, style = _batch()
    vgg, dec = _jax_params(trainer)
    weights = {"content": 1.0, "style": 10.0, "tv": 1.0, "identity": 10.0, "distill": 10.0}
    terms = jt.student_terms(params, dec, vgg, content, style, weights, STYLE_LAYERS)
    assert set(terms) == {"content", "style", "tv", "identity", "distill", "total"}
    # the style vector is nst_tf.network's, and distill is 10 x the squared pixel error to the teacher's output
    levels = trainer.net.encode(tf.constant(style))
    own = np.asarray(jt.style_vector([np.asarray(f) for f in levels]))
    np.testing.assert_allclose(own, network.levels_vector(levels).numpy(), rtol=1e-4, atol=1e-5)
    teacher = trainer.net.stylize(tf.constant(content), trainer.net.vector_of(levels)).numpy()
    vector = network.levels_vector(levels).numpy()
    output = np.asarray(jt.transform(params, content, vector, 2))
    expected = 10.0 * np.mean(np.square(output - teacher), axis=(1, 2, 3))
    np.testing.assert_allclose(np.asarray(terms["distill"]), expected, rtol=1e-3)
    np.testing.assert_allclose(np.asarray(terms["total"]),
                               sum(np.asarray(v) for k, v in terms.items() if k != "total"), rtol=1e-5)


def test_student_terms_match_the_tensorflow_trainer(trainer, tmp_path):
    """nst-train --network=mobile's step (TensorFlow) and jax_train.py --student's agree on every term."""
    from nst_tf import mobile

    student = train.Trainer(
        train.TrainConfig(**{**trainer.config.__dict__, "model_dir": str(tmp_path / "student"), "distill_weight": 10.0,
                             "teacher": BUNDLED_DIR}),
        network_config=mobile.MobileConfig(channels=(4, 8, 8), residual_blocks=2, bottleneck=6))
    model, params = _student()
    student.net.transformer.set_weights(model.get_weights())
    content, style = _batch()
    tf_terms, _ = student.compute_losses(tf.constant(content), tf.constant(style))
    vgg, dec = _jax_params(trainer)
    weights = {"content": 1.0, "style": 10.0, "tv": 1.0, "identity": 10.0, "distill": 10.0}
    jax_terms = jt.student_terms(params, dec, vgg, content, style, weights, STYLE_LAYERS)
    assert set(jax_terms) == set(tf_terms)
    for key in tf_terms:
        np.testing.assert_allclose(np.asarray(jax_terms[key]), tf_terms[key].numpy(), rtol=2e-3, err_msg=key)
