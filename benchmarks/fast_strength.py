"""The strength control on the eight held-out pairs: how much of the painting's look each network gives, and the peer.

For each network (the bundled arbitrary-style and phone-sized ones, or the folders given by --models) at each content
size (long side 512 and 1024 px) and each strength (0, 0.5, 1 and the top, 2), and for the peer (Magenta's arbitrary
network, int8, in its own virtual environment: photo resized to its 384x384 input and back):
- viewing-scale style loss: output and painting at a 256-px long side, VGG16 Gram error (texture finer than a viewer
  sees does not count);
- palette distance: sliced Wasserstein distance between the output's and the painting's pixel colours in CIELAB;
- content loss against the photo at full size (block4_conv2);
- layout error: the output's light-and-dark layout against the photo's (luminance at 256 px, average-pooled by 8,
  standardised; 0 the photo's layout in the painting's tones, 2 unrelated, 4 inverted), beside the issue's three.
The measures are nst_tf.metrics' (the optimiser's time_to_look benchmark uses the same). JSON to
benchmarks/results/fast_strength.json (with the issue's criteria checked) and a contact sheet per network
(photo | painting | 0.5 | 1 | top | peer) in docs/images/.

    python benchmarks/fast_strength.py                       # bundled networks, 512 and 1024 px, and the peer
    python benchmarks/fast_strength.py --models=runs/strength/network --sizes=512 --skip_peer
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from _report import emit  # noqa: E402
from fast_quality import DATA, PAIRS  # noqa: E402

STRENGTHS = (0.0, 0.5, 1.0, 2.0)
MEASURES = ("viewing_style", "palette", "content", "layout")


def load_pairs(data_dir: str, size: int, pairs=PAIRS) -> list[tuple[str, object, object]]:
    """(name, photo at a `size`-px long side, painting as stored) for each pair."""
    from nst_tf import images

    out = []
    for content, style in pairs:
        photo = images.resize_long_side(images.load_image(os.path.join(data_dir, "content", f"{content}.jpg")), size)
        painting = images.load_image(os.path.join(data_dir, "styles", f"{style}.jpg"))
        out.append((f"{content}_{style}", photo, painting))
    return out


def measure(extractor, output, photo, painting) -> dict:
    """The measures of one output."""
    from nst_tf import metrics

    return {"viewing_style": metrics.viewing_style_loss(extractor, output, painting),
            "palette": metrics.palette_distance(output, painting),
            "content": metrics.content_loss(extractor, output, photo),
            "layout": metrics.layout_error(output, photo)}


def network_rows(name: str, folder: str | None, pairs, extractor, size: int, sheet_rows: dict,
                 working_size: int = 0) -> list[dict]:
    """Every pair at every strength through one network; with `working_size` the photo is shrunk to that long side,
    stylized and resized back (as the peer is run at its 384x384 input)."""
    from nst_tf import fast, images

    net = fast.load_network(folder)
    rows = []
    for pair, photo, painting in pairs:
        style = images.resize_long_side(painting, fast.STYLE_SIZE)
        small = images.resize_long_side(photo, working_size) if working_size else photo
        for strength in STRENGTHS:
            started = time.time()
            output = fast.stylize(net, small, [style], strength=strength)
            if working_size:
                output = images.resize(output, *photo.shape[:2])
            seconds = time.time() - started
            rows.append({"network": name, "size": size, "pair": pair, "strength": strength, "seconds": seconds,
                         **measure(extractor, output, photo, painting)})
            print(f"{name} {size}px {pair} strength {strength:g}: " + " ".join(
                f"{k}={rows[-1][k]:.4g}" for k in MEASURES), flush=True)
            if size == 512 and strength > 0:
                sheet_rows.setdefault((name, pair), {})[strength] = output
    return rows


def peer_rows(pairs, extractor, size: int, sheet_rows: dict) -> list[dict]:
    """The peer's outputs (one per pair) measured the same way."""
    from fast_quality import peer_stylize

    from nst_tf import fast, images

    outputs = peer_stylize([p for _, p, _ in pairs], [images.resize_long_side(s, fast.STYLE_SIZE)
                                                      for _, _, s in pairs])
    rows = []
    for (pair, photo, painting), output in zip(pairs, outputs):
        rows.append({"network": "peer", "size": size, "pair": pair, "strength": 1.0, **measure(extractor, output,
                                                                                              photo, painting)})
        print(f"peer {size}px {pair}: " + " ".join(f"{k}={rows[-1][k]:.4g}" for k in MEASURES), flush=True)
        if size == 512:
            sheet_rows.setdefault(("peer", pair), {})[1.0] = output
    return rows


