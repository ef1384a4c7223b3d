"""The networks as pure functions of parameter dicts {layer: (kernel, bias)}, Keras layouts (NHWC, HWIO).

The arbitrary-style network is nst_tf.network's (VGG16 to relu4_1, multi-level AdaIN, the skip decoder of
build_decoder with skip_levels=3, the optional linear transform at relu4_1, moment head, strength FiLM, skip fade and
palette layer); which optional parts a network has is read from its parameters, except the palette layer and the
skip fade (no weights: the `palette` and `skip_fade` arguments). The student is nst_tf.mobile's transformer (the
previous design, without strength or palette).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

VGG16_ORDER = ("block1_conv1", "block1_conv2", "block1_pool", "block2_conv1", "block2_conv2", "block2_pool",
               "block3_conv1", "block3_conv2", "block3_conv3", "block3_pool",
               "block4_conv1", "block4_conv2", "block4_conv3", "block4_pool",
               "block5_conv1", "block5_conv2", "block5_conv3", "block5_pool")  # Keras' VGG16 layers, in order
LEVELS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1")  # relu1_1..relu4_1
BOTTLENECK = LEVELS[-1]
PHOTO_CONTENT_LAYER = "block4_conv2"
TORCH_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
TORCH_STD = np.array([0.229, 0.224, 0.225], np.float32)
DECODER_LAYERS = ("dec4_1", "skip3", "dec3_2", "dec3_1", "skip2", "dec2_2", "dec2_1", "skip1", "dec1_2", "dec1_1")
HEAD_LAYERS = ("mhead_1", "mhead_2")  # nst_tf.network.build_moment_head (moment_head > 0)
LINEAR_LAYERS = tuple(f"{net}_{layer}" for net in ("snet", "cnet") for layer in ("conv1", "conv2", "conv3", "fc")) + \
    ("compress", "unzip")  # nst_tf.linear_transform.build_style_net and build_transfer (linear_rank > 0)
STRENGTH_LAYERS = ("strength_embed1", "strength_excess", "strength_embed2")  # nst_tf.strength.embed
FILM_LAYERS = tuple(f"{name}_film" for name in DECODER_LAYERS[:-1])  # every decoder conv but the last, every skip
STRENGTH_MAX = 2.0
PALETTE_SIZE = 6
OPPONENT = np.array([[1, 1, 1], [1, -1, 0], [1, 1, -2]], np.float32)
OPPONENT = OPPONENT / np.linalg.norm(OPPONENT, axis=1, keepdims=True)  # nst_tf.palette: orthonormal rows
_ADAIN_EPS = 1e-5
_PALETTE_EPS = 1e-4
# ReLUs are jax.nn.relu, whose gradient at 0 is 0 as TensorFlow's (jnp.maximum(x, 0) gives 0.5 there): the strength
# embedding's first layer has biases at exactly 0, so at strength 0 its ReLUs sit at 0.


# -- VGG16 and moments ------------------------------------------------------------------------------
def conv(x, kernel, bias, padding: str):
    """NHWC convolution with an HWIO kernel (the Keras layout), stride 1."""
    y = lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias


def vgg_path(wanted: tuple[str, ...]) -> tuple[str, ...]:
    """The VGG16 convolutions that vgg_features runs through to reach every `wanted` layer (any of VGG16_ORDER);
    ValueError naming a layer VGG16 does not have."""
    unknown = [n for n in wanted if n not in VGG16_ORDER]
    if unknown:
        raise ValueError(f"unknown VGG16 layer {unknown[0]!r} (choose from {', '.join(VGG16_ORDER)})")
    deepest = max((VGG16_ORDER.index(n) for n in wanted), default=-1)
    return tuple(n for n in VGG16_ORDER[:deepest + 1] if not n.endswith("_pool"))


def vgg_features(vgg: dict, images, wanted: tuple[str, ...]) -> dict:
    """Post-ReLU VGG16 features of [0, 1] RGB images (torchvision preprocessing) at the `wanted` layers (the
    convolutions' outputs after their ReLU, or the poolings')."""
    x = (images - TORCH_MEAN) / TORCH_STD
    wanted = set(wanted)
    out = {}
    for name in VGG16_ORDER:
        if len(out) == len(wanted):
            break
        if name.endswith("_pool"):
            x = lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        else:
            x = jax.nn.relu(conv(x, *vgg[name], "SAME"))
        if name in wanted:
            out[name] = x
    return out


def moments(x):
    """Per-image, per-channel mean and variance over positions: [B, 1, 1, C] each."""
    mean = jnp.mean(x, axis=(1, 2), keepdims=True)
    return mean, jnp.mean(jnp.square(x - mean), axis=(1, 2), keepdims=True)


def levels_vector(levels):
    """relu1_1..relu4_1 feature maps -> [B, 1920]: nst_tf.adain.levels_vector (mean, std per level)."""
    parts = []
    for f in levels:
        mean, var = moments(f)
        parts += [mean[:, 0, 0], jnp.sqrt(var + _ADAIN_EPS)[:, 0, 0]]
    return jnp.concatenate(parts, axis=-1)


def instance_normalized(x):
    """Zero mean, unit std per image and channel over positions (nst_tf.layers.InstanceNormalized)."""
    mean, var = moments(x)
    return (x - mean) / jnp.sqrt(var + _ADAIN_EPS)


def adain_to(content, mean, std):
    """Give `content` features the per-channel `mean` and `std` ([B, C] each)."""
    c_mean, c_var = moments(content)
    return (content - c_mean) / jnp.sqrt(c_var + _ADAIN_EPS) * std[:, None, None, :] + mean[:, None, None, :]


# -- the palette layer (nst_tf.palette) --------------------------------------------------------------
def to_opponent(images):
    """RGB -> the orthonormal opponent channels."""
    return images @ OPPONENT.T


def pixel_moments(images):
    """[B, H, W, 3] RGB -> [B, 6]: mean then std of each opponent channel."""
    mean, var = moments(to_opponent(images))
    return jnp.concatenate([mean[:, 0, 0], jnp.sqrt(var + _PALETTE_EPS)[:, 0, 0]], axis=-1)


def match_palette(images, palette):
    """Give images the opponent-channel mean and std in `palette` ([B, 6]); not clipped."""
    opponent = to_opponent(images)
    mean, var = moments(opponent)
    normalized = (opponent - mean) / jnp.sqrt(var + _PALETTE_EPS)
    return (normalized * palette[:, None, None, 3:] + palette[:, None, None, :3]) @ OPPONENT


# -- the strength input (nst_tf.strength) --------------------------------------------------------------
def strength_column(strength, batch: int):
    """A scalar, [B] or [B, 1] strength -> [batch, 1] float32 in [0, STRENGTH_MAX]."""
    column = jnp.reshape(jnp.asarray(strength, jnp.float32), (-1, 1))
    return jnp.clip(jnp.broadcast_to(column, (batch, 1)), 0.0, STRENGTH_MAX)


def blend_amount(strength):
    """How far the style vector replaces the content's own: min(strength, 1)."""
    return jnp.clip(strength, 0.0, 1.0)


