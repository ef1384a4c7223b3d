"""Warm starts: a network's trained parts copied, layer by layer, from a saved network folder.

A source with fewer skip levels, or without the linear transform, the moment head or the strength input, fits a
network that has them: its layers are copied and the parts it lacks keep their initialisation (zero projections, zero
FiLM), so the warm-started network computes exactly what the source did. Adam starts afresh.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from nst_tf.mobile import MobileConfig, MobileStyleNetwork, config_from_json, load_part
from nst_tf.network import ArbitraryStyleNetwork, NetworkConfig


class WarmStartError(ValueError):
    """The source network folder does not fit the network being trained."""


def init_arbitrary(net: ArbitraryStyleNetwork, ours: NetworkConfig, directory: str) -> list[str]:
    """Copy the decoder (and linear transform, moment head) weights from `directory`; the layers not in it."""
    source = ArbitraryStyleNetwork.load(directory)
    theirs = source.config
    shape = lambda c: (c.decoder_channels, c.upsample, c.preprocessing)  # noqa: E731
    if (shape(ours) != shape(theirs) or theirs.skip_levels > ours.skip_levels
            or theirs.linear_rank not in (0, ours.linear_rank) or theirs.moment_head not in (0, ours.moment_head)
            or theirs.strength_units not in (0, ours.strength_units)):
        raise WarmStartError(f"{directory}: network {theirs} does not fit {ours}")
    sources = {model.name: model for model in source.trained_models}
    fresh = []
    for model in net.trained_models:
        for layer in model.layers:
            if not layer.weights:
                continue
            if model.name not in sources or (model.name, layer.name) in source.zero_filled:
                fresh.append(layer.name)
                continue
            try:
                layer.set_weights(sources[model.name].get_layer(layer.name).get_weights())
            except ValueError:
                if not (layer.name.startswith(("skip", "strength_")) or layer.name.endswith("_film")):
                    raise WarmStartError(
                        f"{directory}: {model.name} layer {layer.name} missing or of another shape") from None
                fresh.append(layer.name)
    return fresh


def init_mobile(net: MobileStyleNetwork, ours: MobileConfig, directory: str) -> list[str]:
    """Copy the phone-sized transformer from `directory` (the same config, or one without the strength input, the
    palette or the skips); the layers not in it."""
    with open(os.path.join(directory, "config.json")) as f:
        theirs = config_from_json(f.read())
    skips = getattr(theirs, "skips", False)
    grown = dataclasses.replace(ours, strength_units=theirs.strength_units, palette=theirs.palette, skips=skips)
    if not isinstance(theirs, MobileConfig) or theirs != grown or theirs.strength_units not in (
            0, ours.strength_units) or skips > ours.skips:
        raise WarmStartError(f"{directory}: network {theirs} does not fit {ours}")
    weights_path = os.path.join(directory, "weights.npz")
    if theirs == ours:
        load_part(net.transformer, weights_path, "transformer", "does not fit the network")
        return []
    with np.load(weights_path) as data:  # a network without the strength input: its layers, the new ones fresh
        arrays = {k[len("transformer/"):]: v for k, v in data.items() if k.startswith("transformer/")}
    fresh = []
    for layer in net.transformer.layers:
        n = len(layer.get_weights())
        if not n:
            continue
        if f"{layer.name}/0" not in arrays:
            fresh.append(layer.name)
            continue
        layer.set_weights([np.asarray(arrays[f"{layer.name}/{i}"], np.float32) for i in range(n)])
    return fresh