def summarize(rows: list[dict]) -> dict:
    """Medians of each measure per (network, size, strength)."""
    groups: dict = {}
    for row in rows:
        groups.setdefault(f"{row['network']}@{row['size']}@{row['strength']:g}", []).append(row)
    return {key: {m: statistics.median(r[m] for r in group) for m in MEASURES} for key, group in groups.items()}


def criteria(rows: list[dict], summary: dict, networks: list[str]) -> dict:
    """Issue 23's done-when checks, per network: strength 1 against the peer at 512 px; strength 0 gives the photo;
    the viewing-scale style loss falls as the strength rises, on every pair."""
    out = {}
    peer = summary.get("peer@512@1")
    for name in networks:
        ours = summary.get(f"{name}@512@1")
        check = {}
        if peer and ours:
            check["style_at_most_peer"] = ours["viewing_style"] <= peer["viewing_style"]
            check["palette_at_most_peer"] = ours["palette"] <= peer["palette"]
            check["content_below_peer"] = ours["content"] < peer["content"]
        zero = [r["content"] for r in rows if r["network"] == name and r["strength"] == 0.0]
        check["strength0_content_max"] = max(zero) if zero else None
        check["strength0_is_photo"] = bool(zero) and max(zero) <= 0.1
        monotonic = True
        for key in {(r["pair"], r["size"]) for r in rows if r["network"] == name}:
            styles = [r["viewing_style"] for r in sorted(rows, key=lambda r: r["strength"])
                      if r["network"] == name and (r["pair"], r["size"]) == key]
            monotonic &= all(a > b for a, b in zip(styles, styles[1:]))
        check["style_falls_with_strength"] = monotonic
        out[name] = check
    return out


def contact_sheet(sheet_rows: dict, pairs, name: str, path: str, height: int = 200) -> None:
    """photo | painting | 0.5 | 1 | top | peer for each pair, one row each."""
    from nst_tf import images

    rows = []
    for pair, photo, painting in pairs:
        ours = sheet_rows.get((name, pair), {})
        panels = [photo, painting] + [ours[s] for s in STRENGTHS[1:] if s in ours]
        if ("peer", pair) in sheet_rows:
            panels.append(sheet_rows[("peer", pair)][1.0])
        rows.append(images.contact_sheet(panels, height))
    width = max(r.shape[1] for r in rows)
    import numpy as np

    padded = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=1.0) for r in rows]
    images.save_image(np.concatenate(padded, axis=0), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="arbitrary,mobile",
                        help="comma-separated network folders or the names arbitrary, mobile (the bundled ones)")
    parser.add_argument("--names", default="", help="names for --models in the report (default: the folder names)")
    parser.add_argument("--sizes", default="512,1024")
    parser.add_argument("--pairs", type=int, default=len(PAIRS))
    parser.add_argument("--skip_peer", action="store_true")
    parser.add_argument("--working_size", type=int, default=0,
                        help="run the networks on the photo shrunk to this long side and resize back (0: its size)")
    parser.add_argument("--data_dir", default=DATA)
    parser.add_argument("--sheet_dir", default=os.path.join(ROOT, "docs", "images"),
                        help="where the contact sheets go ('' for none)")
    parser.add_argument("--output", default=os.path.join(ROOT, "benchmarks", "results", "fast_strength.json"))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from nst_tf import metrics

    models = [m for m in args.models.split(",") if m]
    names = args.names.split(",") if args.names else [os.path.basename(m.rstrip("/")) for m in models]
    extractor = metrics.measuring_extractor()
    rows, sheets = [], {}
    started = time.time()
    for size in (int(s) for s in args.sizes.split(",")):
        pairs = load_pairs(args.data_dir, size, PAIRS[:args.pairs])
        for name, model in zip(names, models):
            rows += network_rows(name, model, pairs, extractor, size, sheets, args.working_size)
        if not args.skip_peer:
            rows += peer_rows(pairs, extractor, size, sheets)
    summary = summarize(rows)
    report = {"benchmark": "fast_strength", "strengths": list(STRENGTHS), "networks": dict(zip(names, models)),
              "working_size": args.working_size,
              "load_average": os.getloadavg(), "seconds": time.time() - started, "summary": summary,
              "criteria": criteria(rows, summary, names), "rows": rows}
    emit(report, args.output)
    if args.sheet_dir:
        pairs = load_pairs(args.data_dir, 512, PAIRS[:args.pairs])
        for name in names:
            contact_sheet(sheets, pairs, name, os.path.join(args.sheet_dir, f"fast_strength_{name}.jpg"))


if __name__ == "__main__":
    main()
