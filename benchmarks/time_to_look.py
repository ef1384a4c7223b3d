"""Time to the painting's look: each preset and style loss on the jcjohnson/neural-style reference pairs.

  python benchmarks/time_to_look.py --presets=quality,preview --losses=preset,gram --output=benchmarks/time_to_look.json
  python benchmarks/time_to_look.py --presets=quality --pairs=golden_gate_starry --sheet=docs/images/x.jpg

For every pair, each preset (a bundled preset name or an nst-stylize flagfile; `--losses` overrides its style loss)
is run through `optimize.stylize` and timed from the loaded images to the result (targets, tracing, the fast
network's start included; the loss network is built once). Measured with nst_tf.metrics (offline VGG16):
- viewing-scale style loss: output and painting at a 256-px long side, relative Gram error over the style layers;
- palette distance: sliced Wasserstein distance of the pixel colours in CIELAB (ΔE-like units);
- content loss: relative block4_conv2 error against the photo, at the output's size;
- cost: the run's seconds over one compiled 512-px Adam step (Gram loss), timed before each pair in the same process.
The jcjohnson outputs (Gatys, ImageNet VGG19, L-BFGS, 1000 iterations from noise) are measured the same way: the bar.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from _report import emit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("NST_TF_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
# reference name -> (content, style): the eleven single-style outputs of jcjohnson/neural-style's README
PAIRS = {
    "golden_gate_escher": ("golden_gate", "escher_sphere"), "golden_gate_kahlo": ("golden_gate", "frida_kahlo"),
    "golden_gate_matisse": ("golden_gate", "woman_with_hat_matisse"),
    "golden_gate_scream": ("golden_gate", "the_scream"),
    "golden_gate_seated": ("golden_gate", "seated_nude"), "golden_gate_starry": ("golden_gate", "starry_night"),
    "tubingen_composition_vii": ("tubingen", "composition_vii"), "tubingen_scream": ("tubingen", "the_scream"),
    "tubingen_seated_nude": ("tubingen", "seated_nude"), "tubingen_shipwreck": ("tubingen", "shipwreck"),
    "tubingen_starry": ("tubingen", "starry_night"),
}
MEASURES = ("viewing_style_loss", "palette_distance", "content_loss")


def preset_options(preset: str, style_loss: str, changes: dict | None = None):
    """optimize.Options of an nst-stylize preset (name or flagfile), read by nst-stylize's own flags, with
    `changes` (Options fields) on top."""
    import dataclasses

    from nst_tf import presets
    from nst_tf.cli import stylize

    stylize.FLAGS.unparse_flags()
    path = presets.path(preset) if preset in presets.names() else os.path.join(ROOT, preset)
    stylize.FLAGS(["time_to_look", f"--flagfile={path}"])
    options = dataclasses.replace(stylize.optimizer_options(), **(changes or {}))
    return options if style_loss == "preset" else dataclasses.replace(options, style_loss=style_loss)


def parse_changes(text: str) -> dict:
    """'init=palette,points=4096' -> Options fields (numbers converted; '/' separates per-scale tuples)."""
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, _, value = item.partition("=")
        parts = [float(v) if v.replace(".", "", 1).isdigit() and "." in v else int(v) if v.isdigit() else v
                 for v in value.split("/")]
        out[key] = tuple(parts) if len(parts) > 1 or key in ("optimizers", "learning_rates") else parts[0]
    return out


def step_seconds(extractor, content, style, repeats: int = 3) -> float:
    """Median seconds of one compiled 512-px Adam step (Gram loss) on this pair, after a warm-up step."""
    import tensorflow as tf

    from nst_tf import optimize
    from nst_tf.objective import Objective, style_targets
    from nst_tf.optimizers import Adam

    content = optimize._long_side(content, 512)
    objective = Objective(extractor, content, style_targets(extractor, [optimize._long_side(style, 512)]))
    adam = Adam(objective, tf.Variable(content[None]))
    float(adam.step()["total"])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        float(adam.step()["total"])
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(extractor, image, content, style) -> dict:
    """The three measures of one image."""
    from nst_tf import metrics

    return {"viewing_style_loss": metrics.viewing_style_loss(extractor, image, style),
            "palette_distance": metrics.palette_distance(image, style),
            "content_loss": metrics.content_loss(extractor, image, content)}


def medians(rows: list[dict]) -> dict:
    """Median of each measure (and of the cost, where present) over rows."""
    keys = [k for k in (*MEASURES, "cost_steps", "seconds") if k in rows[0]]
    return {k: statistics.median(r[k] for r in rows) for k in keys}


def verdict(ours: dict, bar: dict, max_cost: float) -> dict:
    """The issue's test: each median at most the bar's, and the cost at most `max_cost` steps."""
    out = {k: ours[k] <= bar[k] for k in MEASURES}
    out["cost_steps"] = ours["cost_steps"] <= max_cost
    out["all"] = all(out.values())
    return out


def output_name(preset: str, loss: str, pair: str) -> str:
    """File name of a saved output."""
    return f"{pair}_{os.path.basename(preset).replace('.cfg', '')}_{loss}.jpg"


def sheet_row(content, reference, result):
    """photo | jcjohnson | ours at the reference's size."""
    from nst_tf import images

    h, w = reference.shape[:2]
    return images.contact_sheet([images.resize(content, h, w), reference, images.resize(result, h, w)], 240)


