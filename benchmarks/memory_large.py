"""Peak memory (max RSS) of nst-stylize at 1024, 2048 and 4096 px, whole-image and tiled.

  python benchmarks/memory_large.py --output=benchmarks/results/memory_large.json

Each case is a separate `nst-stylize` process running a few steps at the final scale only (the
memory peak is set by the largest scale), measured by GNU time's maximum resident set size.
Whole-image runs above --max_untiled px are skipped (they would need tens of GB).
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


def run_case(size: int, tile: int, steps: int, weights: str) -> dict:
    """One nst-stylize process; returns its peak RSS and wall time."""
    out = os.path.join(tempfile.mkdtemp(), "out.png")
    started = time.time()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "maxrss_kb=%M", sys.executable, "-m", "nst_tf.cli.stylize", f"--weights={weights}",
         f"--size={size}", f"--steps={steps}",
         f"--tile={tile}", "--tile_overlap=96", f"--content={ROOT}/nst_tf/assets/tubingen.jpg",
         f"--style={ROOT}/nst_tf/assets/starry_night.jpg", f"--output={out}"],
        cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2"))
    seconds = time.time() - started
    lines = proc.stderr.strip().splitlines()
    peak_kb = int(lines[-1].split("=")[1]) if lines and lines[-1].startswith("maxrss_kb=") else None
    if proc.returncode:
        return {"size": size, "tile": tile, "error": lines[-2] if len(lines) > 1 else "failed",
                "peak_rss_mb": peak_kb and round(peak_kb / 1024)}
    return {"size": size, "tile": tile, "steps_per_tile": steps, "seconds": round(seconds, 1),
            "peak_rss_mb": round(peak_kb / 1024) if peak_kb else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1024,2048,4096")
    parser.add_argument("--tile", type=int, default=768)
    parser.add_argument("--max_untiled", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--weights", default="lpips")
    parser.add_argument("--output", default="")
    args = parser.parse_args()
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        for tile in (0, args.tile):
            if tile == 0 and size > args.max_untiled:
                continue
            results.append(run_case(size, tile, args.steps, args.weights))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    report = {"benchmark": "memory_large", "cpus": os.cpu_count(), "results": results,
              "note": "peak_rss_mb: GNU time maximum resident set size of each nst-stylize process"}
    emit(report, args.output)


if __name__ == "__main__":
    main()
