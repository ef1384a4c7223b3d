"""Preprocessing against hand-computed values, and the feature extractor's interface."""

import numpy as np
import pytest
import tensorflow as tf

from nst_tf import features, weights


def test_preprocess_caffe_hand_computed():
    pixel = np.array([[[[1.0, 0.5, 0.0]]]], np.float32)  # RGB -> BGR (0, 127.5, 255) minus BGR mean
    out = features.preprocess_caffe(pixel).numpy()
    np.testing.assert_allclose(out[0, 0, 0], [0 - 103.939, 127.5 - 116.779, 255 - 123.68], rtol=1e-6)


def test_preprocess_torch_hand_computed():
    pixel = np.array([[[[1.0, 0.5, 0.0]]]], np.float32)
    out = features.preprocess_torch(pixel).numpy()
    expected = [(1 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, (0 - 0.406) / 0.225]
    np.testing.assert_allclose(out[0, 0, 0], expected, rtol=1e-6)


@pytest.mark.parametrize("mode", ["caffe", "torch"])
def test_preprocessing_does_not_mutate_input(mode):
    images = np.random.default_rng(0).uniform(size=(1, 8, 8, 3)).astype(np.float32)
    before = images.copy()
    features.PREPROCESSORS[mode](images)
    np.testing.assert_array_equal(images, before)


def test_extractor_layers_shapes_and_no_mutation(random_vgg16_weights):
    extractor = features.build_extractor(random_vgg16_weights, "vgg16", ["block4_conv2"],
                                         ["block1_conv1", "block3_conv1"])
    images = np.random.default_rng(0).uniform(size=(2, 64, 48, 3)).astype(np.float32)
    before = images.copy()
    content, style = extractor(images)
    np.testing.assert_array_equal(images, before)
    assert [tuple(c.shape) for c in content] == [(2, 8, 6, 512)]
    assert [tuple(s.shape) for s in style] == [(2, 64, 48, 64), (2, 16, 12, 256)]
    # the submodel stops at the deepest requested layer
    assert "block5_conv1" not in [layer.name for layer in extractor.model.layers]


def test_extractor_rejects_unknown_layer(random_vgg16_weights):
    with pytest.raises(ValueError, match="unknown vgg16 layer 'block9_conv1'"):
        features.build_extractor(random_vgg16_weights, "vgg16", ["block9_conv1"], [])


def test_extractor_uses_recorded_preprocessing(lpips_weights):
    extractor = features.build_extractor(lpips_weights)
    assert extractor.spec == weights.WeightsSpec("vgg16", lpips_weights, "torch")
    assert extractor._preprocess is features.preprocess_torch
    override = features.build_extractor(lpips_weights, preprocessing="caffe")
    assert override.spec.preprocessing == "caffe"


def test_pretrained_features_are_informative(lpips_weights, data_dir):
    """Pretrained VGG separates two different photos far more than a photo and its slight blur."""
    from nst_tf import images

    extractor = features.build_extractor(lpips_weights, content_layers=["block4_conv2"], style_layers=[])
    a = images.resize_long_side(images.load_image(f"{data_dir}/content/tubingen.jpg"), 128)
    b = images.resize(images.load_image(f"{data_dir}/content/golden_gate.jpg"), *a.shape[:2])
    blurred = tf.image.resize(tf.image.resize(a, [64, 85]), a.shape[:2]).numpy()
    fa, fb, fblur = (extractor(x[None])[0][0] for x in (a, b, blurred))
    from nst_tf.losses import content_loss

    assert float(content_loss(fblur, fa)[0]) < 0.5 * float(content_loss(fb, fa)[0])
