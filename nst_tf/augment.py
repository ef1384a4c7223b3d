"""Style transfer as data augmentation inside Keras: `RandomStyleTransfer`, a preprocessing layer.

`RandomStyleTransfer` works like `keras.layers.RandomFlip`: in a `tf.data` map or inside a model, active only
in training, graph-mode and `tf.distribute` safe. Images are floats in `value_range` (default [0, 1]). The
folder-to-folder tool behind `nst-augment` is nst_tf.augment_folder.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from nst_tf import fast, images
from nst_tf.network import ArbitraryStyleNetwork
from nst_tf.strength import STRENGTH_MAX

DEFAULT_STRENGTH_RANGE = (0.3, 1.0)


def check_strength_range(value: Sequence[float], name: str = "strength_range", top: float = STRENGTH_MAX
                         ) -> tuple[float, float]:
    """(low, high) as floats if 0 <= low <= high <= top (STRENGTH_MAX; 1 for the deprecated alpha_range), else a
    ValueError naming `name`."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (low, high), got {value!r}") from None
    if not 0.0 <= low <= high <= top:
        raise ValueError(f"{name} must satisfy 0 <= low <= high <= {top:g}, got ({low:g}, {high:g})")
    return low, high


def strength_range_from(strength_range: Sequence[float] | None, alpha_range: Sequence[float] | None
                        ) -> tuple[float, float]:
    """The strength range from `strength_range` or its deprecated alias `alpha_range` (within [0, 1], where
    alpha and strength mean the same; a DeprecationWarning); the default if neither; ValueError for both."""
    if alpha_range is None:
        return check_strength_range(DEFAULT_STRENGTH_RANGE if strength_range is None else strength_range)
    if strength_range is not None:
        raise ValueError("give strength_range or its deprecated alias alpha_range, not both")
    warnings.warn("alpha_range is deprecated: use strength_range (the same values; strength goes up to "
                  f"{STRENGTH_MAX:g})", DeprecationWarning, stacklevel=3)
    return check_strength_range(alpha_range, "alpha_range", top=1.0)


def _style_image(item) -> np.ndarray:
    """A style image from a path or an array (uint8, or float in [0, 1]) -> float32 [H, W, 3]."""
    if isinstance(item, (str, os.PathLike)):
        return images.load_image(os.fspath(item))
    array = np.asarray(item)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"a style image must be [H, W, 3], got shape {array.shape}")
    return array.astype(np.float32) / 255.0 if array.dtype == np.uint8 else array.astype(np.float32)


def style_vectors(net: ArbitraryStyleNetwork, styles, style_size: int = fast.STYLE_SIZE) -> np.ndarray:
    """[N, V] style vectors from style images (paths, arrays, a [N, H, W, 3] batch) or vectors [N, V].

    V is the network's vector size (net.vector_size)."""
    if isinstance(styles, tf.Tensor):
        styles = styles.numpy()
    if isinstance(styles, np.ndarray) and styles.ndim == 2:
        if styles.shape[-1] != net.vector_size or len(styles) == 0:
            raise ValueError(f"style vectors must be [N, {net.vector_size}], got shape {styles.shape}")
        return styles.astype(np.float32)
    items = list(styles)
    if not items:
        raise ValueError("at least one style is needed")
    if all(not isinstance(s, (str, os.PathLike)) and np.ndim(s) == 1 for s in items):
        return style_vectors(net, np.stack([np.asarray(s, np.float32) for s in items]), style_size)
    vectors = []
    for item in items:
        image = images.resize_long_side(_style_image(item), style_size, str(item) if isinstance(item, str) else "style")
        vectors.append(net.predict_style(tf.constant(image[None], tf.float32)).numpy()[0])
    return np.stack(vectors)


