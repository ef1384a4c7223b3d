"""The arbitrary-style feed-forward network: style predictor -> style vector -> stylizer.

Design (Huang & Belongie 2017, AdaIN, with Magenta's two-part interface):
- encoder: a frozen pretrained VGG16 up to relu4_1 (block4_conv1);
- style predictor: encoder(style) -> style vector = [mean, std] over positions of each used level
  (relu4_1 alone: 1024 floats; with skip_levels=3, relu1_1..relu4_1: 1920 floats);
- stylizer: encoder(content) -> AdaIN of each used level with the (alpha-blended) style vector -> decoder.
The decoder starts from the AdaIN'd relu4_1 and, after each upsampling, adds a 1x1 projection of the
AdaIN'd shallower level (skip_levels of them; a multi-level AdaIN U-Net, zero-initialised so that a
decoder trained without skips warm-starts unchanged). The skips carry the detail that relu4_1 has lost.
With linear_rank > 0, relu4_1 also gets a learned linear transform (Li et al. 2019, "Learning Linear
Transformations for Fast Image and Video Style Transfer"): AdaIN matches each channel's mean and std, the
transform mixes channels so that the cross-channel covariance follows the style too. A style net maps the
style's relu4_1 to a rank x rank matrix S (covariance of a learned projection, then a dense layer: the style
vector's tail); the content side makes C the same way, compresses the normalised content features to `rank`
channels, multiplies them by S @ C and projects back: a residual added to the AdaIN'd relu4_1, its last
projection zero-initialised (a network without it warm-starts unchanged).
With moment_head > 0, the stylizer also learns which moments to aim for: a small dense network maps the pair
(target moments, the content's own moments) to a correction of the target moments, scaled by alpha (so alpha 0
still returns the content's own look) and zero-initialised. Raw moments are not always the best target: for a
painting whose moments are close to a photo's (candy, for example), a style vector found by gradient descent
through the decoder cuts the style loss far more than the painting's own moments do
(docs/training_log.md, "Moment head").
The head is part of the stylizer, so the style vector (the interface) stays the raw moments and matrix.
The encoder is frozen; the decoder (and the transform) are trained. The decoder uses reflect padding and
resize-then-convolve upsampling (no transposed convolutions, so no checkerboard artefacts). Every op maps onto
a TFLite builtin.
The layers are in nst_tf.layers, the linear transform's models in nst_tf.linear_transform, AdaIN and the moment
statistics in nst_tf.adain, network folders on disk in nst_tf.network_io; this module holds the configuration, the
encoder, decoder and moment head builders and ArbitraryStyleNetwork.
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
from nst_tf.adain import (
    blend_vectors,
    collect_stats,
    level_name,
    levels_vector,
    multi_adain,
    normalized_with,
    palette_with,
    split_vector,
    stats_moments,
)
from nst_tf.layers import ResizeUpsampling, VGGPreprocessing, reflect_conv
from nst_tf.linear_transform import build_style_net, build_transfer
from nst_tf.network_io import parted, read_folder, set_weight_arrays, weight_arrays, write_folder

ENCODER_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1")
ENCODER_CHANNELS = (64, 128, 256, 512)
BOTTLENECK = "block4_conv1"
STRIDE = 8  # relu4_1 is 1/8 of the input size
# Mirror margin on each side of the content, cropped off after stylizing (fast.stylize_padded, nst_tf.tiling). The
# network answers the image border (VGG16's zero padding reaches inwards) with a band of its own, darkest 4-7 px
# from the right edge; 16 px moves it out of the picture (README, "Borders"). Images 32 px or smaller a side get the
# stride's 4 px. A network whose border response reaches further says so (its `margin`: tiling.margin_of).
MARGIN = 16
BUNDLED_DIR = os.path.join(os.path.dirname(__file__), "models", "arbitrary")


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture of the decoder (the encoder is fixed VGG16 to relu4_1)."""

    decoder_channels: tuple[int, ...] = (256, 128, 128, 64, 64, 32)
    upsample: str = "nearest"
    preprocessing: str = "torch"  # of the encoder's VGG16 weights: torch (lpips) or caffe (Keras imagenet)
    skip_levels: int = 3  # shallower encoder levels (relu3_1, relu2_1, relu1_1) also AdaIN'd and fed in
    linear_rank: int = 0  # > 0: the learned linear transform at relu4_1, of this rank (Li et al. 2019 use 32)
    moment_head: int = 0  # > 0: hidden units of the learned correction of the target moments (0: none)
    strength_units: int = 0  # > 0: the decoder is modulated by the strength (FiLM from an embedding this wide)
    palette: bool = False  # the output gets the style's pixel colour moments (6 more floats in the style vector)
    skip_fade: bool = False  # above strength 1 the skip projections fade out (none at the top): more painterly

    def __post_init__(self):
        if not 0 <= self.skip_levels <= 3:
            raise ValueError(f"skip_levels must be 0..3, got {self.skip_levels}")
        if not 0 <= self.linear_rank <= 128:
            raise ValueError(f"linear_rank must be 0..128, got {self.linear_rank}")
        if not 0 <= self.moment_head <= 4096:
            raise ValueError(f"moment_head must be 0..4096, got {self.moment_head}")
        if not 0 <= self.strength_units <= 1024:
            raise ValueError(f"strength_units must be 0..1024, got {self.strength_units}")
        if self.skip_fade and not (self.strength_units and self.skip_levels):
            raise ValueError("skip_fade needs strength_units > 0 and skip_levels > 0")

    @property
    def levels(self) -> tuple[str, ...]:
        """The encoder layers the style vector describes, shallow to deep (relu4_1 last)."""
        return ENCODER_LAYERS[3 - self.skip_levels:]

    @property
    def level_channels(self) -> tuple[int, ...]:
        """Channels of each level in `levels`."""
        return ENCODER_CHANNELS[3 - self.skip_levels:]

    @property
    def moments_size(self) -> int:
        """Length of the style vector's moments part: a mean and a std per channel of every level."""
        return 2 * sum(self.level_channels)

    @property
    def vector_size(self) -> int:
        """Length of a style vector: the moments, the linear transform's rank x rank style matrix, the palette."""
        return self.moments_size + self.linear_rank ** 2 + (palette_lib.SIZE if self.palette else 0)

    def to_json(self) -> str:
        """Stable JSON form, stored beside checkpoints and bundled weights."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> NetworkConfig:
        """Inverse of to_json."""
        data = json.loads(text)
        data["decoder_channels"] = tuple(data["decoder_channels"])
        data.setdefault("skip_levels", 0)  # networks saved before skips existed
        data.setdefault("linear_rank", 0)  # and before the linear transform
        data.setdefault("moment_head", 0)  # and before the moment head
        data.setdefault("strength_units", 0)  # and before the strength control
        data.setdefault("palette", False)  # and before the palette layer
        data.setdefault("skip_fade", False)  # and before the skips faded with the strength
        return cls(**data)


def load_vgg_encoder(encoder: keras.Model, spec, preprocessing: str) -> None:
    """Copy block1..block4_conv1 weights into `encoder` from a resolved VGG16 WeightsSpec (imagenet or a file);
    WeightsError when the spec is not VGG16 or its preprocessing is not the encoder's."""
    from nst_tf import weights as weights_lib

    if spec.backbone != "vgg16":
        raise weights_lib.WeightsError(f"the encoder is VGG16; weights for {spec.backbone} do not fit")
    if spec.preprocessing != preprocessing:
        raise weights_lib.WeightsError(
            f"weights use {spec.preprocessing} preprocessing, the network was built for {preprocessing}")
    vgg = (weights_lib.build_imagenet_backbone("vgg16") if spec.path is None
           else weights_lib.build_backbone("vgg16", spec.path))
    for layer in encoder.layers:
        if layer.name.startswith("block") and layer.weights:
            layer.set_weights(vgg.get_layer(layer.name).get_weights())


