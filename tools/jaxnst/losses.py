"""The trainer's loss terms: nst_tf.train.Trainer.compute_losses, _output_terms and _student_losses, per example.

With the strength control (Recipe.strength_max > 0) each example has a strength s: the style vector is blended with
the content's own by min(s, 1), the decoder sees s, the style and palette terms are weighted by k = s^2 and every
output term is divided by 1 + k. The palette term's random directions and the strengths are inputs here (the caller
draws them, jaxnst.data), so that a test can give both sides the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnst import model

_LOSS_EPS = 1e-8
CONTENT_TARGETS = ("adain", "photo")
VIEWING_TARGETS = ("shrunk", "whole")


@dataclass(frozen=True)
class Recipe:
    """A run's loss weights and switches (nst_tf.train.TrainConfig's names), and whether the network has the palette
    layer and the skip fade (its config.json)."""

    content_weight: float = 1.0
    style_weight: float = 10.0
    tv_weight: float = 1.0
    identity_weight: float = 10.0
    inversion_weight: float = 0.0
    photo_weight: float = 0.0
    layout_weight: float = 0.0
    distill_weight: float = 0.0
    palette_weight: float = 0.0
    viewing_weight: float = 0.0
    viewing_scale: float = 0.5
    viewing_target: str = "shrunk"
    style_relative: bool = False
    style_target: float = 0.0
    strength_max: float = 0.0
    content_target: str = "photo"
    style_layers: tuple[str, ...] = model.LEVELS
    palette: bool = False
    skip_fade: bool = False

    def __post_init__(self):
        if self.content_target not in CONTENT_TARGETS:
            raise ValueError(f"content_target must be one of {', '.join(CONTENT_TARGETS)}, got {self.content_target!r}")
        if self.inversion_weight and self.content_target != "photo":
            raise ValueError("inversion_weight needs content_target='photo' (with 'adain' the content term is it)")
        if self.photo_weight and self.content_target != "adain":
            raise ValueError("photo_weight needs content_target='adain' (with 'photo' the content term is already "
                             "the photo term)")
        if not self.style_layers:
            raise ValueError("style_layers: at least one layer is needed")
        try:
            model.vgg_path(self.style_layers)
        except ValueError as exc:
            raise ValueError(f"style_layers: {exc}") from None
        if not 0.0 < self.viewing_scale < 1.0:
            raise ValueError(f"viewing_scale must be in (0, 1), got {self.viewing_scale}")
        if self.viewing_target not in VIEWING_TARGETS:
            raise ValueError(f"viewing_target must be 'shrunk' or 'whole', got {self.viewing_target!r}")

    @property
    def content_layer(self) -> str:
        """The VGG16 layer of the content term."""
        return model.PHOTO_CONTENT_LAYER if self.content_target == "photo" else model.BOTTLENECK

    @property
    def content_layers(self) -> tuple[str, ...]:
        """The VGG16 layers of the content and photo terms."""
        return (self.content_layer, *((model.PHOTO_CONTENT_LAYER,) if self.photo_weight else ()))

    @property
    def loss_layers(self) -> tuple[str, ...]:
        """Every VGG16 layer of the content and style images that a step reads."""
        return tuple(dict.fromkeys((*model.LEVELS, *self.content_layers, *self.style_layers)))


def gram(f):
    """Gram matrix averaged over positions: [B, C, C]."""
    return jnp.einsum("bhwc,bhwd->bcd", f, f) / (f.shape[1] * f.shape[2])


def relative_error(value, target):
    """||value - target||^2 / ||target||^2 per batch item."""
    axes = tuple(range(1, value.ndim))
    return jnp.sum(jnp.square(value - target), axis=axes) / (jnp.sum(jnp.square(target), axis=axes) + _LOSS_EPS)


def pixel_error(a, b):
    """Mean squared pixel error per batch item."""
    return jnp.mean(jnp.square(a - b), axis=(1, 2, 3))


def total_variation(images):
    """Mean squared difference of neighbouring pixels, both directions, per batch item."""
    dy = images[:, 1:] - images[:, :-1]
    dx = images[:, :, 1:] - images[:, :, :-1]
    return jnp.mean(jnp.square(dy), axis=(1, 2, 3)) + jnp.mean(jnp.square(dx), axis=(1, 2, 3))


def palette_loss(images, target, directions):
    """Sliced Wasserstein distance between the pixel colours of images and target on the [3, K] unit `directions`
    (nst_tf.losses.palette_loss): per item, sorted projections compared quantile by quantile."""
    a = images.reshape(images.shape[0], -1, 3)
    b = target.reshape(target.shape[0], -1, 3)
    pa = jnp.sort(jnp.einsum("bnc,ck->bkn", a, directions), axis=-1)
    pb = jnp.sort(jnp.einsum("bnc,ck->bkn", b, directions), axis=-1)
    n, m = pa.shape[-1], pb.shape[-1]
    index = ((np.arange(n, dtype=np.float32) + np.float32(0.5)) * np.float32(m) / np.float32(n)).astype(np.int32)
    return jnp.mean(jnp.square(pa - pb[..., index]), axis=(1, 2))


def layout_loss(images, target, pool: int = 8):
    """Light-and-dark layout error per batch item (nst_tf.losses.layout_loss): the mean squared difference of the
    two images' luminances, average-pooled by `pool` (VALID) and standardised over positions."""
    def standardized_luminance(x):
        luminance = jnp.sum(x * jnp.array([0.299, 0.587, 0.114], jnp.float32), axis=-1, keepdims=True)
        luminance = lax.reduce_window(luminance, 0.0, lax.add, (1, pool, pool, 1), (1, pool, pool, 1),
                                      "VALID") / (pool * pool)
        mean = jnp.mean(luminance, axis=(1, 2, 3), keepdims=True)
        variance = jnp.mean(jnp.square(luminance - mean), axis=(1, 2, 3), keepdims=True)
        return (luminance - mean) * lax.rsqrt(variance + 1e-6)

    return jnp.mean(jnp.square(standardized_luminance(images) - standardized_luminance(target)), axis=(1, 2, 3))


