"""Parity checks: real image pairs, int8 calibration data, and every export's error against the Keras model."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from nst_tf import fast, images, palette
from nst_tf.export.checks import encode_png, resize_long_side
from nst_tf.export.options import ExportError, ExportOptions, TFLiteVariant
from nst_tf.export.serving import BYTES_STYLE_SIZE, SIGNATURES
from nst_tf.export.tflite import tflite_session

IMAGE_BOUNDS = {  # (max, mean) absolute error on [0, 1] images, against the Keras model
    "saved_model": (1e-3, 1e-4),
    "png": (2.0 / 255.0, 2e-3),  # the bytes signatures round to 8 bits
    "fp16": (0.05, 1e-2),
    "int8": (0.25, 0.03),
}
VECTOR_BOUNDS = {"fp16": 0.01, "int8": 0.05}  # mean abs error of a prediction model's style vector / mean |vector|
PARITY_STRENGTHS = (0.0, 0.5, 1.0, 2.0)  # every float and transfer-model check runs at each (0: the photo, 2: the top)
CALIBRATION_STRENGTHS = (0.0, 0.5, 1.0, 1.5, 2.0)  # int8 calibration: the strength input's whole range
SWEEP_STRENGTHS = (0.0, 0.5, 1.0, 1.5, 2.0)  # the model card's strength sweep
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def pick_images(folder: str, count: int) -> list[str]:
    """`count` image files spread evenly over the sorted contents of `folder`."""
    if not os.path.isdir(folder):
        return []
    paths = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
    if count <= 0 or not paths:
        return []
    step = max(1, len(paths) // count)
    return paths[::step][:count]


def _folder(data_dir: str, *names: str) -> str:
    """The first existing sub-folder of data_dir among `names`."""
    for name in names:
        if os.path.isdir(os.path.join(data_dir, name)):
            return os.path.join(data_dir, name)
    raise ExportError(f"{data_dir}: needs a {' or '.join(names)} folder of images")


def center_square(image: np.ndarray, size: int) -> np.ndarray:
    """The central square of an HxWx3 image, resized to size x size."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return images.resize(image[top:top + side, left:left + side], size, size)


@dataclasses.dataclass(frozen=True)
class ParityPair:
    """A real content and style image for parity checks (the content at an odd, non-square size)."""

    content_name: str
    style_name: str
    content: np.ndarray  # long side content_size + 3: not a multiple of the stride
    style: np.ndarray  # long side style_size
    content_square: np.ndarray  # content_size x content_size (fixed TFLite input)
    style_square: np.ndarray  # style_size x style_size
    references: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)  # see vector(), reference()

    def vector(self, net: fast.Network, square: bool = False) -> np.ndarray:
        """The Keras model's style vector of this pair's style (square: the fixed-size input): [1, V], computed once
        per network and kept."""
        key = (id(net), square)
        if key not in self.references:
            style = self.style_square if square else self.style
            self.references[key] = net.predict_style(tf.constant(style[None])).numpy()
        return self.references[key]

    def reference(self, net: fast.Network, strength: float = 1.0, square: bool = False) -> np.ndarray:
        """The Keras model's output for this pair (square: the fixed-size inputs) at `strength`: [1, H, W, 3],
        computed once per network and kept (every export format is checked against the same references)."""
        key = (id(net), square, float(strength))
        if key not in self.references:
            content = self.content_square if square else self.content
            self.references[key] = fast.stylize_padded(net, tf.constant(content[None]),
                                                       tf.constant(self.vector(net, square)), strength).numpy()
        return self.references[key]


def parity_pairs(data_dir: str, options: ExportOptions) -> list[ParityPair]:
    """Held-out pairs from data_dir/content and data_dir/styles (calibration uses train_* folders)."""
    contents = pick_images(_folder(data_dir, "content"), options.parity_pairs)
    styles = pick_images(_folder(data_dir, "styles"), options.parity_pairs)
    if not contents or not styles:
        raise ExportError(f"{data_dir}: no images in content/ or styles/ for the parity checks")
    pairs = []
    for content_path, style_path in zip(contents, styles):
        content, style = images.load_image(content_path), images.load_image(style_path)
        pairs.append(ParityPair(
            os.path.basename(content_path), os.path.basename(style_path),
            images.resize_long_side(content, options.content_size + 3, content_path),
            images.resize_long_side(style, options.style_size, style_path),
            center_square(content, options.content_size), center_square(style, options.style_size)))
    return pairs


