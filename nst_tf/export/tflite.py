"""TFLite conversion: the converter's source SavedModels, fp16/int8 conversion, op listing, LiteRT runners."""

from __future__ import annotations

import contextlib
import types
import warnings
from collections.abc import Callable, Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf

from nst_tf import fast
from nst_tf.export.options import COMBINED_SIGNATURES, ExportOptions, TFLiteVariant

# Dynamic-range quantization leaves a constant weight tensor with fewer elements than this in float, and the operation
# reading it then computes in float (the converter's default minimum for weight quantization).
WEIGHTS_MIN_ELEMENTS = 1024


def tflite_signature(variant: TFLiteVariant, options: ExportOptions, vector_size: int) -> list[tf.TensorSpec]:
    """Input specs of a TFLite model (batch 1; H and W None for resizable variants). The converter lists a
    signature's inputs sorted by name, and so are these: the transfer model's are content, strength, style_vector."""
    if variant.part == "prediction":
        side = None if variant.dynamic else options.style_size
        return [tf.TensorSpec([1, side, side, 3], tf.float32, name="style")]
    side = None if variant.dynamic else options.content_size
    return [tf.TensorSpec([1, side, side, 3], tf.float32, name="content"),
            tf.TensorSpec([1], tf.float32, name="strength"),
            tf.TensorSpec([1, 1, 1, vector_size], tf.float32, name="style_vector")]


def tflite_function(net: fast.Network, part: str) -> Callable[..., dict[str, tf.Tensor]]:
    """The graph of one TFLite model; same math as predict_style / fast.stylize_padded (the strength is clipped to
    [0, 2] inside: a TFLite model cannot refuse an input)."""
    size = net.vector_size
    if part == "prediction":
        def prediction(style):
            return {"style_vector": tf.reshape(net.predict_style(style), [-1, 1, 1, size])}
        return prediction

    def transfer(content, strength, style_vector):
        return {"stylized_image": fast.stylize_padded(net, content, tf.reshape(style_vector, [-1, size]), strength,
                                                      restate_channels=True)}
    return transfer