def shrink(images, scale: float):
    """Images resized by `scale` (rounded), bilinear and antialiased as tf.image.resize(antialias=True)."""
    b, h, w, c = images.shape
    return jax.image.resize(images, (b, round(h * scale), round(w * scale), c), "linear", antialias=True)


def style_term(feats: dict, style_grams: dict, layers: tuple[str, ...]):
    """Gram style loss of `feats` against the style's Grams, averaged over the layers: [B]."""
    return sum(relative_error(gram(feats[n]), style_grams[n]) for n in layers) / len(layers)


def viewing_style_term(vgg: dict, output, style, recipe: Recipe, style_grams: dict | None = None):
    """The Gram style term of the output shrunk by viewing_scale against the style crop shrunk alike
    (viewing_target 'shrunk') or as it is ('whole': `style_grams`, the full-size crop's Grams):
    Trainer._viewing_style_term."""
    if recipe.viewing_target == "whole":
        grams = style_grams
    else:
        small_style = model.vgg_features(vgg, shrink(style, recipe.viewing_scale), recipe.style_layers)
        grams = {n: gram(small_style[n]) for n in recipe.style_layers}
    small_output = model.vgg_features(vgg, shrink(output, recipe.viewing_scale), recipe.style_layers)
    return style_term(small_output, grams, recipe.style_layers)


def output_terms(terms: dict, vgg: dict, output, content_feats: dict, style_feats: dict, recipe: Recipe,
                 adain_target=None, strength=None, style=None, directions=None, content=None) -> dict:
    """`terms` plus the output's weighted inversion, layout (against `content`, the photo), photo, content, style
    (viewing term included), TV and palette terms, and their total ([B] each, in Trainer._output_terms' order)."""
    scale = norm = 1.0
    if strength is not None and recipe.strength_max:
        scale = jnp.square(strength[:, 0])
        norm = 1.0 / (1.0 + scale)
    inversion = recipe.inversion_weight and adain_target is not None
    wanted = (*recipe.content_layers, *recipe.style_layers, *((model.BOTTLENECK,) if inversion else ()))
    output_feats = model.vgg_features(vgg, output, tuple(dict.fromkeys(wanted)))
    if recipe.content_target == "photo":
        content_term = relative_error(output_feats[model.PHOTO_CONTENT_LAYER], content_feats[model.PHOTO_CONTENT_LAYER])
    else:
        content_term = relative_error(output_feats[model.BOTTLENECK], adain_target)
    style_grams = {n: gram(style_feats[n]) for n in recipe.style_layers}
    styled = style_term(output_feats, style_grams, recipe.style_layers)
    if recipe.viewing_weight and style is not None:
        styled = styled + recipe.viewing_weight * viewing_style_term(vgg, output, style, recipe, style_grams)
    if recipe.style_relative:  # a fraction of the photo's own style loss, per example
        own = style_term(content_feats, style_grams, recipe.style_layers)
        styled = jax.nn.relu(styled / (lax.stop_gradient(own) + _LOSS_EPS) - recipe.style_target)
    if inversion:
        terms["inversion"] = recipe.inversion_weight * relative_error(output_feats[model.BOTTLENECK], adain_target)
    if recipe.layout_weight and content is not None:  # the photo's light and dark, in any tones
        terms["layout"] = recipe.layout_weight * norm * layout_loss(output, content)
    if recipe.photo_weight:  # the Gatys content term beside the AdaIN target, scaled like the other output terms
        terms["photo"] = recipe.photo_weight * norm * relative_error(output_feats[model.PHOTO_CONTENT_LAYER],
                                                                     content_feats[model.PHOTO_CONTENT_LAYER])
    terms["content"] = recipe.content_weight * norm * content_term
    terms["style"] = recipe.style_weight * scale * norm * styled
    terms["tv"] = recipe.tv_weight * norm * total_variation(output)
    if recipe.palette_weight and style is not None:
        if directions is None:
            raise ValueError("palette_weight needs the palette term's directions ([3, K])")
        terms["palette"] = recipe.palette_weight * scale * norm * palette_loss(output, style, directions)
    terms["total"] = sum(terms.values())
    return terms


