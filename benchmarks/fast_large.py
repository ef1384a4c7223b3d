"""Full-resolution photos through the fast path in tiles (issue 24): time and peak memory, and tiled vs untiled.

  nice -n 15 python benchmarks/fast_large.py --output=benchmarks/results/fast_large.json

Three parts, each measurement in a child process of its own (peak memory: the child's VmHWM, /proc/self/status):
- probe: one window's forward pass (the stats path) at 512 and 1024 px a side per network: the slope gives the
  bytes per window pixel that nst_tf.tiling.BYTES_PER_PIXEL (the automatic tile size) is set from;
- large: a photo (data/content/tubingen.jpg upscaled to 4:3 at 1, 4 and 24 megapixels and to 4032x3024, a 12-megapixel
  phone photo; written as a JPEG) read,
  stylized by fast.stylize with the automatic tile size (or --tile) and written as a JPEG, per network: seconds of
  each step and the peak RSS of the whole process (TensorFlow, the networks, the photo, the canvas);
- quality: the eight held-out pairs of benchmarks/fast_quality.py at 1024 px long side, per network: the mean and
  max absolute difference (in 1/255) between the untiled output and tiled ones (windows of --quality_tile px):
  statistics accumulated over the tiles, and statistics of a downscaled copy (long side 512 and 256: what
  stats='downscaled' costs at 2x and 4x).
The machine is shared (a training run has priority), so seconds are inflated unless the run was made with the
other work paused; peak memory is not. --condition records how the machine was (stored in every record, with the
load average at its start); --append adds the records to those already in --output, so that the parts and
sizes can be run one invocation at a time (e.g. each with the training run paused only for its own length).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from _report import emit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("NST_TF_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM) in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(spec: dict) -> dict:
    """One measurement in this (child) process."""
    import numpy as np
    import tensorflow as tf

    from nst_tf import fast, images, tiling

    net = fast.load_network(spec["network"])
    print(json.dumps({"config": json.loads(net.config.to_json())}), file=sys.stderr, flush=True)
    style = images.resize_long_side(images.load_image(f"{DATA}/styles/starry_night.jpg"), fast.STYLE_SIZE)
    if spec["part"] == "probe":
        side = spec["side"]
        window = tf.constant(np.random.default_rng(0).uniform(size=(1, side, side, 3)), tf.float32)
        vector = fast.style_vector(net, [style])
        stats = net.image_stats(window[:, ::4, ::4], vector)
        base = peak_rss_mb()
        started = time.time()
        net.stylize(window, vector, 1.0, clip=False, stats=stats).numpy()
        return {"seconds": round(time.time() - started, 2), "peak_rss_mb": round(peak_rss_mb()),
                "before_mb": round(base)}
    if spec["part"] == "large":
        timing = {}
        started = time.time()
        content = images.load_image(spec["path"])
        timing["read_s"] = round(time.time() - started, 1)
        started = time.time()
        tile = spec.get("tile")
        side = tiling.choose_tile(net) if tile is None else tile
        result = fast.stylize(net, content, [style], tile=side)
        timing["stylize_s"] = round(time.time() - started, 1)
        started = time.time()
        images.save_image(result, spec["output"])
        timing["write_s"] = round(time.time() - started, 1)
        return {**timing, "tile": side, "peak_rss_mb": round(peak_rss_mb())}
    from fast_quality import PAIRS

    rows = []
    for content_name, style_name in PAIRS:
        content = images.resize_long_side(images.load_image(f"{DATA}/content/{content_name}.jpg"), 1024)
        pair_style = images.resize_long_side(images.load_image(f"{DATA}/styles/{style_name}.jpg"), fast.STYLE_SIZE)
        vector = fast.style_vector(net, [pair_style])
        started = time.time()
        untiled = fast.stylize_padded(net, tf.constant(content[None]), vector).numpy()[0]
        row = {"pair": f"{content_name} x {style_name}", "size": list(content.shape[:2]),
               "untiled_s": round(time.time() - started, 1)}
        for name, kwargs in (("tiles", {}), ("downscaled_512", {"stats": "downscaled", "stats_size": 512}),
                             ("downscaled_256", {"stats": "downscaled", "stats_size": 256})):
            started = time.time()
            tiled = tiling.stylize_tiled(net, content, vector, 1.0, spec["tile"], **kwargs)
            error = np.abs(tiled - untiled) * 255
            row[name] = {"mae_255": round(float(error.mean()), 4), "max_255": round(float(error.max()), 2),
                         "seconds": round(time.time() - started, 1)}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return {"pairs": rows, "tile": spec["tile"], "peak_rss_mb": round(peak_rss_mb())}


def run_child(spec: dict, timeout: float) -> dict:
    """Run `child(spec)` in a fresh process; its result, or the error it ended with."""
    spec = {**spec, "load_average_start": [round(x, 2) for x in os.getloadavg()]}
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), TF_CPP_MIN_LOG_LEVEL="2")
    started = time.time()
    try:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), f"--child={json.dumps(spec)}"], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timed out after {timeout:.0f} s"}
    configs = [json.loads(line)["config"] for line in proc.stderr.splitlines() if line.startswith('{"config"')]
    spec = {**spec, "config": configs[0]} if configs else spec
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        tail = [line for line in proc.stderr.splitlines() if line.strip()][-1:] or ["failed"]
        return {**spec, "error": tail[0], "returncode": proc.returncode}
    return {**spec, **json.loads(lines[-1]), "process_s": round(time.time() - started, 1)}


def photo(case: str, directory: str) -> tuple[str, list[int], float]:
    """tubingen.jpg upscaled to `case` ('12': 4:3 at 12 megapixels, '4032x3024': that width and height), written as a
    JPEG (quality 92); its path, [H, W] and megapixels."""
    from PIL import Image

    if "x" in case:
        width, height = (int(v) for v in case.split("x"))
    else:
        width = round((float(case) * 1e6 * 4 / 3) ** 0.5)
        height = round(width * 3 / 4)
    with Image.open(f"{DATA}/content/tubingen.jpg") as image:
        big = image.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
    path = os.path.join(directory, f"photo_{width}x{height}.jpg")
    big.save(path, quality=92)
    return path, [height, width], round(width * height / 1e6, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--networks", default="arbitrary,mobile")
    parser.add_argument("--megapixels", default="1,4,4032x3024,24",
                        help="photo sizes: megapixels (4:3) or WIDTHxHEIGHT (4032x3024: a 12-megapixel phone photo)")
    parser.add_argument("--tile", type=int, default=None, help="window side (default: chosen from free memory)")
    parser.add_argument("--quality_tile", type=int, default=512)
    parser.add_argument("--parts", default="probe,quality,large")
    parser.add_argument("--timeout", type=float, default=6 * 3600)
    parser.add_argument("--output", default="")
    parser.add_argument("--condition", default="shared: a training run at higher priority",
                        help="how the machine was during this invocation (stored in each record)")
    parser.add_argument("--append", action="store_true", help="add to the records already in --output")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))), flush=True)
        return
    networks, parts = args.networks.split(","), args.parts.split(",")
    report = {"benchmark": "fast_large", "cpus": os.cpu_count(), "load_average_before": list(os.getloadavg()),
              "note": "each case a child process; peak_rss_mb is its VmHWM. The CPUs are shared with a training "
                      "run at higher priority: seconds are inflated, memory is not.", "probe": [], "quality": [],
              "large": []}
    if args.append and args.output and os.path.exists(args.output):
        with open(args.output) as f:
            previous = json.load(f)
        report = {**previous, **{k: previous.get(k, []) + report[k] for k in ("probe", "quality", "large")}}
        report["note"] = ("each case a child process; peak_rss_mb is its VmHWM. Records from several invocations: "
                          "each says how the machine was (condition, load average at its start).")

    def record(part: str, result: dict) -> None:
        result = {**result, "condition": args.condition}
        report[part].append(result)
        print(json.dumps(result), file=sys.stderr, flush=True)
        if args.output:
            emit(report, args.output)

    if "probe" in parts:
        for network in networks:
            for side in (512, 1024):
                record("probe", run_child({"part": "probe", "network": network, "side": side}, args.timeout))
    if "quality" in parts:
        for network in networks:
            record("quality", run_child({"part": "quality", "network": network, "tile": args.quality_tile},
                                        args.timeout))
    if "large" in parts:
        with tempfile.TemporaryDirectory() as directory:
            for case in args.megapixels.split(","):
                path, size, megapixels = photo(case, directory)
                for network in networks:
                    spec = {"part": "large", "network": network, "megapixels": megapixels, "size": size,
                            "path": path, "output": os.path.join(directory, "out.jpg"), "tile": args.tile}
                    result = run_child(spec, args.timeout)
                    result.pop("path"), result.pop("output")
                    record("large", result)
                os.remove(path)
    report["load_average_after"] = list(os.getloadavg())
    emit(report, args.output)


if __name__ == "__main__":
    main()
