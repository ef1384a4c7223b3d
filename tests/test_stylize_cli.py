"""nst-stylize end to end: real transfer with offline pretrained VGG16, and one-line errors on bad input."""

import os

import numpy as np
import pytest
from badfiles import make_corpus
from conftest import last_line, run_cli

from nst_tf import features, images
from nst_tf.objective import LossWeights, Objective, style_targets

SIZE = 160


def edge_map(image: np.ndarray) -> np.ndarray:
    """Gradient magnitude of the luminance."""
    gray = image @ np.array([0.299, 0.587, 0.114], np.float32)
    gy, gx = np.gradient(gray)
    return np.hypot(gx, gy)


def edge_correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(edge_map(a).ravel(), edge_map(b).ravel())[0, 1])


def test_end_to_end_transfer(tmp_path, data_dir, lpips_weights):
    content_path = f"{data_dir}/content/tubingen.jpg"
    style_path = f"{data_dir}/styles/starry_night.jpg"
    output = str(tmp_path / "tubingen_starry.png")
    proc = run_cli("nst_tf.cli.stylize", f"--content={content_path}", f"--style={style_path}",
                   f"--output={output}", f"--weights={lpips_weights}", f"--size={SIZE}", "--steps=80",
                   "--style_weight=20", "--save_every=40")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert os.path.exists(output) and os.path.exists(str(tmp_path / "tubingen_starry.step00040.png"))
    assert "style:" in proc.stdout and "ETA" not in proc.stderr  # progress bar on stdout

    extractor = features.build_extractor(lpips_weights)
    content = images.resize_long_side(images.load_image(content_path), SIZE)
    style = images.resize_long_side(images.load_image(style_path), SIZE)
    result = images.load_image(output)
    other = images.resize(images.load_image(f"{data_dir}/content/golden_gate.jpg"), *content.shape[:2])
    measure = Objective(extractor, content, style_targets(extractor, [style]), LossWeights(content=1, style=1, tv=0))
    start, end, control = (measure.terms(x[None]) for x in (content, result, other))
    style_drop = 1 - float(end["style"]) / float(start["style"])
    edges, control_edges = edge_correlation(result, content), edge_correlation(other, content)
    print(f"style loss {float(start['style']):.3f} -> {float(end['style']):.3f} ({style_drop:.1%} lower); "
          f"content loss {float(end['content']):.3f} (another photo: {float(control['content']):.3f}); "
          f"edge correlation {edges:.2f} (another photo: {control_edges:.2f})")
    assert style_drop >= 0.90
    assert float(end["content"]) < 0.6 * float(control["content"])
    assert edges > 0.3 and edges > control_edges + 0.2


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(str(tmp_path_factory.mktemp("cli_corpus")))


@pytest.mark.parametrize("method", ["optimize", "fast"])
def test_bad_inputs_fail_in_one_line_and_write_nothing(tmp_path, corpus, data_dir, method):
    style = f"{data_dir}/styles/starry_night.jpg"
    output = str(tmp_path / "out.jpg")
    cases = {name: path for name, (path, expect) in corpus.items() if expect == "error"}
    cases["missing"] = str(tmp_path / "missing.jpg")
    for name, path in cases.items():
        for role in ("content", "style"):
            args = {"content": style, "style": style, role: path}
            proc = run_cli("nst_tf.cli.stylize", f"--content={args['content']}", f"--style={args['style']}",
                           f"--output={output}", "--weights=lpips", "--size=64", "--steps=1", f"--method={method}")
            line = last_line(proc.stderr)
            assert proc.returncode != 0, (name, role)
            assert line.startswith("error: ") and path in line, (name, role, line)
            assert not os.path.exists(output), (name, role)


