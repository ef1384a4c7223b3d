"""Average saved networks of one architecture: iterate averaging of training snapshots (Izmailov et al. 2018).

  python tools/average_networks.py --out=runs/avg runs/rel/snapshots/step-{300..1800..100}

Snapshots come from `nst-train --snapshot_every=N` (<model_dir>/snapshots/step-N). The mean is written as a network
folder (float16 weights.npz + config.json), usable as `nst-stylize --method=fast --model=runs/avg`.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nst_tf.network import average_folders  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the averaged network folder (created)")
    parser.add_argument("folders", nargs="+", help="network folders (config.json + weights.npz)")
    args = parser.parse_args()
    try:
        average_folders(args.folders, args.out)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"averaged {len(args.folders)} networks into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
