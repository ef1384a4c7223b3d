"""Network folders on disk: weights.npz (every weight as `<model>/<layer>/<index>`) and config.json, written
atomically; weights in and out of Keras models, and the weighted mean of several folders.
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np


def weight_arrays(model: keras.Model) -> dict[str, np.ndarray]:
    """Every weight of `model` as `<layer>/<index>` (a layer holding sublayers' weights lists them all)."""
    return {f"{layer.name}/{i}": w for layer in model.layers for i, w in enumerate(layer.get_weights())}


def set_weight_arrays(model: keras.Model, arrays: dict[str, np.ndarray]) -> None:
    """Inverse of weight_arrays; KeyError or ValueError when `arrays` does not fit."""
    for layer in model.layers:
        n = len(layer.get_weights())
        if n:
            layer.set_weights([np.asarray(arrays[f"{layer.name}/{i}"], np.float32) for i in range(n)])


def parted(arrays: dict[str, np.ndarray], part: str) -> dict[str, np.ndarray]:
    """The `<part>/<layer>/<i>` entries of a weights file as `<layer>/<i>` (set_weight_arrays' keys)."""
    return {key[len(part) + 1:]: w for key, w in arrays.items() if key.startswith(part + "/")}


def write_folder(directory: str, arrays: dict[str, np.ndarray], config_json: str) -> None:
    """A network folder: weights.npz (`arrays`, compressed) and config.json, each written atomically."""
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, ".weights.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, os.path.join(directory, "weights.npz"))
    with open(os.path.join(directory, ".config.tmp"), "w") as f:
        f.write(config_json)
    os.replace(os.path.join(directory, ".config.tmp"), os.path.join(directory, "config.json"))


def read_folder(directory: str) -> tuple[str, dict[str, np.ndarray]]:
    """A network folder's config.json text and weights.npz arrays; a one-line error when either is missing."""
    config_path, weights_path = os.path.join(directory, "config.json"), os.path.join(directory, "weights.npz")
    for path in (config_path, weights_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: missing (a model folder holds config.json and weights.npz)")
    with open(config_path) as f:
        config_json = f.read()
    with np.load(weights_path) as data:
        return config_json, dict(data)


def average_folders(folders: list[str], out: str, weights: list[float] | None = None) -> None:
    """Write the (weighted) mean of several saved networks of one architecture: iterate averaging of training
    snapshots, or interpolation between a network and the one it was fine-tuned from.

    A network without the moment head counts as the same network with a zero head (its output projection zero,
    its first layer that of the first folder with a head): it computes exactly what the network without it does.
    """
    if not folders:
        raise ValueError("average_folders: no network folders given")
    weights = [1.0] * len(folders) if weights is None else [float(w) for w in weights]
    if len(weights) != len(folders) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"average_folders: {len(weights)} weights for {len(folders)} folders; they must be >= 0 "
                         "and not all zero")
    loaded = [read_folder(f) for f in folders]
    configs = [json.loads(text) for text, _ in loaded]
    reference = next((i for i, c in enumerate(configs) if c.get("moment_head")), 0)
    config_json, first = loaded[reference]
    config = configs[reference]
    head = {k: (np.zeros_like(v) if k.startswith("moment_head/mhead_2/") else v)
            for k, v in first.items() if k.startswith("moment_head/")}
    total = {k: np.zeros(v.shape, np.float64) for k, v in first.items()}
    for folder, other, (_, arrays), weight in zip(folders, configs, loaded, weights):
        if other.get("moment_head", 0) == 0 and config.get("moment_head"):
            other, arrays = {**other, "moment_head": config["moment_head"]}, {**arrays, **head}
        if other != config or arrays.keys() != total.keys() or any(arrays[k].shape != total[k].shape for k in total):
            raise ValueError(f"{folder}: not the architecture of {folders[reference]}; only networks of one design "
                             "average (with or without the moment head)")
        total = {k: total[k] + weight * arrays[k] for k in total}
    write_folder(out, {k: (v / sum(weights)).astype(np.float16) for k, v in total.items()}, config_json)
