"""nst-stylize's flags on the command line: each one reaches the run, checked on the image it writes.

The optimiser's controls are checked by their effect on real images in test_controls.py (library calls). Here the
command line's output is compared with the library called by hand with the options the flags stand for, and each
flag is shown to matter: the same call without it gives another image.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, run_cli

from nst_tf import color, features, images, masks, optimize
from nst_tf.objective import LossWeights

SIZE = 48


@pytest.fixture(scope="module")
def extractor(lpips_weights):
    return features.build_extractor(lpips_weights, content_layers=["block4_conv2"],
                                    style_layers=[f"block{i}_conv1" for i in range(1, 6)])


@pytest.fixture(scope="module")
def paths(data_dir):
    return {"content": f"{data_dir}/content/tubingen.jpg", "starry": f"{data_dir}/styles/starry_night.jpg",
            "scream": f"{data_dir}/styles/the_scream.jpg", "mask": f"{data_dir}/masks/mask_adain.png"}


def probe(*args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """Run nst-stylize through tests/cli_probe.py; the process and what reached optimize.stylize."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "cli_probe.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("probe: ")]
    return proc, (json.loads(lines[-1][len("probe: "):]) if lines else {})


def written(path) -> np.ndarray:
    return images.load_image(str(path))


def as_saved(image: np.ndarray) -> np.ndarray:
    """What save_image + load_image make of a float image (8-bit rounding)."""
    return images.to_uint8(image).astype(np.float32) / 255.0


def differs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


# the optimiser's flags in one run: 80 px (tiles of 64 need a larger final scale), two styles split by a mask file
OPTIMISER_FLAGS = ["--size=80", "--scales=auto", "--min_scale=64", "--steps=2", "--style_scale=1.5",
                   "--style_layer_weights=1,0,0,0,4", "--average=0.8", "--preserve_colors=luminance", "--tile=64",
                   "--tile_overlap=16", "--init=noise", "--seed=3"]
# what those flags stand for (written out by hand), and what each one is instead when it is left out
OPTIONS = dict(scales=(64, 80), steps=(2,), average=0.8, init="noise", seed=3, style_scale=1.5,
               preserve_colors="luminance", tile=64, tile_overlap=16,
               weights=LossWeights(content=1, style=10, tv=1, style_layers=(1, 0, 0, 0, 4)))
LEFT_OUT = {"--min_scale": dict(scales=(80,)), "--style_scale": dict(style_scale=1.0),
            "--style_layer_weights": dict(weights=LossWeights()), "--average": dict(average=0.0),
            "--preserve_colors": dict(preserve_colors="none"), "--tile": dict(tile=0),
            "--tile_overlap": dict(tile_overlap=64), "--seed": dict(seed=0), "--init": dict(init="content")}


def optimiser_inputs(paths):
    """The content, styles and mask regions as nst-stylize prepares them for OPTIMISER_FLAGS."""
    content = images.resize_long_side(images.load_image(paths["content"]), 80)
    styles = [images.load_image(paths[s]) for s in ("starry", "scream")]
    return content, styles, masks.load_regions(paths["mask"], *content.shape[:2], 2)


def test_optimiser_flags_reach_the_run(tmp_path, paths, lpips_weights, extractor):
    """--scales=auto with --min_scale, --style_scale, --style_layer_weights, --average, --preserve_colors, --tile,
    --tile_overlap, --mask (a file of another size), --init, --seed: the command line's image is the library's
    with the options those flags stand for (test_each_optimiser_flag_changes_the_image: without any one of them
    the image is another)."""
    out = tmp_path / "out.png"
    styles = f"{paths['starry']},{paths['scream']}"
    proc = run_cli("nst_tf.cli.stylize", f"--content={paths['content']}", f"--style={styles}", f"--output={out}",
                   f"--weights={lpips_weights}", f"--mask={paths['mask']}", *OPTIMISER_FLAGS)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "scales [64, 80]" in proc.stdout  # the x sqrt 2 ladder from --min_scale
    result = written(out)
    content, styles, regions = optimiser_inputs(paths)
    assert regions.shape == content.shape[:2] + (2,) and 0.1 < regions[..., 0].mean() < 0.9
    expected = as_saved(optimize.stylize(extractor, content, styles, optimize.Options(**OPTIONS), None, regions))
    gap = np.abs(result - expected)
    print(f"command line vs library: mean {gap.mean():.5f}, max {gap.max():.4f}")
    assert gap.max() <= 2 / 255 + 1e-6
    chroma = lambda x: color.rgb_to_yiq(x)[..., 1:]  # noqa: E731
    assert np.abs(chroma(result) - chroma(content)).mean() < 0.01  # luminance mode: the content's colours


@pytest.mark.slow  # 130 s here (load 9): the sensitivity of test_optimiser_flags_reach_the_run, checked once per change
def test_each_optimiser_flag_changes_the_image(paths, extractor):
    """Left out, each flag of OPTIMISER_FLAGS gives another image (more than 2/255 apart somewhere), so the
    command-line test above would fail if the flag did not reach the run."""
    content, styles, regions = optimiser_inputs(paths)

    def run(masks_=regions, **changes):
        options = optimize.Options(**{**OPTIONS, **changes})
        return as_saved(optimize.stylize(extractor, content, styles, options, None, masks_))

    reference = run()
    changes = {flag: np.abs(run(**change) - reference) for flag, change in LEFT_OUT.items()}
    changes["--mask"] = np.abs(run(masks_=regions[..., ::-1]) - reference)
    print("without each flag, max | mean change: " + ", ".join(f"{k} {v.max():.3f} | {v.mean():.4f}"
                                                                for k, v in changes.items()))
    for flag, change in changes.items():
        assert change.max() > 3 / 255, (flag, change.max())


