"""Time to reach a loss: Adam, coarse-to-fine Adam and L-BFGS on the same pair, in the same run.

  python benchmarks/time_to_loss.py --size=512 --budget=120 --output=benchmarks/results/time_to_loss.json

Each method runs for `--budget` seconds of optimisation (after compilation) and records (seconds, total loss
at the final size). The target is the loss single-scale Adam reaches at the end of its budget; the report
gives each method's seconds to reach it (null if never) and its final loss.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from _report import emit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def trace(method: str, extractor, content, style, size: int, budget: float) -> list[tuple[float, float]]:
    """(elapsed seconds, total loss at full size) after each step, until the budget is spent."""
    import numpy as np
    import tensorflow as tf

    from nst_tf import optimize
    from nst_tf.objective import Objective, style_targets
    from nst_tf.scales import scale_ladder

    full = optimize._long_side(content, size)
    targets = style_targets(extractor, [optimize._long_side(style, size)])
    measure = Objective(extractor, full, targets)
    scales = scale_ladder(size, max(128, size // 2)) if method == "multiscale" else (size,)
    points, state = [], {"t0": None}
    optimizer = "lbfgs" if method == "lbfgs" else "adam"

    class Budget(Exception):
        pass

    def on_step(step, terms, image_fn):
        now = time.perf_counter()
        if state["t0"] is None:  # the first step includes tracing: start the clock after it
            state["t0"] = now
            return
        image = image_fn()
        if image.shape[:2] != full.shape[:2]:
            image = tf.image.resize(image, full.shape[:2]).numpy()
        points.append((now - state["t0"], float(measure.terms(np.clip(image, 0, 1)[None])["total"])))
        state["t0"] += time.perf_counter() - now  # do not charge the measurement
        if points[-1][0] > budget:
            raise Budget

    # coarse scales get the quality preset's proportions (100 and 80 steps for a 120 s budget); the last runs on
    coarse = [max(5, round(budget * (0.8 - 0.15 * i))) for i in range(len(scales) - 1)]
    steps = (*coarse, 100000)
    try:
        options = optimize.Options(scales=scales, steps=steps, optimizer=optimizer)
        optimize.stylize(extractor, content, [style], options, on_step)
    except Budget:
        pass
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--budget", type=float, default=120.0)
    parser.add_argument("--weights", default="lpips")
    parser.add_argument("--output", default="")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from nst_tf import features, images

    extractor = features.build_extractor(args.weights)
    content = images.load_image(os.path.join(ROOT, "nst_tf/assets/tubingen.jpg"))
    style = images.load_image(os.path.join(ROOT, "nst_tf/assets/starry_night.jpg"))
    traces = {m: trace(m, extractor, content, style, args.size, args.budget) for m in ("adam", "multiscale", "lbfgs")}
    target = traces["adam"][-1][1]
    results = {}
    for method, points in traces.items():
        reached = next((t for t, loss in points if loss <= target), None)
        results[method] = {"seconds_to_target": reached, "final_loss": points[-1][1], "steps": len(points),
                           "trace": [(round(t, 2), round(loss, 4)) for t, loss in points[:: max(1, len(points) // 20)]]}
        print(f"{method:10s} final loss {points[-1][1]:.4f}, reaches {target:.4f} at "
              f"{'never' if reached is None else f'{reached:.1f} s'}", file=sys.stderr)
    report = {"benchmark": "time_to_loss", "size": args.size, "budget_seconds": args.budget,
              "target_loss": target, "target": "single-scale Adam's loss at the end of its budget",
              "results": results, "cpus": os.cpu_count()}
    emit(report, args.output)


if __name__ == "__main__":
    main()
