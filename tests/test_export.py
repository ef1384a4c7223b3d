"""nst-export: SavedModel signatures (TF Serving, TF Hub), TFLite models, parity with Keras, validation, the CLI."""

import io
import json
import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf
from conftest import last_line, run_cli
from PIL import Image

from nst_tf import export, fast, images
from nst_tf.network import BUNDLED_DIR, ArbitraryStyleNetwork, NetworkConfig

SIZE = 64  # fixed TFLite content and style side (small: the test machine has 2 cores)


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


@pytest.fixture(scope="module")
def pictures(data_dir):
    """Real content and style images, not the ones the export checked itself on."""
    content = images.load_image(f"{data_dir}/content/tubingen.jpg")
    style = images.load_image(f"{data_dir}/styles/starry_night.jpg")
    small = images.resize_long_side(content, 75)  # 75x56: not a multiple of the stride
    other = images.resize(images.load_image(f"{data_dir}/content/golden_gate.jpg"), *small.shape[:2])
    return {"content": small, "content2": other, "style": images.resize_long_side(style, 64),
            "content_square": export.center_square(content, SIZE), "style_square": export.center_square(style, SIZE)}


def keras_stylize(net, content, style, alpha=1.0):
    vector = net.predict_style(tf.constant(style[None]))
    return fast.stylize_padded(net, tf.constant(content[None]), vector, alpha).numpy()


def test_saved_model_signatures_match_keras(loaded, net, pictures):
    assert set(loaded.signatures.keys()) == set(export.SIGNATURES)
    content, style = pictures["content"], pictures["style"]
    out = loaded.signatures["serving_default"](content=tf.constant(content[None]), style=tf.constant(style[None]),
                                               alpha=tf.constant(1.0))["stylized_image"].numpy()
    assert out.shape == (1, *content.shape) and out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_allclose(out, keras_stylize(net, content, style), atol=1e-4)

    # a batch of two with one style and one alpha each
    batch = np.stack([content, pictures["content2"]])
    out = loaded.signatures["serving_default"](content=tf.constant(batch), style=tf.constant(style[None]),
                                               alpha=tf.constant([1.0, 0.3]))["stylized_image"].numpy()
    np.testing.assert_allclose(out[1:], keras_stylize(net, batch[1], style, 0.3), atol=1e-4)
    assert np.abs(out[1:] - keras_stylize(net, batch[1], style, 1.0)).mean() > 1e-3  # alpha reached item 2

    vector = loaded.signatures["predict_style"](style=tf.constant(style[None]))["style_vector"]
    np.testing.assert_allclose(vector.numpy(), net.predict_style(tf.constant(style[None])).numpy(), rtol=1e-4,
                               atol=1e-4)
    out = loaded.signatures["stylize_with_vector"](content=tf.constant(content[None]), style_vector=vector,
                                                   alpha=tf.constant(1.0))["stylized_image"]
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

    # a batch of two contents of different sizes, one style, one alpha each
    small = images.resize_long_side(pictures["content2"], 40)
    pngs = loaded.signatures["stylize_bytes_alpha"](
        content=tf.constant([content_jpeg, jpeg(small)]), style=tf.constant([style_jpeg]),
        alpha=tf.constant([1.0, 0.5]))["stylized_image_bytes"].numpy()
    shapes = [np.asarray(Image.open(io.BytesIO(p))).shape for p in pngs]
    assert shapes == [pictures["content"].shape, small.shape]


def _inputs(kind, content=None, style=None, alpha=1.0, vector=None):
    rng = np.random.default_rng(0)
    content = rng.uniform(size=(1, 32, 40, 3)).astype(np.float32) if content is None else content
    style = rng.uniform(size=(1, 32, 32, 3)).astype(np.float32) if style is None else style
    if kind == "vector":
        vector = np.ones((1, V), np.float32) if vector is None else vector
        return "stylize_with_vector", {"content": content, "style_vector": vector, "alpha": alpha}
    return "serving_default", {"content": content, "style": style, "alpha": alpha}


