"""The model card (MODEL_CARD.md) and the one-line summary of an export report."""

from __future__ import annotations

import json
import os

from nst_tf import fast, mobile
from nst_tf.export.options import MIN_SIDE
from nst_tf.export.parity import IMAGE_BOUNDS, PARITY_STRENGTHS, VECTOR_BOUNDS, saved_model_bound
from nst_tf.export.serving import BYTES_STYLE_SIZE
from nst_tf.network import NetworkConfig
from nst_tf.strength import STRENGTH_MAX

SIGNATURE_DOCS = {
    "serving_default": ("`content` float32 [B, H, W, 3], `style` float32 [B or 1, h, w, 3], both RGB in [0, 1]; "
                        f"`strength` float32 scalar or [B] in [0, {STRENGTH_MAX:g}]",
                        "`stylized_image` float32 [B, H, W, 3] in [0, 1]"),
    "stylize_bytes": ("`content`, `style`: string, one or [B] (style: one or B) encoded JPEG/PNG/GIF/BMP; "
                      f"the style is resized to {BYTES_STYLE_SIZE} px long side; strength 1",
                      "`stylized_image_bytes` string [B], PNG"),
    "stylize_bytes_strength": ("as stylize_bytes, plus `strength` float32 scalar or [B]",
                               "`stylized_image_bytes` string [B], PNG"),
    "predict_style": (f"`style` float32 [B, h, w, 3] in [0, 1] ({BYTES_STYLE_SIZE} px long side recommended)",
                      "`style_vector` float32 [B, V]"),
    "stylize_with_vector": ("`content` as serving_default, `style_vector` float32 [B or 1, V], `strength`",
                            "`stylized_image` float32 [B, H, W, 3]"),
    "__call__": ("`(content, style)` positional, as serving_default at strength 1 (the TF Hub Magenta calling "
                 "convention); `(content, style, strength)` with a strength", "a list; `[0]` is the stylized image"),
}
STRENGTH_MEANINGS = (  # what each strength asks of the network (nst_tf.strength)
    ("0", "the photo itself, from the network (the content's own style vector)"),
    ("0.5", "half-way: the style vector blended half with the content's own"),
    ("1 (default)", "the painting's look: its palette and strokes"),
    (f"1 to {STRENGTH_MAX:g}", "more painterly still (a network trained with the strength input: its decoder is "
     "modulated by it; one without gives the look of 1)"),
)


def _strengths() -> str:
    """The strengths every parity check runs at, for the card's text."""
    return ", ".join(f"{s:g}" for s in PARITY_STRENGTHS)


def _fmt(value: float) -> str:
    """A compact number for tables."""
    return f"{value:.2e}" if value and abs(value) < 1e-3 else f"{value:.4f}"


def _mb(size: int) -> str:
    """Bytes as MB with two decimals."""
    return f"{size / 1e6:.2f} MB"


def _ok(flag: bool) -> str:
    """Table mark for a bound check."""
    return "yes" if flag else "**NO**"


