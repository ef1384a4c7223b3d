"""Cold start of every command: a fresh process to its --help, and to a first result on a tiny input.

  python benchmarks/cold_start.py --repeats=3 --output=benchmarks/results/cold_start.json

Each case runs `python -m nst_tf.cli.<command> ...` in a new process (what a console script does, without the
launcher) and times it from start to exit: --help (flags parsed, no TensorFlow), and a first result on a tiny
input (64-px images from nst_tf/assets): nst-stylize (one optimiser step, offline VGG16; and --method=fast),
nst-train (one step at batch 1, 32-px crops, then its checkpoint), nst-export (the SavedModel alone, parity on one
32-px pair), nst-video (three 64-px frames), nst-augment (one 64-px image); nst-app, a server, to ready (its page
answers on a free port and its log says its warm-up loaded the bundled network), then it is stopped. --warmup
untimed runs per case first (they convert the offline weights once and warm the file cache). Median, min and max
wall seconds over --repeats, and the median CPU seconds (user + system) of the process, with the load average
before and after: other work on the machine inflates the wall times much more than the CPU times.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from _report import emit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASSETS = os.path.join(ROOT, "nst_tf", "assets")
SIZE = 64


def tiny_inputs(folder: str) -> dict[str, str]:
    """64-px content and style images, a frame folder, a data folder for nst-export and image folders."""
    sys.path.insert(0, ROOT)
    from nst_tf import images

    content = images.resize_long_side(images.load_image(os.path.join(ASSETS, "tubingen.jpg")), SIZE)
    style = images.resize_long_side(images.load_image(os.path.join(ASSETS, "starry_night.jpg")), SIZE)
    paths = {name: os.path.join(folder, name) for name in ("frames", "photos", "data", "data/content",
                                                            "data/styles", "train_content")}
    for path in paths.values():
        os.makedirs(path, exist_ok=True)
    paths["content"], paths["style"] = os.path.join(folder, "content.png"), os.path.join(folder, "style.png")
    images.save_image(content, paths["content"])
    images.save_image(style, paths["style"])
    for i in range(3):  # a slow pan: each frame shifted by 2 px
        images.save_image(content[:, 2 * i:content.shape[1] - 6 + 2 * i], os.path.join(paths["frames"], f"{i}.png"))
    for name in ("photos", "data/content", "train_content"):
        shutil.copy(paths["content"], os.path.join(paths[name], "a.png"))
    shutil.copy(paths["content"], os.path.join(paths["train_content"], "b.png"))
    shutil.copy(paths["style"], os.path.join(paths["data/styles"], "s.png"))
    return paths


def cases(paths: dict[str, str], out: str) -> list[tuple[str, str, list[str]]]:
    """(command, case, arguments) for each measurement; outputs go under `out` (emptied before each run)."""
    content, style = paths["content"], paths["style"]
    return [
        *((f"nst-{c}", "--help", ["--help"]) for c in ("stylize", "train", "export", "video", "augment", "app")),
        ("nst-stylize", "first result (optimiser, 1 step)",
         [f"--content={content}", f"--style={style}", f"--output={out}/o.png", "--weights=lpips", f"--size={SIZE}",
          "--steps=1"]),
        ("nst-stylize", "first result (--method=fast)",
         [f"--content={content}", f"--style={style}", f"--output={out}/o.png", "--method=fast", f"--size={SIZE}"]),
        ("nst-train", "first result (1 step, checkpoint)",
         [f"--content_dir={paths['train_content']}", f"--style_dir={style}", f"--model_dir={out}/run",
          "--weights=lpips", "--steps=1", "--batch_size=1", "--crop=32", "--log_every=1", "--checkpoint_every=1"]),
        ("nst-export", "first result (SavedModel, 1 parity pair)",
         [f"--output_dir={out}/export", "--formats=saved_model", f"--data_dir={paths['data']}", "--parity_pairs=1",
          "--latency_runs=1", "--content_size=32", "--style_size=32"]),
        ("nst-video", "first result (3 frames)",
         [f"--input={paths['frames']}", f"--style={style}", f"--output={out}/v.mp4", f"--size={SIZE}"]),
        ("nst-augment", "first result (1 image)",
         [f"--input_dir={paths['photos']}", f"--output_dir={out}/aug", f"--styles={style}", f"--size={SIZE}"]),
        ("nst-app", "ready (page served, network loaded)", ["--weights=lpips", f"--preview_size={SIZE}"]),
    ]


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_until_ready(command: list[str], out: str, env: dict[str, str], timeout: float = 1800.0) -> None:
    """Start nst-app, wait until its page answers and its log says 'nst-app: ready', then stop it."""
    port = free_port()
    log = os.path.join(out, "app.log")
    with open(log, "w") as sink:
        proc = subprocess.Popen([*command, f"--port={port}"], cwd=out, env=env, stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.perf_counter() + timeout
    try:
        while True:
            if proc.poll() is not None or time.perf_counter() > deadline:
                with open(log) as f:
                    raise RuntimeError(f"nst-app did not get ready: {f.read().strip().splitlines()[-1:]}")
            with open(log) as f:
                ready = "nst-app: ready" in f.read()
            if ready:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
                    return
                except OSError:
                    pass
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def run(command: str, args: list[str], out: str) -> tuple[float, float]:
    """Wall and CPU seconds of one fresh process; RuntimeError if it fails (--help included: it exits 0)."""
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    module = f"nst_tf.cli.{command.removeprefix('nst-')}"
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", GRADIO_ANALYTICS_ENABLED="False")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    if command == "nst-app" and args != ["--help"]:  # a server: timed to ready, then stopped
        serve_until_ready([sys.executable, "-m", module, *args], out, env)
        proc = None
    else:
        proc = subprocess.run([sys.executable, "-m", module, *args], cwd=out, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if proc is not None and proc.returncode:
        raise RuntimeError(f"{command} {' '.join(args)}: {proc.stderr.strip().splitlines()[-1:]}")
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per case first")
    parser.add_argument("--only", default="", help="comma-separated commands, e.g. nst-stylize,nst-export")
    parser.add_argument("--output", default="")
    args = parser.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]
    results = []
    with tempfile.TemporaryDirectory(prefix="nst_cold_") as tmp:
        paths = tiny_inputs(tmp)
        out = os.path.join(tmp, "out")
        for command, case, arguments in cases(paths, out):
            if args.only and command not in args.only.split(","):
                continue
            for _ in range(args.warmup):  # converts the offline weights once, warms the file cache
                run(command, arguments, out)
            runs = [run(command, arguments, out) for _ in range(max(1, args.repeats))]
            times = [wall for wall, _ in runs]
            results.append({"command": command, "case": case, "seconds": round(statistics.median(times), 2),
                            "min": round(min(times), 2), "max": round(max(times), 2), "runs": len(times),
                            "cpu_seconds": round(statistics.median(cpu for _, cpu in runs), 2)})
            print(f"{command} {case}: {results[-1]['seconds']:.2f} s (CPU {results[-1]['cpu_seconds']:.2f} s)",
                  file=sys.stderr)
    report = {"benchmark": "cold_start", "repeats": args.repeats, "warmup": args.warmup, "cpus": os.cpu_count(),
              "image_size": SIZE,
              "load_average_before": load_before, "load_average_after": [round(x, 2) for x in os.getloadavg()],
              "results": results}
    emit(report, args.output)


if __name__ == "__main__":
    main()