def build_encoder(preprocessing: str = "torch", name: str = "encoder") -> keras.Model:
    """VGG16 convolutions to relu4_1 on [0, 1] RGB input; outputs relu1_1..relu4_1."""
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    images = keras.Input((None, None, 3), name="image")
    x = VGGPreprocessing(preprocessing, name="normalize")(images)
    outputs = {}
    for layer in base.layers[1:]:
        x = layer(x)
        if layer.name in ENCODER_LAYERS:
            outputs[layer.name] = x
        if layer.name == BOTTLENECK:
            break
    model = keras.Model(images, [outputs[n] for n in ENCODER_LAYERS], name=name)
    model.trainable = False
    return model


def _up(x, skips: dict, level: int, channels: int, config: NetworkConfig, embedding=None, share=None):
    """Resize x2, then add a (zero-initialised) 1x1 projection of the level's skip features if fed, modulated by the
    strength embedding if any and scaled by the skips' share ([B, 1, 1, 1], skip_fade) if given."""
    x = ResizeUpsampling((2, 2), config.upsample, name=f"up{level}")(x)
    if level in skips:
        projected = keras.layers.Conv2D(channels, 1, kernel_initializer="zeros", name=f"skip{level}")(skips[level])
        projected = strength_lib.film(projected, embedding, f"skip{level}")
        if share is not None:
            projected = keras.layers.Multiply(name=f"skip{level}_faded")([projected, share])
        x = keras.layers.Add(name=f"add{level}")([x, projected])
    return x