def _saved_model_section(report: dict) -> list[str]:
    """Model card lines for the SavedModel."""
    sm = report["saved_model"]
    name = report["model_name"]
    lines = [
        "## SavedModel (TF Serving, TF Hub)", "",
        f"`{sm['path']}` ({_mb(sm['size_bytes'])}), TF Serving layout `<base>/{name}/<version>/`.", "",
        "| signature | inputs | outputs |", "|---|---|---|",
    ]
    lines += [f"| `{k}` | {v[0]} | {v[1]} |" for k, v in SIGNATURE_DOCS.items()]
    margin = report.get("margin", fast.MARGIN)
    lines += [
        "", "Content images of any size (each side >= 16 px) are mirror-padded to the encoder stride (8) plus a "
        f"{margin}-px margin a side ({fast.STRIDE // 2} px where a side is {2 * margin} px or less) and "
        "cropped back, exactly like `nst-stylize --method=fast`. Float inputs are not resized; the bytes signatures "
        f"resize the style image to {BYTES_STYLE_SIZE} px long side (the size the network was trained on).", "",
        "Bad inputs fail with `InvalidArgumentError` and a readable message instead of returning garbage: wrong rank "
        "(`expected a [batch, height, width, 3] image tensor`), not 3 channels, sides under 16 px, NaN/Inf, values "
        "outside [0, 1], style or strength batch not 1 or B, strength outside [0, 2], a style vector of the wrong "
        "size, "
        "empty bytes, bytes that are not a JPEG/PNG/GIF/BMP image.", "",
        "```bash",
        f"docker run -p 8501:8501 -v $PWD/{os.path.dirname(os.path.dirname(sm['path'])) or '.'}:/models "
        f"-e MODEL_NAME={name} tensorflow/serving",
        f"curl -d '{{\"signature_name\": \"stylize_bytes\", \"instances\": [{{\"content\": {{\"b64\": \"'$(base64 -w0 "
        f"photo.jpg)'\"}}, \"style\": {{\"b64\": \"'$(base64 -w0 painting.jpg)'\"}}}}]}}' "
        f"http://localhost:8501/v1/models/{name}:predict   # -> {{\"predictions\": [{{\"b64\": <PNG>}}]}}",
        "```", "",
        "```python",
        "import tensorflow_hub as hub",
        f"hub_module = hub.load('{sm['path']}')",
        "outputs = hub_module(tf.constant(content_image), tf.constant(style_image))  # [1, H, W, 3] in [0, 1]",
        "stylized_image = outputs[0]",
        "stronger = hub_module(tf.constant(content_image), tf.constant(style_image), tf.constant(1.5))[0]",
        "```", "",
        "Parity with the Keras model (worst over the parity images and, for every strength input, over the "
        f"strengths {_strengths()}; bytes signatures compare the decoded 8-bit PNG):",
        "", "| signature | max abs error | mean abs error | bound (max / mean) | within |", "|---|---|---|---|---|",
    ]
    for key, value in sm["parity"].items():
        bound = saved_model_bound(key)
        lines.append(f"| `{key}` | {_fmt(value['max_abs'])} | {_fmt(value['mean_abs'])} | "
                     f"{_fmt(bound[0])} / {_fmt(bound[1])} | {_ok(sm['within_bound'][key])} |")
    lat = sm["latency"]
    lines += ["", f"Latency of `serving_default` (content {lat['input']['content']}, style {lat['input']['style']}): "
              f"median {lat['median_ms']:.0f} ms (min {lat['min_ms']:.0f}, max {lat['max_ms']:.0f}, "
              f"{lat['runs']} runs); "
              f"the Keras model: median {report['keras_latency']['median_ms']:.0f} ms.", ""]
    return lines