def skip_share(strength):
    """[B, 1] strength -> [B, 1, 1, 1] share of the skip projections (nst_tf.strength.SkipFade): 1 up to strength
    1, falling linearly to 0 at STRENGTH_MAX."""
    share = jnp.clip((STRENGTH_MAX - strength) / (STRENGTH_MAX - 1.0), 0.0, 1.0)
    return share[:, :, None, None]


def dense(p: dict, name: str, x, relu: bool = False):
    """A Keras Dense layer."""
    y = x @ p[name][0] + p[name][1]
    return jax.nn.relu(y) if relu else y


def embed(p: dict, strength):
    """[B, 1] strength -> [B, units]: the embedding every FiLM reads (ramps of the strength and of its excess
    over 1, then a dense layer)."""
    excess = jax.nn.relu(strength - 1.0)
    ramps = dense(p, "strength_embed1", strength, relu=True) + dense(p, "strength_excess", excess, relu=True)
    return dense(p, "strength_embed2", ramps, relu=True)


def film(p: dict, x, embedding, name: str):
    """x * (1 + scale) + shift from a projection of the strength embedding; x itself without one."""
    if embedding is None:
        return x
    params = dense(p, f"{name}_film", embedding)
    c = x.shape[-1]
    return x * (1.0 + params[:, None, None, :c]) + params[:, None, None, c:]


