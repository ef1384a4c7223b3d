"""nst_tf's Python API (nst_tf.api): docs/api.md's examples run, inputs of every kind, NSTError, strength, progress."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

import nst_tf
from nst_tf import api, controls

SIZE = 64
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory, data_dir):
    """photo.jpg, painting.jpg and other_painting.jpg: the samples at 96 px, in a folder of their own."""
    folder = tmp_path_factory.mktemp("api")
    for name, source in [("photo.jpg", "content/tubingen.jpg"), ("painting.jpg", "styles/starry_night.jpg"),
                         ("other_painting.jpg", "styles/the_scream.jpg")]:
        with Image.open(os.path.join(data_dir, source)) as img:
            img.convert("RGB").resize((96, round(96 * img.height / img.width))).save(folder / name)
    return folder


@pytest.fixture
def offline(lpips_weights):
    """weights='lpips' resolves to the converted file in the test cache (the cache fixture sets NST_TF_CACHE)."""
    return lpips_weights


def test_import_is_cheap_and_exposes_the_surface():
    code = "import sys, nst_tf; print(sorted(nst_tf.__all__), 'tensorflow' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["['NSTError',", "'__version__',", "'load_image',", "'load_network',",
                                  "'save_image',", "'stylize']", "False", "False"], out.stderr[-500:]
    assert issubclass(nst_tf.NSTError, ValueError)
    assert nst_tf.stylize.__doc__ and "progress" in nst_tf.stylize.__doc__
    assert nst_tf.fast is sys.modules["nst_tf.fast"]  # submodules load on first use


def test_docs_examples_run(pictures, offline, monkeypatch, capsys):
    """Every python block of docs/api.md, as written, at 64 px and 2 optimiser steps (a wrapper caps them)."""
    real = api.stylize
    calls = []

    def capped(content, style, **kw):
        kw["size"] = min(kw.get("size") or SIZE, SIZE)
        if kw.get("method", "optimize") == "optimize":
            kw.update(steps=2, weights="lpips")
        else:
            kw["style_size"] = SIZE
        calls.append(kw)
        return real(content, style, **kw)

    monkeypatch.setattr(api, "stylize", capped)
    monkeypatch.chdir(pictures)
    with open(os.path.join(ROOT, "docs", "api.md"), encoding="utf-8") as f:
        blocks = FENCE.findall(f.read())
    assert len(blocks) >= 4
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), {"__name__": "docs_api"})
    printed = capsys.readouterr().out
    assert "missing.jpg: no such file" in printed and "step 2/2: style loss" in printed
    assert {"fast", "optimize"} <= {c.get("method", "optimize") for c in calls}
    for name in ("fast.png", "optimized.png", "s0.5.png", "s1.5.png", "blended.jpg", "finer.png"):
        assert max(Image.open(pictures / name).size) == SIZE, name


def test_inputs_as_path_pil_or_array_give_the_same_image(pictures):
    photo = str(pictures / "photo.jpg")
    pil = Image.open(photo)
    as_uint8 = np.asarray(pil)
    results = [np.asarray(nst_tf.stylize(c, str(pictures / "painting.jpg"), method="fast", size=SIZE,
                                         style_size=SIZE))
               for c in (photo, pil, as_uint8, as_uint8 / 255.0, as_uint8.astype(np.float32) / 255.0)]
    assert results[0].shape == (48, 64, 3) and results[0].dtype == np.uint8
    for other in results[1:]:
        assert np.abs(other.astype(int) - results[0]).max() <= 1
    loaded = nst_tf.load_image(photo, array=True)
    assert loaded.dtype == np.float32 and loaded.shape == as_uint8.shape and 0 <= loaded.min() <= loaded.max() <= 1


def test_fast_strength_zero_gives_the_photo_back_and_one_the_painting(pictures):
    photo, painting = str(pictures / "photo.jpg"), str(pictures / "painting.jpg")
    original = np.asarray(nst_tf.load_image(photo).resize((SIZE, 48)), np.float32)
    out = {s: np.asarray(nst_tf.stylize(photo, painting, method="fast", size=SIZE, strength=s), np.float32)
           for s in (0.0, 1.0)}
    to_photo = {s: float(np.abs(img - original).mean()) for s, img in out.items()}
    assert float(np.abs(out[0.0] - out[1.0]).mean()) > 10  # of 255
    # closer to the photo at 0 (at 64 px the decoder's own reconstruction error is 9/255: 13/255 at strength 1)
    assert to_photo[0.0] < 0.85 * to_photo[1.0], to_photo


def test_progress_is_called_each_step_and_can_stop_the_run(pictures, offline):
    seen = []
    result = nst_tf.stylize(pictures / "photo.jpg", pictures / "painting.jpg", size=SIZE, steps=3,
                            weights="lpips", progress=lambda step, total, losses: seen.append((step, total, losses)))
    assert [(s, t) for s, t, _ in seen] == [(1, 3), (2, 3), (3, 3)]
    assert set(seen[0][2]) >= {"content", "style", "tv", "total"} and all(
        isinstance(v, float) for v in seen[0][2].values())
    assert result.size == (SIZE, 48)
    stopped = []
    early = nst_tf.stylize(pictures / "photo.jpg", pictures / "painting.jpg", size=SIZE, steps=50, scales="auto",
                           min_scale=32, weights="lpips",
                           progress=lambda step, total, losses: stopped.append(step) or step < 2)
    assert stopped == [1, 2] and early.size == (SIZE, 48)  # stopped at the coarse scale: the full size all the same


def test_bad_inputs_raise_one_nst_error_naming_them(pictures, tmp_path, offline):
    painting = str(pictures / "painting.jpg")
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("hello")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes((pictures / "photo.jpg").read_bytes()[:300])
    cases = [(dict(content=str(tmp_path / "missing.jpg")), "missing.jpg: no such file"),
             (dict(content=str(not_image)), f"{not_image}: not an image file"),
             (dict(content=str(truncated)), f"{truncated}: cannot decode image"),
             (dict(style=[painting, str(not_image)]), f"{not_image}: not an image file"),
             (dict(content=np.zeros((8, 8, 4), np.uint8)), "content: expected an HxWx3 array"),
             (dict(style=[painting, np.full((8, 8, 3), 2.0)]), "style[1]: float pixels must be in [0, 1]"),
             (dict(content=b"bytes"), "content: expected a file path, a PIL image or a numpy array"),
             (dict(method="fast", strength=2.5), "strength must be in [0, 2]"),
             (dict(method="fast", steps=3), "steps: optimiser settings; method='fast' does not take them"),
             (dict(steps=-3), "steps must be positive, got -3"),
             (dict(steps=2, scales="64,32"), "scales=64,32: sizes must be positive and ascending"),
             (dict(steps=2, bogus=1), "bogus: unknown control"),
             (dict(steps=2, tile=32), "tile must be 0 (untiled) or at least 64 px, got 32"),
             (dict(steps=2, tile=128, tile_overlap=128), "tile_overlap must be smaller than the tile (128 px)"),
             (dict(steps=2, preset="nope"), "preset=nope: unknown preset 'nope'"),
             (dict(steps=2, init=str(not_image)), f"{not_image}: not an image file"),
             (dict(steps=2, weights=str(tmp_path / "w.weights.h5")), "w.weights.h5: weights file not found"),
             (dict(method="fast", model=str(tmp_path)), "config.json: missing")]
    for given, expected in cases:
        kwargs = dict(content=str(pictures / "photo.jpg"), style=painting, size=SIZE, weights="lpips")
        kwargs.update(given)
        if kwargs.get("method") == "fast":
            kwargs.pop("weights")
        with pytest.raises(nst_tf.NSTError) as info:
            nst_tf.stylize(**kwargs)
        message = str(info.value)
        assert expected in message and "\n" not in message, (given, message)
    with pytest.raises(nst_tf.NSTError, match="style_blend has 2 weights for 1 styles"):
        nst_tf.stylize(pictures / "photo.jpg", painting, method="fast", size=SIZE, style_blend=[1, 2])
    assert sorted(os.listdir(tmp_path)) == ["notes.jpg", "truncated.jpg"]  # nothing written


def test_save_image_is_atomic_and_names_the_file(tmp_path):
    image = np.linspace(0, 1, 16 * 16 * 3, dtype=np.float32).reshape(16, 16, 3)
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    nst_tf.save_image(image, target)
    assert np.abs(nst_tf.load_image(target, array=True) - image).max() <= 0.5 / 255 + 1e-6
    nst_tf.save_image(Image.fromarray(np.zeros((4, 5, 3), np.uint8)), tmp_path / "b.jpg")
    with pytest.raises(nst_tf.NSTError, match=r"out\.gif: unsupported output format"):
        nst_tf.save_image(image, tmp_path / "out.gif")
    with pytest.raises(nst_tf.NSTError, match="does not exist"):
        nst_tf.save_image(image, tmp_path / "no" / "out.png")
    assert sorted(os.listdir(tmp_path)) == ["b.jpg", "out.png"]  # no temporary files left


def test_controls_match_the_command_line_and_presets():
    """nst-stylize's flag defaults are nst_tf.controls.DEFAULTS, and a preset gives its flagfile's values."""
    from absl import flags

    from nst_tf.cli import stylize  # noqa: F401 (defines the flags)

    for name, default in controls.DEFAULTS.items():
        assert flags.FLAGS[name].default == default, name
    from nst_tf import presets

    for name in presets.names():  # a preset's flagfile values, typed; keywords given win
        settings, resolved = presets.load(name), controls.resolve({"seed": 7}, name)
        assert resolved["size"] == int(settings["size"]) and resolved["seed"] == 7
        assert resolved["steps"] == tuple(int(v) for v in settings["steps"].split(","))
        assert len(resolved["scales"]) == len(resolved["steps"]) or len(resolved["steps"]) == 1
        assert resolved["learning_rate"] == float(settings.get("learning_rate", 0.02))
    options = controls.options(controls.resolve({"size": 64, "style_layer_weights": [1, 0, 0, 0, 2]}))
    assert options.scales == (64,) and options.weights.style_layers == (1.0, 0.0, 0.0, 0.0, 2.0)
