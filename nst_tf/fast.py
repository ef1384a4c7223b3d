"""One-forward-pass stylization with the arbitrary-style network, at any image size."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from nst_tf.mobile import BUNDLED_DIR as MOBILE_DIR
from nst_tf.mobile import MobileConfig, MobileStyleNetwork, config_from_json
from nst_tf.network import BUNDLED_DIR, MARGIN, STRIDE, ArbitraryStyleNetwork  # noqa: F401 (MARGIN re-exported)
from nst_tf.strength import DEFAULT_STRENGTH, STRENGTH_MAX, check_strength  # noqa: F401 (re-exported)

Network = ArbitraryStyleNetwork | MobileStyleNetwork

STYLE_SIZE = 256  # style images are seen at this long side when predicting their vector


def load_network(directory: str | None = None) -> Network:
    """The network saved in `directory` (config.json + weights.npz), of either kind; the bundled arbitrary-style
    network if None, and the bundled ones for the names 'arbitrary' and 'mobile'."""
    if directory in ("mobile", "arbitrary") and not os.path.isdir(directory):
        directory = MOBILE_DIR if directory == "mobile" else BUNDLED_DIR
    directory = directory or BUNDLED_DIR
    config_path = os.path.join(directory, "config.json")
    try:
        with open(config_path) as f:
            config = config_from_json(f.read())
    except OSError:
        raise FileNotFoundError(f"{config_path}: missing (a model folder holds config.json and weights.npz)") from None
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{config_path}: not a network config ({exc})") from None
    network_class = MobileStyleNetwork if isinstance(config, MobileConfig) else ArbitraryStyleNetwork
    return network_class.load(directory)


def style_vector(net: Network, styles: Sequence[np.ndarray],
                 blend: Sequence[float] | None = None) -> tf.Tensor:
    """The blend-weighted mean of the style vectors of several [H, W, 3] style images: [1, V]."""
    if not styles:
        raise ValueError("at least one style image is needed")
    weights = [1.0] * len(styles) if blend is None else [float(b) for b in blend]
    if len(weights) != len(styles) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"style blend {weights} must give one non-negative weight per style, sum > 0")
    vectors = [net.predict_style(tf.constant(s[None], tf.float32)) for s in styles]
    total = sum(weights)
    return tf.add_n([v * (w / total) for v, w in zip(vectors, weights)])


def stylize_padded(net: Network, content: tf.Tensor, vector: tf.Tensor, strength: float | tf.Tensor = 1.0,
                   restate_channels: bool = False) -> tf.Tensor:
    """Stylize [B, H, W, 3] content of any size: mirror-pad to the stride plus the network's margin a side
    (tiling.margin_of: MARGIN unless the network has its own), stylize, crop back.

    restate_channels (resizable TFLite graphs only): reshape the padded content to its static channel count,
    which the converter loses through the computed mirror pad. Not in serving graphs: there Grappler folds the
    reshape with the caller's shape before the input validation can name a wrong channel count.

    Static H and W (a fixed-size TFLite model) keep every shape static: with computed paddings the TFLite graph
    gets dynamic tensors, which XNNPACK does not take (the phone-sized transfer ran 66 ms instead of 45 ms so).
    """
    content = tf.convert_to_tensor(content, tf.float32)
    static = content.shape[1] is not None and content.shape[2] is not None
    height, width = (content.shape[1], content.shape[2]) if static else (tf.shape(content)[1], tf.shape(content)[2])
    from nst_tf import tiling

    wanted = tiling.margin_of(net)
    if static:
        margin = wanted if min(height, width) > 2 * wanted else STRIDE // 2
    else:
        margin = tf.where(tf.minimum(height, width) > 2 * wanted, wanted, STRIDE // 2)
    pad_h, pad_w = (-height) % STRIDE + 2 * margin, (-width) % STRIDE + 2 * margin
    top, left = pad_h // 2, pad_w // 2
    padded = tf.pad(content, [[0, 0], [top, pad_h - top], [left, pad_w - left], [0, 0]], mode="REFLECT")
    if restate_channels and not static:  # the TFLite converter loses the channel count through a computed pad
        shape = tf.shape(padded)
        padded = tf.reshape(padded, [shape[0], shape[1], shape[2], content.shape[-1]])
    out = net.stylize(padded, vector, strength)
    return out[:, top:top + height, left:left + width, :]


def stylize(net: Network, content: np.ndarray, styles: Sequence[np.ndarray],
            strength: float = DEFAULT_STRENGTH, blend: Sequence[float] | None = None,
            tile: int | None = None) -> np.ndarray:
    """Stylize one [H, W, 3] content image in [0, 1] with one or more style images at a strength in [0, 2] (0: the
    photo, 1: the painting's look, 2: more painterly); same size out.

    Images larger than `tile` px (None: chosen from the free memory, nst_tf.tiling.choose_tile; 0: never) are
    stylized in overlapping tiles with the whole image's statistics (nst_tf.tiling). Running out of memory is a
    tiling.OutOfMemory (a MemoryError) whose message names the size and the fix."""
    from nst_tf import tiling

    strength = check_strength(strength)
    height, width = content.shape[:2]
    side = tiling.check_tile(tiling.choose_tile(net) if tile is None else tile)
    try:
        vector = style_vector(net, styles, blend)
        if side and max(height, width) + 2 * tiling.margin_of(net) > side:
            return tiling.stylize_tiled(net, content, vector, strength, side)
        return stylize_padded(net, tf.constant(content[None], tf.float32), vector, strength).numpy()[0]
    except (tf.errors.ResourceExhaustedError, MemoryError) as exc:
        if isinstance(exc, tiling.OutOfMemory):
            raise
        untiled = not side or max(height, width) + 2 * tiling.margin_of(net) <= side
        raise tiling.OutOfMemory(tiling.out_of_memory_message(width, height, 0 if untiled else side)) from None
