"""nst-export: SavedModel signatures (TF Serving, TF Hub), TFLite models, parity with Keras, validation, the CLI; the
strength input of each, on the bundled networks and on small random ones trained-with-strength in shape."""

import io
import json
import os
import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, last_line, run_cli
from PIL import Image

from nst_tf import export, fast, images
from nst_tf.mobile import ConditionalInstanceNorm, MobileConfig, MobileStyleNetwork
from nst_tf.network import BUNDLED_DIR, ArbitraryStyleNetwork, NetworkConfig

SIZE = 64  # fixed TFLite content and style side (small: the test machine has 2 cores)
# small random networks with the strength input (FiLM of the decoder / a shifted bottleneck) and the palette layer
STRONG = NetworkConfig(decoder_channels=(16, 16, 8, 8, 8, 8), preprocessing="caffe", strength_units=8, palette=True)
STRONG_MOBILE = MobileConfig(channels=(8, 8, 8), residual_blocks=1, bottleneck=8, preprocessing="caffe",
                             strength_units=4, palette=True)


@pytest.fixture(scope="module")
def net():
    return ArbitraryStyleNetwork.load()


with open(os.path.join(BUNDLED_DIR, "config.json")) as _f:
    V = NetworkConfig.from_json(_f.read()).vector_size  # the bundled network's style vector length


@pytest.fixture(scope="module")
def exported(tmp_path_factory, data_dir, net):
    """One export of everything (full-integer int8 attempted) into a temporary folder."""
    options = export.ExportOptions(
        output_dir=str(tmp_path_factory.mktemp("export")), content_size=SIZE, style_size=SIZE, int8="auto",
        calibration_samples=4, parity_pairs=1, latency_runs=1)
    report = export.export(net, options, data_dir)
    return options, report


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(exported[1]["saved_model"]["path"])


def _modulated(net, seed: int = 0):
    """`net` with random weights in its zero-initialised projections that carry the strength (FiLM; the bottleneck
    shift and the conditional instance norms it drives), as training leaves them: a fresh network's output does not
    change above strength 1."""
    rng = np.random.default_rng(seed)
    for model in net.models:
        for layer in model.layers:
            dense = layer.dense if isinstance(layer, ConditionalInstanceNorm) else layer
            if isinstance(layer, ConditionalInstanceNorm) or layer.name.endswith("_film") or \
                    layer.name == "strength_shift":
                kernel, bias = dense.get_weights()
                dense.set_weights([rng.normal(0, 0.3, kernel.shape).astype(np.float32), bias])
    return net


@pytest.fixture(scope="module")
def strong_folder(tmp_path_factory):
    """A saved random arbitrary-style network with strength_units and the palette layer (float16 weights)."""
    keras.utils.set_random_seed(0)
    folder = str(tmp_path_factory.mktemp("strong") / "network")
    _modulated(ArbitraryStyleNetwork(STRONG)).save(folder)
    return folder


@pytest.fixture(scope="module")
def strong_net(strong_folder):
    return fast.load_network(strong_folder)


@pytest.fixture(scope="module")
def strong_exported(tmp_path_factory, data_dir, strong_net, strong_folder):
    """The SavedModel export of the strength network, with its parity checks and model card."""
    options = export.ExportOptions(output_dir=str(tmp_path_factory.mktemp("strong_export")), formats=("saved_model",),
                                   content_size=SIZE, style_size=SIZE, parity_pairs=1, latency_runs=1)
    return options, export.export(strong_net, options, data_dir, strong_folder)


@pytest.fixture(scope="module")
def strong_loaded(strong_exported):
    return tf.saved_model.load(strong_exported[1]["saved_model"]["path"])


@pytest.fixture(scope="module")
def pictures(data_dir):
    """Real content and style images, not the ones the export checked itself on."""
    content = images.load_image(f"{data_dir}/content/tubingen.jpg")
    style = images.load_image(f"{data_dir}/styles/starry_night.jpg")
    small = images.resize_long_side(content, 75)  # 75x56: not a multiple of the stride
    other = images.resize(images.load_image(f"{data_dir}/content/golden_gate.jpg"), *small.shape[:2])
    return {"content": small, "content2": other, "style": images.resize_long_side(style, 64),
            "content_square": export.center_square(content, SIZE), "style_square": export.center_square(style, SIZE)}


def keras_stylize(net, content, style, strength=1.0):
    vector = net.predict_style(tf.constant(style[None]))
    return fast.stylize_padded(net, tf.constant(content[None]), vector, strength).numpy()