BAD_FLOAT_INPUTS = [
    (_inputs("float", content=np.zeros((32, 40, 3), np.float32)), r"content: expected a \[batch, height, width, 3\]"),
    (_inputs("float", content=np.zeros((1, 32, 40, 4), np.float32)), "content: expected 3 channels"),
    (_inputs("float", content=np.full((1, 32, 40, 3), 255.0, np.float32)), r"content: values must be in \[0, 1\]"),
    (_inputs("float", style=np.full((1, 32, 32, 3), -0.5, np.float32)), r"style: values must be in \[0, 1\]"),
    (_inputs("float", content=np.full((1, 32, 40, 3), np.nan, np.float32)), "content: contains NaN or Inf"),
    (_inputs("float", content=np.zeros((1, 8, 40, 3), np.float32)), "content: height and width must be at least 16"),
    (_inputs("float", content=np.zeros((1, 0, 40, 3), np.float32)), "content: height and width must be at least 16"),
    (_inputs("float", style=np.zeros((3, 32, 32, 3), np.float32)), "style: batch must be 1 or the content batch"),
    (_inputs("float", alpha=1.5), r"alpha: values must be in \[0, 1\]"),
    (_inputs("float", alpha=np.ones((2, 2), np.float32)), "alpha: expected a scalar or a"),
    (_inputs("float", alpha=np.ones(3, np.float32)), "alpha: batch must be 1 or the content batch"),
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


def test_hub_call_validates_too(exported):
    module = tf.saved_model.load(exported[1]["saved_model"]["path"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="content: expected 3 channels"):
        module(tf.zeros((1, 32, 32, 1)), tf.zeros((1, 32, 32, 3)))


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
                                              "alpha": np.array([1.0], np.float32)})
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
                              "transfer": {"inputs": ["alpha", "content", "style_vector"],
                                           "outputs": ["stylized_image"]}}
        out = interpreter.get_signature_runner("prediction")(style=pictures["style_square"][None])["style_vector"]
        image = interpreter.get_signature_runner("transfer")(
            content=pictures["content_square"][None], style_vector=out,
            alpha=np.array([1.0], np.float32))["stylized_image"]
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


def _check_transfer_tflite(net, pictures, tmp_path, op: str) -> None:
    """The transfer part of `net` in int8 and resizable fp16: builtin ops only, `op` among them, parity with Keras
    at alpha 1 and 0.5."""
    options = export.ExportOptions(content_size=SIZE, style_size=SIZE)
    vector = net.predict_style(tf.constant(pictures["style_square"][None]))
    for variant, quantization in ((export.TFLiteVariant("transfer", "int8"), "int8_dynamic"),
                                  (export.TFLiteVariant("transfer", "fp16", dynamic=True), "fp16")):
        source = export.write_tflite_source(net, variant, options, str(tmp_path / variant.filename(options)))
        model = export.convert_tflite(source, quantization)
        assert export.non_builtin_ops(model) == [] and op in export.tflite_ops(model)
        content = pictures["content_square"] if not variant.dynamic else pictures["content"]
        for alpha in (1.0, 0.5):
            out = _run_tflite_bytes(model, {"content": content[None], "style_vector": tf.reshape(vector, [1, 1, 1, -1])
                                            .numpy(), "alpha": np.array([alpha], np.float32)})["stylized_image"]
            expected = fast.stylize_padded(net, tf.constant(content[None]), vector, alpha).numpy()
            assert export.within(export.errors(out, expected), export.IMAGE_BOUNDS[variant.quantization]), alpha


def test_mobile_network_transfer_converts_and_matches_keras(pictures, tmp_path):
    """The phone-sized network (nst_tf.mobile): builtin ops only, alpha < 1 as a TFLite IF branch, parity."""
    _check_transfer_tflite(fast.load_network(os.path.join(os.path.dirname(BUNDLED_DIR), "mobile")), pictures,
                           tmp_path, "IF")


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