# -- the decoder and the stylizer's parts ----------------------------------------------------------------
def _reflect_conv(x, params, relu: bool = True):
    y = conv(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect"), *params, "VALID")
    return jax.nn.relu(y) if relu else y


def decode(p: dict, levels, strength=None, skip_fade: bool = False):
    """AdaIN'd relu1_1..relu4_1 [+ strength] -> unclipped RGB: nst_tf.network.build_decoder (skip_levels=3), every
    convolution but the last and every skip projection modulated by the strength when `p` has the FiLM layers, and
    with `skip_fade` every skip projection scaled by skip_share(strength) (NetworkConfig.skip_fade)."""
    r1, r2, r3, r4 = levels
    column = strength_column(1.0 if strength is None else strength, r4.shape[0])
    if skip_fade and "strength_embed1" not in p:
        raise ValueError("skip_fade needs the strength input (the strength_embed layers)")
    e = embed(p, column) if "strength_embed1" in p else None
    share = skip_share(column) if skip_fade else None
    step = lambda x, name: film(p, _reflect_conv(x, p[name]), e, name)  # noqa: E731

    def up(x, skip, name):
        projected = film(p, conv(skip, *p[name], "VALID"), e, name)
        return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2) + (projected if share is None else projected * share)

    x = up(step(r4, "dec4_1"), r3, "skip3")
    x = up(step(step(x, "dec3_2"), "dec3_1"), r2, "skip2")
    x = up(step(step(x, "dec2_2"), "dec2_1"), r1, "skip1")
    return _reflect_conv(step(x, "dec1_2"), p["dec1_1"], relu=False)


def covariance_head(p: dict, x, prefix: str):
    """Normalised features -> [B, r * r]: three convolutions, their covariance, a dense layer."""
    x = _reflect_conv(_reflect_conv(x, p[f"{prefix}_conv1"]), p[f"{prefix}_conv2"])
    x = _reflect_conv(x, p[f"{prefix}_conv3"], relu=False)
    b, h, w, r = x.shape
    flat = x.reshape(b, h * w, r)
    covariance = jnp.einsum("bpi,bpj->bij", flat, flat) / (h * w)
    return dense(p, f"{prefix}_fc", covariance.reshape(b, r * r))


def style_matrix(p: dict, relu4):
    """A style's relu4_1 -> its style matrix S, [B, r * r] (nst_tf.linear_transform.build_style_net)."""
    return covariance_head(p, instance_normalized(relu4), "snet")


def linear_residual(p: dict, relu4, matrix):
    """(content relu4_1, style matrix) -> the residual added to the AdaIN'd relu4_1 (build_transfer)."""
    normalized = instance_normalized(relu4)
    content_matrix = covariance_head(p, normalized, "cnet")
    z = conv(normalized, *p["compress"], "VALID")
    b, r = z.shape[0], z.shape[-1]
    t = jnp.matmul(matrix.reshape(b, r, r), content_matrix.reshape(b, r, r)) / r
    return conv(jnp.einsum("bhwj,bij->bhwi", z, t), *p["unzip"], "VALID")


def moment_correction(p: dict, target, own):
    """(target moments, content's own moments) [B, M] -> the moment head's [B, M] correction (build_moment_head)."""
    return dense(p, "mhead_2", dense(p, "mhead_1", jnp.concatenate([target, own], axis=-1), relu=True))


def vector_of(p: dict, levels, images=None, palette: bool = False):
    """Encoded levels of `images` -> their style vector: the moments, then the style matrix (with the linear
    transform) and the images' palette (with the palette layer): ArbitraryStyleNetwork.vector_of."""
    parts = [levels_vector(levels)]
    if "snet_fc" in p:
        parts.append(style_matrix(p, levels[-1]))
    if palette:
        parts.append(pixel_moments(images))
    return jnp.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]


