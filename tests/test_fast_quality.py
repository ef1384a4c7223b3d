"""The bundled arbitrary-style network on photos and paintings it never saw in training.

The network trains on `train_content/` and `train_style/`; these pairs come from `content/` and `styles/`.
Losses are the product's unweighted Gatys losses with the offline ImageNet VGG16 at 256 px (style: relative
Gram error over block1_conv1..block5_conv1; content: relative feature error at block4_conv2).
Issue 4's full criterion (style loss 40% below the photo's on held-out pairs, content loss no higher than
the optimiser's) is measured by `benchmarks/fast_quality.py`, which costs minutes; these tests hold the
bundled network to what it achieves now: style-specific, recognisable, and alpha 0 keeps the photo's look.
"""

import os

import numpy as np
import pytest
from conftest import ROOT

from nst_tf import fast, features, images
from nst_tf.network import ArbitraryStyleNetwork
from nst_tf.objective import LossWeights, Objective, style_targets

PAIRS = [("golden_gate", "starry_night"), ("chicago", "wave"), ("stata", "candy"), ("lenna", "la_muse")]
SIZE = 256


@pytest.fixture(scope="module")
def measured(lpips_weights, data_dir):
    """Per pair: the photo and the outputs at alpha 1 and 0, and their losses against every pair's targets."""
    extractor = features.build_extractor(lpips_weights)
    net = ArbitraryStyleNetwork.load()
    load = lambda folder, name: images.load_image(f"{data_dir}/{folder}/{name}.jpg")  # noqa: E731
    photos = [images.resize_long_side(load("content", c), SIZE) for c, _ in PAIRS]
    styles = [load("styles", s) for _, s in PAIRS]
    targets = [style_targets(extractor, [images.resize_long_side(s, SIZE)]) for s in styles]
    styles = [images.resize_long_side(s, fast.STYLE_SIZE) for s in styles]
    # every photo with every painting: swapped[j][k] = photo j stylized with painting k
    swapped = [[fast.stylize(net, photo, [style]) for style in styles] for photo in photos]
    outputs = {"alpha1": [swapped[j][j] for j in range(len(PAIRS))],
               "alpha0": [fast.stylize(net, photo, [style], strength=0.0) for photo, style in zip(photos, styles)]}
    weights = LossWeights(content=1, style=1, tv=0)
    objectives = [Objective(extractor, p, t, weights) for p, t in zip(photos, targets)]  # built once

    def losses(images_, i):
        """[content loss vs photo i, style loss vs style i] of each image (resized to photo i)."""
        terms = [objectives[i].terms(images.resize(image, *photos[i].shape[:2])[None]) for image in images_]
        return np.array([[float(t["content"]), float(t["style"])] for t in terms])

    # cross[i][j] = losses of image j against pair i's photo and style
    return {"photo": photos, **outputs,
            "swapped_style": np.array([losses(swapped[j], j)[:, 1] for j in range(len(PAIRS))]),
            "cross": np.stack([losses(outputs["alpha1"], i) for i in range(len(PAIRS))]),
            "photo_own": np.array([losses([photos[i]], i)[0] for i in range(len(PAIRS))]),
            "alpha0_own": np.array([losses([outputs["alpha0"][i]], i)[0] for i in range(len(PAIRS))])}


@pytest.mark.parametrize("j", range(len(PAIRS)), ids=[f"{c}-{s}" for c, s in PAIRS])
def test_style_is_specific_to_the_style_image(measured, j):
    # the same photo stylized with each painting, all measured against painting j: its own must come out nearer
    # than the others on average
    style = measured["swapped_style"][j]  # photo j stylized with painting k, against painting j
    print(f"{PAIRS[j]}: style loss against its painting when stylized with each painting", np.round(style, 3))
    assert style[j] < np.mean([style[k] for k in range(len(PAIRS)) if k != j]), (PAIRS[j], style)


def test_style_loss_falls_below_the_photos(measured):
    own = np.diag(measured["cross"][:, :, 1])
    photo = measured["photo_own"][:, 1]
    reduction = 1 - own / photo
    print("style loss reduction per pair:", np.round(reduction, 3))
    assert np.median(reduction) >= 0.4 and reduction.min() > 0.1, reduction


def test_output_stays_recognisably_its_content(measured):
    content = measured["cross"][:, :, 0]  # [target photo i, output j]
    print("content loss, rows: photo, columns: output\n", np.round(content, 3))
    for j in range(len(PAIRS)):
        others = [content[i, j] for i in range(len(PAIRS)) if i != j]
        assert content[j, j] < 1.0 and content[j, j] < 0.85 * min(others), (PAIRS[j], content[:, j])


def test_alpha_zero_keeps_the_contents_look(measured):
    plain = np.array([np.abs(a - p).mean() for a, p in zip(measured["alpha0"], measured["photo"])])
    styled = np.array([np.abs(a - p).mean() for a, p in zip(measured["alpha1"], measured["photo"])])
    content_plain, content_styled = measured["alpha0_own"][:, 0], np.diag(measured["cross"][:, :, 0])
    print("mean abs error to the photo, alpha 0:", np.round(plain, 3), "alpha 1:", np.round(styled, 3))
    print("content loss, alpha 0:", np.round(content_plain, 3), "alpha 1:", np.round(content_styled, 3))
    assert np.all(plain < 0.09) and np.all(plain < 0.6 * styled)  # the photo's colours and layout
    assert np.all(content_plain < 0.5) and np.all(content_plain < content_styled)  # and its detail (the skips)


def test_no_band_at_the_borders(data_dir):
    """A flat grey photo stays flat up to its borders: the network's own border response falls in the cropped margin.

    With a 4-px margin the right-hand band of the bundled network differed from the interior by 0.37 (candy) and
    0.42 (mondrian) on a [0, 1] scale; with its margin (16 px) by 0.09 and 0.07. (The strength-trained network's
    border response reaches further: test_strength_trained_network_margin.)
    """
    net = ArbitraryStyleNetwork.load()
    for style in ("candy", "mondrian"):
        painting = images.resize_long_side(images.load_image(f"{data_dir}/styles/{style}.jpg"), fast.STYLE_SIZE)
        out = fast.stylize(net, np.full((170, 256, 3), 0.5, np.float32), [painting]).mean(-1)
        interior = out[8:-8, 8:-8].mean()
        bands = {"left": out[:, :3], "right": out[:, -3:], "top": out[:3], "bottom": out[-3:]}
        for side, band in bands.items():
            assert abs(band.mean() - interior) < 0.15, f"{style}: {side} {band.mean():.3f}, interior {interior:.3f}"


def test_strength_trained_network_margin(data_dir, monkeypatch):
    """The strength-trained network (checkpoints/arbitrary_strength) runs with a 32-px margin: no band on a flat photo,
    where a 16-px margin leaves its border response in the picture (left band 0.05 against 0.68 inside, candy)."""
    net = fast.load_network(os.path.join(ROOT, "checkpoints", "arbitrary_strength"))
    assert net.margin == 32 and ArbitraryStyleNetwork.load().margin == 16
    painting = images.resize_long_side(images.load_image(f"{data_dir}/styles/candy.jpg"), fast.STYLE_SIZE)

    def worst_band() -> float:
        out = fast.stylize(net, np.full((170, 256, 3), 0.5, np.float32), [painting]).mean(-1)
        interior = out[8:-8, 8:-8].mean()
        return max(abs(band.mean() - interior) for band in (out[:, :3], out[:, -3:], out[:3], out[-3:]))

    assert worst_band() < 0.15
    monkeypatch.setattr(type(net), "margin", 16)
    assert worst_band() > 0.3
