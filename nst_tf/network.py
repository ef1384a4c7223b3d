"""The arbitrary-style feed-forward network: style predictor -> style vector -> stylizer.

Design (Huang & Belongie 2017, AdaIN, with Magenta's two-part interface):
- encoder: a frozen pretrained VGG16 up to relu4_1 (block4_conv1);
- style predictor: encoder(style) -> style vector = [mean, std] of relu4_1 over positions (1024 floats);
- stylizer: encoder(content) -> AdaIN with the (alpha-blended) style vector -> decoder -> image.
Only the decoder is trained. The decoder uses reflect padding and resize-then-convolve upsampling
(no transposed convolutions, so no checkerboard artefacts). Every op maps onto a TFLite builtin.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import keras
import numpy as np
import tensorflow as tf

from nst_tf.features import PREPROCESSORS

ENCODER_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1")
BOTTLENECK = "block4_conv1"
STRIDE = 8  # relu4_1 is 1/8 of the input size
_EPS = 1e-5
BUNDLED_DIR = os.path.join(os.path.dirname(__file__), "models", "arbitrary")


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture of the decoder (the encoder is fixed VGG16 to relu4_1)."""

    decoder_channels: tuple[int, ...] = (256, 128, 128, 64, 64, 32)
    upsample: str = "nearest"
    preprocessing: str = "torch"  # of the encoder's VGG16 weights: torch (lpips) or caffe (Keras imagenet)

    def to_json(self) -> str:
        """Stable JSON form, stored beside checkpoints and bundled weights."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> NetworkConfig:
        """Inverse of to_json."""
        data = json.loads(text)
        data["decoder_channels"] = tuple(data["decoder_channels"])
        return cls(**data)


def moments_vector(features: tf.Tensor) -> tf.Tensor:
    """[B, H, W, C] features -> [B, 2C] style vector: per-channel mean then std."""
    mean, variance = tf.nn.moments(features, axes=[1, 2])
    return tf.concat([mean, tf.sqrt(variance + _EPS)], axis=-1)


def adain(features: tf.Tensor, style_vector: tf.Tensor) -> tf.Tensor:
    """Adaptive instance normalisation: give `features` the mean/std in `style_vector`."""
    channels = features.shape[-1]
    mean, variance = tf.nn.moments(features, axes=[1, 2], keepdims=True)
    normalized = (features - mean) * tf.math.rsqrt(variance + _EPS)
    style_mean = style_vector[:, None, None, :channels]
    style_std = style_vector[:, None, None, channels:]
    return normalized * style_std + style_mean


def blend_vectors(style_vector: tf.Tensor, content_vector: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """alpha * style + (1 - alpha) * content; alpha is [B, 1] (or scalar) in [0, 1]."""
    alpha = tf.clip_by_value(tf.cast(alpha, tf.float32), 0.0, 1.0)
    return alpha * style_vector + (1.0 - alpha) * content_vector


class VGGPreprocessing(keras.layers.Layer):
    """RGB in [0, 1] -> the input normalisation of the VGG weights ('torch' or 'caffe')."""

    def __init__(self, mode: str = "torch", **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, images):  # noqa: D102
        return PREPROCESSORS[self.mode](images)

    def get_config(self):  # noqa: D102
        return {**super().get_config(), "mode": self.mode}


class ReflectionPadding2D(keras.layers.Layer):
    """Pad height and width by `pad` pixels, mirroring the border (TFLite MIRROR_PAD)."""

    def __init__(self, pad: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.pad = pad

    def call(self, x):  # noqa: D102
        p = self.pad
        return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")

    def get_config(self):  # noqa: D102
        return {**super().get_config(), "pad": self.pad}


class AdaIN(keras.layers.Layer):
    """(content features, style vector, alpha) -> features with the blended style statistics."""

    def call(self, inputs):  # noqa: D102
        features, style_vector, alpha = inputs
        return adain(features, blend_vectors(style_vector, moments_vector(features), alpha))


class Moments(keras.layers.Layer):
    """Features -> style vector (mean and std per channel)."""

    def call(self, features):  # noqa: D102
        return moments_vector(features)


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


def _conv(x, channels: int, name: str, activation: str | None = "relu"):
    x = ReflectionPadding2D(1, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(channels, 3, padding="valid", activation=activation, name=name)(x)


def build_decoder(config: NetworkConfig = NetworkConfig()) -> keras.Model:
    """relu4_1-sized features -> RGB image (unclipped); three resize-then-conv upsamplings."""
    c = config.decoder_channels
    features = keras.Input((None, None, 512), name="features")
    x = _conv(features, c[0], "dec4_1")
    x = keras.layers.UpSampling2D(2, interpolation=config.upsample, name="up3")(x)
    x = _conv(x, c[1], "dec3_2")
    x = _conv(x, c[2], "dec3_1")
    x = keras.layers.UpSampling2D(2, interpolation=config.upsample, name="up2")(x)
    x = _conv(x, c[3], "dec2_2")
    x = _conv(x, c[4], "dec2_1")
    x = keras.layers.UpSampling2D(2, interpolation=config.upsample, name="up1")(x)
    x = _conv(x, c[5], "dec1_2")
    x = _conv(x, 3, "dec1_1", activation=None)
    return keras.Model(features, x, name="decoder")


class ArbitraryStyleNetwork:
    """Encoder + decoder with the two-part interface: predict_style() and stylize()."""

    def __init__(self, config: NetworkConfig = NetworkConfig()):
        self.config = config
        self.encoder = build_encoder(config.preprocessing)
        self.decoder = build_decoder(config)

    # -- the interface ---------------------------------------------------------------
    def predict_style(self, style_images: tf.Tensor) -> tf.Tensor:
        """[B, H, W, 3] style images in [0, 1] -> [B, 1024] style vectors."""
        return moments_vector(self.encoder(style_images)[-1])

    def stylize(self, content_images: tf.Tensor, style_vector: tf.Tensor, alpha: float | tf.Tensor = 1.0,
                clip: bool = True) -> tf.Tensor:
        """Content images in [0, 1] + style vectors ([B, 1024] or [1, 1024]) -> stylized images."""
        content_images = tf.convert_to_tensor(content_images, tf.float32)
        features = self.encoder(content_images)[-1]
        batch = tf.shape(features)[0]
        style_vector = tf.broadcast_to(style_vector, [batch, tf.shape(style_vector)[-1]])
        alpha = tf.broadcast_to(tf.reshape(tf.cast(alpha, tf.float32), [-1, 1]), [batch, 1])
        target = adain(features, blend_vectors(style_vector, moments_vector(features), alpha))
        images = self.decoder(target)
        return tf.clip_by_value(images, 0.0, 1.0) if clip else images

    def __call__(self, content_images, style_images, alpha=1.0):
        """Stylize content with style images directly (the combined model)."""
        return self.stylize(content_images, self.predict_style(style_images), alpha)

    # -- weights ---------------------------------------------------------------------
    def load_encoder_weights(self, spec) -> None:
        """Copy block1..block4_conv1 weights from a resolved VGG16 WeightsSpec (imagenet or a file)."""
        from nst_tf import weights as weights_lib

        if spec.backbone != "vgg16":
            raise weights_lib.WeightsError(f"the encoder is VGG16; weights for {spec.backbone} do not fit")
        if spec.preprocessing != self.config.preprocessing:
            raise weights_lib.WeightsError(
                f"weights use {spec.preprocessing} preprocessing, "
                f"the network was built for {self.config.preprocessing}")
        vgg = (weights_lib.build_imagenet_backbone("vgg16") if spec.path is None
               else weights_lib.build_backbone("vgg16", spec.path))
        for layer in self.encoder.layers:
            if layer.name.startswith("block") and layer.weights:
                layer.set_weights(vgg.get_layer(layer.name).get_weights())

    def save(self, directory: str) -> None:
        """Write float16 weights (weights.npz) and config.json atomically into `directory`."""
        os.makedirs(directory, exist_ok=True)
        arrays = {}
        for prefix, model in (("encoder", self.encoder), ("decoder", self.decoder)):
            for layer in model.layers:
                for i, w in enumerate(layer.get_weights()):
                    arrays[f"{prefix}/{layer.name}/{i}"] = w.astype(np.float16)
        tmp = os.path.join(directory, ".weights.tmp.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, os.path.join(directory, "weights.npz"))
        with open(os.path.join(directory, ".config.tmp"), "w") as f:
            f.write(self.config.to_json())
        os.replace(os.path.join(directory, ".config.tmp"), os.path.join(directory, "config.json"))

    @classmethod
    def load(cls, directory: str | None = None) -> ArbitraryStyleNetwork:
        """Load a network saved by save(); the bundled one when `directory` is None."""
        directory = directory or BUNDLED_DIR
        config_path = os.path.join(directory, "config.json")
        weights_path = os.path.join(directory, "weights.npz")
        for path in (config_path, weights_path):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path}: missing (a model folder holds config.json and weights.npz)")
        with open(config_path) as f:
            net = cls(NetworkConfig.from_json(f.read()))
        with np.load(weights_path) as data:
            for prefix, model in (("encoder", net.encoder), ("decoder", net.decoder)):
                for layer in model.layers:
                    n = len(layer.get_weights())
                    if n:
                        try:
                            layer.set_weights([data[f"{prefix}/{layer.name}/{i}"].astype(np.float32) for i in range(n)])
                        except (KeyError, ValueError) as exc:
                            raise ValueError(f"{weights_path}: does not fit the network ({exc})") from None
        return net


def pad_to_stride(images: tf.Tensor, stride: int = STRIDE) -> tuple[tf.Tensor, int, int]:
    """Reflect-pad [B, H, W, 3] so H and W are multiples of `stride`; return (padded, H, W)."""
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    pad_h = (-height) % stride
    pad_w = (-width) % stride
    padded = tf.pad(images, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]], mode="SYMMETRIC")
    return padded, height, width