def build_decoder(config: NetworkConfig = NetworkConfig()) -> keras.Model:
    """AdaIN'd levels (shallow to deep, relu4_1 last) [+ a [B, 1] strength] -> RGB image (unclipped); three
    resize-then-conv steps, each convolution but the last modulated by the strength when strength_units > 0."""
    c = config.decoder_channels
    inputs = [keras.Input((None, None, ch), name=name.replace("block", "relu").replace("_conv", "_"))
              for name, ch in zip(config.levels, config.level_channels)]
    skips = {level: inputs[level - 4 + config.skip_levels] for level in range(4 - config.skip_levels, 4)}
    strength = keras.Input((1,), name="strength") if config.strength_units else None
    e = strength_lib.embed(strength, config.strength_units) if strength is not None else None
    share = (strength_lib.SkipFade(name="skip_share")(strength)
             if strength is not None and config.skip_fade else None)

    def conv(x, channels, name):
        return strength_lib.film(reflect_conv(x, channels, name), e, name)

    x = conv(inputs[-1], c[0], "dec4_1")
    x = _up(x, skips, 3, c[0], config, e, share)
    x = conv(x, c[1], "dec3_2")
    x = conv(x, c[2], "dec3_1")
    x = _up(x, skips, 2, c[2], config, e, share)
    x = conv(x, c[3], "dec2_2")
    x = conv(x, c[4], "dec2_1")
    x = _up(x, skips, 1, c[4], config, e, share)
    x = conv(x, c[5], "dec1_2")
    x = reflect_conv(x, 3, "dec1_1", activation=None)
    ins = inputs + ([strength] if strength is not None else [])
    return keras.Model(ins if len(ins) > 1 else ins[0], x, name="decoder")



def build_moment_head(moments_size: int, hidden: int) -> keras.Model:
    """(target moments, content's own moments), [B, M] each -> a [B, M] correction of the target (zero at first)."""
    target = keras.Input((moments_size,), name="target_moments")
    own = keras.Input((moments_size,), name="content_moments")
    x = keras.layers.Concatenate(name="mhead_pair")([target, own])
    x = keras.layers.Dense(hidden, activation="relu", name="mhead_1")(x)
    correction = keras.layers.Dense(moments_size, kernel_initializer="zeros", name="mhead_2")(x)
    return keras.Model([target, own], correction, name="moment_head")


