"""Timing for the model card: wall-clock medians of repeated calls, and the machine they ran on."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import keras
import tensorflow as tf


def time_calls(fn: Callable[[], object], runs: int, warmup: int = 1) -> dict[str, float]:
    """Median, min and max wall time of `fn()` in milliseconds over `runs` calls after `warmup`."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, runs)):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return {"median_ms": round(statistics.median(times), 2), "min_ms": round(min(times), 2),
            "max_ms": round(max(times), 2), "runs": len(times)}


def environment(threads: int) -> dict:
    """Versions and machine, for the model card."""
    try:
        from importlib.metadata import version

        litert = version("ai-edge-litert")
    except Exception:  # noqa: BLE001 - only informative
        litert = "unknown"
    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "ai_edge_litert": litert, "machine": platform.machine(), "processor": platform.processor() or "",
            "cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()], "threads": threads}