def _tflite_section(report: dict) -> list[str]:
    """Model card lines for the TFLite models."""
    tfl = report["tflite"]
    lines = [
        "## TFLite (Android, LiteRT)", "",
        f"In `{tfl['directory']}`, split like the TensorFlow Lite Android style-transfer example: a *prediction* "
        "model (style image -> style vector) and a *transfer* model (content image + strength + style vector -> "
        f"stylized image; `strength` [1] in [0, {STRENGTH_MAX:g}], 1 for the painting's look, clipped to that range "
        "inside). All tensors are float32; images RGB in [0, 1]. Run them by signature input name "
        "(`runSignature` / `get_signature_runner`): the converter orders the transfer inputs alphabetically "
        "(content, strength, style_vector; the input index of each follows that order). Builtin ops only (checked "
        "in the flatbuffer; no Flex/select TF ops).", "",
        "| file | inputs | output | quantization | size | image error max / mean | style vector rel. error | "
        "within bound | latency median (min-max), threads |", "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in tfl["files"]:
        inputs = ", ".join(f"`{k}` {v}" for k, v in e["inputs"].items())
        outputs = ", ".join(f"`{k}` {v}" for k, v in e["outputs"].items())
        vector = _fmt(e["parity"]["vector"]["mean_rel"]) if "vector" in e["parity"] else "-"
        lat = e["latency"]
        lines.append(
            f"| `{e['file']}` | {inputs} | {outputs} | {e['scheme']} | {_mb(e['size_bytes'])} | "
            f"{_fmt(e['parity']['image']['max_abs'])} / {_fmt(e['parity']['image']['mean_abs'])} | {vector} | "
            f"{_ok(e['within_bound'])} | {lat['median_ms']:.0f} ms ({lat['min_ms']:.0f}-{lat['max_ms']:.0f}), "
            f"{lat['threads']} |")
    lines += [
        "", "Image error: the stylized image against the Keras model on the parity images, worst over the "
        f"strengths {_strengths()} for transfer models (for a prediction model, its style vector is fed to the Keras "
        "stylizer at strength 1). `-1` in a shape: resizable (the `_dynamic` variants take "
        f"any height and width >= {MIN_SIDE} px; resize the input tensor, then allocate). Bounds (max / mean): "
        f"fp16 {IMAGE_BOUNDS['fp16'][0]} / {IMAGE_BOUNDS['fp16'][1]}, int8 {IMAGE_BOUNDS['int8'][0]} / "
        f"{IMAGE_BOUNDS['int8'][1]}; prediction models also keep the style vector's mean relative error within "
        f"fp16 {VECTOR_BOUNDS['fp16']}, int8 {VECTOR_BOUNDS['int8']}.", "",
        f"Prediction model -> transfer model, as an app chains them (square inputs, strengths {_strengths()}):",
        "",
        "| quantization | max abs error | mean abs error | within bound |", "|---|---|---|---|",
    ]
    for quantization, p in tfl["pipelines"].items():
        lines.append(f"| {quantization} | {_fmt(p['max_abs'])} | {_fmt(p['mean_abs'])} | {_ok(p['within_bound'])} |")
    if tfl.get("combined"):
        lines += [
            "", "### One file, two signatures", "",
            "The same two models in one file each, with the signatures `prediction` and `transfer` over one copy of "
            "the weights (the two halves share the VGG16 encoder, so one file is smaller than the pair). Run them "
            "with `interpreter.getSignatureRunner(\"prediction\")` / `runSignature(inputs, outputs, \"transfer\")` "
            "(Java, Kotlin) or `get_signature_runner(name)` (Python). Inputs and outputs as in the table above.", "",
            "| file | quantization | size | image error max / mean (prediction -> transfer) | within bound | "
            "latency median (min-max), threads |", "|---|---|---|---|---|---|",
        ]
        for e in tfl["combined"]:
            lat = e["latency"]
            lines.append(f"| `{e['file']}` | {e['scheme']} | {_mb(e['size_bytes'])} | {_fmt(e['parity']['max_abs'])} / "
                         f"{_fmt(e['parity']['mean_abs'])} | {_ok(e['within_bound'])} | {lat['median_ms']:.0f} ms "
                         f"({lat['min_ms']:.0f}-{lat['max_ms']:.0f}), {lat['threads']} |")
    lines += ["", "### int8: which scheme and why", ""]
    for e in tfl["files"]:
        if e["quantization"] != "int8":
            continue
        attempt = e.get("full_integer_attempt")
        if attempt and "error" in attempt:
            lines.append(f"- `{e['file']}`: full-integer (TFLITE_BUILTINS_INT8, {attempt['calibration_samples']} "
                         f"calibration images) converted, but the LiteRT interpreter could not run it "
                         f"(`{attempt['error']}`) -> **{e['scheme']}**.")
        elif attempt:
            vector = (f", style vector relative error {_fmt(attempt['vector']['mean_rel'])}"
                      if "vector" in attempt else "")
            lines.append(
                f"- `{e['file']}`: full-integer (TFLITE_BUILTINS_INT8, {attempt['calibration_samples']} calibration "
                f"images from train_content/train_style, strengths 0 to {STRENGTH_MAX:g}) measured image error max "
                f"{_fmt(attempt['image']['max_abs'])}, "
                f"mean {_fmt(attempt['image']['mean_abs'])}{vector}: "
                f"{'within' if attempt['within_bound'] else 'outside'} the int8 bounds -> **{e['scheme']}**.")
        else:
            lines.append(f"- `{e['file']}`: {e['scheme']} (full-integer not attempted).")
        if e.get("float_layers"):
            lines.append(f"  Dynamic-range with every convolution int8 missed the int8 bounds, so "
                         f"{', '.join(e['float_layers'])} (the network's most sensitive, added one at a time) compute "
                         f"in float: one int8 scale per tensor cannot hold their inputs' range and detail at once.")
    lines += ["", "Full-integer quantization gives each tensor one int8 scale. The per-channel means and standard "
              "deviations of relu4_1 (the style vector, and the statistics AdaIN normalises with) span orders of "
              "magnitude, so most of them are left with a few int8 steps; that is the likely cause of the large "
              "full-integer errors. Dynamic-range models keep int8 weights (half the size of fp16) but compute in "
              "float.", ""]
    ops = sorted({op for e in tfl["files"] for op in e["ops"]})
    lines += [f"Ops used: {', '.join(ops)}.", ""]
    return lines


def _checkpoint_name(ckpt: dict) -> str:
    """'bundled (nst_tf/models/<name>)' or the folder's path."""
    return f"bundled (nst_tf/models/{os.path.basename(ckpt['path'])})" if ckpt["bundled"] else ckpt["path"]


def _strength_design(config) -> str:
    """How the exported network takes the strength, from its config: the sentence's tail."""
    trained = (f"its {'decoder' if isinstance(config, NetworkConfig) else 'transformer'} is also modulated by the "
               f"strength (an embedding {config.strength_units} wide), so 1 to {STRENGTH_MAX:g} grows more painterly"
               if config.strength_units else f"trained without the strength input, so 1 to {STRENGTH_MAX:g} all give "
               "the look of 1")
    palette = ("; a palette layer gives the output the style's pixel colour moments (6 more floats of the vector)"
               if config.palette else "")
    return f"up to 1 the strength blends the style vector with the content's own; {trained}{palette}"


def _architecture(config_dict: dict) -> str:
    """One paragraph on the exported network's design, from its config.json."""
    config = mobile.config_from_json(json.dumps(config_dict))
    if isinstance(config, mobile.MobileConfig):
        return (f"Network: nst_tf.mobile, a small transformer (Johnson et al. 2016 / Ghiasi et al. 2017: channels "
                f"{list(config.channels)}, {config.residual_blocks} residual blocks, conditional instance norm "
                f"driven through a {config.bottleneck}-float bottleneck; reflect padding, nearest resize then "
                "convolution: no checkerboard artefacts) trained on the arbitrary-style network's losses, whose style "
                f"predictor it shares (style image -> style vector of V = {config.vector_size} floats, the means "
                "and standard deviations of relu1_1..relu4_1; content + style vector + strength -> image; "
                f"{_strength_design(config)}. A strength under 1 also predicts the content's own vector: a TFLite IF "
                "branch that strengths of 1 and more skip).")
    levels = ", ".join(n.replace("block", "relu").replace("_conv", "_") for n in config.levels)
    linear = (f" plus a learned linear transform at relu4_1 (Li et al. 2019, rank {config.linear_rank})"
              if config.linear_rank else "")
    matrix = (f", then the {config.linear_rank}x{config.linear_rank} style matrix of the linear transform"
              if config.linear_rank else "")
    head = (f" and a moment head ({config.moment_head} hidden units: a learned correction of the AdaIN target "
            "moments from the style's and the content's moments, scaled by min(strength, 1))"
            if config.moment_head else "")
    return ("Network: AdaIN (Huang & Belongie 2017) with a frozen VGG16 encoder to relu4_1 and a trained decoder "
            f"({config.skip_levels} AdaIN'd skip levels; reflect padding, nearest resize then convolution: no "
            f"checkerboard artefacts){linear}{head}, Magenta's two-part interface (style image -> style vector of "
            f"V = {config.vector_size} floats, the means and standard deviations of {levels}{matrix}; content + "
            f"style vector + strength -> image; {_strength_design(config)}).")


def _strength_section(report: dict) -> list[str]:
    """Model card lines on the strength input: its range, what each value does, and the sweep measured at export."""
    lines = [
        "## Strength", "",
        f"Every stylizing signature and the TFLite transfer models take `strength`, a float in [0, {STRENGTH_MAX:g}] "
        "(one value, or one per image in the SavedModel); the signatures without it use 1. Out-of-range values are "
        "refused by the SavedModel and clipped by the TFLite models.", "",
        "| strength | what it gives |", "|---|---|",
    ]
    lines += [f"| {value} | {meaning} |" for value, meaning in STRENGTH_MEANINGS]
    sweep = report.get("strength_sweep")
    if sweep:
        lines += [
            "", "### Strength sweep", "",
            "Measured at export time with the Keras model on the parity images (mean over pairs): how far the output "
            "is from the photo (mean absolute pixel difference, [0, 1] RGB) and how far its palette is from the "
            "painting's (mean absolute difference of the opponent-colour means and standard deviations; the photo's "
            f"own: {_fmt(sweep[0]['photo_palette_gap'])}).", "",
            "| strength | distance from the photo | palette gap to the painting |", "|---|---|---|",
        ]
        lines += [f"| {row['strength']:g} | {_fmt(row['from_photo'])} | {_fmt(row['palette_gap'])} |" for row in sweep]
    lines += [
        "", "Pictures of the sweep (photo | painting | 0.5 | 1 | top | peer) on the eight held-out pairs: "
        "`docs/images/fast_strength_<network>.jpg` in the nst_tf repository, written by "
        "`python benchmarks/fast_strength.py` with its style and palette measures.", "",
    ]
    return lines


def _tiling_section(margin: int) -> list[str]:
    """Model card lines on stylizing large photos (tile, run, blend) with the network's mirror margin."""
    return [
        "## Large photos: tile, run, blend", "",
        "Both networks normalise with whole-image statistics, so a photo cut into tiles and sent through the "
        "transfer model tile by tile gets another colour and contrast in every tile. To stylize a photo larger "
        "than memory allows (a 12-megapixel phone photo), give every tile the whole photo's statistics: "
        "`nst_tf.export.tiled_tflite.write_tiled_models` writes two more models, as SavedModels (for TF Serving) "
        "and TFLite files (builtin ops only): *stats* (a copy of the photo downscaled to at most 1024 px long side, "
        f"mirror-padded as the network pads ({margin} px a side), with the style vector and the strength -> every "
        "statistic, one flat "
        "vector) and *tile* (one window, sides multiples of 8, plus that vector -> its stylized pixels, unclipped, "
        "before the palette layer). An Android app runs *stats* once, then each window (a core plus 64 px of "
        "context on each inner side; neighbouring cores overlap by 32 px), adds each core times linear-ramp "
        "weights that sum to one into a float canvas, applies the palette (an affine colour map from the canvas's "
        "own moments) if the network has one, clips and crops. `stylize_tiled_tflite` in the same module is the "
        "reference of that loop on the LiteRT interpreter (tested). TF Serving users serve the two SavedModels and "
        "run the same loop client-side (`stylize_tiled_with` with their own request function and "
        f"margin={margin}), or use "
        "`nst_tf.tiling` in Python, which accumulates the statistics over the tiles and matches an untiled run "
        "(docs/tiling.md).", "",
    ]


def model_card(report: dict) -> str:
    """The MODEL_CARD.md text for an export report."""
    ckpt = report["checkpoint"]
    env = report["environment"]
    opts = report["options"]
    lines = [
        f"# {report['model_name']} (version {report['version']}): arbitrary-style transfer", "",
        f"Generated by `nst-export` on {report['created']}. {_architecture(ckpt['config'])}", "",
        f"Checkpoint: `{_checkpoint_name(ckpt)}`, config "
        f"`{json.dumps(ckpt['config'], sort_keys=True)}`, weights.npz sha256 `{ckpt['weights_sha256'][:16]}...`. "
        "The numbers below measure how faithfully the exports reproduce the Keras model; stylization quality "
        "on held-out pairs is measured by `benchmarks/fast_quality.py`.", "",
        "Parity images (held out from int8 calibration): "
        f"{', '.join(f'{c} x {s}' for c, s in report['parity_images'])} "
        f"from `{report['data_dir']}` (content/, styles/). Float SavedModel checks use the content at "
        f"{opts['content_size'] + 3} px long side (not a multiple of the stride) and the style at "
        f"{opts['style_size']} px; fixed-size TFLite models use centre squares of {opts['content_size']} and "
        f"{opts['style_size']} px.", "",
    ]
    lines += _strength_section(report)
    if "saved_model" in report:
        lines += _saved_model_section(report)
    if "tflite" in report:
        lines += _tflite_section(report)
    lines += _tiling_section(report.get("margin", fast.MARGIN))
    lines += [
        "## Measurement", "",
        f"Python {env['python']}, TensorFlow {env['tensorflow']}, Keras {env['keras']}, ai-edge-litert "
        f"{env['ai_edge_litert']}; {env['machine']}, {env['cpus']} CPUs, load average {env['load_average']} at export "
        f"time (latencies are wall-clock medians of {opts['latency_runs']} runs after one warm-up, "
        f"{env['threads']} threads; other work on the machine inflates them). "
        "`benchmarks/tflite_latency.py` measures more carefully.", "",
    ]
    if report.get("failures"):
        lines += ["## Failed checks", ""] + [f"- {f}" for f in report["failures"]] + [""]
    return "\n".join(lines)


def summary(report: dict) -> list[str]:
    """One line per written artefact, with its worst parity error."""
    lines = []
    if "saved_model" in report:
        sm = report["saved_model"]
        worst_sig = max(sm["parity"], key=lambda k: sm["parity"][k]["max_abs"])
        lines.append(f"wrote SavedModel {sm['path']} ({_mb(sm['size_bytes'])}; signatures "
                     f"{', '.join(sm['signatures'])}; largest error {sm['parity'][worst_sig]['max_abs']:.2e} "
                     f"in {worst_sig})")
    for e in report.get("tflite", {}).get("files", []):
        image = e["parity"]["image"]
        lines.append(f"wrote {e['path']} ({_mb(e['size_bytes'])}, {e['scheme']}; image error max "
                     f"{image['max_abs']:.2e}, mean {image['mean_abs']:.2e}; {e['latency']['median_ms']:.0f} ms)")
    for e in report.get("tflite", {}).get("combined", []):
        lines.append(f"wrote {e['path']} ({_mb(e['size_bytes'])}, {e['scheme']}, signatures "
                     f"{', '.join(e['signatures'])}; image error max {e['parity']['max_abs']:.2e}, mean "
                     f"{e['parity']['mean_abs']:.2e}; {e['latency']['median_ms']:.0f} ms)")
    lines.append(f"wrote {os.path.join(report['options']['output_dir'], 'MODEL_CARD.md')}")
    return lines
