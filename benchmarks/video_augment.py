"""Throughput of nst-video (frames/s, with and without flow consistency) and of RandomStyleTransfer in tf.data.

  python benchmarks/video_augment.py --sizes=256,512 --frames=24 --repeats=3 \
      --output=benchmarks/results/video_augment.json

Video: the nst-video pipeline end to end (decode and resize, the fast network in batches of 4, optical flow
and blending for 'flow', H.264 encoding into a temporary .mp4), after a warm-up that loads the network and
traces the graph; the first --frames frames of --video (default ../shared/data/video/fox.mp4).
Augmentation: images/s through `tf.data` batches of 8 at 256 px with p=1 (every image stylized).
Median, min and max over --repeats runs. Prints the JSON and writes it to --output.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_VIDEO = os.path.join(os.path.dirname(ROOT), "shared", "data", "video", "fox.mp4")


def summary(values: list[float]) -> dict:
    """Median, min, max and the raw values."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": [round(v, 4) for v in values]}


def video_run(stylize, info, size: int, frames: int, consistency: str, folder: str) -> tuple[float, float]:
    """One pass over `frames` frames; returns (frames per second, seconds of flow+blend per frame)."""
    from nst_tf import video, video_read, video_write

    width, height = video_write.output_size(info.width, info.height, size, even=True)
    blend = video.FlowConsistency(0.8) if consistency == "flow" else None
    timed = _TimedConsistency(blend) if blend is not None else None
    writer = video_write.open_writer(os.path.join(folder, f"bench_{size}_{consistency}.mp4"), info, width, height,
                               "libx264", overwrite=True)
    source = itertools.islice(video_read.read_frames(info, width, height), frames)
    started = time.perf_counter()
    for out, pts in video.stylize_frames(source, stylize, timed, batch_size=4):
        writer.write(out, pts)
    writer.commit()
    elapsed = time.perf_counter() - started
    return writer.frames / elapsed, (timed.seconds / max(timed.calls, 1)) if timed else 0.0


class _TimedConsistency:
    """Wraps FlowConsistency to time its share (flow, warp, blend)."""

    def __init__(self, inner):
        self.inner, self.seconds, self.calls = inner, 0.0, 0

    def __call__(self, frame, stylized):
        started = time.perf_counter()
        out = self.inner(frame, stylized)
        self.seconds += time.perf_counter() - started
        self.calls += 1
        return out


def bench_video(args) -> list[dict]:
    """frames/s per (size, consistency)."""
    from nst_tf import fast, images, video, video_read, video_write
    from nst_tf.network import ArbitraryStyleNetwork

    net = ArbitraryStyleNetwork.load()
    style = images.resize_long_side(images.load_image(os.path.join(ROOT, "nst_tf/assets/starry_night.jpg")), 256)
    vector = fast.style_vector(net, [style])
    info = video_read.probe(args.video)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            stylize = video.fast_stylizer(net, vector, 1.0)
            video_run(stylize, info, size, 8, "none", folder)  # warm-up: trace the graph at this size
            runs = {"none": [], "flow": []}
            for _ in range(args.repeats):  # interleaved, so both modes see the same background load
                for consistency in runs:
                    runs[consistency].append(video_run(stylize, info, size, args.frames, consistency, folder))
            width, height = video_write.output_size(info.width, info.height, size, even=True)
            for consistency, measured in runs.items():
                entry = {"size": size, "width": width, "height": height, "consistency": consistency,
                         "frames": args.frames, "frames_per_second": summary([r[0] for r in measured])}
                if consistency == "flow":
                    entry["flow_and_blend_ms_per_frame"] = summary([r[1] * 1000 for r in measured])
                results.append(entry)
                print(json.dumps(entry), flush=True)
    return results


def bench_augment(args) -> dict:
    """images/s of RandomStyleTransfer(p=1) in a tf.data pipeline, batches of 8 at 256 px."""
    import numpy as np
    import tensorflow as tf

    from nst_tf import images
    from nst_tf.augment import RandomStyleTransfer

    styles = [images.load_image(os.path.join(ROOT, "nst_tf/assets", n)) for n in sorted(os.listdir(
        os.path.join(ROOT, "nst_tf/assets"))) if n.lower().endswith((".jpg", ".png"))]
    layer = RandomStyleTransfer(styles, p=1.0, seed=0)
    data = np.random.default_rng(0).random((args.augment_images, 256, 256, 3)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(8).map(layer).prefetch(1)
    for _ in dataset.take(1):  # warm-up: trace
        pass
    rates = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        count = sum(int(b.shape[0]) for b in dataset)
        rates.append(count / (time.perf_counter() - started))
    result = {"batch": 8, "size": 256, "p": 1.0, "styles": len(styles), "images": args.augment_images,
              "images_per_second": summary(rates)}
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--augment_images", type=int, default=32)
    parser.add_argument("--video", default=DEFAULT_VIDEO)
    parser.add_argument("--output", default="")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    import av
    import cv2
    import tensorflow as tf

    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "tensorflow": tf.__version__, "av": av.__version__, "opencv": cv2.__version__,
                    "load": os.getloadavg()},
        "video_input": args.video,
        "video": bench_video(args),
        "augment": bench_augment(args),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        tmp = args.output + ".tmp"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, args.output)


if __name__ == "__main__":
    main()