def test_mask_file_is_resized_and_split_dark_first(tmp_path):
    """masks.load_regions: a file of another size, nearest-neighbour resized; regions by grey level, dark first;
    anti-aliased grey levels (under 1% of the pixels) join the nearest region."""
    mask = np.full((40, 60, 3), 200, np.uint8)
    mask[:, :20] = 30  # left third dark: region 0
    mask[5, 30] = 110  # one anti-aliased pixel, nearer to 30 than to 200 (under 1%)
    path = tmp_path / "mask.png"
    images.save_image(mask.astype(np.float32) / 255.0, str(path))
    regions = masks.load_regions(str(path), 20, 30, 2)
    assert regions.shape == (20, 30, 2) and regions.dtype == np.float32
    np.testing.assert_array_equal(regions.sum(-1), 1.0)  # one-hot
    np.testing.assert_array_equal(regions[:, :10, 0], 1.0)  # 60 -> 30 px wide: the dark third is 10 columns
    np.testing.assert_array_equal(regions[:, 10:, 1], 1.0)
    same = masks.load_regions(str(path), 40, 60, 2)
    assert same[5, 30, 0] == 1.0  # the stray grey joins the dark region, it is not a region of its own
    with pytest.raises(images.ImageError, match="has 2 regions for 3 styles"):
        masks.load_regions(str(path), 20, 30, 3)


def test_fast_method_with_the_phone_sized_model(tmp_path, paths):
    """--method=fast --model=mobile: the bundled phone-sized network's image, not the default network's."""
    from nst_tf import fast

    out = tmp_path / "mobile.png"
    proc = run_cli("nst_tf.cli.stylize", "--method=fast", "--model=mobile", f"--content={paths['content']}",
                   f"--style={paths['starry']}", f"--output={out}", f"--size={SIZE}", "--style_size=64")
    assert proc.returncode == 0, proc.stderr[-2000:]
    content = images.resize_long_side(images.load_image(paths["content"]), SIZE)
    style = images.resize_long_side(images.load_image(paths["starry"]), 64)
    phone = as_saved(fast.stylize(fast.load_network("mobile"), content, [style]))
    default = as_saved(fast.stylize(fast.load_network(), content, [style]))
    result = written(out)
    mine, other = differs(result, phone), differs(result, default)
    print(f"mean difference to the mobile network's image {mine:.5f}, to the default network's {other:.4f}")
    assert mine < 2e-3 and other > 0.02


@pytest.mark.slow  # two optimiser runs under bfloat16 and XLA: benchmarks/slow_checks.py
def test_precision_and_jit_compile_reach_the_optimiser(tmp_path, paths, lpips_weights):
    """--precision (for GPUs; bfloat16 runs on this CPU too) sets Keras' global policy before the loss network is
    built, so its layers compute in that dtype; --jit_compile reaches the optimiser, and both runs finish."""
    common = [f"--content={paths['content']}", f"--style={paths['starry']}", f"--weights={lpips_weights}",
              "--size=32", "--steps=2"]
    proc, record = probe(*common, f"--output={tmp_path / 'bf16.png'}", "--precision=mixed_bfloat16")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (record["policy"], record["compute_dtype"]) == ("mixed_bfloat16", "bfloat16")
    assert record["options"]["jit_compile"] is False
    proc, record = probe(*common, f"--output={tmp_path / 'xla.png'}", "--jit_compile")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (record["policy"], record["compute_dtype"]) == ("float32", "float32")
    assert record["options"]["jit_compile"] is True
    for name in ("bf16.png", "xla.png"):
        assert written(tmp_path / name).shape == (24, 32, 3)


@pytest.mark.parametrize("name", ["quality", "large"])
def test_preset_values_reach_the_optimiser(tmp_path, paths, lpips_weights, name):
    """--preset: every setting in the preset's file is what optimize.stylize is given (scales, steps, tiles, learning
    rate, loss weights), and the content is resized to its --size."""
    from nst_tf import presets, scales

    settings = presets.load(name)
    proc, record = probe("--skip", f"--preset={name}", f"--content={paths['content']}", f"--style={paths['starry']}",
                         f"--output={tmp_path / 'out.jpg'}", f"--weights={lpips_weights}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    options, size = record["options"], int(settings["size"])
    ladder = (scales.scale_ladder(size, int(settings.get("min_scale", 256))) if settings.get("scales") == "auto"
              else (size,))
    assert max(record["content_shape"][:2]) == size and options["scales"] == list(ladder)
    assert options["steps"] == [int(s) for s in settings["steps"].split(",")]
    assert options["tile"] == int(settings.get("tile", 0))
    assert options["tile_overlap"] == int(settings.get("tile_overlap", 64))
    assert options["optimizer"] == settings["optimizer"]
    assert options["learning_rate"] == pytest.approx(float(settings["learning_rate"]))
    for term in ("content", "style", "tv"):
        assert options["weights"][term] == pytest.approx(float(settings[f"{term}_weight"])), term
    for key in ("init", "style_loss"):  # the newer controls, where the preset sets them
        if key in settings:
            assert options[key] == settings[key], key
