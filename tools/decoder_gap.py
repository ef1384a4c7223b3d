"""Where the arbitrary-style network loses a painting's style: per style layer, the Gram loss of the photo, of the
decoder's inputs (the AdaIN'd levels, as the network hands them to the decoder) and of the decoded output.

  python tools/decoder_gap.py [--model=DIR] [--split=heldout|validation|both] [--output=gap.json]

The check of benchmarks/fast_quality.py (lpips VGG16, 256 px, relative Gram error at block1_conv1..block5_conv1).
The decoder's inputs are relu1_1..relu4_1, the first four of those layers, so they get a value there and none at
block5. A layer whose input loss is low but whose output loss stays near the photo's is one the decoder does not
paint: the statistics reached it and were lost in decoding.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="", help="network folder (default: the bundled one)")
    parser.add_argument("--split", choices=("heldout", "validation", "both"), default="both")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--output", default="")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from fast_quality import DATA, PAIRS, VALIDATION_PAIRS

    from nst_tf import fast, features, images, losses
    from nst_tf.objective import style_targets

    extractor = features.build_extractor("lpips")
    net = fast.load_network(args.model or None)
    pairs = {"heldout": PAIRS, "validation": VALIDATION_PAIRS, "both": PAIRS + VALIDATION_PAIRS}[args.split]
    rows = []
    for content_name, style_name in pairs:
        content = images.resize_long_side(images.load_image(f"{DATA}/content/{content_name}.jpg"), args.size)
        style_full = images.load_image(f"{DATA}/styles/{style_name}.jpg")
        grams = style_targets(extractor, [images.resize_long_side(style_full, args.size)])[0]

        def per_layer(feature_maps, grams=grams) -> list[float]:
            return [float(losses.style_loss(f, g)[0]) for f, g in zip(feature_maps, grams)]

        photo = tf.constant(content[None], tf.float32)
        vector = fast.style_vector(net, [images.resize_long_side(style_full, fast.STYLE_SIZE)])
        inputs = net.styled_levels(net.encode(photo), vector)
        output = fast.stylize_padded(net, photo, vector)  # what nst-stylize --method=fast gives
        row = {"pair": f"{content_name} x {style_name}", "photo": per_layer(extractor(photo)[1]),
               "decoder_input": per_layer(inputs), "output": per_layer(extractor(output)[1])}
        rows.append(row)
        print(f"{row['pair']}: " + " | ".join(f"{k} " + " ".join(f"{v:.2f}" for v in row[k])
                                                for k in ("photo", "decoder_input", "output")), flush=True)
    report = {"tool": "decoder_gap", "model": args.model or "bundled", "size": args.size,
              "layers": "block1_conv1..block5_conv1 (decoder inputs: the first four)", "rows": rows}
    if args.output:
        with open(args.output, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