def test_saved_model_signatures_match_keras(loaded, net, pictures):
    assert set(loaded.signatures.keys()) == set(export.SIGNATURES)
    content, style = pictures["content"], pictures["style"]
    out = loaded.signatures["serving_default"](content=tf.constant(content[None]), style=tf.constant(style[None]),
                                               strength=tf.constant(1.0))["stylized_image"].numpy()
    assert out.shape == (1, *content.shape) and out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_allclose(out, keras_stylize(net, content, style), atol=1e-4)

    # a batch of two with one style and one strength each; 0: the network's own rendering of the photo
    batch = np.stack([content, pictures["content2"]])
    out = loaded.signatures["serving_default"](content=tf.constant(batch), style=tf.constant(style[None]),
                                               strength=tf.constant([0.0, 0.3]))["stylized_image"].numpy()
    np.testing.assert_allclose(out[:1], keras_stylize(net, batch[0], style, 0.0), atol=1e-4)
    np.testing.assert_allclose(out[1:], keras_stylize(net, batch[1], style, 0.3), atol=1e-4)
    stylized = keras_stylize(net, batch[1], style, 1.0)
    assert np.abs(out[1:] - stylized).mean() > 1e-3  # the strength reached item 2
    assert np.abs(out[0] - content).mean() < 0.75 * np.abs(keras_stylize(net, content, style)[0] - content).mean()

    vector = loaded.signatures["predict_style"](style=tf.constant(style[None]))["style_vector"]
    np.testing.assert_allclose(vector.numpy(), net.predict_style(tf.constant(style[None])).numpy(), rtol=1e-4,
                               atol=1e-4)
    out = loaded.signatures["stylize_with_vector"](content=tf.constant(content[None]), style_vector=vector,
                                                   strength=tf.constant(1.0))["stylized_image"]
    np.testing.assert_allclose(out.numpy(), keras_stylize(net, content, style), atol=1e-4)


def test_hub_load_called_the_magenta_way(exported, net, pictures):
    import tensorflow_hub as hub

    hub_module = hub.load(exported[1]["saved_model"]["path"])
    content_image, style_image = pictures["content"][None], pictures["style"][None]
    outputs = hub_module(tf.constant(content_image), tf.constant(style_image))
    stylized_image = outputs[0]
    assert stylized_image.shape == content_image.shape
    np.testing.assert_allclose(stylized_image.numpy(), keras_stylize(net, pictures["content"], pictures["style"]),
                               atol=1e-4)
    # the optional third argument: the strength (positional, keyword, a Python float)
    half = keras_stylize(net, pictures["content"], pictures["style"], 0.5)
    for out in (hub_module(tf.constant(content_image), tf.constant(style_image), tf.constant(0.5)),
                hub_module(tf.constant(content_image), tf.constant(style_image), strength=tf.constant(0.5)),
                hub_module(tf.constant(content_image), tf.constant(style_image), 0.5)):
        np.testing.assert_allclose(out[0].numpy(), half, atol=1e-4)


