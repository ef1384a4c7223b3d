"""The phone-sized stylizer: a small transformer network driven by the style vector (Ghiasi et al. 2017's design).

The arbitrary-style network (nst_tf.network) runs VGG16 on the content and a large decoder: about 44 GMAC at
384 px. This one keeps its style predictor (VGG16 to relu4_1, the same 1920 moments; run on the style image
average-pooled `style_pool` times, the scale of the training crops, for a fraction of the cost) and replaces
encoder + decoder by a Johnson/Magenta transformer:
  content -> conv 9x9 -> conv 3x3 /2 -> conv 3x3 /2 -> residual blocks -> (resize x2, conv 3x3) x 2 -> conv 3x3
with a conditional instance normalisation after every convolution but the last, whose per-channel scale and shift
come from the style vector through a bottleneck (log1p(vector) -> dense -> `bottleneck` floats -> dense per
layer). About 6 GMAC at 384 px with the default widths. Reflect padding everywhere, resize-then-convolve
upsampling (no checkerboard), a sigmoid output in [0, 1]; every op is a TFLite builtin.

It is trained (nst-train --network=mobile, or tools/jax_train.py --student) with the Gatys losses of nst-train and
optionally a distillation term towards the arbitrary-style network's output; the bundled one was distilled
(configs/train_mobile.cfg), then trained on the losses alone (configs/train_mobile_tune.cfg).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import keras
import numpy as np
import tensorflow as tf

from nst_tf import palette as palette_lib
from nst_tf import strength as strength_lib
from nst_tf.adain import levels_vector, normalized_with, palette_with
from nst_tf.layers import ReflectionPadding2D, ResizeUpsampling
from nst_tf.network import BUNDLED_DIR as BUNDLED_ARBITRARY_DIR
from nst_tf.network import ENCODER_CHANNELS, NetworkConfig, build_encoder, load_vgg_encoder
from nst_tf.network_io import parted, set_weight_arrays, weight_arrays, write_folder

_EPS = 1e-5
BUNDLED_DIR = os.path.join(os.path.dirname(__file__), "models", "mobile")


@dataclass(frozen=True)
class MobileConfig:
    """Widths of the transformer; the style vector is the arbitrary network's (relu1_1..relu4_1 moments)."""

    channels: tuple[int, int, int] = (16, 32, 64)  # full, 1/2 and 1/4 resolution
    residual_blocks: int = 5
    bottleneck: int = 100
    kernels: tuple[int, int] = (9, 3)  # of the first and the last convolution (full resolution)
    style_pool: int = 2  # the predictor sees style images average-pooled by this factor (cost / pool^2)
    preprocessing: str = "torch"  # of the predictor's VGG16 weights
    kind: str = "mobile"
    strength_units: int = 0  # > 0: the strength, through an embedding this wide, shifts the style bottleneck
    palette: bool = False  # the output gets the style's pixel colour moments (6 more floats in the style vector)
    skips: bool = False  # the encoder's full- and half-resolution features reach the upsampling path (a U-Net)

    @property
    def moments_size(self) -> int:
        """Length of the moments part: mean and std of each channel of relu1_1..relu4_1."""
        return 2 * sum(ENCODER_CHANNELS)

    @property
    def vector_size(self) -> int:
        """Length of a style vector: the moments, then the palette if any."""
        return self.moments_size + (palette_lib.SIZE if self.palette else 0)

    def to_json(self) -> str:
        """Stable JSON form, stored beside the weights."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> MobileConfig:
        """Inverse of to_json."""
        data = json.loads(text)
        data["channels"] = tuple(data["channels"])
        data["kernels"] = tuple(data["kernels"])
        data.setdefault("strength_units", 0)  # networks saved before the strength control
        data.setdefault("palette", False)  # and before the palette layer
        data.setdefault("skips", False)  # and before the skips
        return cls(**data)


def parse_channels(text: str) -> tuple[int, int, int]:
    """"32,64,128" -> the transformer's widths at full, 1/2 and 1/4 resolution; ValueError unless three positive."""
    try:
        widths = tuple(int(c) for c in text.split(","))
    except ValueError:
        widths = ()
    if len(widths) != 3 or min(widths) < 1:
        raise ValueError(f"takes three positive widths, got {text}")
    return widths


def config_from_json(text: str) -> NetworkConfig | MobileConfig:
    """A network folder's config.json -> the config of its kind (phone-sized or arbitrary-style)."""
    return MobileConfig.from_json(text) if json.loads(text).get("kind") == "mobile" else NetworkConfig.from_json(text)


