"""Optimiser controls, each checked by a measured effect on real images with offline pretrained VGG16."""

import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import last_line, run_cli

from nst_tf import color, features, images, losses, masks, optimize
from nst_tf.objective import LossWeights, Objective, style_targets

SIZE = 128


@pytest.fixture(scope="module")
def extractor(lpips_weights):
    return features.build_extractor(lpips_weights)


@pytest.fixture(scope="module")
def photos(data_dir):
    load = lambda path: images.resize_long_side(images.load_image(f"{data_dir}/{path}"), 256)  # noqa: E731
    return {"content": load("content/tubingen.jpg"), "starry": load("styles/starry_night.jpg"),
            "scream": load("styles/the_scream.jpg"), "mondrian": load("styles/mondrian.jpg")}


def style_loss(extractor, image, style):
    """Unweighted style loss of `image` against `style` (both as given)."""
    objective = Objective(extractor, image, style_targets(extractor, [style]), LossWeights(content=0, style=1, tv=0))
    return float(objective.terms(image[None])["style"])


def run(extractor, photos, styles, **kw):
    options = optimize.Options(**{"scales": (SIZE,), "steps": (40,), **kw})
    return optimize.stylize(extractor, photos["content"], [photos[s] for s in styles], options)


def test_luminance_keeps_content_chroma(extractor, photos):
    out = run(extractor, photos, ["starry"], preserve_colors="luminance")
    plain = run(extractor, photos, ["starry"])
    content = images.resize(photos["content"], *out.shape[:2])
    chroma = lambda x: color.rgb_to_yiq(x)[..., 1:]  # noqa: E731
    error, plain_error = (float(np.abs(chroma(x) - chroma(content)).mean()) for x in (out, plain))
    luma_change = float(np.abs(color.rgb_to_yiq(out)[..., 0] - color.rgb_to_yiq(content)[..., 0]).mean())
    print(f"chroma error: luminance mode {error:.4f}, plain {plain_error:.4f}; luminance changed by {luma_change:.3f}")
    assert error < 0.01 and plain_error > 5 * error and luma_change > 0.03


def test_histogram_matching(extractor, photos):
    matched = color.match_color(photos["starry"], photos["content"])
    for stat in (np.mean, np.std):
        np.testing.assert_allclose(stat(matched.reshape(-1, 3), 0), stat(photos["content"].reshape(-1, 3), 0),
                                   atol=0.03)
    out = run(extractor, photos, ["starry"], preserve_colors="histogram")
    plain = run(extractor, photos, ["starry"])
    content_mean = photos["content"].reshape(-1, 3).mean(0)
    gap, plain_gap = (float(np.abs(x.reshape(-1, 3).mean(0) - content_mean).sum()) for x in (out, plain))
    print(f"mean colour distance to the content: histogram mode {gap:.3f}, plain {plain_gap:.3f}")
    assert gap < 0.5 * plain_gap


def test_style_blend_moves_towards_the_heavier_style(extractor, photos):
    a = run(extractor, photos, ["starry", "scream"], style_blend=(0.9, 0.1))
    b = run(extractor, photos, ["starry", "scream"], style_blend=(0.1, 0.9))
    size = lambda s: images.resize_long_side(photos[s], SIZE)  # noqa: E731
    la = [style_loss(extractor, a, size(s)) for s in ("starry", "scream")]
    lb = [style_loss(extractor, b, size(s)) for s in ("starry", "scream")]
    print(f"0.9/0.1 blend: starry {la[0]:.3f}, scream {la[1]:.3f}; 0.1/0.9: starry {lb[0]:.3f}, scream {lb[1]:.3f}")
    assert la[0] < lb[0] and lb[1] < la[1]


