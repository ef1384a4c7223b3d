"""The tests marked slow (`@pytest.mark.slow`): checks too long for the 10-minute CI suite, run here instead.

  python benchmarks/slow_checks.py --output=benchmarks/results/slow_checks.json

Runs `python -m pytest -m slow -n 0` and reports each test's outcome and duration (pytest's JUnit XML), the counts
and the wall time. Exits non-zero when one fails, like the suite would. Serially (`-n 0`): the interruption checks
wait for a subprocess to reach a step before signalling it, and five heavy checks on two cores at once made them time
out (2026-11-26).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree

from _report import emit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="")
    args = parser.parse_args()
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        junit = os.path.join(tmp, "slow.xml")
        command = [sys.executable, "-m", "pytest", "-q", "-m", "slow", "-n", "0", f"--junitxml={junit}"]
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        cases = ElementTree.parse(junit).getroot().iter("testcase") if os.path.exists(junit) else []
        tests = [{"test": f"{c.get('classname')}::{c.get('name')}", "seconds": round(float(c.get("time", 0)), 1),
                  "outcome": "failed" if c.find("failure") is not None or c.find("error") is not None
                  else "skipped" if c.find("skipped") is not None else "passed"}
                 for c in cases if c.get("classname")]  # not modules skipped whole (test_jax_train without JAX)
    report = {"benchmark": "slow_checks", "seconds": round(time.time() - started, 1), "exit_code": proc.returncode,
              "passed": sum(t["outcome"] == "passed" for t in tests),
              "failed": sum(t["outcome"] == "failed" for t in tests), "tests": tests,
              "summary": (proc.stdout.strip().splitlines() or [""])[-1]}
    emit(report, args.output)
    sys.exit(0 if proc.returncode == 0 else 1)


if __name__ == "__main__":
    main()
