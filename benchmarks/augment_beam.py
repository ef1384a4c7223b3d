"""Throughput of nst-augment: the single-process path against Apache Beam's direct runner with worker processes.

  python benchmarks/augment_beam.py --images=64 --small_images=16 --size=256 --workers=2 \
      --output=benchmarks/results/augment_beam.json --condition="idle"

Both run `nst-augment` as a user would (a fresh process each, into a fresh output folder) on copies of the first
--images (and, separately, --small_images) photos of ../shared/data/train_content, stylized at --size px (long
side) with two styles, --per_image outputs each, the same seed. Reported per path and count: images/s end to
end (process start to exit: Python, TensorFlow and the network included, and for Beam the worker processes and
the pipeline's stages) and the seconds the tool itself reports (single process: its stylization loop; Beam: the
pipeline's run); from the two counts, the per-image rate once started ((images - small) / (wall - small wall))
and the fixed start-up seconds. Beam's outputs are checked against the single-process path's: the largest pixel
difference (0-255) per run, or null if the file lists or the manifests differ. Median, min and max over
--repeats runs; beam_over_single: the ratio of the two paths' median images/s, per count and once started, from
this same invocation. --condition records how the machine was (with the load average before and after): the CPUs
may be shared with a training run, which inflates both paths' seconds. Prints the JSON and writes it to --output."""

from __future__ import annotations

import argparse
import filecmp
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from _report import emit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("NST_TF_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))


def summary(values: list[float]) -> dict:
    """Median, min, max and the raw values."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": [round(v, 4) for v in values]}


def run_augment(args, src: str, out: str, extra: list[str], count: int) -> tuple[float, float, str]:
    """One nst-augment process; (wall seconds, the seconds it reports, its stdout)."""
    styles = ",".join(os.path.join(args.data, "styles", s) for s in ("starry_night.jpg", "the_scream.jpg"))
    command = [sys.executable, "-m", "nst_tf.cli.augment", f"--input_dir={src}", f"--output_dir={out}",
               f"--styles={styles}", f"--per_image={args.per_image}", f"--size={args.size}", "--seed=0", *extra]
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"{' '.join(extra) or 'single process'} failed: {proc.stderr[-2000:]}")
    found = re.search(r"wrote (\d+) images .* in ([\d.]+) s", proc.stdout)
    if not found or int(found.group(1)) != count * args.per_image:
        raise RuntimeError(f"unexpected output: {proc.stdout[-500:]}")
    return wall, float(found.group(2)), proc.stdout


def max_difference(folder: str, reference: str) -> int | None:
    """The largest pixel difference (0-255) between the two folders' outputs; None if their file lists or their
    manifests differ."""
    import numpy as np
    from PIL import Image

    def files(top: str) -> list[str]:
        return sorted(os.path.relpath(os.path.join(r, f), top) for r, _, fs in os.walk(top) for f in fs)

    names = files(folder)
    if names != files(reference) or not filecmp.cmp(os.path.join(folder, "manifest.csv"),
                                                    os.path.join(reference, "manifest.csv"), shallow=False):
        return None
    worst = 0
    for name in names:
        if not name.endswith((".csv", ".json")):
            with Image.open(os.path.join(folder, name)) as a, Image.open(os.path.join(reference, name)) as b:
                worst = max(worst, int(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max()))
    return worst


def copy_photos(args, folder: str, count: int) -> str:
    """A folder with copies of the first `count` training photos."""
    os.makedirs(folder)
    photos = sorted(f for f in os.listdir(os.path.join(args.data, "train_content")) if f.endswith(".jpg"))
    for name in photos[:count]:
        shutil.copy(os.path.join(args.data, "train_content", name), folder)
    return folder


def main() -> None:
    """Run both paths --repeats times on --images (and --small_images) photos; print and write the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--small_images", type=int, default=8, help="also run on this many (0: not) to separate "
                        "the fixed start-up cost from the per-image rate: (images - small) / (wall - small wall)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--per_image", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--output", default=os.path.join(ROOT, "benchmarks", "results", "augment_beam.json"))
    parser.add_argument("--condition", default="", help="how the machine was during this run (stored in the report)")
    args = parser.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]

    beam_flags = ["--runner=direct", f"--direct_num_workers={args.workers}", "--direct_running_mode=multi_processing",
                  f"--batch_size={args.batch_size}"]
    paths = {"single process": [], f"beam direct, {args.workers} worker processes": beam_flags}
    counts = [c for c in (args.small_images, args.images) if c]
    wall = {(name, c): [] for name in paths for c in counts}
    reported = {key: [] for key in wall}
    difference: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sources = {count: copy_photos(args, os.path.join(tmp, f"in_{count}"), count) for count in counts}
        for repeat in range(args.repeats):  # each repeat runs every count and path, close in time
            for count, src in sources.items():
                for k, (name, extra) in enumerate(paths.items()):
                    out = os.path.join(tmp, f"out_{count}_{repeat}_{k}")
                    seconds, own, _ = run_augment(args, src, out, extra, count)
                    wall[name, count].append(seconds)
                    reported[name, count].append(own)
                    if extra:
                        difference.setdefault(name, []).append(
                            max_difference(out, os.path.join(tmp, f"out_{count}_{repeat}_0")))
    rows = []
    for name in paths:
        row = {"path": name}
        for count in counts:
            row[f"{count}_images"] = {"images_per_second": summary([count * args.per_image / w
                                                                    for w in wall[name, count]]),
                                      "wall_seconds": summary(wall[name, count]),
                                      "reported_seconds": summary(reported[name, count])}
        if len(counts) == 2:
            extra_seconds = statistics.median(wall[name, counts[1]]) - statistics.median(wall[name, counts[0]])
            row["per_image_rate"] = {"images_per_second": (counts[1] - counts[0]) * args.per_image / extra_seconds,
                                     "fixed_seconds": statistics.median(wall[name, counts[0]])
                                     - counts[0] * extra_seconds / (counts[1] - counts[0])}
        if name in difference:
            row["max_pixel_difference_to_single"] = difference[name]
        rows.append(row)
    single, beam = (rows[0], rows[1])
    ratio = {f"{c}_images": beam[f"{c}_images"]["images_per_second"]["median"]
             / single[f"{c}_images"]["images_per_second"]["median"] for c in counts}
    if len(counts) == 2:
        ratio["per_image_rate"] = (beam["per_image_rate"]["images_per_second"]
                                   / single["per_image_rate"]["images_per_second"])
    report = {"machine": f"{platform.platform()}, {os.cpu_count()} CPUs", "size": args.size,
              "per_image": args.per_image, "batch_size": args.batch_size, "workers": args.workers,
              "repeats": args.repeats, "counts": counts, "rows": rows, "beam_over_single": ratio,
              "condition": args.condition, "load_average_before": load_before,
              "load_average_after": [round(x, 2) for x in os.getloadavg()]}
    emit(report, args.output)


if __name__ == "__main__":
    main()