@keras.saving.register_keras_serializable(package="nst_tf")
class RandomStyleTransfer(keras.layers.Layer):
    """Stylize each image of a batch, with probability `p`, by a random style of the bank at a random strength.

    Args:
        styles: style images (paths, [H, W, 3] arrays or a [N, H, W, 3] batch) or precomputed style vectors
            ([N, V], e.g. from `style_vectors`). Images are turned into vectors once, here.
        p: probability that an image is stylized.
        strength_range: (low, high) of the strength, drawn uniformly per image and fed to the network (nst_tf.strength:
            0 the photo, 1 the painting's look, up to 2 more painterly); within [0, 2]. Default (0.3, 1.0).
        value_range: the range of input pixel values (like keras' preprocessing layers); outputs keep it.
        model_dir: an arbitrary-style network folder (None: the bundled one), unless `network` is given.
        network: an ArbitraryStyleNetwork to use (it is frozen: this layer never trains it).
        style_size: long side at which style images are analysed.
        seed: seed of the random choices.
        alpha_range: deprecated alias of strength_range (within [0, 1], where the two mean the same).

    Inputs: [B, H, W, 3] or [H, W, 3] float images, H and W >= 16. With `training=False` (e.g. in
    `model.predict`) or p=0 the layer is the identity. Outputs have the input's shape and dtype.
    """

    def __init__(self, styles, p: float = 0.5, strength_range: Sequence[float] | None = None,
                 value_range: Sequence[float] = (0.0, 1.0), model_dir: str | None = None,
                 network: ArbitraryStyleNetwork | None = None, style_size: int = fast.STYLE_SIZE,
                 seed: int | None = None, alpha_range: Sequence[float] | None = None, **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.strength_range = strength_range_from(strength_range, alpha_range)
        self.p, self.value_range = float(p), tuple(map(float, value_range))
        self._validate()
        self.model_dir, self.style_size, self.seed = model_dir, int(style_size), seed
        net = network or ArbitraryStyleNetwork.load(model_dir)
        self.network = net
        self.encoder, self.decoder = net.encoder, net.decoder  # tracked: their weights belong to this layer
        self.linear_parts = [m for m in (net.style_net, net.transfer) if m is not None]  # --linear_rank networks
        vectors = style_vectors(net, styles, self.style_size)
        self.style_count = len(vectors)
        self.style_vectors = self.add_weight(shape=vectors.shape, initializer=keras.initializers.Constant(vectors),
                                             trainable=False, name="style_vectors")
        self.generator = keras.random.SeedGenerator(seed)
        self.trainable = False
        self.supports_jit = False  # data-dependent shapes (the chosen images): keras' jit_compile="auto" skips XLA

    def _validate(self) -> None:
        """ValueError for an out-of-range p or value_range (strength_range is checked as it is read)."""
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {self.p}")
        if not self.value_range[0] < self.value_range[1]:
            raise ValueError(f"value_range must be (low, high) with low < high, got {self.value_range}")

    def call(self, inputs, training=True):  # noqa: D102
        if training is None:
            training = True
        if isinstance(training, bool):
            return self._augment(inputs) if training and self.p > 0 else inputs
        return tf.cond(tf.cast(training, tf.bool), lambda: self._augment(inputs), lambda: tf.identity(inputs))

    def _seed(self) -> tf.Tensor:
        """A fresh stateless seed per call, different on each replica of a tf.distribute strategy."""
        seed = tf.cast(self.generator.next(), tf.int32)
        context = tf.distribute.get_replica_context()
        replica = 0 if context is None else context.replica_id_in_sync_group
        return seed + tf.stack([0, tf.cast(replica, tf.int32) * 1_000_003])

    def _augment(self, inputs: tf.Tensor) -> tf.Tensor:
        """The training-time transform."""
        inputs = tf.convert_to_tensor(inputs)
        unbatched = inputs.shape.rank == 3
        low, high = self.value_range
        x = tf.cast(inputs[None] if unbatched else inputs, tf.float32)
        x = (x - low) / (high - low)
        batch = tf.shape(x)[0]
        draws = tf.random.stateless_uniform([3, batch], self._seed())
        apply = draws[0] < self.p
        index = tf.minimum(tf.cast(tf.floor(draws[1] * self.style_count), tf.int32), self.style_count - 1)
        weakest, strongest = self.strength_range
        strength = weakest + draws[2] * (strongest - weakest)  # per image, fed to the network's strength input
        chosen = tf.where(apply)[:, 0]

        def stylize():
            vectors = tf.gather(tf.convert_to_tensor(self.style_vectors), tf.gather(index, chosen))
            out = fast.stylize_padded(self.network, tf.gather(x, chosen), vectors, tf.gather(strength, chosen)[:, None])
            return tf.tensor_scatter_nd_update(x, chosen[:, None], tf.stop_gradient(out))

        y = tf.cond(tf.size(chosen) > 0, stylize, lambda: x) * (high - low) + low
        y = tf.cast(y[0] if unbatched else y, inputs.dtype)
        return tf.ensure_shape(y, inputs.shape)

    def compute_output_shape(self, input_shape):  # noqa: D102
        return input_shape

    def get_config(self):  # noqa: D102
        return {**super().get_config(), "styles": np.asarray(self.style_vectors.numpy()).tolist(), "p": self.p,
                "strength_range": list(self.strength_range), "value_range": list(self.value_range),
                "model_dir": self.model_dir, "style_size": self.style_size, "seed": self.seed}

    @classmethod
    def from_config(cls, config):  # noqa: D102
        config = dict(config)
        config["styles"] = np.asarray(config["styles"], np.float32)
        return cls(**config)
