"""Average saved networks of one architecture: iterate averaging of training snapshots (Izmailov et al. 2018).

  python tools/average_networks.py --out=runs/avg runs/rel/snapshots/step-{300..1800..100}
  python tools/average_networks.py --out=runs/mix --weights=0.7,0.3 runs/finetuned nst_tf/models/arbitrary

The second form interpolates between a fine-tuned network and the one it started from; a network without the
moment head counts as the same network with a zero head.

Snapshots come from `nst-train --snapshot_every=N` (<model_dir>/snapshots/step-N). The mean is written as a network
folder (float16 weights.npz + config.json), usable as `nst-stylize --method=fast --model=runs/avg`.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nst_tf.network_io import average_folders  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the averaged network folder (created)")
    parser.add_argument("--weights", default="", help="comma-separated weight of each folder (default: equal)")
    parser.add_argument("folders", nargs="+", help="network folders (config.json + weights.npz)")
    args = parser.parse_args()
    try:
        weights = [float(w) for w in args.weights.split(",")] if args.weights else None
        average_folders(args.folders, args.out, weights)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"averaged {len(args.folders)} networks into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