def calibration_data(net: fast.Network, data_dir: str,
                     options: ExportOptions) -> dict[str, list[dict[str, np.ndarray]]]:
    """Representative inputs for full-integer quantization, from data_dir/train_content and train_style; the transfer
    model's at strengths over the whole range (calibration_strength)."""
    count = options.calibration_samples
    contents = pick_images(_folder(data_dir, "train_content", "content"), count)
    styles = pick_images(_folder(data_dir, "train_style", "styles"), count)
    prediction, transfer = [], []
    for i, (content_path, style_path) in enumerate(zip(contents, styles)):
        style = center_square(images.load_image(style_path), options.style_size)[None]
        vector = net.predict_style(tf.constant(style)).numpy()
        content = center_square(images.load_image(content_path), options.content_size)[None]
        prediction.append({"style": style})
        transfer.append({"content": content, "style_vector": vector.reshape(1, 1, 1, -1),
                         "strength": np.array([calibration_strength(i, min(len(contents), len(styles)))],
                                              np.float32)})
    return {"prediction": prediction, "transfer": transfer}


def calibration_strength(index: int, count: int) -> float:
    """The strength of calibration sample `index` of `count`: CALIBRATION_STRENGTHS in turn, or spread evenly from 0
    to the top when there are fewer samples than strengths (both ends always seen)."""
    n = len(CALIBRATION_STRENGTHS)
    if count >= n:
        return CALIBRATION_STRENGTHS[index % n]
    return CALIBRATION_STRENGTHS[round(index * (n - 1) / max(count - 1, 1))]


def errors(actual: np.ndarray, expected: np.ndarray) -> dict[str, float]:
    """Max and mean absolute error (and mean error relative to the mean magnitude of `expected`)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if actual.shape != expected.shape:
        raise ExportError(f"shape mismatch: got {actual.shape}, expected {expected.shape}")
    diff = np.abs(actual - expected)
    scale = float(np.mean(np.abs(expected))) or 1.0
    return {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()), "mean_rel": float(diff.mean() / scale)}


def worst(results: Sequence[dict[str, float]]) -> dict[str, float]:
    """The largest of each error over several comparisons."""
    return {key: max(r[key] for r in results) for key in results[0]}


def within(result: dict[str, float], bound: tuple[float, float]) -> bool:
    """True when max_abs and mean_abs are inside (max, mean)."""
    return result["max_abs"] <= bound[0] and result["mean_abs"] <= bound[1]


def tflite_within(parity: dict[str, dict[str, float]], quantization: str) -> bool:
    """A TFLite model's image error within IMAGE_BOUNDS and, for prediction models, its vector within VECTOR_BOUNDS."""
    vector_ok = "vector" not in parity or parity["vector"]["mean_rel"] <= VECTOR_BOUNDS[quantization]
    return within(parity["image"], IMAGE_BOUNDS[quantization]) and vector_ok


def keras_reference(net: fast.Network, content: np.ndarray, style: np.ndarray,
                    strength: float = 1.0) -> np.ndarray:
    """The Keras model's output for one [H, W, 3] content and style image (what the exports must match)."""
    vector = net.predict_style(tf.constant(style[None]))
    return fast.stylize_padded(net, tf.constant(content[None]), vector, strength).numpy()