def instance_norm(x: tf.Tensor, scale: tf.Tensor, shift: tf.Tensor) -> tf.Tensor:
    """Normalise each channel of each image over positions, then scale and shift ([B, C] each)."""
    mean, variance = tf.nn.moments(x, axes=[1, 2], keepdims=True)
    return (x - mean) * tf.math.rsqrt(variance + _EPS) * scale[:, None, None, :] + shift[:, None, None, :]


class ConditionalInstanceNorm(keras.layers.Layer):
    """Instance norm whose scale (1 + ...) and shift are a dense function of the style bottleneck."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.dense = keras.layers.Dense(2 * channels, kernel_initializer="zeros", name="params")

    def build(self, input_shape):  # noqa: D102
        x_shape, z_shape = input_shape
        self.dense.build(z_shape)
        super().build(input_shape)

    def call(self, inputs):  # noqa: D102
        x, z = inputs
        params = self.dense(z)
        return instance_norm(x, 1.0 + params[:, :self.channels], params[:, self.channels:])

    def get_config(self):  # noqa: D102
        return {**super().get_config(), "channels": self.channels}


class Log1p(keras.layers.Layer):
    """log(1 + x) of the first `size` floats: squashes the style vector's moments (all >= 0, up to tens) to a
    trainable range (the palette after them is not read here)."""

    def __init__(self, size: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.size = size

    def call(self, x):  # noqa: D102
        return tf.math.log1p(tf.maximum(x[:, :self.size] if self.size else x, 0.0))

    def compute_output_shape(self, input_shape):  # noqa: D102
        return (input_shape[0], self.size or input_shape[-1])

    def get_config(self):  # noqa: D102
        return {**super().get_config(), "size": self.size}


def _conv(x, channels: int, kernel: int, name: str, stride: int = 1):
    x = ReflectionPadding2D(kernel // 2, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(channels, kernel, strides=stride, padding="valid", name=name)(x)


def _norm_relu(x, z, channels: int, name: str, relu: bool = True):
    x = ConditionalInstanceNorm(channels, name=name)([x, z])
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _skip_in(x, skip, level: int, embedding):
    """x plus a zero-initialised 1x1 projection of the encoder's features at x's resolution, modulated by the strength
    embedding if any (FiLM): the photo's detail reaches the upsampling path, as much as the strength asks."""
    projected = keras.layers.Conv2D(x.shape[-1], 1, kernel_initializer="zeros", name=f"skip{level}")(skip)
    return keras.layers.Add(name=f"skip{level}_add")([x, strength_lib.film(projected, embedding, f"skip{level}")])


def build_transformer(config: MobileConfig = MobileConfig()) -> keras.Model:
    """(content [B, H, W, 3] in [0, 1], H and W multiples of 4; style vector [B, V] [; strength [B, 1]]) -> image in
    [0, 1] (before the palette layer). The strength's embedding shifts the style bottleneck, so every conditional
    instance norm sees it, and modulates the skips if any. Every layer added to the bundled design (strength, skips)
    starts at zero: a network warm-started from one without them computes what it did."""
    c1, c2, c3 = config.channels
    content = keras.Input((None, None, 3), name="content")
    vector = keras.Input((config.vector_size,), name="style_vector")
    z = keras.layers.Dense(config.bottleneck, name="bottleneck")(Log1p(config.moments_size, name="log1p")(vector))
    inputs, embedding = [content, vector], None
    if config.strength_units:
        strength = keras.Input((1,), name="strength")
        inputs.append(strength)
        embedding = strength_lib.embed(strength, config.strength_units)
        shift = keras.layers.Dense(config.bottleneck, kernel_initializer="zeros", name="strength_shift")(embedding)
        z = keras.layers.Add(name="bottleneck_strength")([z, shift])
    full = _norm_relu(_conv(content, c1, config.kernels[0], "conv1"), z, c1, "in1")
    half = _norm_relu(_conv(full, c2, 3, "conv2", stride=2), z, c2, "in2")
    x = _norm_relu(_conv(half, c3, 3, "conv3", stride=2), z, c3, "in3")
    for i in range(config.residual_blocks):
        y = _norm_relu(_conv(x, c3, 3, f"res{i}_conv1"), z, c3, f"res{i}_in1")
        y = _norm_relu(_conv(y, c3, 3, f"res{i}_conv2"), z, c3, f"res{i}_in2", relu=False)
        x = keras.layers.Add(name=f"res{i}_add")([x, y])
    for level, skip, channels in ((2, half, c2), (1, full, c1)):
        x = ResizeUpsampling((2, 2), "nearest", name=f"up{level}")(x)
        if config.skips:
            x = _skip_in(x, skip, level, embedding)
        x = _norm_relu(_conv(x, channels, 3, f"up{level}_conv"), z, channels, f"up{level}_in")
    x = keras.layers.Activation("sigmoid", name="image")(_conv(x, 3, config.kernels[1], "conv_out"))
    return keras.Model(inputs, x, name="transformer")