class ArbitraryStyleNetwork:
    """Encoder + decoder with the two-part interface: predict_style() and stylize()."""

    int8_float_candidates: tuple[str, ...] = ()  # none: its dynamic-range int8 files are within the bounds

    def __init__(self, config: NetworkConfig = NetworkConfig()):
        self.config = config
        self.encoder = build_encoder(config.preprocessing)
        self.decoder = build_decoder(config)
        self.style_net = build_style_net(config.linear_rank) if config.linear_rank else None
        self.transfer = build_transfer(config.linear_rank) if config.linear_rank else None
        self.moment_head = build_moment_head(config.moments_size, config.moment_head) if config.moment_head else None
        self.zero_filled: set[tuple[str, str]] = set()  # (model, layer) that load() filled with zeros

    @property
    def margin(self) -> int:
        """The mirror margin a side it is run with (fast.stylize_padded, nst_tf.tiling): 32 px for a strength-trained
        decoder, whose response to an image border reaches some 30 px in (with 16 px it left a dark band along the
        borders of a flat grey photo: 0.05 against 0.68 inside, candy; with 32 px none), else MARGIN."""
        return 2 * MARGIN if self.config.strength_units else MARGIN

    @property
    def vector_size(self) -> int:
        """Length of this network's style vectors."""
        return self.config.vector_size

    @property
    def trained_models(self) -> tuple[keras.Model, ...]:
        """The Keras models that training updates: the decoder, the linear transform's two parts and the moment
        head if any."""
        return tuple(m for m in (self.decoder, self.style_net, self.transfer, self.moment_head) if m is not None)

    @property
    def models(self) -> tuple[keras.Model, ...]:
        """The Keras models holding the weights (what an export tracks)."""
        return (self.encoder, *self.trained_models)

    # -- the interface ---------------------------------------------------------------
    def encode(self, images: tf.Tensor) -> list[tf.Tensor]:
        """[B, H, W, 3] images in [0, 1] -> the feature maps of the used levels, shallow to deep."""
        return self.encoder(tf.convert_to_tensor(images, tf.float32))[4 - len(self.config.levels):]

    def decode(self, levels: list[tf.Tensor], strength: float | tf.Tensor = 1.0, training: bool = False) -> tf.Tensor:
        """AdaIN'd levels (as from encode) [+ the strength, scalar or [B, 1], if the decoder takes it] -> unclipped
        images."""
        levels = list(levels)
        if self.config.strength_units:
            levels.append(strength_lib.as_column(strength, tf.shape(levels[-1])[0]))
        return self.decoder(levels if len(levels) > 1 else levels[0], training=training)

    def vector_of(self, levels: list[tf.Tensor], images: tf.Tensor | None = None, training: bool = False) -> tf.Tensor:
        """Encoded levels (as from encode) of `images` -> their style vector: the moments, then the style matrix and
        the images' palette if the network has them (the palette needs the images)."""
        parts = [levels_vector(levels)]
        if self.style_net is not None:
            parts.append(self.style_net(levels[-1], training=training))
        if self.config.palette:
            if images is None:
                raise ValueError("this network's style vector has a palette: vector_of needs the images")
            parts.append(palette_lib.pixel_moments(images))
        return tf.concat(parts, axis=-1) if len(parts) > 1 else parts[0]

    def finish(self, images: tf.Tensor, style_vector: tf.Tensor) -> tf.Tensor:
        """The decoder's output with the palette of `style_vector` if the network has the palette layer."""
        if not self.config.palette:
            return images
        return palette_lib.match_palette(images, style_vector[:, -palette_lib.SIZE:])

    def styled_levels(self, levels: list[tf.Tensor], style_vector: tf.Tensor, training: bool = False,
                      alpha: float | tf.Tensor = 1.0) -> list[tf.Tensor]:
        """Encoded content levels + [B, vector_size] style vectors (blended by `alpha` with the content's own) ->
        the decoder's inputs: every level AdaIN'd (to the moments the head corrects, if any), and relu4_1 plus the
        linear transform's residual if any."""
        size = self.config.moments_size
        moments = style_vector[:, :size]
        if self.moment_head is not None:
            moments = moments + alpha * self.moment_head([moments, levels_vector(levels)], training=training)
        targets = multi_adain(levels, moments)
        if self.transfer is None:
            return targets
        matrix = style_vector[:, size:size + self.config.linear_rank ** 2]
        return self._plus_residual(targets, levels[-1], matrix, training)

    def own_levels(self, levels: list[tf.Tensor], training: bool = False) -> list[tf.Tensor]:
        """What the decoder gets to give the content back (the identity term): the levels as they are, relu4_1
        plus the linear transform's residual with the content's own style matrix if any."""
        if self.transfer is None:
            return list(levels)
        return self._plus_residual(levels, levels[-1], self.style_net(levels[-1], training=training), training)

    def _plus_residual(self, targets: list[tf.Tensor], relu4: tf.Tensor, matrix: tf.Tensor,
                       training: bool) -> list[tf.Tensor]:
        """`targets` with the linear transform's residual of (content relu4_1, style matrix) added to the last."""
        return [*targets[:-1], targets[-1] + self.transfer([relu4, matrix], training=training)]

    def predict_style(self, style_images: tf.Tensor) -> tf.Tensor:
        """[B, H, W, 3] style images in [0, 1] -> [B, vector_size] style vectors."""
        style_images = tf.convert_to_tensor(style_images, tf.float32)
        return self.vector_of(self.encode(style_images), style_images)

    def stylize(self, content_images: tf.Tensor, style_vector: tf.Tensor, strength: float | tf.Tensor = 1.0,
                clip: bool = True, stats: dict[str, tf.Tensor] | None = None) -> tf.Tensor:
        """Content images in [0, 1] + style vectors ([B, vector_size] or [1, ...]) at a strength (scalar or [B], in
        [0, 2]: 0 the photo, 1 the painting's look) -> stylized images. Up to 1 the strength blends the style vector
        with the content's own (the old alpha); the decoder of a strength-trained network also sees it.

        stats (image_stats of a whole image, for a tile of it): every whole-image statistic is taken from there
        instead of the content's own; the palette layer then needs the output's moments in stats too."""
        content_images = tf.convert_to_tensor(content_images, tf.float32)
        if stats is not None:
            batch = tf.shape(content_images)[0]
            images = self._stylize_with_stats(content_images, tf.broadcast_to(
                style_vector, [batch, tf.shape(style_vector)[-1]]), strength_lib.as_column(strength, batch), stats)
            return tf.clip_by_value(images, 0.0, 1.0) if clip else images
        levels = self.encode(content_images)
        batch = tf.shape(levels[-1])[0]
        style_vector = tf.broadcast_to(style_vector, [batch, tf.shape(style_vector)[-1]])
        strength = strength_lib.as_column(strength, batch)
        amount = strength_lib.blend_amount(strength)
        vector = blend_vectors(style_vector, self.vector_of(levels, content_images), amount)
        images = self.finish(self.decode(self.styled_levels(levels, vector, alpha=amount), strength), vector)
        return tf.clip_by_value(images, 0.0, 1.0) if clip else images

    def __call__(self, content_images, style_images, strength=1.0):
        """Stylize content with style images directly (the combined model)."""
        return self.stylize(content_images, self.predict_style(style_images), strength)

    # -- whole-image statistics (tiled inference, nst_tf.tiling) -----------------------
    @property
    def level_sites(self) -> list[str]:
        """The statistics sites of the used encoder levels, shallow to deep (relu4_1 last)."""
        return [level_name(name) for name in self.config.levels]

    def stat_groups(self) -> list[list[str]]:
        """Every whole-image statistic stylize() reads, in groups that need only the groups before them: the
        encoder levels' moments (and the content's pixel moments with the palette), then the covariances of the
        linear transform's two heads (on relu4_1 normalised with its whole-image moments)."""
        groups = [self.level_sites + (["pixels"] if self.config.palette else [])]
        if self.transfer is not None:
            groups.append(["cnet_cov", "snet_cov"])
        return groups

    def stat_features(self, content_images: tf.Tensor, style_vector: tf.Tensor, strength: float | tf.Tensor,
                      stats: dict[str, tf.Tensor], sites: list[str]) -> dict[str, tuple[str, tf.Tensor]]:
        """The features whose moments ('norm') or covariance ('cov') over positions give the statistics of `sites`,
        with the statistics of earlier groups in `stats` (reduce_stats makes them statistics; the tiler sums them
        over tiles)."""
        del style_vector, strength  # the encoder and the heads do not read them
        content_images = tf.convert_to_tensor(content_images, tf.float32)
        found = {}
        if "pixels" in sites:
            found["pixels"] = ("norm", palette_lib.to_opponent(content_images))
        if not any(s in sites for s in (*self.level_sites, "cnet_cov", "snet_cov")):
            return found
        levels = self.encode(content_images)
        found.update({s: ("norm", f) for s, f in zip(self.level_sites, levels) if s in sites})
        if "cnet_cov" in sites or "snet_cov" in sites:
            last = self.level_sites[-1]
            normalized = normalized_with(levels[-1], stats[f"{last}/mean"], stats[f"{last}/variance"])
            for site, model, prefix in (("cnet_cov", self.transfer, "cnet"), ("snet_cov", self.style_net, "snet")):
                if site in sites:
                    x = normalized
                    for i in (1, 2, 3):
                        x = model.get_layer(f"{prefix}_conv{i}")(model.get_layer(f"{prefix}_conv{i}_pad")(x))
                    found[site] = ("cov", x)
        return found

    def image_stats(self, content_images: tf.Tensor, style_vector: tf.Tensor | None = None,
                    strength: float | tf.Tensor = 1.0) -> dict[str, tf.Tensor]:
        """Every whole-image statistic stylize() computes from `content_images` (a batch of one): give them to
        stylize(stats=...) of a tile of the image, or of the image itself (the same result as without)."""
        return collect_stats(self, content_images, style_vector, strength)

    def content_vector_from(self, stats: dict[str, tf.Tensor]) -> tf.Tensor:
        """The content's own style vector (vector_of of the whole image) from its statistics."""
        parts = [stats_moments(stats, self.level_sites)]
        if self.style_net is not None:
            parts.append(self.style_net.get_layer("snet_fc")(stats["snet_cov"]))
        if self.config.palette:
            parts.append(tf.concat([stats["pixels/mean"], tf.sqrt(stats["pixels/variance"] + palette_lib._EPS)], -1))
        return tf.concat(parts, axis=-1) if len(parts) > 1 else parts[0]

    def target_vector(self, style_vector: tf.Tensor, strength: float | tf.Tensor, stats: dict[str, tf.Tensor]
                      ) -> tf.Tensor:
        """The style vector blended with the content's own by the strength (what stylize aims at), from stats."""
        style_vector = tf.convert_to_tensor(style_vector, tf.float32)
        amount = strength_lib.blend_amount(strength_lib.as_column(strength, tf.shape(style_vector)[0]))
        return blend_vectors(style_vector, self.content_vector_from(stats), amount)

    def _stylize_with_stats(self, content_images: tf.Tensor, style_vector: tf.Tensor, strength: tf.Tensor,
                            stats: dict[str, tf.Tensor]) -> tf.Tensor:
        """stylize() with every whole-image statistic from `stats` instead of the content's own; unclipped, and
        without the palette layer unless `stats` holds the output's moments (palette_with)."""
        levels = self.encode(content_images)
        amount = strength_lib.blend_amount(strength)
        vector = self.target_vector(style_vector, strength, stats)
        size, sites = self.config.moments_size, self.level_sites
        moments = vector[:, :size]
        if self.moment_head is not None:
            moments = moments + amount * self.moment_head([moments, stats_moments(stats, sites)])
        parts = split_vector(moments, self.config.level_channels)
        targets = [normalized_with(f, stats[f"{s}/mean"], stats[f"{s}/variance"]) * p[:, None, None, f.shape[-1]:]
                   + p[:, None, None, :f.shape[-1]] for f, s, p in zip(levels, sites, parts)]
        if self.transfer is not None:
            layer = self.transfer.get_layer
            normalized = normalized_with(levels[-1], stats[f"{sites[-1]}/mean"], stats[f"{sites[-1]}/variance"])
            matrix = vector[:, size:size + self.config.linear_rank ** 2]
            mixed = layer("mix")([layer("compress")(normalized), matrix, layer("cnet_fc")(stats["cnet_cov"])])
            targets[-1] = targets[-1] + layer("unzip")(mixed)
        images = self.decode(targets, strength)
        if self.config.palette:
            images = palette_with(images, vector[:, -palette_lib.SIZE:], stats)
        return images

    # -- weights ---------------------------------------------------------------------
    def load_encoder_weights(self, spec) -> None:
        """Copy block1..block4_conv1 weights from a resolved VGG16 WeightsSpec (imagenet or a file)."""
        load_vgg_encoder(self.encoder, spec, self.config.preprocessing)

    def save(self, directory: str) -> None:
        """Write float16 weights (weights.npz) and config.json atomically into `directory`."""
        os.makedirs(directory, exist_ok=True)
        arrays = {f"{model.name}/{key}": w.astype(np.float16) for model in self.models
                  for key, w in weight_arrays(model).items()}
        write_folder(directory, arrays, self.config.to_json())

    @classmethod
    def load(cls, directory: str | None = None) -> ArbitraryStyleNetwork:
        """Load a network saved by save(); the bundled one when `directory` is None."""
        directory = directory or BUNDLED_DIR
        text, arrays = read_folder(directory)
        if json.loads(text).get("kind") == "mobile":
            raise ValueError(f"{os.path.join(directory, 'config.json')}: a phone-sized network (nst_tf.mobile), not "
                             "an arbitrary-style one (nst_tf.fast.load_network loads either)")
        net = cls(NetworkConfig.from_json(text))
        filled = strength_lib.fill_excess(arrays, "decoder", net.decoder)
        net.zero_filled = {tuple(key.split("/")[:2]) for key in filled.keys() - arrays.keys()}
        arrays = filled
        if not any(key.startswith("encoder/") for key in arrays) and os.path.abspath(directory) != BUNDLED_DIR:
            _, bundled = read_folder(BUNDLED_DIR)  # a checkpoint of the trained parts: the bundled VGG16 encoder
            arrays = {**arrays, **{k: w for k, w in bundled.items() if k.startswith("encoder/")}}
        weights_path = os.path.join(directory, "weights.npz")
        for model in net.models:
            try:
                set_weight_arrays(model, parted(arrays, model.name))
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{weights_path}: does not fit the network ({exc})") from None
        return net