def check_saved_model(loaded: tf.Module, net: fast.Network, pairs: Sequence[ParityPair],
                      style_size: int = BYTES_STYLE_SIZE,
                      strengths: Sequence[float] = PARITY_STRENGTHS) -> dict[str, dict[str, float]]:
    """Compare every signature (and __call__, with and without the strength) of a reloaded SavedModel with the
    Keras model, each strength input at every one of `strengths`: the worst error of each."""
    signatures = loaded.signatures
    results: dict[str, list[dict[str, float]]] = {name: [] for name in (*SIGNATURES, "__call__")}
    for pair in pairs:
        content, style = tf.constant(pair.content[None]), tf.constant(pair.style[None])
        vector = signatures["predict_style"](style=style)["style_vector"]
        results["predict_style"].append(errors(vector, pair.vector(net)))
        results["__call__"].append(errors(loaded(content, style)[0], pair.reference(net)))
        for strength in strengths:
            value = tf.constant(strength)
            expected = pair.reference(net, strength)
            out = signatures["serving_default"](content=content, style=style, strength=value)
            results["serving_default"].append(errors(out["stylized_image"], expected))
            out = signatures["stylize_with_vector"](content=content, style_vector=vector, strength=value[None])
            results["stylize_with_vector"].append(errors(out["stylized_image"], expected))
            results["__call__"].append(errors(loaded(content, style, value)[0], expected))
        encoded_content, encoded_style = encode_png(pair.content), encode_png(pair.style)
        decoded_content = tf.image.convert_image_dtype(tf.io.decode_png(encoded_content), tf.float32)[None]
        decoded_style = tf.image.convert_image_dtype(tf.io.decode_png(encoded_style), tf.float32)[None]
        bytes_vector = net.predict_style(resize_long_side(decoded_style, style_size))
        calls = [("stylize_bytes", {}, 1.0)] + [
            ("stylize_bytes_strength", {"strength": tf.constant(s)}, s) for s in strengths]
        for name, kwargs, strength in calls:
            png = signatures[name](content=encoded_content, style=encoded_style, **kwargs)["stylized_image_bytes"]
            reference = fast.stylize_padded(net, decoded_content, bytes_vector, strength)
            results[name].append(errors(tf.io.decode_png(png[0]).numpy()[None] / 255.0, reference.numpy()))
    return {name: worst(r) for name, r in results.items()}


def _palette_gap(image: np.ndarray, painting: np.ndarray) -> float:
    """Mean absolute difference of two [H, W, 3] images' opponent-colour means and stds (nst_tf.palette)."""
    return float(np.abs((palette.pixel_moments(image[None]) - palette.pixel_moments(painting[None])).numpy()).mean())


def strength_sweep(net: fast.Network, pairs: Sequence[ParityPair],
                   strengths: Sequence[float] = SWEEP_STRENGTHS) -> list[dict[str, float]]:
    """What the strength does, measured with the Keras model on the parity pairs: for each strength, the means over
    pairs of the output's mean absolute difference from the photo (`from_photo`) and of its palette gap to the
    painting (`palette_gap`); `photo_palette_gap`: the photo's own gap, for scale."""
    vectors = [tf.constant(pair.vector(net)) for pair in pairs]
    photo_gap = float(np.mean([_palette_gap(pair.content, pair.style) for pair in pairs]))
    rows = []
    for strength in strengths:
        outputs = [fast.stylize_padded(net, tf.constant(pair.content[None]), vector, strength).numpy()[0]
                   for pair, vector in zip(pairs, vectors)]
        rows.append({"strength": float(strength),
                     "from_photo": float(np.mean([np.abs(out - p.content).mean() for out, p in zip(outputs, pairs)])),
                     "palette_gap": float(np.mean([_palette_gap(out, p.style) for out, p in zip(outputs, pairs)])),
                     "photo_palette_gap": photo_gap})
    return rows


def saved_model_bound(signature: str) -> tuple[float, float]:
    """The parity bound of a signature."""
    return IMAGE_BOUNDS["png" if signature.startswith("stylize_bytes") else "saved_model"]


def tflite_example(variant: TFLiteVariant, pair: ParityPair, net: fast.Network,
                   strength: float = 1.0) -> dict[str, np.ndarray]:
    """Inputs of a TFLite model for one pair: square images for fixed models, odd sizes for resizable ones."""
    style = pair.style if variant.dynamic else pair.style_square
    if variant.part == "prediction":
        return {"style": style[None]}
    content = pair.content if variant.dynamic else pair.content_square
    vector = pair.vector(net, square=not variant.dynamic)
    return {"content": content[None], "style_vector": vector.reshape(1, 1, 1, -1),
            "strength": np.array([strength], np.float32)}