def test_style_scale_changes_stroke_size(extractor, photos):
    small = run(extractor, photos, ["starry"], style_scale=0.5)
    large = run(extractor, photos, ["starry"], style_scale=2.0)
    fine = images.resize_long_side(photos["starry"], SIZE // 2)
    coarse = images.resize_long_side(photos["starry"], SIZE * 2)
    loss = {(a, b): style_loss(extractor, out, ref) for a, out in (("small", small), ("large", large))
            for b, ref in (("fine", fine), ("coarse", coarse))}
    print(f"style loss of (output, style size): {({f'{a}/{b}': round(v, 3) for (a, b), v in loss.items()})}")
    assert loss["small", "fine"] < loss["large", "fine"]
    assert loss["large", "coarse"] < loss["small", "coarse"]


def test_mask_regions_follow_their_styles(extractor, photos):
    h, w = images.resize_long_side(photos["content"], SIZE).shape[:2]
    mask = np.zeros((h, w, 3), np.float32)
    mask[:, w // 2:] = 1.0  # left: starry (dark region first), right: mondrian
    regions = masks.regions_from_mask(mask, 2)
    options = optimize.Options(scales=(SIZE,), steps=(60,))
    out = optimize.stylize(extractor, photos["content"], [photos["starry"], photos["mondrian"]], options, None, regions)
    styles = [images.resize_long_side(photos[s], SIZE) for s in ("starry", "mondrian")]
    grams = [style_targets(extractor, [s])[0] for s in styles]
    _, feats = extractor(out[None])
    table = []
    for r in range(2):
        m = tf.image.resize(regions[None, ..., r:r + 1], feats[2].shape[1:3], method="area")
        g = losses.masked_gram_matrix(feats[2], m)
        table.append([float(losses.relative_squared_error(g, grams[s][2])[0]) for s in range(2)])
    print(f"block3_conv1 Gram error, region x style: {np.round(table, 3).tolist()}")
    assert table[0][0] < table[0][1] and table[1][1] < table[1][0]


@pytest.mark.slow  # 32 s: run by benchmarks/slow_checks.py, not in the 10-minute CI suite
def test_multiscale_beats_single_scale_at_equal_compute(extractor, photos):
    """256 px: 128->256 coarse-to-fine vs 256 alone, equal pixel-steps (20 at 128 cost ~5 at 256: 5 + 35 = 40)."""
    final = 256
    content = photos["content"]
    targets = style_targets(extractor, [photos["starry"]])
    objective = Objective(extractor, content, targets)
    single = optimize.stylize(extractor, content, [photos["starry"]], optimize.Options(scales=(final,), steps=(40,)))
    multi = optimize.stylize(extractor, content, [photos["starry"]],
                             optimize.Options(scales=(128, final), steps=(20, 35)))
    loss_single, loss_multi = (float(objective.terms(x[None])["total"]) for x in (single, multi))
    print(f"total loss at {final} px: single scale {loss_single:.3f}, coarse-to-fine {loss_multi:.3f}")
    assert loss_multi < loss_single


def test_cli_logdir_contact_sheet_and_mask_errors(tmp_path, data_dir, lpips_weights):
    content = f"{data_dir}/content/tubingen.jpg"
    styles = f"{data_dir}/styles/starry_night.jpg,{data_dir}/styles/the_scream.jpg"
    out, sheet, logdir = tmp_path / "out.png", tmp_path / "sheet.jpg", tmp_path / "tb"
    mask = tmp_path / "mask.png"
    images.save_image(np.concatenate([np.zeros((30, 20, 3)), np.ones((30, 20, 3))], axis=1), str(mask))  # wrong size
    proc = run_cli("nst_tf.cli.stylize", f"--content={content}", f"--style={styles}", f"--output={out}",
                   f"--weights={lpips_weights}", "--size=64", "--scales=32,64", "--steps=3,2", f"--mask={mask}",
                   f"--logdir={logdir}", "--image_every=2", f"--contact_sheet={sheet}")
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert images.load_image(str(out)).shape == (48, 64, 3)
    assert images.load_image(str(sheet)).shape[1] > 3 * 200  # content | 2 styles | result, 256 px high
    tags = set()
    for event_file in os.listdir(logdir):
        for event in tf.compat.v1.train.summary_iterator(str(logdir / event_file)):
            tags.update(v.tag for v in event.summary.value)
    assert {"loss/content", "loss/style", "loss/tv", "loss/total", "image"} <= tags

    three = tmp_path / "three.png"
    grey = np.repeat(np.repeat(np.array([0.0, 0.5, 1.0]), 20)[None, :, None], 3, axis=-1)
    images.save_image(np.repeat(grey, 20, axis=0), str(three))
    cases = {f"--mask={three}": "has 3 regions", "--style_blend=1": "1 weights for 2 styles",
             "--style_blend=0,0": "sum > 0"}
    for flag, expected in cases.items():
        target = tmp_path / "bad.png"
        proc = run_cli("nst_tf.cli.stylize", f"--content={content}", f"--style={styles}", f"--output={target}",
                       f"--weights={lpips_weights}", "--size=64", "--steps=1", flag)
        assert proc.returncode != 0 and expected in last_line(proc.stderr), (flag, proc.stderr[-300:])
        assert not target.exists()
