"""Shared by the benchmark scripts: print a report as JSON and optionally write it to a file."""

from __future__ import annotations

import json
import os


def emit(report: dict, output: str = "") -> None:
    """Print `report` as JSON on stdout (for benchmarks/run.py) and write it atomically to `output` if given."""
    text = json.dumps(report, indent=2)
    if output:
        tmp = output + ".tmp"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, output)
    print(text)