def test_saved_model_cli_lists_the_signatures(exported):
    proc = subprocess.run(["saved_model_cli", "show", "--dir", exported[1]["saved_model"]["path"], "--all"],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in export.SIGNATURES:
        assert f"signature_def['{name}']" in proc.stdout
    assert "['stylized_image_bytes'] tensor_info:" in proc.stdout and "dtype: DT_STRING" in proc.stdout
    assert "['style_vector'] tensor_info:" in proc.stdout


def test_bytes_signature_round_trips_a_jpeg(loaded, net, pictures):
    def jpeg(image):
        buffer = io.BytesIO()
        Image.fromarray(images.to_uint8(image)).save(buffer, format="JPEG", quality=92)
        return buffer.getvalue()

    content_jpeg, style_jpeg = jpeg(pictures["content"]), jpeg(pictures["style"])
    png = loaded.signatures["stylize_bytes"](content=tf.constant(content_jpeg),
                                             style=tf.constant(style_jpeg))["stylized_image_bytes"].numpy()
    assert png.shape == (1,) and png[0][:8] == b"\x89PNG\r\n\x1a\n"
    result = np.asarray(Image.open(io.BytesIO(png[0])), np.float32) / 255.0
    assert result.shape == pictures["content"].shape
    decoded = tf.image.convert_image_dtype(tf.io.decode_jpeg(content_jpeg), tf.float32)[None]
    style = export.resize_long_side(tf.image.convert_image_dtype(tf.io.decode_jpeg(style_jpeg), tf.float32)[None],
                                    export.BYTES_STYLE_SIZE)
    expected = fast.stylize_padded(net, decoded, net.predict_style(style)).numpy()[0]
    assert np.abs(result - expected).max() <= 1.5 / 255.0

    # a batch of two contents of different sizes, one style, one strength each
    small = images.resize_long_side(pictures["content2"], 40)
    pngs = loaded.signatures["stylize_bytes_strength"](
        content=tf.constant([content_jpeg, jpeg(small)]), style=tf.constant([style_jpeg]),
        strength=tf.constant([1.0, 0.5]))["stylized_image_bytes"].numpy()
    shapes = [np.asarray(Image.open(io.BytesIO(p))).shape for p in pngs]
    assert shapes == [pictures["content"].shape, small.shape]
    assert pngs[0] == png[0]  # strength 1 is stylize_bytes' default


def _inputs(kind, content=None, style=None, strength=1.0, vector=None):
    rng = np.random.default_rng(0)
    content = rng.uniform(size=(1, 32, 40, 3)).astype(np.float32) if content is None else content
    style = rng.uniform(size=(1, 32, 32, 3)).astype(np.float32) if style is None else style
    if kind == "vector":
        vector = np.ones((1, V), np.float32) if vector is None else vector
        return "stylize_with_vector", {"content": content, "style_vector": vector, "strength": strength}
    return "serving_default", {"content": content, "style": style, "strength": strength}


BAD_FLOAT_INPUTS = [
    (_inputs("float", content=np.zeros((32, 40, 3), np.float32)), r"content: expected a \[batch, height, width, 3\]"),
    (_inputs("float", content=np.zeros((1, 32, 40, 4), np.float32)), "content: expected 3 channels"),
    (_inputs("float", content=np.full((1, 32, 40, 3), 255.0, np.float32)), r"content: values must be in \[0, 1\]"),
    (_inputs("float", style=np.full((1, 32, 32, 3), -0.5, np.float32)), r"style: values must be in \[0, 1\]"),
    (_inputs("float", content=np.full((1, 32, 40, 3), np.nan, np.float32)), "content: contains NaN or Inf"),
    (_inputs("float", content=np.zeros((1, 8, 40, 3), np.float32)), "content: height and width must be at least 16"),
    (_inputs("float", content=np.zeros((1, 0, 40, 3), np.float32)), "content: height and width must be at least 16"),
    (_inputs("float", style=np.zeros((3, 32, 32, 3), np.float32)), "style: batch must be 1 or the content batch"),
    (_inputs("float", strength=2.5), r"strength: values must be in \[0, 2\]"),
    (_inputs("float", strength=np.array([1.0, -0.5], np.float32), content=np.zeros((2, 32, 40, 3), np.float32)),
     r"strength: values must be in \[0, 2\]"),
    (_inputs("float", strength=np.nan), r"strength: values must be in \[0, 2\]"),
    (_inputs("vector", strength=3.0), r"strength: values must be in \[0, 2\]"),
    (_inputs("float", strength=np.ones((2, 2), np.float32)), "strength: expected a scalar or a"),
    (_inputs("float", strength=np.ones(3, np.float32)), "strength: batch must be 1 or the content batch"),
    (_inputs("vector", vector=np.ones((1, 100), np.float32)), f"style_vector: expected {V} values"),
    (_inputs("vector", vector=np.ones(V, np.float32)), rf"style_vector: expected a \[batch, {V}\]"),
]


@pytest.mark.parametrize("call,message", BAD_FLOAT_INPUTS, ids=[m for _, m in BAD_FLOAT_INPUTS])
def test_bad_float_inputs_fail_with_a_clear_message(loaded, call, message):
    name, kwargs = call
    kwargs = {k: tf.constant(np.asarray(v, np.float32)) for k, v in kwargs.items()}
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures[name](**kwargs)


@pytest.mark.parametrize("content,message", [
    (b"", "content: empty bytes"),
    (b"hello, not an image", "content: not a JPEG, PNG, GIF or BMP image"),
    ([b"\x89PNG\r\n\x1a\n"] * 0, "content: empty batch"),
])
def test_bad_bytes_fail_with_a_clear_message(loaded, pictures, content, message):
    buffer = io.BytesIO()
    Image.fromarray(images.to_uint8(pictures["style"])).save(buffer, format="PNG")
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures["stylize_bytes"](content=tf.constant(content, tf.string),
                                           style=tf.constant(buffer.getvalue()))


def test_bytes_strength_out_of_range_fails_with_a_clear_message(loaded, pictures):
    buffer = io.BytesIO()
    Image.fromarray(images.to_uint8(pictures["style"])).save(buffer, format="PNG")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"strength: values must be in \[0, 2\]"):
        loaded.signatures["stylize_bytes_strength"](content=tf.constant(buffer.getvalue()),
                                                    style=tf.constant(buffer.getvalue()), strength=tf.constant(2.01))