class MobileStyleNetwork:
    """VGG16 style predictor + small transformer, with ArbitraryStyleNetwork's interface."""

    whole_sites = ("content_vector",)  # statistics computed on the whole image at once (nst_tf.tiling)
    # the convolutions a dynamic-range int8 export may keep in float, in the order it tries them: after the
    # strength-modulated first norm, conv2's input spans hundreds with detail at a few units, and one int8 scale for
    # the whole tensor loses it (docs/training_log.md); then conv3, as conv1 in float costs most time (docs/export.md)
    int8_float_candidates = ("conv2", "conv3", "conv1")

    def __init__(self, config: MobileConfig = MobileConfig()):
        self.config = config
        self.encoder = build_encoder(config.preprocessing)
        self.transformer = build_transformer(config)

    @property
    def vector_size(self) -> int:
        """Length of this network's style vectors."""
        return self.config.vector_size

    @property
    def models(self) -> tuple[keras.Model, ...]:
        """The Keras models holding the weights (what an export tracks)."""
        return self.encoder, self.transformer

    def predict_style(self, style_images: tf.Tensor) -> tf.Tensor:
        """[B, H, W, 3] style images in [0, 1] -> [B, vector_size] style vectors (of the style_pool-times smaller
        image: a 256-px style is seen at 128 px, the scale of the training crops, for a quarter of the cost)."""
        style_images = tf.convert_to_tensor(style_images, tf.float32)
        pool = self.config.style_pool
        if pool > 1:
            style_images = tf.nn.avg_pool2d(style_images, pool, pool, "VALID")
        moments = levels_vector(self.encoder(style_images))
        if not self.config.palette:
            return moments
        return tf.concat([moments, palette_lib.pixel_moments(style_images)], axis=-1)

    def content_vector(self, content_images: tf.Tensor, side: int = 256) -> tf.Tensor:
        """The content's own style vector (for alpha < 1), predicted at `side` px long side like a style."""
        shape = tf.shape(content_images)
        scale = side / tf.cast(tf.maximum(shape[1], shape[2]), tf.float32)
        size = tf.cast(tf.round(tf.cast(shape[1:3], tf.float32) * scale), tf.int32)
        return self.predict_style(tf.image.resize(content_images, size))  # bilinear: a TFLite builtin

    def transform(self, content_images: tf.Tensor, style_vector: tf.Tensor, strength: tf.Tensor,
                  training: bool = False) -> tf.Tensor:
        """The transformer (with the strength if it takes it) and the palette layer (if any): unclipped images."""
        inputs = [content_images, style_vector]
        if self.config.strength_units:
            inputs.append(strength)
        images = self.transformer(inputs, training=training)
        if not self.config.palette:
            return images
        return palette_lib.match_palette(images, style_vector[:, -palette_lib.SIZE:])

    def stylize(self, content_images: tf.Tensor, style_vector: tf.Tensor, strength: float | tf.Tensor = 1.0,
                clip: bool = True, stats: dict[str, tf.Tensor] | None = None) -> tf.Tensor:
        """Content images in [0, 1] (sides multiples of 4) + style vectors at a strength (scalar or [B], in [0, 2])
        -> stylized images in [0, 1]. Up to 1 the strength blends the style vector with the content's own.

        stats (image_stats of a whole image, for a tile of it): every instance norm's mean and variance and the
        content's own vector come from there; the palette layer then needs the output's moments in stats too."""
        content_images = tf.convert_to_tensor(content_images, tf.float32)
        batch = tf.shape(content_images)[0]
        style_vector = tf.broadcast_to(style_vector, [batch, tf.shape(style_vector)[-1]])
        strength = strength_lib.as_column(strength, batch)
        if stats is not None:
            vector = self.target_vector(style_vector, strength, stats)
            images = self._forward(content_images, vector, strength, stats)
            if self.config.palette:
                images = palette_with(images, vector[:, -palette_lib.SIZE:], stats)
            return tf.clip_by_value(images, 0.0, 1.0) if clip else images
        amount = strength_lib.blend_amount(strength)
        # the content's own vector costs a VGG16 pass: only when some strength < 1 (a TFLite IF op when exported)
        style_vector = tf.cond(tf.reduce_all(amount >= 1.0), lambda: style_vector,
                               lambda: amount * style_vector + (1.0 - amount) * self.content_vector(content_images))
        images = self.transform(content_images, style_vector, strength)
        return tf.clip_by_value(images, 0.0, 1.0) if clip else images

    def __call__(self, content_images, style_images, strength=1.0):
        """Stylize content with style images directly (the combined model)."""
        return self.stylize(content_images, self.predict_style(style_images), strength)

    # -- whole-image statistics (tiled inference, nst_tf.tiling) -----------------------
    @property
    def norm_sites(self) -> list[str]:
        """The conditional instance norms, in the order the transformer applies them."""
        blocks = [f"res{i}_in{j}" for i in range(self.config.residual_blocks) for j in (1, 2)]
        return ["in1", "in2", "in3", *blocks, "up2_in", "up1_in"]

    def stat_groups(self) -> list[list[str]]:
        """Every whole-image statistic stylize() reads, in groups that need only the groups before them: the
        content's own vector (from the whole image), then each instance norm's moments in turn (each norm's input
        depends on the norms before it)."""
        return [["content_vector"], *([site] for site in self.norm_sites)]

    def stat_features(self, content_images: tf.Tensor, style_vector: tf.Tensor, strength: float | tf.Tensor,
                      stats: dict[str, tf.Tensor], sites: list[str]) -> dict[str, tuple[str, tf.Tensor]]:
        """The inputs of the instance norms in `sites` ('norm': their moments over positions are the statistics),
        with the norms before them normalised by `stats`; 'content_vector' is a 'whole' site (one value of the
        whole image: its own style vector, as stylize predicts it)."""
        content_images = tf.convert_to_tensor(content_images, tf.float32)
        if "content_vector" in sites:
            return {"content_vector": ("whole", self.content_vector(content_images))}
        batch = tf.shape(content_images)[0]
        style_vector = tf.broadcast_to(style_vector, [batch, tf.shape(style_vector)[-1]])
        strength = strength_lib.as_column(strength, batch)
        return self._forward(content_images, self.target_vector(style_vector, strength, stats), strength, stats,
                             sites)

    def image_stats(self, content_images: tf.Tensor, style_vector: tf.Tensor, strength: float | tf.Tensor = 1.0
                    ) -> dict[str, tf.Tensor]:
        """Every whole-image statistic stylize() computes from `content_images` (a batch of one) with this style
        vector and strength: give them to stylize(stats=...) of a tile of the image."""
        content_images = tf.convert_to_tensor(content_images, tf.float32)
        stats = {"content_vector": self.content_vector(content_images)}
        batch = tf.shape(content_images)[0]
        style_vector = tf.broadcast_to(style_vector, [batch, tf.shape(style_vector)[-1]])
        strength = strength_lib.as_column(strength, batch)
        self._forward(content_images, self.target_vector(style_vector, strength, stats), strength, stats, fill=True)
        return stats

    def target_vector(self, style_vector: tf.Tensor, strength: float | tf.Tensor, stats: dict[str, tf.Tensor]
                      ) -> tf.Tensor:
        """The style vector blended with the content's own (stats['content_vector']) by the strength."""
        style_vector = tf.convert_to_tensor(style_vector, tf.float32)
        amount = strength_lib.blend_amount(strength_lib.as_column(strength, tf.shape(style_vector)[0]))
        return amount * style_vector + (1.0 - amount) * stats["content_vector"]

    def _forward(self, content_images: tf.Tensor, vector: tf.Tensor, strength: tf.Tensor,
                 stats: dict[str, tf.Tensor], sites: list[str] | None = None, fill: bool = False):
        """The transformer layer by layer (its own weights), each instance norm with its mean and variance from
        `stats`: the image before the palette layer; with `sites`, the input of the first of those norms instead
        (site -> ('norm', features)), computed no further (each norm's input needs the norms before it). fill: the
        norms missing from `stats` use their input's own moments and add them to `stats` (one pass of image_stats)."""
        layer = self.transformer.get_layer
        z = layer("bottleneck")(layer("log1p")(vector))
        embedding = None
        if self.config.strength_units:
            embedding = strength_lib.replay_embed(layer, strength)
            z = layer("bottleneck_strength")([z, layer("strength_shift")(embedding)])
        wanted, found = set(sites or ()), {}

        def conv(x, name):
            return layer(name)(layer(f"{name}_pad")(x))

        def norm(x, name, relu=True):
            if name in wanted:
                found[name] = ("norm", x)
                return None
            if fill and f"{name}/mean" not in stats:
                stats[f"{name}/mean"], stats[f"{name}/variance"] = tf.nn.moments(x, axes=[1, 2])
            norm_layer = layer(name)
            params = norm_layer.dense(z)[:, None, None, :]
            scale, shift = 1.0 + params[..., :norm_layer.channels], params[..., norm_layer.channels:]
            x = normalized_with(x, stats[f"{name}/mean"], stats[f"{name}/variance"]) * scale + shift
            return layer(f"{name}_relu")(x) if relu else x

        def done():
            return bool(found)

        x = norm(conv(content_images, "conv1"), "in1")
        skips = {1: x}
        for level, name, norm_name in ((2, "conv2", "in2"), (3, "conv3", "in3")):
            if done():
                return found
            x = skips[level] = norm(conv(x, name), norm_name)
        for i in range(self.config.residual_blocks):
            if done():
                return found
            y = norm(conv(x, f"res{i}_conv1"), f"res{i}_in1")
            if done():
                return found
            y = norm(conv(y, f"res{i}_conv2"), f"res{i}_in2", relu=False)
            if done():
                return found
            x = layer(f"res{i}_add")([x, y])
        for level in (2, 1):
            if done():
                return found
            x = layer(f"up{level}")(x)
            if self.config.skips:
                projected = layer(f"skip{level}")(skips[level])
                if embedding is not None:
                    projected = layer(f"skip{level}_filmed")([projected, layer(f"skip{level}_film")(embedding)])
                x = layer(f"skip{level}_add")([x, projected])
            x = norm(conv(x, f"up{level}_conv"), f"up{level}_in")
        if done():
            return found
        return layer("image")(conv(x, "conv_out"))

    # -- weights ---------------------------------------------------------------------
    def load_encoder_weights(self, spec) -> None:
        """The predictor's VGG16 from a resolved WeightsSpec (imagenet or a file), as nst-train uses."""
        load_vgg_encoder(self.encoder, spec, self.config.preprocessing)

    def load_encoder_from(self, directory: str = BUNDLED_ARBITRARY_DIR) -> None:
        """Copy the predictor's VGG16 weights (encoder/* arrays) from an arbitrary-style network folder."""
        load_part(self.encoder, os.path.join(directory, "weights.npz"), "encoder",
                   "no VGG16 encoder for the style predictor")

    def save(self, directory: str, include_encoder: bool = False) -> None:
        """Write float16 weights (weights.npz) and config.json atomically into `directory`.

        Without include_encoder only the transformer is written, and load() takes the predictor's VGG16 from
        the bundled arbitrary-style network's weights (the offline ImageNet VGG16 layers it was trained with).
        nst-train writes the encoder too, since its loss network may be another VGG16.
        """
        parts = (("transformer", self.transformer), *((("encoder", self.encoder),) if include_encoder else ()))
        arrays = {f"{prefix}/{path}": w.astype(np.float16) for prefix, model in parts
                  for path, w in weight_arrays(model).items()}
        write_folder(directory, arrays, self.config.to_json())

    @classmethod
    def load(cls, directory: str | None = None) -> MobileStyleNetwork:
        """Load a network saved by save() (the bundled one when `directory` is None)."""
        directory = directory or BUNDLED_DIR
        with open(os.path.join(directory, "config.json")) as f:
            net = cls(MobileConfig.from_json(f.read()))
        weights_path = os.path.join(directory, "weights.npz")
        with np.load(weights_path) as data:
            own_encoder = any(k.startswith("encoder/") for k in data.files)
        if own_encoder:
            load_part(net.encoder, weights_path, "encoder", "does not fit the network")
        else:
            net.load_encoder_from()
        load_part(net.transformer, weights_path, "transformer", "does not fit the network")
        return net


def load_part(model: keras.Model, weights_path: str, part: str, problem: str) -> None:
    """Set `model`'s weights from the `<part>/<layer>/<i>` arrays of a weights.npz; ValueError naming the file."""
    with np.load(weights_path) as data:
        arrays = parted(strength_lib.fill_excess(dict(data), part, model), part)
    try:
        set_weight_arrays(model, arrays)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{weights_path}: {problem} ({exc})") from None