def loss_terms(p: dict, vgg: dict, content, style, recipe: Recipe, strength=None, directions=None) -> dict:
    """Per-example weighted loss terms ([B] each) of the arbitrary-style network: Trainer.compute_losses, with the
    given [B, 1] strengths (1 when None) and palette directions."""
    content_feats = model.vgg_features(vgg, content, recipe.loss_layers)
    content_levels = [content_feats[n] for n in model.LEVELS]
    own_vector = model.vector_of(p, content_levels, content, recipe.palette)
    terms = {}
    if recipe.identity_weight:
        decoded = model.decode(p, model.own_levels(p, content_levels), 0.0, recipe.skip_fade)
        reconstruction = model.finish(decoded, own_vector, recipe.palette)
        terms["identity"] = recipe.identity_weight * pixel_error(reconstruction, content)
    style_feats = model.vgg_features(vgg, style, recipe.loss_layers)
    strength = model.strength_column(1.0 if strength is None else strength, content.shape[0])
    style_vector = model.vector_of(p, [style_feats[n] for n in model.LEVELS], style, recipe.palette)
    vector = model.blended(style_vector, own_vector, strength) if recipe.strength_max else style_vector
    targets = model.styled_levels(p, content_levels, vector, model.blend_amount(strength))
    output = model.finish(model.decode(p, targets, strength, recipe.skip_fade), vector, recipe.palette)
    return output_terms(terms, vgg, output, content_feats, style_feats, recipe, targets[-1], strength, style,
                        directions, content)


def student_terms(sp: dict, dec: dict, vgg: dict, content, style, recipe: Recipe, directions=None) -> dict:
    """Per-example weighted loss terms ([B] each) of the student (the previous phone-sized design, at strength 1):
    identity (the content's own vector gives the content back), distill (squared pixel error to the frozen
    decoder's clipped output) and the output terms."""
    if recipe.photo_weight:
        raise ValueError("photo_weight is for the arbitrary-style network (content_target='adain'), not the student")
    content_feats = model.vgg_features(vgg, content, recipe.loss_layers)
    style_feats = model.vgg_features(vgg, style, recipe.loss_layers)
    content_levels = [content_feats[n] for n in model.LEVELS]
    style_levels = [style_feats[n] for n in model.LEVELS]
    blocks = model.student_blocks(sp)
    terms = {}
    if recipe.identity_weight:
        reconstruction = model.transform(sp, content, model.levels_vector(content_levels), blocks)
        terms["identity"] = recipe.identity_weight * pixel_error(reconstruction, content)
    output = model.transform(sp, content, model.levels_vector(style_levels), blocks)
    if recipe.distill_weight:
        teacher = model.decode(dec, model.styled_levels(dec, content_levels, model.vector_of(dec, style_levels)))
        terms["distill"] = recipe.distill_weight * pixel_error(output, lax.stop_gradient(jnp.clip(teacher, 0.0, 1.0)))
    return output_terms(terms, vgg, output, content_feats, style_feats, recipe, style=style, directions=directions,
                        content=content)
