"""nst_tf.augment_folder and nst-augment: deterministic choices, the manifest, resuming, settings conflicts."""

import csv
import dataclasses
import json
import os

import numpy as np
import pytest
from conftest import last_line, run_cli, style_bank
from PIL import Image

from nst_tf import augment, augment_folder, fast, images
from nst_tf.network import ArbitraryStyleNetwork


@pytest.fixture(scope="module")
def net() -> ArbitraryStyleNetwork:
    return ArbitraryStyleNetwork.load()


@pytest.fixture
def folders(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "in"
    (src / "pets").mkdir(parents=True)
    for name in ("cat.jpg", "dog.png", "pets/bird.jpg", "pets/fish.webp"):
        Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(src / name)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    styles = tmp_path / "styles"
    styles.mkdir()
    for k, image in enumerate(style_bank()):
        Image.fromarray((image * 255).astype(np.uint8)).save(styles / f"style {k}.png")
    return src, styles, tmp_path / "out"


def read_manifest(out) -> list[dict]:
    with open(out / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def augment_cli(src, styles, out, *extra, strength="--strength_range=0.4,1.6"):
    return run_cli("nst_tf.cli.augment", f"--input_dir={src}", f"--output_dir={out}", f"--styles={styles}",
                   "--per_image=2", strength, "--seed=5", *extra)


def test_cli_manifest_resume_and_recreate(folders, net):
    src, styles, out = folders
    proc = augment_cli(src, styles, out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "wrote 8 images" in proc.stdout and "1 unreadable" in proc.stdout
    assert "broken.jpg" in proc.stderr and "warning:" in proc.stderr
    listed = read_manifest(out)
    rows = [r for r in listed if r["output"]]
    assert [(r["input"], r["error"]) for r in listed if not r["output"]] == \
        [("broken.jpg", "not an image file (unrecognised format)")]  # listed, with the reason
    assert len(rows) == 8 and len({r["output"] for r in rows}) == 8
    for row in rows:
        stem, ext = os.path.splitext(row["input"])
        style = os.path.splitext(os.path.basename(row["style"]))[0].replace(" ", "_")
        assert row["output"].startswith(f"{stem}_style-{style}_") and row["output"].endswith(ext)
        assert 0.4 <= float(row["strength"]) <= 1.6 and os.path.isfile(out / row["output"])
        with Image.open(out / row["output"]) as img:
            assert img.size == (56, 40)
    assert {r["input"] for r in rows} == {"cat.jpg", "dog.png", os.path.join("pets", "bird.jpg"),
                                          os.path.join("pets", "fish.webp")}

    # the same run again, in process (the library function the CLI calls, with the CLI's settings)
    style_paths = [str(styles / f) for f in augment_folder.list_inputs(str(styles))]
    settings = augment_folder.Settings(5, 2, (0.4, 1.6), tuple(augment_folder.style_name(p) for p in style_paths), 0)
    planned = {c.output: c.strength for rel in augment_folder.list_inputs(str(src))
               for c in augment_folder.choices(rel, settings)}
    assert {r["output"]: float(r["strength"]) for r in rows} == {o: planned[o] for o in (r["output"] for r in rows)}
    assert min(planned.values()) < 1.0 < max(planned.values())  # both sides of the painting's look drawn
    png = next(r for r in rows if r["output"].endswith(".png"))  # lossless: the file is the network's output
    vector = augment.style_vectors(net, [str(png["style"])])
    content = images.load_image(str(src / png["input"]))[None]
    expected = np.clip(fast.stylize_padded(net, content, vector, float(png["strength"])).numpy()[0], 0, 1)
    assert np.abs(images.load_image(str(out / png["output"])) - expected).max() <= 1.5 / 255  # at the recorded one
    again = lambda s=settings: augment_folder.augment_folder(str(src), str(out), style_paths, s, net)  # noqa: E731
    stamps = {r["output"]: os.stat(out / r["output"]).st_mtime_ns for r in rows}
    report = again()
    assert (report.written, report.skipped) == (0, 8)
    assert {o: os.stat(out / o).st_mtime_ns for o in stamps} == stamps and read_manifest(out) == listed

    victim = rows[3]["output"]
    original = np.asarray(Image.open(out / victim), np.float32)
    os.remove(out / victim)
    assert again().written == 1
    assert os.path.isfile(out / victim) and read_manifest(out) == listed  # same style and strength, no new row
    assert np.abs(np.asarray(Image.open(out / victim), np.float32) - original).max() <= 2.0  # the same image
    assert {o: os.stat(out / o).st_mtime_ns for o in stamps if o != victim} == \
        {o: s for o, s in stamps.items() if o != victim}

    with pytest.raises(ValueError, match=r"other settings \(seed 5 -> 6\)"):
        again(dataclasses.replace(settings, seed=6))

    # the same seed in another folder: the same strengths; another seed: others
    def strengths(folder, seed):
        augment_folder.augment_folder(str(src), str(folder), style_paths, dataclasses.replace(settings, seed=seed), net)
        return {r["output"]: r["strength"] for r in read_manifest(folder) if r["output"]}

    same, other = strengths(out.parent / "same", 5), strengths(out.parent / "other", 6)
    assert same == {r["output"]: r["strength"] for r in rows}
    assert sorted(other.values()) != sorted(same.values())

    # the deprecated --alpha_range means --strength_range: this folder's settings, other values -> named conflict
    proc = augment_cli(src, styles, out, strength="--alpha_range=0.3,0.8")
    assert proc.returncode == 1 and "warning: --alpha_range is deprecated; use --strength_range" in proc.stderr
    assert "other settings (strength_range [0.4, 1.6] -> [0.3, 0.8])" in last_line(proc.stderr)


RANGE_RULE = "expected low,high with 0 <= low <= high <= "


@pytest.mark.parametrize("flags, message", [
    (["--strength_range=0.5"], f"--strength_range=0.5: {RANGE_RULE}2"),
    (["--strength_range=1.5,0.5"], f"--strength_range=1.5,0.5: {RANGE_RULE}2"),
    (["--strength_range=0,2.5"], f"--strength_range=0,2.5: {RANGE_RULE}2"),
    (["--strength_range=-0.1,1"], f"--strength_range=-0.1,1: {RANGE_RULE}2"),
    (["--strength_range=weak,strong"], "--strength_range=weak,strong: expected comma-separated numbers"),
    (["--alpha_range=0.2,1.5"], f"--alpha_range=0.2,1.5: {RANGE_RULE}1"),
    (["--alpha_range=0.2,0.8", "--strength_range=0.2,0.8"],
     "--alpha_range is the deprecated name of --strength_range: give one of them"),
])
def test_cli_strength_range_errors(folders, flags, message):
    src, styles, out = folders
    proc = run_cli("nst_tf.cli.augment", f"--input_dir={src}", f"--output_dir={out}", f"--styles={styles}", *flags)
    assert proc.returncode == 2 and last_line(proc.stderr) == f"error: {message}", proc.stderr[-2000:]
    assert len([line for line in proc.stderr.splitlines() if line.startswith("error")]) == 1
    assert "Traceback" not in proc.stderr and not out.exists()


def test_choices_are_deterministic_per_path():
    settings = augment_folder.Settings(3, 2, (0.3, 1.0), ("a", "b", "c"), 0)
    first = augment_folder.choices("x/cat.jpg", settings)
    assert first == augment_folder.choices("x/cat.jpg", settings)
    assert first != augment_folder.choices("x/dog.jpg", settings)
    assert len({c.style for c in first}) == 2  # two different styles when the bank allows it
    assert all(c.output.startswith("x/cat_style-") and c.output.endswith(f"_{k}.jpg") for k, c in enumerate(first))
    assert augment_folder.choices("a.gif", settings)[0].output.endswith(".png")  # not writable as gif


def test_manifest_repairs_a_torn_last_line(tmp_path):
    manifest = augment_folder.Manifest(str(tmp_path))
    manifest.add("a_style-x_0.jpg", "a.jpg", "x.jpg", 0.5)
    with open(tmp_path / "manifest.csv", "a") as f:
        f.write("b_style-x_0.jpg,b.jpg,x.j")  # a crash mid-line
    again = augment_folder.Manifest(str(tmp_path))
    assert list(again.rows) == ["a_style-x_0.jpg"]
    again.add("b_style-x_0.jpg", "b.jpg", "x.jpg", 0.25)
    again.add("b_style-x_0.jpg", "b.jpg", "x.jpg", 0.25)  # recorded once
    assert [r["strength"] for r in read_manifest(tmp_path)] == ["0.500", "0.250"]


def test_manifest_unreadable_rows_and_an_older_manifest(tmp_path):
    with open(tmp_path / "manifest.csv", "w") as f:  # a manifest from before the error column and the strength
        f.write("output,input,style,alpha\na_style-x_0.jpg,a.jpg,x.jpg,0.500\n")
    manifest = augment_folder.Manifest(str(tmp_path))
    assert list(manifest.rows) == ["a_style-x_0.jpg"]
    row = augment_folder.manifest_row("a.jpg", augment_folder.Choice("a_style-x_0.jpg", 0, 0.5), "x.jpg")
    assert read_manifest(tmp_path) == [row]
    manifest.add_unreadable("b.jpg", "cannot decode image (truncated)")
    manifest.add_unreadable("b.jpg", "cannot decode image (truncated)")  # recorded once
    assert [(r["input"], r["error"]) for r in read_manifest(tmp_path)][1:] == \
        [("b.jpg", "cannot decode image (truncated)")]
    again = augment_folder.Manifest(str(tmp_path))
    again.add("b_style-x_0.jpg", "b.jpg", "x.jpg", 0.25)  # b.jpg was replaced by a readable file
    assert [(r["output"], r["error"]) for r in read_manifest(tmp_path)] == \
        [("a_style-x_0.jpg", ""), ("b_style-x_0.jpg", "")]


def test_a_folder_made_with_alpha_range_resumes_as_the_same_strength_range(tmp_path):
    """augment_settings.json from before the strength control records `alpha_range`: the same values resume, other
    values are a conflict named as the strength range."""
    settings = augment_folder.Settings(5, 2, (0.4, 0.9), ("a", "b"), 0)
    old = {k: v for k, v in json.loads(settings.to_json()).items() if k != "strength_range"}
    old["alpha_range"] = [0.4, 0.9]
    (tmp_path / augment_folder.SETTINGS).write_text(json.dumps(old))
    augment_folder.check_settings(str(tmp_path), settings)  # no error, file kept as it was
    assert json.loads((tmp_path / augment_folder.SETTINGS).read_text()) == old
    with pytest.raises(ValueError, match=r"other settings \(strength_range \[0.4, 0.9\] -> \[0.4, 1.5\]\)"):
        augment_folder.check_settings(str(tmp_path), dataclasses.replace(settings, strength_range=(0.4, 1.5)))
