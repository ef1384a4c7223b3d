"""nst_tf.augment_beam: nst-augment on Apache Beam writes what the single-process path writes (same seed), resumes a
killed run, and lists unreadable inputs without failing."""

import dataclasses
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, run_cli
from PIL import Image

beam = pytest.importorskip("apache_beam", reason="Apache Beam is not installed (pip install -e '.[beam]')")

from apache_beam.testing.util import assert_that, equal_to  # noqa: E402

from nst_tf import augment_beam, augment_folder  # noqa: E402
from nst_tf.network import ArbitraryStyleNetwork  # noqa: E402

SEED, PER_IMAGE, STRENGTH, STYLE_SIZE = 11, 2, (0.3, 1.6), 96


@pytest.fixture(scope="module")
def net() -> ArbitraryStyleNetwork:
    return ArbitraryStyleNetwork.load()


@pytest.fixture(scope="module")
def small(tmp_path_factory, data_dir):
    """Six train_content photos at 64x48 px (one 48x64; two in a subfolder), two style images at 128 px, and the
    settings. One image size for most: the Beam path stylizes them in batches. PNG, so the outputs are PNG too:
    a batch may round a pixel differently from one image alone (float32 sums in another order), which JPEG
    would spread over its 8x8 block."""
    root = tmp_path_factory.mktemp("beam")
    src, styles = root / "in", root / "styles"
    (src / "sub").mkdir(parents=True)
    styles.mkdir()
    photos = sorted(f for f in os.listdir(os.path.join(data_dir, "train_content")) if f.endswith(".jpg"))[:6]
    for k, name in enumerate(photos):
        with Image.open(os.path.join(data_dir, "train_content", name)) as img:
            img = img.convert("RGB").resize((48, 64) if k == 5 else (64, 48))
            img.save((src / ("sub" if k >= 4 else "") / name).with_suffix(".png"))
    for name in ("starry_night.jpg", "the_scream.jpg"):
        with Image.open(os.path.join(data_dir, "styles", name)) as img:
            img.convert("RGB").resize((128, 128)).save(styles / name)
    style_paths = [str(styles / n) for n in sorted(os.listdir(styles))]
    names = tuple(augment_folder.style_name(p) for p in style_paths)
    settings = augment_folder.Settings(SEED, PER_IMAGE, STRENGTH, names, 0)
    return src, styles, style_paths, settings


@pytest.fixture(scope="module")
def single(small, net, tmp_path_factory):
    """The single-process path's output folder for the small inputs."""
    src, _, style_paths, settings = small
    out = tmp_path_factory.mktemp("single") / "out"
    report = augment_folder.augment_folder(str(src), str(out), style_paths, settings, net, STYLE_SIZE)
    assert report.written == 6 * PER_IMAGE
    return out