def sliced_conv2d(layer: keras.layers.Conv2D, inputs: tf.Tensor) -> tf.Tensor:
    """The layer's convolution computed in slices of output channels, each with fewer than WEIGHTS_MIN_ELEMENTS
    weights, concatenated: the same numbers, but a dynamic-range int8 conversion leaves every slice in float."""
    kernel = layer.kernel
    per_output = int(np.prod(kernel.shape[:3]))
    step = max(1, (WEIGHTS_MIN_ELEMENTS - 1) // per_output)
    outputs = [tf.nn.conv2d(inputs, kernel[..., start:start + step], layer.strides, layer.padding.upper(),
                            dilations=layer.dilation_rate) for start in range(0, kernel.shape[-1], step)]
    outputs = tf.concat(outputs, axis=-1)
    if layer.use_bias:
        outputs = outputs + layer.bias
    return layer.activation(outputs) if layer.activation is not None else outputs


@contextlib.contextmanager
def kept_float(net: fast.Network, names: Sequence[str]) -> Iterator[None]:
    """While tracing: the named Conv2D layers of the network compute through sliced_conv2d (kept float in a
    dynamic-range int8 file); ValueError for a name that is not a plain Conv2D of the network."""
    layers = {layer.name: layer for model in net.models for layer in model.layers}
    patched = []
    try:
        for name in names:
            layer = layers.get(name)
            if type(layer) is not keras.layers.Conv2D or layer.groups != 1:
                raise ValueError(f"{name}: not a convolution of this network")
            layer.call = types.MethodType(sliced_conv2d, layer)
            patched.append(layer)
        yield
    finally:
        for layer in patched:
            del layer.call  # the class's call again


def _write_source(net: fast.Network, endpoints: dict[str, TFLiteVariant], options: ExportOptions,
                  directory: str, float_layers: Sequence[str] = ()) -> str:
    """A SavedModel for the converter (Keras ExportArchive, which the converter freezes): one endpoint per name;
    float_layers: convolutions a dynamic-range int8 conversion of it keeps in float (kept_float)."""
    archive = keras.export.ExportArchive()
    for model in net.models:
        archive.track(model)
    with kept_float(net, float_layers):
        for name, variant in endpoints.items():
            archive.add_endpoint(name, tflite_function(net, variant.part),
                                 input_signature=tflite_signature(variant, options, net.vector_size))
        archive.write_out(directory, verbose=False)
    return directory


def write_tflite_source(net: fast.Network, variant: TFLiteVariant, options: ExportOptions,
                        directory: str, float_layers: Sequence[str] = ()) -> str:
    """A single-signature SavedModel for one TFLite model."""
    return _write_source(net, {"serving_default": variant}, options, directory, float_layers)


def write_combined_source(net: fast.Network, options: ExportOptions, directory: str,
                          float_layers: Sequence[str] = ()) -> str:
    """A two-signature SavedModel (prediction, transfer; fixed sizes) for one TFLite file sharing the encoder."""
    return _write_source(net, {part: TFLiteVariant(part, "fp16") for part in COMBINED_SIGNATURES}, options,
                         directory, float_layers)


def convert_tflite(source_dir: str, quantization: str,
                   representative: Callable[[], Iterator[dict[str, np.ndarray]]] | None = None,
                   signature_keys: Sequence[str] | None = None) -> bytes:
    """Convert a SavedModel: 'fp16', 'int8_full' (TFLITE_BUILTINS_INT8, float I/O) or 'int8_dynamic'."""
    converter = tf.lite.TFLiteConverter.from_saved_model(
        source_dir, signature_keys=list(signature_keys) if signature_keys else None)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8_full":
        if representative is None:
            raise ValueError("full-integer quantization needs a representative dataset")
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    elif quantization != "int8_dynamic":
        raise ValueError(f"unknown quantization {quantization!r}")
    with warnings.catch_warnings():  # the converter's calibrator uses the deprecated tf.lite.Interpreter
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        return converter.convert()


def _operators(model: bytes) -> Iterator[tuple[str, object, object]]:
    """(operator name, operator, its subgraph) of every operator in a .tflite flatbuffer; custom ops (Flex...) are
    named 'CUSTOM:<name>'."""
    from tensorflow.lite.python import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    parsed = schema.Model.GetRootAsModel(bytearray(model), 0)
    codes = []
    for i in range(parsed.OperatorCodesLength()):
        code = parsed.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            codes.append(f"CUSTOM:{(code.CustomCode() or b'').decode()}")
        else:
            codes.append(names.get(builtin, str(builtin)))
    for g in range(parsed.SubgraphsLength()):
        graph = parsed.Subgraphs(g)
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            yield codes[op.OpcodeIndex()], op, graph


def tflite_ops(model: bytes) -> dict[str, int]:
    """Operator name -> count in a .tflite flatbuffer; custom ops (Flex...) appear as 'CUSTOM:<name>'."""
    counts: dict[str, int] = {}
    for name, _, _ in _operators(model):
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def float_weight_convolutions(model: bytes) -> int:
    """How many CONV_2D operators of a .tflite flatbuffer read float32 weights (in a dynamic-range int8 file: the
    convolutions computed in float)."""
    from tensorflow.lite.python import schema_py_generated as schema

    return sum(1 for name, op, graph in _operators(model)
               if name == "CONV_2D" and graph.Tensors(op.Inputs(1)).Type() == schema.TensorType.FLOAT32)


def non_builtin_ops(model: bytes) -> list[str]:
    """Custom or Flex (select TF) ops in a model; empty when it uses builtin ops only."""
    return [name for name in tflite_ops(model) if name.startswith("CUSTOM")]


def tflite_session(model: str | bytes, example: dict[str, np.ndarray],
                   threads: int = 2) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """A LiteRT interpreter sized for `example` (input name -> array): call it with inputs of that shape."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ValueError("checking TFLite models needs the LiteRT interpreter: pip install 'nst_tf[export]' "
                         "(ai-edge-litert)") from None

    kwargs = {"model_path": model} if isinstance(model, str) else {"model_content": bytes(model)}
    interpreter = Interpreter(num_threads=threads, **kwargs)
    runner = interpreter.get_signature_runner()
    inputs = {name: d["index"] for name, d in runner.get_input_details().items()}
    outputs = {name: d["index"] for name, d in runner.get_output_details().items()}
    del runner  # it holds the interpreter, which then refuses to resize
    if set(inputs) != set(example):
        raise ValueError(f"model inputs are {sorted(inputs)}, got {sorted(example)}")
    for name, value in example.items():
        interpreter.resize_tensor_input(inputs[name], list(np.shape(value)), strict=True)
    interpreter.allocate_tensors()

    def run(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, value in values.items():
            interpreter.set_tensor(inputs[name], np.asarray(value, np.float32))
        interpreter.invoke()
        return {name: interpreter.get_tensor(index) for name, index in outputs.items()}

    return run


def tflite_runners(model: str | bytes, threads: int = 2) -> dict[str, Callable[..., dict[str, np.ndarray]]]:
    """Signature name -> runner (keyword inputs -> outputs) of a multi-signature LiteRT model."""
    from ai_edge_litert.interpreter import Interpreter

    kwargs = {"model_path": model} if isinstance(model, str) else {"model_content": bytes(model)}
    interpreter = Interpreter(num_threads=threads, **kwargs)
    return {name: interpreter.get_signature_runner(name) for name in interpreter.get_signature_list()}


def tflite_outputs(variant: TFLiteVariant, options: ExportOptions, vector_size: int) -> dict[str, list[int]]:
    """Output name -> shape of a TFLite model (-1: resizable)."""
    if variant.part == "prediction":
        return {"style_vector": [1, 1, 1, vector_size]}
    side = -1 if variant.dynamic else options.content_size
    return {"stylized_image": [1, side, side, 3]}