def check_tflite(model: bytes, variant: TFLiteVariant, net: fast.Network, pairs: Sequence[ParityPair],
                 threads: int = 2, strengths: Sequence[float] = PARITY_STRENGTHS) -> dict[str, dict]:
    """Errors of a TFLite model (LiteRT interpreter) against the Keras model on real images: 'image', 'vector'
    (prediction models), 'by_strength' (transfer models: the worst image error at each of `strengths`)."""
    # 'image': the stylized image, worst over pairs and strengths (a prediction model's vector goes through the
    # Keras stylizer at strength 1); 'vector' (prediction models only): the style vector itself.
    image_errors, vector_errors = [], []
    by_strength: dict[str, list[dict[str, float]]] = {}
    for pair in pairs:
        example = tflite_example(variant, pair, net)
        session = tflite_session(model, example, threads)
        if variant.part == "prediction":
            content = tf.constant((pair.content if variant.dynamic else pair.content_square)[None])
            expected_vector = pair.vector(net, square=not variant.dynamic)
            vector = session(example)["style_vector"].reshape(expected_vector.shape)
            vector_errors.append(errors(vector, expected_vector))
            image = fast.stylize_padded(net, content, tf.constant(vector)).numpy()
            image_errors.append(errors(image, pair.reference(net, square=not variant.dynamic)))
            continue
        for strength in strengths:
            outputs = session({**example, "strength": np.array([strength], np.float32)})
            reference = pair.reference(net, strength, square=not variant.dynamic)
            image_errors.append(errors(outputs["stylized_image"], reference))
            by_strength.setdefault(f"{strength:g}", []).append(image_errors[-1])
    result: dict[str, dict] = {"image": worst(image_errors)}
    if vector_errors:
        result["vector"] = worst(vector_errors)
    if by_strength:
        result["by_strength"] = {key: worst(value) for key, value in by_strength.items()}
    return result


def chain(predict: Callable[..., dict[str, np.ndarray]], transfer: Callable[..., dict[str, np.ndarray]],
          content: np.ndarray, style: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """`style` ([H, W, 3]) -> vector by `predict`, then `content` stylized by `transfer` at `strength`:
    [1, H, W, 3]."""
    vector = predict(style=style[None])["style_vector"]
    return transfer(content=content[None], style_vector=vector,
                    strength=np.array([strength], np.float32))["stylized_image"]


def check_pipeline(prediction: bytes, transfer: bytes, net: fast.Network, pairs: Sequence[ParityPair],
                   threads: int = 2, strengths: Sequence[float] = PARITY_STRENGTHS) -> dict[str, float]:
    """Prediction model -> transfer model (as an app runs them) against the Keras model, square inputs, at each of
    `strengths`."""
    results = []
    for pair in pairs:
        style = {"style": pair.style_square[None]}
        vector = tflite_session(prediction, style, threads)(style)["style_vector"]
        inputs = {"content": pair.content_square[None], "style_vector": vector, "strength": np.ones(1, np.float32)}
        session = tflite_session(transfer, inputs, threads)
        for strength in strengths:
            image = session({**inputs, "strength": np.array([strength], np.float32)})["stylized_image"]
            results.append(errors(image, pair.reference(net, strength, square=True)))
    return worst(results)


def check_combined(runners: dict[str, Callable[..., dict[str, np.ndarray]]], net: fast.Network,
                   pairs: Sequence[ParityPair], strengths: Sequence[float] = PARITY_STRENGTHS) -> dict[str, float]:
    """A combined file's prediction -> transfer signatures (tflite_runners) against the Keras model, at each of
    `strengths`."""
    return worst([errors(chain(runners["prediction"], runners["transfer"], pair.content_square, pair.style_square,
                               strength),
                         pair.reference(net, strength, square=True))
                  for pair in pairs for strength in strengths])
