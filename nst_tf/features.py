"""VGG feature extraction: one Keras submodel returns the content and style layers in one call."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from nst_tf import weights as weights_lib

DEFAULT_CONTENT_LAYERS = ("block4_conv2",)
DEFAULT_STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)


def preprocess_caffe(images: tf.Tensor) -> tf.Tensor:
    """RGB in [0, 1] -> BGR in [0, 255] minus the ImageNet BGR mean (Keras/Caffe VGG)."""
    bgr = tf.reverse(tf.convert_to_tensor(images, tf.float32), axis=[-1]) * 255.0
    return bgr - tf.constant(CAFFE_MEAN_BGR, tf.float32)


def preprocess_torch(images: tf.Tensor) -> tf.Tensor:
    """RGB in [0, 1] -> (x - ImageNet mean) / ImageNet std (torchvision VGG)."""
    images = tf.convert_to_tensor(images, tf.float32)
    return (images - tf.constant(TORCH_MEAN)) / tf.constant(TORCH_STD)


PREPROCESSORS = {"caffe": preprocess_caffe, "torch": preprocess_torch}


class FeatureExtractor:
    """Maps RGB images in [0, 1] to (content features, style features), lists in layer order."""

    def __init__(
        self,
        spec: weights_lib.WeightsSpec,
        content_layers: Sequence[str] = DEFAULT_CONTENT_LAYERS,
        style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS,
    ):
        self.spec = spec
        self.content_layers = tuple(content_layers)
        self.style_layers = tuple(style_layers)
        if not self.content_layers and not self.style_layers:
            raise ValueError("at least one content or style layer is needed")
        base = (
            weights_lib.build_imagenet_backbone(spec.backbone)
            if spec.path is None
            else weights_lib.build_backbone(spec.backbone, spec.path)
        )
        known = [layer.name for layer in base.layers]
        for name in self.content_layers + self.style_layers:
            if name not in known:
                convs = ", ".join(n for n in known if "conv" in n)
                raise ValueError(f"unknown {spec.backbone} layer '{name}' (choose from {convs})")
        base.trainable = False
        outputs = [base.get_layer(n).output for n in self.content_layers + self.style_layers]
        # Only the layers up to the deepest requested one are computed.
        import keras

        self.model = keras.Model(base.input, outputs, name=f"{spec.backbone}_features")
        self.model.trainable = False
        self._preprocess = PREPROCESSORS[spec.preprocessing]

    def __call__(self, images: tf.Tensor) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
        """Features of a [B, H, W, 3] batch in [0, 1]; the input is never modified."""
        outputs = self.model(self._preprocess(images), training=False)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        n = len(self.content_layers)
        return list(outputs[:n]), list(outputs[n:])


def build_extractor(
    weights: str = "imagenet",
    backbone: str | None = None,
    content_layers: Sequence[str] = DEFAULT_CONTENT_LAYERS,
    style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS,
    preprocessing: str = "auto",
) -> FeatureExtractor:
    """Build a FeatureExtractor from a --weights value (imagenet, lpips, hed or a file)."""
    spec = weights_lib.resolve(weights, backbone, preprocessing)
    return FeatureExtractor(spec, content_layers, style_layers)
