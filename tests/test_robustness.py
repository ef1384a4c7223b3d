"""The corpus of awkward and broken files through nst-augment and the bytes serving signature.

(nst-stylize, both methods, is covered in test_stylize_cli.py.) Every case either works or fails
with a clear message, and no output file is left behind.
"""

import csv
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from badfiles import make_corpus
from conftest import run_cli

from nst_tf import export
from nst_tf.network import ArbitraryStyleNetwork


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(str(tmp_path_factory.mktemp("robust_corpus")))


@pytest.fixture(scope="module")
def stylize_bytes():
    module = export.build_serving_module(ArbitraryStyleNetwork.load())
    return export.serving_signatures(module)["stylize_bytes"]


# why each refused file is refused: the signature's message for it
REFUSALS = {"zero_bytes": "content: empty bytes", "text_renamed": "content: not a JPEG, PNG, GIF or BMP image",
            "truncated_jpeg": "Invalid JPEG data", "truncated_png": "Invalid PNG data",
            "one_by_one": "content: height and width must be at least 16 px",
            "one_by_10000": "content: height and width must be at least 16 px",
            "decompression_bomb": "content: image too large to decode safely"}


def test_bytes_signature_on_the_corpus(corpus, stylize_bytes, data_dir):
    style = tf.constant(open(f"{data_dir}/styles/starry_night.jpg", "rb").read())
    assert {n for n, (_, e) in corpus.items() if e == "error"} <= set(REFUSALS)  # every broken file has its reason
    for name, (path, _) in corpus.items():
        content = tf.constant(open(path, "rb").read())
        if name in REFUSALS:  # the broken files, and the 1-px one the network cannot take
            with pytest.raises(tf.errors.InvalidArgumentError) as info:
                stylize_bytes(content=content, style=style)
            assert REFUSALS[name] in info.value.message, (name, info.value.message[-300:])
            for other in set(REFUSALS.values()) - {REFUSALS[name]}:  # not another file's reason
                assert other not in info.value.message, (name, other)
            continue
        png = stylize_bytes(content=content, style=style)["stylized_image_bytes"][0]
        image = tf.io.decode_png(png).numpy()
        assert image.ndim == 3 and image.shape[2] == 3 and image.std() > 0, name


def test_augment_on_the_corpus(corpus, tmp_path, data_dir):
    out = tmp_path / "out"
    proc = run_cli("nst_tf.cli.augment", f"--input_dir={os.path.dirname(next(iter(corpus.values()))[0])}",
                   f"--output_dir={out}", f"--styles={data_dir}/styles/starry_night.jpg", "--per_image=1",
                   "--size=64")
    assert proc.returncode == 0, proc.stderr[-1500:]
    made = sorted(os.path.relpath(os.path.join(r, f), out) for r, _, fs in os.walk(out) for f in fs
                  if not f.endswith((".csv", ".json")))
    expected_ok = {n for n, (_, e) in corpus.items() if e == "ok"}
    produced = {f.split("_style-")[0] for f in made}
    assert produced == expected_ok, (produced, expected_ok)
    assert not [f for f in made if f.startswith(".") or ".tmp" in f]
    with open(out / "manifest.csv") as f:
        listed = list(csv.DictReader(f))
    rows = [r for r in listed if r["output"]]  # the others: the unreadable inputs, with the reason
    assert len(rows) == len(expected_ok)
    skipped = len(corpus) - len(expected_ok)
    assert len(listed) - len(rows) == skipped and all(r["error"] for r in listed if not r["output"])
    refused = {os.path.splitext(r["input"])[0]: r["error"] for r in listed if not r["output"]}
    assert set(refused) == set(corpus) - expected_ok  # each refused input listed once, with its reason
    assert "empty file" in refused["zero_bytes"] and "not an image file" in refused["text_renamed"]
    assert "too narrow" in refused["one_by_10000"] and "too large to decode" in refused["decompression_bomb"]
    assert all("cannot decode" in refused[n] for n in ("truncated_jpeg", "truncated_png")), refused
    counts = re.search(r"wrote (\d+) images .*skipped (\d+) existing, (\d+) unreadable input", proc.stdout)
    assert counts, proc.stdout[-500:]  # the summary line counts them
    assert [int(n) for n in counts.groups()] == [len(expected_ok), 0, skipped], counts.group(0)
    for f in made:
        assert np.isfinite(tf.io.decode_image(open(out / f, "rb").read()).numpy()).all()
