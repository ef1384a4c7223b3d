"""Latency of the arbitrary-style network (one forward pass) at several content sizes.

  python benchmarks/fast_latency.py --sizes=256,512,1024 --repeats=5 --output=benchmarks/results/fast_latency.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from _report import emit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256,512,1024")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default="")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from nst_tf import fast, images
    from nst_tf.network import ArbitraryStyleNetwork

    net = ArbitraryStyleNetwork.load()
    content = images.load_image(os.path.join(ROOT, "nst_tf/assets/tubingen.jpg"))
    style = images.resize_long_side(images.load_image(os.path.join(ROOT, "nst_tf/assets/starry_night.jpg")), 256)
    vector = fast.style_vector(net, [style])
    stylize = tf.function(lambda c, v: fast.stylize_padded(net, c, v), reduce_retracing=True)
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        c = tf.constant(images.resize_long_side(content, size)[None])
        stylize(c, vector).numpy()  # trace and warm up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            stylize(c, vector).numpy()
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        fast.style_vector(net, [style]).numpy()
        results.append({"size": size, "height": int(c.shape[1]), "width": int(c.shape[2]),
                        "seconds": statistics.median(times), "min": min(times), "max": max(times),
                        "style_vector_seconds": time.perf_counter() - start})
        print(f"{size} px: {results[-1]['seconds'] * 1000:.0f} ms", file=sys.stderr)
    report = {"benchmark": "fast_latency", "repeats": args.repeats, "cpus": os.cpu_count(), "results": results}
    emit(report, args.output)


if __name__ == "__main__":
    main()
