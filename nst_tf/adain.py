"""AdaIN and the moment statistics of the feed-forward networks: style vectors of per-channel [mean, std] of encoder
levels, adaptive instance normalisation with them, blending, and the whole-image statistics that tiled inference
(nst_tf.tiling) gives a tile: `<site>/mean`, `<site>/variance` and covariances, collected group by group.
"""

from __future__ import annotations

import tensorflow as tf

from nst_tf import palette as palette_lib
from nst_tf.layers import EPS, Covariance


def moments_vector(features: tf.Tensor) -> tf.Tensor:
    """[B, H, W, C] features -> [B, 2C] style vector: per-channel mean then std."""
    mean, variance = tf.nn.moments(features, axes=[1, 2])
    return tf.concat([mean, tf.sqrt(variance + EPS)], axis=-1)


def adain(features: tf.Tensor, style_vector: tf.Tensor) -> tf.Tensor:
    """Adaptive instance normalisation: give `features` the mean/std in `style_vector`."""
    channels = features.shape[-1]
    mean, variance = tf.nn.moments(features, axes=[1, 2], keepdims=True)
    normalized = (features - mean) * tf.math.rsqrt(variance + EPS)
    style_mean = style_vector[:, None, None, :channels]
    style_std = style_vector[:, None, None, channels:]
    return normalized * style_std + style_mean


def levels_vector(levels: list[tf.Tensor]) -> tf.Tensor:
    """Feature maps of several levels -> one style vector: each level's [mean, std], shallow to deep."""
    return tf.concat([moments_vector(f) for f in levels], axis=-1)


def split_vector(vector: tf.Tensor, channels: tuple[int, ...]) -> list[tf.Tensor]:
    """Inverse layout of levels_vector: [B, 2 * sum(channels)] -> one [B, 2C] vector per level."""
    return tf.split(vector, [2 * c for c in channels], axis=-1)


def multi_adain(levels: list[tf.Tensor], style_vector: tf.Tensor) -> list[tf.Tensor]:
    """AdaIN of every level with its part of `style_vector`."""
    parts = split_vector(style_vector, tuple(int(f.shape[-1]) for f in levels))
    return [adain(f, v) for f, v in zip(levels, parts)]


def blend_vectors(style_vector: tf.Tensor, content_vector: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """alpha * style + (1 - alpha) * content; alpha is [B, 1] (or scalar) in [0, 1]."""
    alpha = tf.clip_by_value(tf.cast(alpha, tf.float32), 0.0, 1.0)
    return alpha * style_vector + (1.0 - alpha) * content_vector


def level_name(layer: str) -> str:
    """An encoder layer's name as a statistics site: block3_conv1 -> relu3_1."""
    return layer.replace("block", "relu").replace("_conv", "_")


def normalized_with(features: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor) -> tf.Tensor:
    """`features` with a given per-channel mean and variance ([B, C] each) removed: instance normalisation with
    statistics from elsewhere (the whole image, when the features are one tile of it)."""
    return (features - mean[:, None, None, :]) * tf.math.rsqrt(variance[:, None, None, :] + EPS)


def stats_moments(stats: dict[str, tf.Tensor], sites: list[str]) -> tf.Tensor:
    """What levels_vector gives, from whole-image statistics: each site's [mean, std], in order."""
    return tf.concat([tf.concat([stats[f"{s}/mean"], tf.sqrt(stats[f"{s}/variance"] + EPS)], -1) for s in sites],
                     axis=-1)


def reduce_stats(features: dict[str, tuple[str, tf.Tensor]]) -> dict[str, tf.Tensor]:
    """Site -> (kind, [B, H, W, C] features) -> the statistics the stats path reads: `<site>/mean` and
    `<site>/variance` ([B, C]) of a 'norm' site, the Covariance layer's [B, C * C] of a 'cov' site, a 'whole' site's
    value as it is (computed on the whole image)."""
    stats = {}
    for site, (kind, x) in features.items():
        if kind == "norm":
            stats[f"{site}/mean"], stats[f"{site}/variance"] = tf.nn.moments(x, axes=[1, 2])
        elif kind == "cov":
            stats[site] = Covariance()(x)
        else:
            stats[site] = x
    return stats


def collect_stats(net, content: tf.Tensor, style_vector: tf.Tensor, strength: float | tf.Tensor = 1.0
                  ) -> dict[str, tf.Tensor]:
    """Every whole-image statistic an untiled run of `net` on `content` uses, group by group (net.stat_groups)."""
    content = tf.convert_to_tensor(content, tf.float32)
    stats: dict[str, tf.Tensor] = {}
    for group in net.stat_groups():
        stats.update(reduce_stats(net.stat_features(content, style_vector, strength, stats, group)))
    return stats


def palette_with(images: tf.Tensor, palette: tf.Tensor, stats: dict[str, tf.Tensor]) -> tf.Tensor:
    """The palette layer with the output's opponent moments from `stats` (`output/mean`, `output/variance`);
    `images` unchanged when they are not there (the caller gives the assembled image its palette)."""
    if "output/mean" not in stats:
        return images
    opponent = palette_lib.to_opponent(images)
    normalized = ((opponent - stats["output/mean"][:, None, None, :])
                  * tf.math.rsqrt(stats["output/variance"][:, None, None, :] + palette_lib._EPS))
    return palette_lib.from_opponent(normalized * palette[:, None, None, 3:] + palette[:, None, None, :3])
