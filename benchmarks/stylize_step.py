"""Seconds per optimisation step and peak memory of nst-stylize, against the plain eager way.

  python benchmarks/stylize_step.py --sizes=256,512 --steps=10 --repeats=3 --output=benchmarks/results/stylize_step.json

Each (size, mode) runs in its own process so that its peak memory (max RSS) is its own.
'compiled' is nst_tf's Adam step (one tf.function); 'eager' is the same loss and update run
op by op in eager mode, the way a first TensorFlow implementation would write it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(size: int, mode: str, steps: int, weights: str) -> dict:
    """Run `steps` timed steps (after one warm-up) in this process; return per-step seconds."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    from nst_tf import features, images
    from nst_tf.objective import Objective, style_targets
    from nst_tf.optimizers import Adam

    extractor = features.build_extractor(weights)
    content = images.resize_long_side(images.load_image(os.path.join(ROOT, "nst_tf/assets/tubingen.jpg")), size)
    style = images.resize_long_side(images.load_image(os.path.join(ROOT, "nst_tf/assets/starry_night.jpg")), size)
    objective = Objective(extractor, content, style_targets(extractor, [style]))
    image = tf.Variable(content[None])
    adam = Adam(objective, image)
    if mode == "compiled":
        step = adam.step
    else:
        step = adam._step  # the same code, executed eagerly op by op
    step()  # warm-up (tracing and compilation for the compiled mode)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        terms = step()
        float(terms["total"])  # wait for the result
        times.append(time.perf_counter() - start)
    return {"size": size, "mode": mode, "height": content.shape[0], "width": content.shape[1],
            "seconds_per_step": statistics.median(times), "min": min(times), "max": max(times),
            "steps": steps, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "devices": [d.name for d in tf.config.list_logical_devices()], "numpy": np.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--modes", default="compiled,eager")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--weights", default="lpips", help="imagenet, lpips, hed or a .weights.h5 file")
    parser.add_argument("--output", default="")
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        size, mode = args.worker.split(":")
        print(json.dumps(measure(int(size), mode, args.steps, args.weights)))
        return
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        for mode in args.modes.split(","):
            proc = subprocess.run([sys.executable, __file__, f"--worker={size}:{mode}", f"--steps={args.steps}",
                                   f"--weights={args.weights}"], capture_output=True, text=True,
                                  env=dict(os.environ, PYTHONPATH=ROOT))
            if proc.returncode:
                sys.exit(f"benchmark {size}:{mode} failed: {proc.stderr.strip().splitlines()[-1]}")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"{size:5d} px {mode:9s} {results[-1]['seconds_per_step']:.3f} s/step "
                  f"(min {results[-1]['min']:.3f}, max {results[-1]['max']:.3f}), "
                  f"peak {results[-1]['peak_rss_mb']:.0f} MB", file=sys.stderr)
    by = {(r["size"], r["mode"]): r for r in results}
    speedups = {str(size): by[(size, "eager")]["seconds_per_step"] / by[(size, "compiled")]["seconds_per_step"]
                for size, _ in by if (size, "eager") in by and (size, "compiled") in by}
    report = {"benchmark": "stylize_step", "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
              "weights": args.weights, "results": results, "eager_over_compiled": speedups}
    text = json.dumps(report, indent=2)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