def sheet_from_saved(args) -> None:
    """The contact sheet from outputs an earlier run saved (pairs without a saved output are left out)."""
    from nst_tf import images

    preset, loss = args.presets.split(",")[0], args.losses.split(",")[0]
    rows = []
    for name in [p.strip() for p in args.pairs.split(",") if p.strip()] or list(PAIRS):
        path = os.path.join(args.save_dir, output_name(preset, loss, name))
        if os.path.exists(path):
            content = images.load_image(f"{DATA}/content/{PAIRS[name][0]}.jpg")
            reference = images.load_image(f"{DATA}/reference/neural_style/{name}.jpg")
            rows.append(sheet_row(content, reference, images.load_image(path)))
    images.save_image(images.stack_rows(rows), args.sheet, quality=88)
    print(f"wrote {args.sheet} ({len(rows)} pairs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="quality,preview", help="preset names or flagfiles, comma-separated")
    parser.add_argument("--losses", default="preset",
                        help="style losses to run each preset with: preset (its own), gram, sliced_wasserstein")
    parser.add_argument("--pairs", default="", help="reference names, comma-separated (default: all eleven)")
    parser.add_argument("--set", default="", help="Options fields over every preset, e.g. 'points=4096,"
                        "optimizers=adam/adam/lbfgs' (for trying settings the flags do not reach)")
    parser.add_argument("--weights", default="lpips")
    parser.add_argument("--max_cost", type=float, default=60.0, help="the cost limit, in compiled 512-px steps")
    parser.add_argument("--output", default="")
    parser.add_argument("--save_dir", default="", help="also write every output image here")
    parser.add_argument("--sheet", default="", help="photo | jcjohnson | first preset's output, one row per pair")
    parser.add_argument("--sheet_only", action="store_true",
                        help="only make --sheet from the first preset's outputs saved in --save_dir by an earlier run")
    args = parser.parse_args()
    if args.sheet_only:
        return sheet_from_saved(args)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from nst_tf import images, metrics, optimize

    names = [p.strip() for p in args.pairs.split(",") if p.strip()] or list(PAIRS)
    unknown = [n for n in names if n not in PAIRS]
    if unknown:
        sys.exit(f"unknown pair(s) {', '.join(unknown)} (choose from {', '.join(PAIRS)})")
    runs = [(p, loss) for p in args.presets.split(",") for loss in args.losses.split(",")]
    extractor = metrics.measuring_extractor(args.weights)
    bar_rows, results, sheet_rows = [], {f"{p}/{loss}": [] for p, loss in runs}, []
    for name in names:
        content_name, style_name = PAIRS[name]
        content = images.load_image(f"{DATA}/content/{content_name}.jpg")
        style = images.load_image(f"{DATA}/styles/{style_name}.jpg")
        reference = images.load_image(f"{DATA}/reference/neural_style/{name}.jpg")
        bar_rows.append({"pair": name, **measure(extractor, reference, content, style)})
        step = step_seconds(extractor, content, style)
        first = None
        for preset, loss in runs:
            options = preset_options(preset, loss, parse_changes(args.set))
            started = time.perf_counter()
            result = optimize.stylize(extractor, content, [style], options)
            seconds = time.perf_counter() - started
            row = {"pair": name, "seconds": seconds, "step_seconds": step, "cost_steps": seconds / step,
                   **measure(extractor, result, content, style)}
            results[f"{preset}/{loss}"].append(row)
            first = result if first is None else first
            if args.save_dir:
                os.makedirs(args.save_dir, exist_ok=True)
                images.save_image(result, os.path.join(args.save_dir, output_name(preset, loss, name)))
            print(f"{name} {preset}/{loss}: style {row['viewing_style_loss']:.3f} palette "
                  f"{row['palette_distance']:.2f} content {row['content_loss']:.3f}, {seconds:.0f} s = "
                  f"{row['cost_steps']:.0f} steps of {step:.2f} s; jcjohnson style "
                  f"{bar_rows[-1]['viewing_style_loss']:.3f} palette {bar_rows[-1]['palette_distance']:.2f} "
                  f"content {bar_rows[-1]['content_loss']:.3f}", file=sys.stderr, flush=True)
        if args.sheet:
            sheet_rows.append(sheet_row(content, reference, first))
    bar = medians(bar_rows)
    summary = {}
    for key, rows in results.items():
        ours = medians(rows)
        summary[key] = {"medians": ours, "meets_bar": verdict(ours, bar, args.max_cost), "rows": rows}
    if args.sheet:
        images.save_image(images.stack_rows(sheet_rows), args.sheet, quality=88)
    report = {"benchmark": "time_to_look", "pairs": names, "cpus": os.cpu_count(), "loss_network": "lpips VGG16",
              "max_cost_steps": args.max_cost, "set": args.set, "jcjohnson": {"medians": bar, "rows": bar_rows},
              "runs": summary}
    emit(report, args.output)


if __name__ == "__main__":
    main()
