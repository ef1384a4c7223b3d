"""Client-side tiling with TFLite models or TF Serving: the reference of the loop an app runs on a large photo.

The transfer model of the export normalises each input with that input's own statistics, so a photo cut into tiles
and stylized tile by tile gets a colour and contrast shift per tile. Two models avoid it (write_tiled_models:
SavedModels for TF Serving, and TFLite files with builtin ops only):
- `stats`: a downscaled copy of the photo (long side at most tiling.STATS_SIZE, mirror-padded as the network pads:
  tiling.downscaled_copy), `style_vector` [1, V] and `strength` [1] -> `stats` [1, S], every whole-image statistic
  the network reads, flat in the order of stats_layout (and `palette` [1, 6], the colour target, for networks with
  the palette layer);
- `tile`: one window `content` [1, h, w, 3] (sides multiples of 8), `style_vector`, `strength`, `stats` ->
  `stylized_image` [1, h, w, 3]: unclipped, before the palette layer.
The loop (stylize_tiled_with; stylize_tiled_tflite on LiteRT, saved_model_runner for SavedModels): mirror-pad the
photo as the network does, cut it into windows (tiling.axis_windows: cores with CONTEXT pixels of context,
neighbouring cores blended by linear ramps whose weights sum to one), run the stats model once, each window through
the tile model, add each core times its weights into a float canvas, give the canvas the palette
(tiling.apply_palette: an affine map per pixel with the canvas's own colour moments), clip, crop.
In Python (nst_tf.tiling) the statistics are accumulated over the tiles instead, which matches an untiled run
exactly; a downscaled copy is one pass of a small model (docs/tiling.md gives its measured error).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from nst_tf import tiling


def stats_layout(net) -> list[tuple[str, int]]:
    """(statistic, length) of each part of the flat `stats` vector, in order (the keys of net.image_stats)."""
    probe = tf.zeros([1, 64, 64, 3])
    stats = net.image_stats(probe, tf.zeros([1, net.vector_size]), 1.0)
    return [(key, int(value.shape[-1])) for key, value in sorted(stats.items())]


def flatten_stats(stats: dict[str, tf.Tensor], layout: list[tuple[str, int]]) -> tf.Tensor:
    """The statistics as one [1, S] vector in `layout` order."""
    return tf.concat([tf.reshape(stats[key], [1, size]) for key, size in layout], axis=-1)


def unflatten_stats(flat: tf.Tensor, layout: list[tuple[str, int]]) -> dict[str, tf.Tensor]:
    """Inverse of flatten_stats."""
    return dict(zip([key for key, _ in layout], tf.split(flat, [size for _, size in layout], axis=-1)))


def tiled_functions(net) -> dict[str, tuple]:
    """Name -> (function, input signature) of the two models."""
    layout, size = stats_layout(net), net.vector_size
    total = sum(n for _, n in layout)

    def stats_model(content, style_vector, strength):
        stats = net.image_stats(content, style_vector, strength)
        out = {"stats": flatten_stats(stats, layout)}
        if net.config.palette:
            out["palette"] = net.target_vector(style_vector, strength, stats)[:, -6:]
        return out

    def tile_model(content, style_vector, strength, stats):
        return {"stylized_image": net.stylize(content, style_vector, strength, clip=False,
                                              stats=unflatten_stats(stats, layout))}

    image = tf.TensorSpec([1, None, None, 3], tf.float32, name="content")
    vector, strength = tf.TensorSpec([1, size], tf.float32, name="style_vector"), tf.TensorSpec([1], tf.float32,
                                                                                                  name="strength")
    return {"stats": (stats_model, [image, vector, strength]),
            "tile": (tile_model, [image, vector, strength, tf.TensorSpec([1, total], tf.float32, name="stats")])}


def write_tiled_models(net, directory: str, quantization: str | None = "fp16") -> dict[str, bytes]:
    """The stats and tile models of `net` as SavedModels `<directory>/stats` and `<directory>/tile` (serving_default
    signatures: what TF Serving serves, two models) and, unless quantization is None, as TFLite ('fp16', 'int8_dynamic'
    or 'float32'): name -> bytes."""
    import keras

    from nst_tf.export.tflite import convert_tflite

    models = {}
    for name, (function, signature) in tiled_functions(net).items():
        archive = keras.export.ExportArchive()
        for model in net.models:
            archive.track(model)
        archive.add_endpoint("serving_default", function, input_signature=signature)
        archive.write_out(f"{directory}/{name}", verbose=False)
        if quantization == "float32":  # no optimisation: the reference's own numbers
            converter = tf.lite.TFLiteConverter.from_saved_model(f"{directory}/{name}")
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            models[name] = converter.convert()
        elif quantization is not None:
            models[name] = convert_tflite(f"{directory}/{name}", quantization)
    return models


def tflite_runner(model: bytes, threads: int = 2):
    """inputs -> outputs of a resizable TFLite model, one interpreter per input shape (a photo has at most four
    window shapes: inner and border windows)."""
    from nst_tf.export.tflite import tflite_session

    sessions = {}

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        key = tuple((name, np.shape(value)) for name, value in sorted(inputs.items()))
        if key not in sessions:
            sessions[key] = tflite_session(model, inputs, threads)
        return sessions[key](inputs)

    return run


def saved_model_runner(path: str):
    """inputs -> outputs of a stats or tile SavedModel's serving_default signature (what a TF Serving client sends
    and receives)."""
    signature = tf.saved_model.load(path).signatures["serving_default"]
    return lambda inputs: {k: v.numpy() for k, v in signature(**{n: tf.constant(x) for n, x in inputs.items()}).items()}


def stylize_tiled_with(run_stats, run_tile, content: np.ndarray, vector: np.ndarray, strength: float = 1.0,
                       tile: int = 512, stats_size: int = tiling.STATS_SIZE, margin: int = tiling.MARGIN
                       ) -> np.ndarray:
    """Stylize one [H, W, 3] photo in [0, 1] with the stats and tile models (run_*: inputs -> outputs, e.g.
    tflite_runner or saved_model_runner) in windows of at most `tile` px: the tile-run-blend loop. `margin`: the
    network's mirror margin a side (its model card says it; nst_tf.tiling.margin_of)."""
    content = np.asarray(content, np.float32)
    vector = np.asarray(vector, np.float32).reshape(1, -1)
    strength_in = np.array([strength], np.float32)
    found = run_stats({"content": tiling.downscaled_copy(content, stats_size, margin).numpy(), "style_vector": vector,
                       "strength": strength_in})
    height, width = content.shape[:2]
    top, bottom, left, right = tiling.pad_amounts(height, width, margin)
    padded = np.pad(content, ((top, bottom), (left, right), (0, 0)), mode="reflect")
    canvas = np.zeros(padded.shape, np.float32)
    for row in tiling.axis_windows(padded.shape[0], tile):
        for col in tiling.axis_windows(padded.shape[1], tile):
            window = padded[None, row.span[0]:row.span[1], col.span[0]:col.span[1]]
            out = run_tile({"content": window, "style_vector": vector, "strength": strength_in,
                            "stats": np.asarray(found["stats"], np.float32)})["stylized_image"][0]
            (r0, r1), (c0, c1) = np.subtract(row.core, row.span[0]), np.subtract(col.core, col.span[0])
            weight = row.weights[r0:r1, None, None] * col.weights[None, c0:c1, None]
            canvas[row.core[0]:row.core[1], col.core[0]:col.core[1]] += out[r0:r1, c0:c1] * weight
    if "palette" in found:
        tiling.apply_palette(canvas, np.asarray(found["palette"][0], np.float64))
    result = canvas[top:top + height, left:left + width]
    return np.clip(result, 0.0, 1.0, out=result)


def stylize_tiled_tflite(models: dict[str, bytes], content: np.ndarray, vector: np.ndarray, strength: float = 1.0,
                         tile: int = 512, stats_size: int = tiling.STATS_SIZE, threads: int = 2,
                         margin: int = tiling.MARGIN) -> np.ndarray:
    """stylize_tiled_with on the LiteRT interpreter with the models of write_tiled_models."""
    return stylize_tiled_with(tflite_runner(models["stats"], threads), tflite_runner(models["tile"], threads),
                              content, vector, strength, tile, stats_size, margin)