def test_hub_call_validates_too(loaded):
    with pytest.raises(tf.errors.InvalidArgumentError, match="content: expected 3 channels"):
        loaded(tf.zeros((1, 32, 32, 1)), tf.zeros((1, 32, 32, 3)))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"strength: values must be in \[0, 2\]"):
        loaded(tf.zeros((1, 32, 32, 3)), tf.zeros((1, 32, 32, 3)), tf.constant(-1.0))


def _run_tflite(path, inputs):
    with open(path, "rb") as f:
        return _run_tflite_bytes(f.read(), inputs)


def _run_tflite_bytes(model, inputs):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model, num_threads=2)  # fails on Flex (select TF) ops
    runner = interpreter.get_signature_runner()
    assert set(runner.get_input_details()) == set(inputs)
    return runner(**inputs)


def test_tflite_models_are_builtin_only_and_match_keras(exported, net, pictures):
    options, report = exported
    files = {(e["part"], e["quantization"], e["dynamic"]): e for e in report["tflite"]["files"]}
    assert set(files) == {(v.part, v.quantization, v.dynamic) for v in export.TFLITE_VARIANTS}
    for (part, quantization, dynamic), entry in files.items():
        with open(entry["path"], "rb") as f:
            model = f.read()
        ops = export.tflite_ops(model)
        assert "CONV_2D" in ops and not any(op.startswith("CUSTOM") for op in ops), (entry["file"], ops)
        if part == "transfer":
            assert "MIRROR_PAD" in ops and "RESIZE_NEAREST_NEIGHBOR" in ops
        # fixed models take centre squares, resizable ones odd sizes (56x75 content, 64x48 style)
        content = pictures["content"] if dynamic else pictures["content_square"]
        style = pictures["style"] if dynamic else pictures["style_square"]
        vector = net.predict_style(tf.constant(style[None])).numpy()
        max_bound, mean_bound = export.IMAGE_BOUNDS[quantization]
        if part == "prediction":
            out = _run_tflite(entry["path"], {"style": style[None]})["style_vector"]
            assert out.shape == (1, 1, 1, V)
            image = fast.stylize_padded(net, tf.constant(content[None]), tf.constant(out.reshape(1, -1))).numpy()
        else:
            out = _run_tflite(entry["path"], {"content": content[None], "style_vector": vector.reshape(1, 1, 1, -1),
                                              "strength": np.array([1.0], np.float32)})
            image = out["stylized_image"]
        expected = fast.stylize_padded(net, tf.constant(content[None]), tf.constant(vector)).numpy()
        assert image.shape == expected.shape
        error = np.abs(image - expected)
        assert error.max() <= max_bound and error.mean() <= mean_bound, (entry["file"], error.max(), error.mean())


def test_combined_files_hold_both_signatures_over_shared_weights(exported, net, pictures):
    from ai_edge_litert.interpreter import Interpreter

    options, report = exported
    files = {(e["part"], e["quantization"], e["dynamic"]): e for e in report["tflite"]["files"]}
    combined = {e["quantization"]: e for e in report["tflite"]["combined"]}
    assert set(combined) == {"fp16", "int8"}
    vector = net.predict_style(tf.constant(pictures["style_square"][None])).numpy()
    expected = fast.stylize_padded(net, tf.constant(pictures["content_square"][None]), tf.constant(vector)).numpy()
    for quantization, entry in combined.items():
        assert os.path.basename(entry["path"]) == export.combined_filename(options, quantization)
        with open(entry["path"], "rb") as f:
            model = f.read()
        assert export.non_builtin_ops(model) == [] and len(model) == entry["size_bytes"]
        interpreter = Interpreter(model_content=model, num_threads=2)
        signatures = interpreter.get_signature_list()
        assert signatures == {"prediction": {"inputs": ["style"], "outputs": ["style_vector"]},
                              "transfer": {"inputs": ["content", "strength", "style_vector"],
                                           "outputs": ["stylized_image"]}}
        out = interpreter.get_signature_runner("prediction")(style=pictures["style_square"][None])["style_vector"]
        image = interpreter.get_signature_runner("transfer")(
            content=pictures["content_square"][None], style_vector=out,
            strength=np.array([1.0], np.float32))["stylized_image"]
        error = np.abs(image - expected)
        max_bound, mean_bound = export.IMAGE_BOUNDS[quantization]
        assert error.max() <= max_bound and error.mean() <= mean_bound, (quantization, error.max(), error.mean())
        separate = files[("prediction", quantization, False)]["size_bytes"] + \
            files[("transfer", quantization, False)]["size_bytes"]
        assert entry["size_bytes"] < 0.8 * separate  # the encoder's weights are stored once