def styled_levels(p: dict, content_levels, vector, amount=1.0):
    """The decoder's inputs for a style vector (already blended with the content's own): every content level
    AdaIN'd to the vector's moments, corrected by `amount` times the moment head's output when `p` has one, plus
    the linear residual at relu4_1 with the vector's style matrix (ArbitraryStyleNetwork.styled_levels)."""
    size = sum(2 * c.shape[-1] for c in content_levels)
    target = vector[:, :size]
    if "mhead_1" in p:
        target = target + amount * moment_correction(p, target, levels_vector(content_levels))
    targets, start = [], 0
    for c in content_levels:
        n = c.shape[-1]
        targets.append(adain_to(c, target[:, start:start + n], target[:, start + n:start + 2 * n]))
        start += 2 * n
    if "unzip" in p:
        rank = p["compress"][0].shape[-1]
        targets[-1] = targets[-1] + linear_residual(p, content_levels[-1], vector[:, size:size + rank * rank])
    return targets


def own_levels(p: dict, content_levels):
    """What the identity term decodes (ArbitraryStyleNetwork.own_levels)."""
    if "unzip" not in p:
        return list(content_levels)
    r4 = content_levels[-1]
    return [*content_levels[:-1], r4 + linear_residual(p, r4, style_matrix(p, r4))]


def finish(images, vector, palette: bool = False):
    """The decoder's output with the palette of `vector` when the network has the palette layer."""
    return match_palette(images, vector[:, -PALETTE_SIZE:]) if palette else images


def blended(style_vector, own_vector, strength):
    """The style vector blended with the content's own by the strength's blend amount ([B, 1])."""
    amount = blend_amount(strength)
    return amount * style_vector + (1.0 - amount) * own_vector


def stylize(p: dict, vgg: dict, content, style_vector, strength=1.0, palette: bool = False, skip_fade: bool = False):
    """Content images in [0, 1] + [B, V] style vectors at a strength -> unclipped images (ArbitraryStyleNetwork
    .stylize(clip=False))."""
    feats = vgg_features(vgg, content, LEVELS)
    levels = [feats[n] for n in LEVELS]
    strength = strength_column(strength, content.shape[0])
    vector = blended(jnp.broadcast_to(style_vector, (content.shape[0], style_vector.shape[-1])),
                     vector_of(p, levels, content, palette), strength)
    targets = styled_levels(p, levels, vector, blend_amount(strength))
    return finish(decode(p, targets, strength, skip_fade), vector, palette)


# -- the student: nst_tf.mobile's transformer --------------------------------------------------------------
def _padded_conv(x, params, stride: int = 1):
    """Reflect-pad by kernel // 2, then a VALID convolution with `stride` (nst_tf.mobile._conv)."""
    pad = params[0].shape[0] // 2
    x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    y = lax.conv_general_dilated(x, params[0], (stride, stride), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + params[1]


def transform(sp: dict, content, vector, blocks: int):
    """(content [B, H, W, 3], style vector [B, V]) -> image: nst_tf.mobile.build_transformer."""
    z = jnp.log1p(jnp.maximum(vector, 0.0)) @ sp["bottleneck"][0] + sp["bottleneck"][1]

    def norm(x, name, relu=True):
        params = z @ sp[name][0] + sp[name][1]
        c = x.shape[-1]
        mean, var = moments(x)
        y = (x - mean) / jnp.sqrt(var + _ADAIN_EPS) * (1.0 + params[:, None, None, :c]) + params[:, None, None, c:]
        return jax.nn.relu(y) if relu else y

    x = norm(_padded_conv(content, sp["conv1"]), "in1")
    x = norm(_padded_conv(x, sp["conv2"], 2), "in2")
    x = norm(_padded_conv(x, sp["conv3"], 2), "in3")
    for i in range(blocks):
        y = norm(_padded_conv(x, sp[f"res{i}_conv1"]), f"res{i}_in1")
        x = x + norm(_padded_conv(y, sp[f"res{i}_conv2"]), f"res{i}_in2", relu=False)
    for level in (2, 1):
        x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
        x = norm(_padded_conv(x, sp[f"up{level}_conv"]), f"up{level}_in")
    return jax.nn.sigmoid(_padded_conv(x, sp["conv_out"]))


def student_blocks(sp: dict) -> int:
    """How many residual blocks a student's parameters have."""
    return sum(1 for name in sp if name.startswith("res") and name.endswith("_conv1"))
