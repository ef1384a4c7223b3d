"""Image loading and saving: awkward files are converted or refused in one line; writes are atomic."""

import os

import numpy as np
import pytest
from badfiles import make_corpus
from PIL import Image

from nst_tf import images


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(str(tmp_path_factory.mktemp("corpus")))


def test_corpus_cases(corpus):
    for case, (path, expect) in corpus.items():
        before = open(path, "rb").read()
        if expect == "ok":
            image = images.load_image(path)
            assert image.dtype == np.float32 and image.ndim == 3 and image.shape[2] == 3, case
            assert 0.0 <= image.min() and image.max() <= 1.0, case
        elif case == "one_by_10000":
            image = images.load_image(path)
            with pytest.raises(images.ImageError, match="too narrow"):
                images.resize_long_side(image, 256, path)
        else:
            with pytest.raises(images.ImageError) as info:
                images.load_image(path)
            message = str(info.value)
            assert message.startswith(path) and "\n" not in message, case
        assert open(path, "rb").read() == before, f"{case}: input modified"


def test_exif_rotation_applied(corpus):
    # stored 64x32 landscape with orientation 6 or 8 -> shown as 32x64 portrait
    for n in (6, 8):
        assert images.load_image(corpus[f"exif_orientation_{n}"][0]).shape == (64, 32, 3)


def test_sixteen_bit_scaled_not_clipped(corpus):
    image = images.load_image(corpus["sixteen_bit"][0])
    # values span 0..~64000 of 65535: must not saturate to 1.0 everywhere
    assert 0.9 < image.max() <= 1.0 and image.min() == 0.0 and 0.3 < image.mean() < 0.7


def test_transparency_composited_on_white(corpus, tmp_path):
    path = corpus["palette_transparent"][0]  # palette index 0 (a light grey, 222) is transparent
    with Image.open(path) as img:
        index = np.asarray(img)
        palette = np.asarray(img.getpalette(), np.float32).reshape(-1, 3) / 255.0
    loaded = images.load_image(path)
    assert loaded.shape == (48, 64, 3) and (index == 0).any() and (index != 0).any()
    np.testing.assert_array_equal(loaded[index == 0], 1.0)  # white, not black (0) nor the palette's 222
    np.testing.assert_allclose(loaded[index != 0], palette[index[index != 0]], atol=1e-6)  # opaque: as drawn
    # partial alpha: a * colour + (1 - a) * white
    rgba = np.zeros((4, 3, 4), np.uint8)
    rgba[..., :3] = (200, 40, 0)
    rgba[..., 3] = np.array([0, 64, 128, 255], np.uint8)[:, None]
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    alpha = np.array([0, 64, 128, 255], np.float32)[:, None, None] / 255.0
    expected = alpha * np.array([200, 40, 0], np.float32) / 255.0 + (1.0 - alpha)
    np.testing.assert_allclose(images.load_image(str(tmp_path / "alpha.png")), np.broadcast_to(expected, (4, 3, 3)),
                               atol=1 / 255)


def test_cmyk_and_greyscale_keep_their_colours(corpus):
    from badfiles import _photo

    photo = np.asarray(_photo(), np.float32) / 255.0  # what both files were made from
    cmyk = images.load_image(corpus["cmyk"][0])
    error = np.abs(cmyk - photo)
    assert error.mean() < 0.01 and error.max() < 0.05, (error.mean(), error.max())  # JPEG error only
    grey = images.load_image(corpus["grayscale"][0])
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 0], grey[..., 2])
    luma = np.asarray(_photo().convert("L"), np.float32) / 255.0
    assert np.abs(grey[..., 0] - luma).mean() < 0.01 and np.abs(grey[..., 0] - luma).max() < 0.05


def test_missing_and_directory(tmp_path):
    with pytest.raises(images.ImageError, match="no such file"):
        images.load_image(str(tmp_path / "nope.jpg"))
    with pytest.raises(images.ImageError, match="is a directory"):
        images.load_image(str(tmp_path))


def test_resize_long_side():
    image = np.zeros((100, 200, 3), np.float32)
    assert images.resize_long_side(image, 64).shape == (32, 64, 3)
    with pytest.raises(ValueError, match="positive"):
        images.resize_long_side(image, 0)


def test_save_is_atomic_and_round_trips(tmp_path):
    path = str(tmp_path / "out.png")
    image = np.random.default_rng(0).uniform(size=(20, 30, 3)).astype(np.float32)
    images.save_image(image, path)
    assert os.listdir(tmp_path) == ["out.png"]  # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
    np.testing.assert_allclose(images.load_image(path), images.to_uint8(image) / 255.0, atol=1e-6)


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    path = str(tmp_path / "out.png")

    def broken_save(self, fp, format=None, **kw):  # noqa: A002, ARG001
        fp.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(images.ImageError, match="cannot write"):
        images.save_image(np.zeros((4, 4, 3), np.float32), path)
    assert os.listdir(tmp_path) == []


def test_check_writable(tmp_path):
    existing = tmp_path / "exists.jpg"
    existing.write_bytes(b"x")
    with pytest.raises(images.ImageError, match="already exists"):
        images.check_writable(str(existing))
    images.check_writable(str(existing), overwrite=True)
    with pytest.raises(images.ImageError, match="unsupported output format"):
        images.check_writable(str(tmp_path / "out.gif2"))
    with pytest.raises(images.ImageError, match="does not exist"):
        images.check_writable(str(tmp_path / "missing" / "out.jpg"))
    with pytest.raises(images.ImageError, match="not writable"):
        images.check_writable("/proc/out.jpg")  # unwritable even for root


def test_stack_rows_pads_white_to_the_widest():
    rows = [np.zeros((2, 3, 3), np.float32), np.zeros((1, 5, 3), np.float32)]
    sheet = images.stack_rows(rows, gap=1)
    assert sheet.shape == (2 + 1 + 1 + 1, 5, 3)
    assert sheet[0, 3:].min() == 1.0 and sheet[2].min() == 1.0 and sheet[:2, :3].max() == 0.0