def test_int8_scheme_follows_the_measurement(exported):
    _, report = exported
    files = {(e["part"], e["quantization"], e["dynamic"]): e for e in report["tflite"]["files"]}
    for part in ("prediction", "transfer"):
        int8, fp16 = files[(part, "int8", False)], files[(part, "fp16", False)]
        attempt = int8["full_integer_attempt"]
        if "error" in attempt:  # converted but not runnable here: dynamic-range instead, the reason recorded
            assert not attempt["within_bound"] and int8["scheme"].startswith("dynamic-range")
        else:
            assert attempt["within_bound"] == export.tflite_within(attempt, "int8")
        assert int8["scheme"].startswith("full-integer") == attempt["within_bound"]
        ops = export.tflite_ops(open(int8["path"], "rb").read())
        if attempt["within_bound"]:
            assert "QUANTIZE" in ops and "DEQUANTIZE" in ops  # float32 I/O around int8 kernels
        assert int8["size_bytes"] < 0.6 * fp16["size_bytes"]  # int8 weights
        assert int8["within_bound"]


def test_full_integer_int8_runs_integer_kernels(net, data_dir, tmp_path):
    from tensorflow.lite.python import schema_py_generated as schema

    options = export.ExportOptions(content_size=32, style_size=32, calibration_samples=2)
    variant = export.TFLiteVariant("prediction", "int8")
    source = export.write_tflite_source(net, variant, options, str(tmp_path / "source"))
    calibration = export.calibration_data(net, data_dir, options)["prediction"]
    model = export.convert_tflite(source, "int8_full", lambda: iter(calibration))
    assert export.non_builtin_ops(model) == []
    parsed = schema.Model.GetRootAsModel(bytearray(model), 0)
    graph = parsed.Subgraphs(0)
    conv_inputs = {graph.Tensors(graph.Operators(i).Inputs(0)).Type() for i in range(graph.OperatorsLength())
                   if parsed.OperatorCodes(graph.Operators(i).OpcodeIndex()).BuiltinCode()
                   == schema.BuiltinOperator.CONV_2D}
    assert conv_inputs == {schema.TensorType.INT8}
    out = _run_tflite_bytes(model, {"style": calibration[0]["style"]})["style_vector"]
    assert out.shape == (1, 1, 1, V) and np.isfinite(out).all()


def test_model_card_and_report(exported):
    options, report = exported
    assert report["failures"] == []
    with open(os.path.join(options.output_dir, "MODEL_CARD.md")) as f:
        card = f.read()
    with open(os.path.join(options.output_dir, "export_report.json")) as f:
        assert json.load(f)["tflite"]["files"][0]["file"] == report["tflite"]["files"][0]["file"]
    for name in export.SIGNATURES:
        assert f"`{name}`" in card
    for entry in report["tflite"]["files"] + report["tflite"]["combined"]:
        assert f"`{entry['file']}`" in card and f"{entry['size_bytes'] / 1e6:.2f} MB" in card
        assert os.path.getsize(entry["path"]) == entry["size_bytes"]
    assert f"{report['saved_model']['parity']['serving_default']['max_abs']:.2e}" in card
    assert "hub_module(tf.constant(content_image), tf.constant(style_image))" in card
    # the strength: its range and meaning, the sweep measured at export time, the pictures of the benchmark
    assert "## Strength" in card and "### Strength sweep" in card and "docs/images/fast_strength_" in card
    assert "`strength` float32 scalar or [B] in [0, 2]" in card and "(content, strength, style_vector" in card
    sweep = report["strength_sweep"]
    assert [row["strength"] for row in sweep] == list(export.SWEEP_STRENGTHS)
    from nst_tf.export.card import _fmt

    for row in sweep:
        assert f"| {row['strength']:g} | {_fmt(row['from_photo'])} | {_fmt(row['palette_gap'])} |" in card
    from_photo = [row["from_photo"] for row in sweep]
    assert from_photo[0] < from_photo[1] < from_photo[2]  # the bundled network: further from the photo up to 1