@pytest.mark.parametrize("flag,expected", [
    ("--size=0", "--size must be positive"),
    ("--steps=-3", "--steps must be positive"),
    ("--output=/proc/out.jpg", "not writable"),
    ("--output=OUT.txt", "unsupported output format"),
    ("--style=", "--style is required"),
    ("--weights=/nonexistent/file.weights.h5", "weights file not found"),
])
def test_bad_flags(tmp_path, data_dir, flag, expected):
    image = f"{data_dir}/content/tubingen.jpg"
    flags = {"--content": image, "--style": image, "--output": str(tmp_path / "out.jpg"), "--size": "64",
             "--steps": "1", "--weights": "lpips"}
    name, value = flag.split("=", 1)
    flags[name] = value.replace("OUT", str(tmp_path / "out"))
    proc = run_cli("nst_tf.cli.stylize", *(f"{k}={v}" for k, v in flags.items()))
    assert proc.returncode != 0
    assert expected in last_line(proc.stderr), proc.stderr[-500:]
    assert os.listdir(tmp_path) == []


def test_existing_output_not_overwritten(tmp_path, data_dir, lpips_weights):
    image = f"{data_dir}/content/tubingen.jpg"
    output = tmp_path / "out.jpg"
    output.write_bytes(b"precious")
    args = [f"--content={image}", f"--style={image}", f"--output={output}", f"--weights={lpips_weights}",
            "--size=48", "--steps=2"]
    proc = run_cli("nst_tf.cli.stylize", *args)
    assert proc.returncode != 0 and "already exists" in last_line(proc.stderr)
    assert output.read_bytes() == b"precious"
    proc = run_cli("nst_tf.cli.stylize", *args, "--overwrite", "--optimizer=lbfgs", "--init=noise")
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert images.load_image(str(output)).shape == (36, 48, 3)


def test_flagfile_presets(tmp_path, data_dir, lpips_weights):
    from conftest import ROOT

    for preset in ("preview", "quality"):
        text = open(os.path.join(ROOT, "nst_tf", "presets", f"{preset}.cfg")).read()
        assert text.startswith("# "), f"{preset}.cfg needs a one-line description"
    image = f"{data_dir}/content/tubingen.jpg"
    proc = run_cli("nst_tf.cli.stylize", "--preset=preview", f"--content={image}",
                   f"--style={image}", f"--output={tmp_path / 'p.png'}", f"--weights={lpips_weights}",
                   "--steps=2", "--size=64")
    assert proc.returncode == 0, proc.stderr[-1000:]


def test_awkward_but_valid_inputs_work(tmp_path, corpus, data_dir):
    """Grey, RGBA, palette, CMYK, 16-bit, 1x1 and EXIF-rotated files stylize (fast method, as content and style)."""
    from nst_tf import fast

    net = fast.load_network()
    starry = f"{data_dir}/styles/starry_night.jpg"
    ok = {name: path for name, (path, expect) in corpus.items() if expect == "ok"}
    for name, path in ok.items():  # the CLI's own steps, in process: decode, resize, one forward pass
        content = images.resize_long_side(images.load_image(path), 64, path)
        style = images.resize_long_side(images.load_image(starry if name == "one_by_one" else path), 64, path)
        result = fast.stylize(net, content, [style])
        assert result.shape == content.shape and np.isfinite(result).all(), name
    # and through nst-stylize itself: every awkward kind as content once, the rest as blended styles
    runs = [("cmyk", ["sixteen_bit", "rgba", "exif_orientation_6"]), ("one_by_one", ["palette_transparent",
                                                                                    "grayscale"])]
    for content_name, style_names in runs:
        output = tmp_path / f"{content_name}.png"
        proc = run_cli("nst_tf.cli.stylize", f"--content={ok[content_name]}",
                       "--style=" + ",".join(ok[n] for n in style_names), f"--output={output}", "--method=fast",
                       "--size=64")
        assert proc.returncode == 0, (content_name, proc.stderr[-500:])
        expected = images.resize_long_side(images.load_image(ok[content_name]), 64).shape
        assert images.load_image(str(output)).shape == expected, content_name