def images_under(folder) -> dict[str, np.ndarray]:
    """Every output image under a folder (hidden files, manifest and settings left out), by relative path."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            if not name.startswith(".") and not name.endswith((".csv", ".json")):
                with Image.open(os.path.join(root, name)) as img:
                    found[os.path.relpath(os.path.join(root, name), folder)] = np.asarray(img, np.int16)
    return found


def assert_same_outputs(folder, reference) -> None:
    """The same files as `reference`, each within 1/255, and a byte-equal manifest."""
    mine, theirs = images_under(folder), images_under(reference)
    assert sorted(mine) == sorted(theirs)
    worst = max(int(np.abs(mine[k] - theirs[k]).max()) for k in mine)
    assert worst <= 1, f"an output differs by {worst}/255"
    with open(folder / "manifest.csv", "rb") as a, open(reference / "manifest.csv", "rb") as b:
        assert a.read() == b.read()


def test_cli_two_worker_processes_match_the_single_process_path(small, single, tmp_path):
    src, styles, _, _ = small
    out = tmp_path / "beam"
    proc = run_cli("nst_tf.cli.augment", "--runner=direct", "--direct_num_workers=2", f"--input_dir={src}",
                   f"--output_dir={out}",
                   f"--styles={styles}", f"--per_image={PER_IMAGE}", f"--strength_range={STRENGTH[0]},{STRENGTH[1]}",
                   f"--seed={SEED}", f"--style_size={STYLE_SIZE}", "--batch_size=4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wrote 12 images" in proc.stdout and "skipped 0 existing, 0 unreadable" in proc.stdout, proc.stdout
    assert_same_outputs(out, single)


def test_a_killed_run_completes_the_rest_once(small, single, tmp_path):
    src, _, style_paths, settings = small
    out = tmp_path / "partial"
    shutil.copytree(single, out)
    outputs = sorted(images_under(single))
    lost = outputs[1::3]  # a run killed mid-way: these never got written, the manifest lists only some
    for name in lost:
        os.remove(out / name)
    with open(single / "manifest.csv") as f:
        lines = f.readlines()
    with open(out / "manifest.csv", "w") as f:
        f.writelines(lines[:4])
    (out / f".tmp-0123-{os.path.basename(lost[0])}").write_bytes(b"\xff\xd8 half a file")  # a killed write
    stamps = {name: os.stat(out / name).st_mtime_ns for name in outputs if name not in lost}

    report = augment_beam.run_pipeline(str(src), str(out), style_paths, settings, style_size=STYLE_SIZE,
                                       batch_size=3)
    assert (report.written, report.skipped, report.unreadable) == (len(lost), len(outputs) - len(lost), 0)
    assert {name: os.stat(out / name).st_mtime_ns for name in stamps} == stamps  # finished ones untouched
    assert_same_outputs(out, single)  # every output once, the manifest whole again

    again = augment_beam.run_pipeline(str(src), str(out), style_paths, settings, style_size=STYLE_SIZE)
    assert (again.written, again.skipped) == (0, len(outputs))
    with pytest.raises(ValueError, match=r"other settings \(seed 11 -> 12\)"):
        augment_beam.run_pipeline(str(src), str(out), style_paths, dataclasses.replace(settings, seed=12))


def test_bad_files_are_listed_not_fatal(small, net, tmp_path):
    src, _, style_paths, settings = small
    bad = tmp_path / "bad"
    bad.mkdir()
    good = sorted(os.listdir(src))[0]
    shutil.copy(src / good, bad / "good.png")
    with Image.open(src / good) as img:
        img.save(bad / "truncated.jpg", quality=90)
    data = (bad / "truncated.jpg").read_bytes()
    (bad / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (bad / "text.jpg").write_text("this is not an image\n")
    (bad / "empty.png").write_bytes(b"")

    out = tmp_path / "beam"
    with beam.Pipeline() as pipeline:  # composed with the caller's own transforms
        rows = pipeline | augment_folder.beam_pipeline([str(p) for p in sorted(bad.iterdir())], str(out), style_paths,
                                                       settings, style_size=STYLE_SIZE)
        failed = rows | beam.Filter(lambda row: row["error"]) | beam.Map(lambda row: row["input"])
        assert_that(failed, equal_to(["truncated.jpg", "text.jpg", "empty.png"]))
    listed = {r["input"]: r for r in augment_beam.read_manifest(str(out))}
    assert listed["truncated.jpg"]["error"].startswith("cannot decode image")
    assert listed["text.jpg"]["error"] == "not an image file (unrecognised format)"
    assert listed["empty.png"]["error"] == "empty file (0 bytes)"
    assert len(images_under(out)) == PER_IMAGE

    reference = tmp_path / "single"
    augment_folder.augment_folder(str(bad), str(reference), style_paths, settings, net, STYLE_SIZE)
    assert_same_outputs(out, reference)  # the same rows, the unreadable ones included


def test_runner_and_option_checks(tmp_path):
    assert augment_beam.runner_name("direct") == "DirectRunner"
    assert augment_beam.runner_name("SparkRunner") == "SparkRunner"
    with pytest.raises(ValueError, match="unknown runner"):
        augment_beam.runner_name("mapreduce")
    with pytest.raises(ValueError, match="--direct_num_wrokers=2: not a Beam pipeline option"):
        augment_beam.pipeline_options("direct", ["--direct_num_wrokers=2"])
    proc = run_cli("nst_tf.cli.augment", f"--input_dir={tmp_path}", f"--output_dir={tmp_path}/out",
                   "--styles=x.jpg", "--direct_num_workers=2")
    assert proc.returncode == 2 and "Beam pipeline options need --runner" in proc.stderr


def test_the_core_path_does_not_import_beam():
    code = ("import sys, nst_tf.augment, nst_tf.augment_folder, nst_tf.cli.augment, nst_tf.fast; "
            "print('beam imported' if 'apache_beam' in sys.modules else 'no beam')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0 and proc.stdout.strip() == "no beam", proc.stderr[-1000:]