@pytest.mark.slow  # a second full export through the CLI (the fixture's export and test_export_cli cover the parts)
def test_cli_end_to_end(tmp_path, data_dir):
    args = [f"--output_dir={tmp_path}", "--formats=saved_model", f"--data_dir={data_dir}", "--parity_pairs=1",
            "--latency_runs=1", "--model_name=styler", "--version=3", "--content_size=32", "--style_size=32"]
    proc = run_cli("nst_tf.cli.export", *args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert os.path.isfile(tmp_path / "styler" / "3" / "saved_model.pb")
    assert os.path.isfile(tmp_path / "MODEL_CARD.md") and not os.path.exists(tmp_path / "tflite")
    assert f"wrote SavedModel {tmp_path}/styler/3" in proc.stdout

    again = run_cli("nst_tf.cli.export", *args)
    assert again.returncode == 1
    assert last_line(again.stderr) == f"error: {tmp_path}/styler/3: already exists (pass --overwrite to replace it)"


def test_cli_bad_flag_is_one_line(tmp_path):
    proc = run_cli("nst_tf.cli.export", f"--output_dir={tmp_path}", "--formats=saved_model,onnx")
    assert proc.returncode == 2
    assert last_line(proc.stderr) == "error: unknown format(s) onnx (choose from saved_model, tflite)"
    assert not os.listdir(tmp_path)


def test_cli_missing_checkpoint_is_one_line(tmp_path, data_dir):
    missing = tmp_path / "no_model"
    proc = run_cli("nst_tf.cli.export", f"--output_dir={tmp_path / 'out'}", f"--checkpoint={missing}",
                   f"--data_dir={data_dir}")
    assert proc.returncode == 1
    assert last_line(proc.stderr) == (f"error: {missing}/config.json: missing (a model folder holds config.json "
                                      "and weights.npz)")


def test_resolve_checkpoint_accepts_a_training_folder(tmp_path):
    (tmp_path / "network").mkdir()
    (tmp_path / "network" / "config.json").write_text("{}")
    assert export.resolve_checkpoint(str(tmp_path)) == str(tmp_path / "network")
    assert export.resolve_checkpoint(str(tmp_path / "network")) == str(tmp_path / "network")
    assert export.resolve_checkpoint("") is None


def _check_transfer_tflite(net, pictures, tmp_path, op: str, variants=None) -> dict:
    """The transfer part of `net` (default: int8 and resizable fp16): builtin ops only, `op` among them, parity with
    Keras at every parity strength; the TFLite outputs by (variant, strength)."""
    options = export.ExportOptions(content_size=SIZE, style_size=SIZE)
    vector = net.predict_style(tf.constant(pictures["style_square"][None]))
    variants = variants or ((export.TFLiteVariant("transfer", "int8"), "int8_dynamic"),
                            (export.TFLiteVariant("transfer", "fp16", dynamic=True), "fp16"))
    outputs = {}
    for variant, quantization in variants:
        source = export.write_tflite_source(net, variant, options, str(tmp_path / variant.filename(options)))
        model = export.convert_tflite(source, quantization)
        assert export.non_builtin_ops(model) == [] and op in export.tflite_ops(model)
        content = pictures["content_square"] if not variant.dynamic else pictures["content"]
        for strength in export.PARITY_STRENGTHS:
            out = _run_tflite_bytes(model, {"content": content[None], "style_vector": tf.reshape(vector, [1, 1, 1, -1])
                                            .numpy(), "strength": np.array([strength], np.float32)})["stylized_image"]
            expected = fast.stylize_padded(net, tf.constant(content[None]), vector, strength).numpy()
            assert export.within(export.errors(out, expected), export.IMAGE_BOUNDS[variant.quantization]), strength
            outputs[variant, strength] = out
    return outputs


def test_mobile_network_transfer_converts_and_matches_keras(pictures, tmp_path):
    """The phone-sized network (nst_tf.mobile): builtin ops only, strength < 1 as a TFLite IF branch, parity."""
    _check_transfer_tflite(fast.load_network(os.path.join(os.path.dirname(BUNDLED_DIR), "mobile")), pictures,
                           tmp_path, "IF")


def test_strength_network_signatures(strong_exported, strong_loaded, strong_net, pictures):
    """A network trained with the strength (FiLM, palette): every signature takes it; 0 is the network's rendering of
    the photo whatever the style, 2 is not 1; the export's own parity checks (strengths 0 to 2) pass."""
    options, report = strong_exported
    assert report["failures"] == [] and all(report["saved_model"]["within_bound"].values())
    assert set(report["saved_model"]["parity"]) == {*export.SIGNATURES, "__call__"}
    content, style, other = pictures["content"], pictures["style"], pictures["style_square"][::-1]
    serve = strong_loaded.signatures["serving_default"]
    outs = {}
    for strength in (0.0, 1.0, 2.0):
        outs[strength] = serve(content=tf.constant(content[None]), style=tf.constant(style[None]),
                               strength=tf.constant(strength))["stylized_image"].numpy()
        np.testing.assert_allclose(outs[strength], keras_stylize(strong_net, content, style, strength), atol=1e-4)
    zero_other = serve(content=tf.constant(content[None]), style=tf.constant(other[None].copy()),
                       strength=tf.constant(0.0))["stylized_image"].numpy()
    np.testing.assert_allclose(zero_other, outs[0.0], atol=1e-5)  # strength 0: the style does not matter
    assert np.abs(outs[0.0] - content).mean() > 1e-2  # drawn by the (random) network, not the input passed through
    assert np.abs(outs[2.0] - outs[1.0]).mean() > 1e-3 and np.abs(outs[1.0] - outs[0.0]).mean() > 1e-3

    vector = strong_loaded.signatures["predict_style"](style=tf.constant(style[None]))["style_vector"]
    assert vector.shape == (1, STRONG.vector_size)  # with the palette's 6 floats
    batch = tf.constant(np.stack([content, content]))
    out = strong_loaded.signatures["stylize_with_vector"](content=batch, style_vector=vector,
                                                          strength=tf.constant([2.0, 0.0]))["stylized_image"].numpy()
    np.testing.assert_allclose(out, np.concatenate([outs[2.0], outs[0.0]]), atol=1e-4)
    np.testing.assert_allclose(strong_loaded(tf.constant(content[None]), tf.constant(style[None]))[0].numpy(),
                               outs[1.0], atol=1e-5)
    np.testing.assert_allclose(strong_loaded(tf.constant(content[None]), tf.constant(style[None]),
                                             tf.constant(2.0))[0].numpy(), outs[2.0], atol=1e-5)
    encoded = [export.encode_png(content).numpy(), export.encode_png(style).numpy()]
    pngs = {strength: strong_loaded.signatures["stylize_bytes_strength"](
        content=tf.constant(encoded[0]), style=tf.constant(encoded[1]),
        strength=tf.constant(strength))["stylized_image_bytes"].numpy()[0] for strength in (1.0, 2.0)}
    assert pngs[1.0] == strong_loaded.signatures["stylize_bytes"](
        content=tf.constant(encoded[0]), style=tf.constant(encoded[1]))["stylized_image_bytes"].numpy()[0]
    assert pngs[2.0] != pngs[1.0]

    with open(os.path.join(options.output_dir, "MODEL_CARD.md")) as f:
        card = f.read()
    assert "modulated by the strength (an embedding 8 wide)" in card and "a palette layer" in card


def test_strength_network_transfer_converts_and_matches_keras(strong_net, pictures, tmp_path):
    """The strength network's resizable transfer model: the strength input reaches the decoder (its embedding's
    FULLY_CONNECTED), parity with Keras at strengths 0 to 2, and 2 differs from 1."""
    outs = _check_transfer_tflite(strong_net, pictures, tmp_path, "FULLY_CONNECTED",
                                  ((export.TFLiteVariant("transfer", "fp16", dynamic=True), "fp16"),))
    (variant,) = {v for v, _ in outs}
    assert np.abs(outs[variant, 2.0] - outs[variant, 1.0]).mean() > 1e-3


def test_mobile_strength_network_transfer_converts_and_matches_keras(pictures, tmp_path):
    """A phone-sized network with the strength input and the palette: int8 transfer with the IF branch (strength <
    1) and the strength's bottleneck shift, parity at strengths 0 to 2, and 2 differs from 1."""
    keras.utils.set_random_seed(1)
    mobile = _modulated(MobileStyleNetwork(STRONG_MOBILE))
    outs = _check_transfer_tflite(mobile, pictures, tmp_path, "IF",
                                  ((export.TFLiteVariant("transfer", "int8"), "int8_dynamic"),))
    (variant,) = {v for v, _ in outs}
    assert np.abs(outs[variant, 2.0] - outs[variant, 1.0]).mean() > 1e-3


def test_sliced_convolution_is_the_layer_and_stays_float_in_int8(pictures, tmp_path):
    """kept_float: a convolution computed in slices of output channels (each under the converter's 1,024-weight
    minimum) is the layer's own result, a dynamic-range int8 file then reads those slices' weights in float, and the
    layers are themselves again afterwards; a name that is not a convolution is refused."""
    layer = keras.layers.Conv2D(32, 3, strides=2, activation="relu")
    x = tf.random.stateless_normal([1, 17, 15, 16], seed=[0, 1])
    expected = layer(x)  # builds it: 3 * 3 * 16 * 32 = 4,608 weights
    np.testing.assert_allclose(export.sliced_conv2d(layer, x).numpy(), expected.numpy(), atol=1e-5)

    keras.utils.set_random_seed(2)
    net = MobileStyleNetwork(MobileConfig(channels=(16, 32, 16), residual_blocks=1, bottleneck=8,
                                          preprocessing="caffe"))
    options = export.ExportOptions(content_size=SIZE, style_size=SIZE)
    variant = export.TFLiteVariant("transfer", "int8")
    floats = {}
    for kept in ((), ("conv2",)):
        source = export.write_tflite_source(net, variant, options, str(tmp_path / f"source{len(kept)}"), kept)
        floats[kept] = export.float_weight_convolutions(export.convert_tflite(source, "int8_dynamic"))
    assert floats[("conv2",)] == floats[()] + 5  # conv2's 32 outputs in slices of 7 (7 * 144 < 1,024)
    conv2 = net.transformer.get_layer("conv2")
    assert "call" not in vars(conv2)  # the layer's own call again
    content = tf.constant(pictures["content_square"][None])
    vector = net.predict_style(tf.constant(pictures["style_square"][None]))
    with export.kept_float(net, ["conv2", "conv1"]):
        assert "call" in vars(conv2)
        sliced = net.stylize(content, vector).numpy()
    np.testing.assert_allclose(sliced, net.stylize(content, vector).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="in1: not a convolution"):
        with export.kept_float(net, ["in1"]):
            pass


@pytest.mark.slow  # three conversions and parity checks of the phone-sized transfer model at 384 px
def test_int8_keeps_the_sensitive_convolutions_float(data_dir, tmp_path):
    """checkpoints/mobile_strength: with every convolution int8 its transfer model misses the int8 bound (conv2's
    input spans hundreds after the strength-modulated first norm); the export keeps conv2, then conv3, in float until
    it is within, and says so."""
    net = fast.load_network(os.path.join(ROOT, "checkpoints", "mobile_strength"))
    options = export.ExportOptions(output_dir=str(tmp_path), int8="dynamic")
    pairs = export.parity_pairs(data_dir, options)
    variant = export.TFLiteVariant("transfer", "int8")
    source = export.write_tflite_source(net, variant, options, str(tmp_path / "source"))
    plain = export.check_tflite(export.convert_tflite(source, "int8_dynamic"), variant, net, pairs)
    model, record = export.convert_int8(source, variant, net, pairs, [], options)
    kept = export.check_tflite(model, variant, net, pairs)
    print("int8 worst pixel, every convolution int8:", plain["image"], f"; {record['float_layers']} in float:",
          kept["image"])
    assert not export.tflite_within(plain, "int8") and export.tflite_within(kept, "int8")
    assert record["float_layers"] and record["float_layers"] == ["conv2", "conv3"][:len(record["float_layers"])]
    assert record["scheme"] == export.dynamic_scheme(record["float_layers"])
    assert export.float_weight_convolutions(model) > export.float_weight_convolutions(
        export.convert_tflite(source, "int8_dynamic"))


def test_int8_calibration_covers_the_strength_range(net, data_dir):
    assert [export.calibration_strength(i, 4) for i in range(4)] == [0.0, 0.5, 1.5, 2.0]
    assert [export.calibration_strength(i, 2) for i in range(2)] == [0.0, 2.0]
    assert [export.calibration_strength(i, 7) for i in range(7)] == [0.0, 0.5, 1.0, 1.5, 2.0, 0.0, 0.5]
    options = export.ExportOptions(content_size=32, style_size=32, calibration_samples=3)
    transfer = export.calibration_data(net, data_dir, options)["transfer"]
    assert [float(t["strength"][0]) for t in transfer] == [0.0, 1.0, 2.0]
    assert sorted(transfer[0]) == ["content", "strength", "style_vector"]


@pytest.mark.slow
def test_linear_transform_network_converts_and_matches_keras(net, pictures, tmp_path):
    """A network with the learned linear transform (--linear_rank): builtin ops only (BATCH_MATMUL,
    FULLY_CONNECTED), parity in fp16 and int8, the style matrix in the predicted vector."""
    linear = net  # the bundled network has the transform (phase 4), trained: its projection is not zero
    assert linear.config.linear_rank == 32
    assert float(np.abs(linear.transfer.get_layer("unzip").get_weights()[0]).max()) > 0
    _check_transfer_tflite(linear, pictures, tmp_path, "BATCH_MATMUL")
    options = export.ExportOptions(content_size=SIZE, style_size=SIZE)
    vector = linear.predict_style(tf.constant(pictures["style_square"][None]))
    prediction = export.convert_tflite(export.write_tflite_source(
        linear, export.TFLiteVariant("prediction", "fp16"), options, str(tmp_path / "prediction")), "fp16")
    predicted = _run_tflite_bytes(prediction, {"style": pictures["style_square"][None]})["style_vector"]
    np.testing.assert_allclose(predicted.reshape(1, -1), vector.numpy(), rtol=2e-2, atol=2e-2)
