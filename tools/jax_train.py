"""nst-train's training step in JAX, for an accelerator machine that has JAX but no TensorFlow.

The device machines lent to this project carry JAX (CUDA) and no TensorFlow, and a TensorFlow wheel is far
larger than what may travel there. This file reproduces `nst_tf.train.Trainer.compute_losses` and its Keras Adam
update for the bundled network's design (VGG16 encoder to relu4_1, multi-level AdaIN, the skip decoder of
`nst_tf.network.build_decoder`, the optional learned linear transform at relu4_1 and moment head) with numpy, Pillow and
JAX only, so that the same recipe can run there. It imports nothing from nst_tf. tests/test_jax_train.py checks
it against the TensorFlow trainer (losses and one Adam update) where JAX is installed.

  python tools/device_pack.py pack --out=.device          # here: weights and data for the trip
  python tools/jax_train.py --pack=.device/pack.npz --content_dir=.device/content --style_dir=.device/style \
      --out=OUT --crop=256 --max_seconds=420              # there
  python tools/device_pack.py unpack --decoder=OUT/decoder_final.npz --out=runs/gpu/network   # here again

With the linear transform: `pack --linear_rank=32` also writes linear_init.npz (its Keras initialisation, the
last projection zero), `--init=.device/linear_init.npz` here adds it to the starting network, and
`unpack --linear_rank=32` builds the network folder with it.

Weights travel as float16 (the bundled encoder's own precision); the arithmetic is float32. The run saves its
resumable state (decoder_final.npz, adam.npz: Adam's moments and the step) every --checkpoint_seconds and at the
end; `--resume=<that folder>` continues it (a later call or session), with fresh batches.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import queue
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from PIL import Image

VGG16_ORDER = ("block1_conv1", "block1_conv2", "pool", "block2_conv1", "block2_conv2", "pool",
               "block3_conv1", "block3_conv2", "block3_conv3", "pool",
               "block4_conv1", "block4_conv2", "block4_conv3", "pool", "block5_conv1")
LEVELS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1")  # relu1_1..relu4_1
PHOTO_CONTENT_LAYER = "block4_conv2"
TORCH_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
TORCH_STD = np.array([0.229, 0.224, 0.225], np.float32)
DECODER_LAYERS = ("dec4_1", "skip3", "dec3_2", "dec3_1", "skip2", "dec2_2", "dec2_1", "skip1", "dec1_2", "dec1_1")
HEAD_LAYERS = ("mhead_1", "mhead_2")  # nst_tf.network.build_moment_head (moment_head > 0)
LINEAR_LAYERS = tuple(f"{net}_{layer}" for net in ("snet", "cnet") for layer in ("conv1", "conv2", "conv3", "fc")) + \
    ("compress", "unzip")  # nst_tf.network.build_style_net and build_transfer (linear_rank > 0)
_ADAIN_EPS = 1e-5
_LOSS_EPS = 1e-8
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


# -- the network and the losses (pure functions of parameter dicts) --------------------------------
def conv(x, kernel, bias, padding: str):
    """NHWC convolution with an HWIO kernel (the Keras layout), stride 1."""
    y = lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias


def vgg_features(vgg: dict, images, wanted: tuple[str, ...]) -> dict:
    """Post-ReLU VGG16 features of [0, 1] RGB images (torchvision preprocessing) at the `wanted` layers."""
    x = (images - TORCH_MEAN) / TORCH_STD
    out = {}
    for name in VGG16_ORDER:
        if len(out) == len(wanted):
            break
        if name == "pool":
            x = lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
            continue
        x = jnp.maximum(conv(x, *vgg[name], "SAME"), 0.0)
        if name in wanted:
            out[name] = x
    return out


def moments(x):
    """Per-image, per-channel mean and variance over positions: [B, 1, 1, C] each."""
    mean = jnp.mean(x, axis=(1, 2), keepdims=True)
    return mean, jnp.mean(jnp.square(x - mean), axis=(1, 2), keepdims=True)


def style_vector(levels):
    """relu1_1..relu4_1 feature maps -> [B, 1920]: nst_tf.network.levels_vector (mean, std per level)."""
    parts = []
    for f in levels:
        mean, var = moments(f)
        parts += [mean[:, 0, 0], jnp.sqrt(var + _ADAIN_EPS)[:, 0, 0]]
    return jnp.concatenate(parts, axis=-1)


def _reflect_conv(x, params, relu: bool = True):
    y = conv(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect"), *params, "VALID")
    return jnp.maximum(y, 0.0) if relu else y


def _up(x, skip, params):
    x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
    return x + conv(skip, *params, "VALID")


def decode(dec: dict, levels):
    """AdaIN'd relu1_1..relu4_1 -> unclipped RGB: nst_tf.network.build_decoder with skip_levels=3."""
    r1, r2, r3, r4 = levels
    x = _reflect_conv(r4, dec["dec4_1"])
    x = _up(x, r3, dec["skip3"])
    x = _reflect_conv(_reflect_conv(x, dec["dec3_2"]), dec["dec3_1"])
    x = _up(x, r2, dec["skip2"])
    x = _reflect_conv(_reflect_conv(x, dec["dec2_2"]), dec["dec2_1"])
    x = _up(x, r1, dec["skip1"])
    return _reflect_conv(_reflect_conv(x, dec["dec1_2"]), dec["dec1_1"], relu=False)


def instance_normalized(x):
    """Zero mean, unit std per image and channel over positions (nst_tf.network.InstanceNormalized)."""
    mean, var = moments(x)
    return (x - mean) / jnp.sqrt(var + _ADAIN_EPS)


def covariance_head(p: dict, x, prefix: str):
    """Normalised features -> [B, r * r]: three convolutions, their covariance, a dense layer."""
    x = _reflect_conv(_reflect_conv(x, p[f"{prefix}_conv1"]), p[f"{prefix}_conv2"])
    x = _reflect_conv(x, p[f"{prefix}_conv3"], relu=False)
    b, h, w, r = x.shape
    flat = x.reshape(b, h * w, r)
    covariance = jnp.einsum("bpi,bpj->bij", flat, flat) / (h * w)
    return covariance.reshape(b, r * r) @ p[f"{prefix}_fc"][0] + p[f"{prefix}_fc"][1]


def style_matrix(p: dict, relu4):
    """A style's relu4_1 -> its style matrix S, [B, r * r] (nst_tf.network.build_style_net)."""
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
    hidden = jnp.maximum(jnp.concatenate([target, own], axis=-1) @ p["mhead_1"][0] + p["mhead_1"][1], 0.0)
    return hidden @ p["mhead_2"][0] + p["mhead_2"][1]


def adain_to(content, mean, std):
    """Give `content` features the per-channel `mean` and `std` ([B, C] each)."""
    c_mean, c_var = moments(content)
    return (content - c_mean) / jnp.sqrt(c_var + _ADAIN_EPS) * std[:, None, None, :] + mean[:, None, None, :]


def styled_levels(dec: dict, content_levels, style_levels):
    """The decoder's inputs: every content level AdaIN'd to the style's moments (corrected by the moment head when
    `dec` has one), plus the linear residual at relu4_1 when `dec` has the transform
    (nst_tf.network.ArbitraryStyleNetwork.styled_levels, alpha 1)."""
    target = style_vector(style_levels)
    if "mhead_1" in dec:
        target = target + moment_correction(dec, target, style_vector(content_levels))
    targets, start = [], 0
    for c in content_levels:
        n = c.shape[-1]
        targets.append(adain_to(c, target[:, start:start + n], target[:, start + n:start + 2 * n]))
        start += 2 * n
    if "unzip" in dec:
        targets[-1] = targets[-1] + linear_residual(dec, content_levels[-1], style_matrix(dec, style_levels[-1]))
    return targets


def own_levels(dec: dict, content_levels):
    """What the identity term decodes (nst_tf.network.ArbitraryStyleNetwork.own_levels)."""
    if "unzip" not in dec:
        return list(content_levels)
    r4 = content_levels[-1]
    return [*content_levels[:-1], r4 + linear_residual(dec, r4, style_matrix(dec, r4))]


def gram(f):
    """Gram matrix averaged over positions: [B, C, C]."""
    return jnp.einsum("bhwc,bhwd->bcd", f, f) / (f.shape[1] * f.shape[2])


def relative_error(value, target):
    """||value - target||^2 / ||target||^2 per batch item."""
    axes = tuple(range(1, value.ndim))
    return jnp.sum(jnp.square(value - target), axis=axes) / (jnp.sum(jnp.square(target), axis=axes) + _LOSS_EPS)


def total_variation(images):
    """Mean squared difference of neighbouring pixels, both directions, per batch item."""
    dy = images[:, 1:] - images[:, :-1]
    dx = images[:, :, 1:] - images[:, :, :-1]
    return jnp.mean(jnp.square(dy), axis=(1, 2, 3)) + jnp.mean(jnp.square(dx), axis=(1, 2, 3))


def loss_terms(dec: dict, vgg: dict, content, style, weights: dict, style_layers: tuple[str, ...]) -> dict:
    """Per-example weighted loss terms ([B] each): Trainer.compute_losses with content_target='photo'."""
    wanted = tuple(dict.fromkeys((*LEVELS, PHOTO_CONTENT_LAYER, *style_layers)))
    content_feats = vgg_features(vgg, content, wanted)
    style_feats = vgg_features(vgg, style, wanted)
    content_levels = [content_feats[n] for n in LEVELS]
    terms = {}
    if weights["identity"]:
        reconstruction = decode(dec, own_levels(dec, content_levels))
        terms["identity"] = weights["identity"] * jnp.mean(jnp.square(reconstruction - content), axis=(1, 2, 3))
    targets = styled_levels(dec, content_levels, [style_feats[n] for n in LEVELS])
    output = decode(dec, targets)
    return gatys_terms(terms, vgg, output, content_feats, style_feats, weights, style_layers, targets[-1])


def gatys_terms(terms: dict, vgg: dict, output, content_feats: dict, style_feats: dict, weights: dict,
                style_layers: tuple[str, ...], decoder_input=None) -> dict:
    """`terms` plus the output's weighted inversion (relu4_1 against `decoder_input`, when weighted), content,
    style and tv terms, and their total ([B] each)."""
    inversion = weights.get("inversion", 0.0) and decoder_input is not None
    wanted = tuple(dict.fromkeys((PHOTO_CONTENT_LAYER, *style_layers, *((LEVELS[-1],) if inversion else ()))))
    output_feats = vgg_features(vgg, output, wanted)
    if inversion:
        terms["inversion"] = weights["inversion"] * relative_error(output_feats[LEVELS[-1]], decoder_input)
    terms["content"] = weights["content"] * relative_error(output_feats[PHOTO_CONTENT_LAYER],
                                                           content_feats[PHOTO_CONTENT_LAYER])
    style_terms = [relative_error(gram(output_feats[n]), gram(style_feats[n])) for n in style_layers]
    style_term = sum(style_terms) / len(style_terms)
    if weights.get("style_target") is not None:  # Trainer's style_relative: a fraction of the photo's own loss
        own = sum(relative_error(gram(content_feats[n]), gram(style_feats[n])) for n in style_layers) / len(style_terms)
        style_term = jax.nn.relu(style_term / (lax.stop_gradient(own) + _LOSS_EPS) - weights["style_target"])
    terms["style"] = weights["style"] * style_term
    terms["tv"] = weights["tv"] * total_variation(output)
    terms["total"] = sum(v for k, v in terms.items())
    return terms


# -- the student: nst_tf.mobile's transformer, distilled from the decoder above -------------------------
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
        return jnp.maximum(y, 0.0) if relu else y

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


def student_terms(sp: dict, dec: dict, vgg: dict, content, style, weights: dict,
                  style_layers: tuple[str, ...]) -> dict:
    """Per-example weighted loss terms ([B] each) of the student: the Gatys terms of loss_terms (content, style,
    tv), identity (the content's own vector gives the content back) and distill (squared pixel error to the
    frozen decoder's clipped output)."""
    wanted = tuple(dict.fromkeys((*LEVELS, PHOTO_CONTENT_LAYER, *style_layers)))
    content_feats = vgg_features(vgg, content, wanted)
    style_feats = vgg_features(vgg, style, wanted)
    content_levels = [content_feats[n] for n in LEVELS]
    style_levels = [style_feats[n] for n in LEVELS]
    blocks = student_blocks(sp)
    pixel_error = lambda a, b: jnp.mean(jnp.square(a - b), axis=(1, 2, 3))  # noqa: E731
    terms = {}
    if weights["identity"]:
        reconstruction = transform(sp, content, style_vector(content_levels), blocks)
        terms["identity"] = weights["identity"] * pixel_error(reconstruction, content)
    output = transform(sp, content, style_vector(style_levels), blocks)
    if weights["distill"]:
        teacher = decode(dec, styled_levels(dec, content_levels, style_levels))
        terms["distill"] = weights["distill"] * pixel_error(output, lax.stop_gradient(jnp.clip(teacher, 0.0, 1.0)))
    return gatys_terms(terms, vgg, output, content_feats, style_feats, weights, style_layers)


def adam_update(params: dict, grads: dict, state: dict, learning_rate: float, lr_decay: float,
                beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7):
    """One Keras Adam step under InverseTimeDecay(learning_rate, 1, lr_decay); state: {iterations, m, v}."""
    it = state["iterations"]
    lr = learning_rate / (1.0 + lr_decay * it)
    t = (it + 1).astype(jnp.float32)
    alpha = lr * jnp.sqrt(1.0 - beta_2 ** t) / (1.0 - beta_1 ** t)
    m = jax.tree_util.tree_map(lambda m, g: m + (g - m) * (1.0 - beta_1), state["m"], grads)
    v = jax.tree_util.tree_map(lambda v, g: v + (jnp.square(g) - v) * (1.0 - beta_2), state["v"], grads)
    new = jax.tree_util.tree_map(lambda p, m, v: p - m * alpha / (jnp.sqrt(v) + epsilon), params, m, v)
    return new, {"iterations": it + 1, "m": m, "v": v}


def make_step(terms_fn, learning_rate: float, lr_decay: float):
    """A jitted step (params, state, content, style) -> (params, state, mean terms, finite) of the per-example
    terms_fn(params, content, style); skips non-finite updates."""

    def batch_loss(params, content, style):
        terms = terms_fn(params, content, style)
        return jnp.mean(terms["total"]), {k: jnp.mean(v) for k, v in terms.items()}

    @jax.jit
    def step(params, state, content, style):
        (loss, terms), grads = jax.value_and_grad(batch_loss, has_aux=True)(params, content, style)
        finite = jnp.isfinite(loss) & jnp.all(jnp.array([jnp.all(jnp.isfinite(g)) for g in
                                                         jax.tree_util.tree_leaves(grads)]))
        new_params, new_state = adam_update(params, grads, state, learning_rate, lr_decay)
        keep = lambda a, b: jnp.where(finite, a, b)  # noqa: E731
        return (jax.tree_util.tree_map(keep, new_params, params), jax.tree_util.tree_map(keep, new_state, state),
                terms, finite)

    return step


# -- weights in and out ------------------------------------------------------------------------------
def load_parts(*paths: str) -> dict[str, dict]:
    """Weights files of `<part>/<layer>/<0|1>` arrays -> {part: {layer: (kernel, bias)}}, float32."""
    parts: dict[str, dict] = {}
    for path in paths:
        with np.load(path) as data:
            for key in data.files:
                part, layer, index = key.split("/")
                parts.setdefault(part, {}).setdefault(layer, [None, None])[int(index)] = data[key].astype(np.float32)
    return {part: {k: tuple(v) for k, v in layers.items()} for part, layers in parts.items()}


def load_weights(*paths: str) -> tuple[dict, dict]:
    """Network weights.npz files (encoder/..., decoder/..., style_net/..., ...) -> (vgg, trained) dicts of
    (kernel, bias), float32: every part but the encoder is trained, its layers in one dict (the names are unique)."""
    parts = load_parts(*paths)
    return parts.get("encoder", {}), {k: v for part, layers in parts.items() if part != "encoder"
                                      for k, v in layers.items()}


def _savez_atomic(path: str, arrays: dict[str, np.ndarray]) -> None:
    """np.savez to a temporary file beside `path`, then rename."""
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def save_params(params: dict, path: str, part: str = "decoder") -> None:
    """Weights as float32 `<part>/<layer>/<0|1>` arrays (the bundled networks' naming), atomically."""
    arrays = {f"{part}/{name}/{i}": np.asarray(w, np.float32)
              for name, pair in params.items() for i, w in enumerate(pair)}
    _savez_atomic(path, arrays)


def save_state(params: dict, state: dict, step: int, out: str, part: str = "decoder") -> None:
    """The resumable state in `out`: <part>_final.npz (the trained weights) and adam.npz (moments, counters)."""
    save_params(params, os.path.join(out, f"{part}_final.npz"), part)
    arrays = {f"{kind}/{name}/{i}": np.asarray(w, np.float32)
              for kind in ("m", "v") for name, pair in state[kind].items() for i, w in enumerate(pair)}
    arrays.update(iterations=np.asarray(state["iterations"]), step=np.asarray(step))
    _savez_atomic(os.path.join(out, "adam.npz"), arrays)


def load_state(directory: str, params: dict, part: str = "decoder") -> tuple[dict, dict, int]:
    """(weights, Adam state, step) saved by save_state; SystemExit naming the file when it does not fit `params`."""
    path = os.path.join(directory, "adam.npz")
    try:
        saved = load_parts(os.path.join(directory, f"{part}_final.npz")).get(part, {})
        with np.load(path) as data:
            moments = {kind: {name: tuple(data[f"{kind}/{name}/{i}"] for i in range(len(pair)))
                              for name, pair in params.items()} for kind in ("m", "v")}
            iterations, step = int(data["iterations"]), int(data["step"])
    except (OSError, KeyError) as exc:
        raise SystemExit(f"{path}: cannot resume from it ({exc})") from None
    shapes = lambda d: {k: tuple(np.shape(w) for w in v) for k, v in d.items()}  # noqa: E731
    if shapes(saved) != shapes(params) or shapes(moments["m"]) != shapes(params):
        raise SystemExit(f"{path}: the saved {part} does not fit this network")
    return saved, {"iterations": iterations, **moments}, step


# -- data: Trainer's random crops, with Pillow ------------------------------------------------------
def list_images(folder: str) -> list[str]:
    """Image files under `folder`, sorted."""
    files = sorted(os.path.join(root, n) for root, _, names in os.walk(folder) for n in names
                   if n.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise SystemExit(f"{folder}: no images")
    return files


def load_images(files: list[str]) -> list[Image.Image]:
    """Decode every readable image to RGB once (unreadable ones are skipped and counted)."""
    images, skipped = [], 0
    for path in files:
        try:
            with Image.open(path) as im:
                images.append(im.convert("RGB"))
        except Exception:  # any decoding failure: skip the file
            skipped += 1
    print(f"{len(images)} images read, {skipped} skipped", flush=True)
    return images


def random_crop(image: Image.Image, crop: int, min_scale: float, max_scale: float, rng) -> np.ndarray:
    """nst_tf.data.random_crop: short side to crop * U(min, max), random crop, random flip; float32 [0, 1]."""
    w, h = image.size
    scale = rng.uniform(min_scale, max_scale) * crop / min(w, h)
    size = (max(round(w * scale), crop), max(round(h * scale), crop))
    y = int(rng.integers(0, size[1] - crop + 1))
    x = int(rng.integers(0, size[0] - crop + 1))
    out = image.resize(size, Image.BILINEAR).crop((x, y, x + crop, y + crop))
    if rng.random() < 0.5:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(out, np.float32) / 255.0


class Batches:
    """Prefetched (content, style) batches of random crops, made by a thread pool; epochs shuffled."""

    def __init__(self, content: list[Image.Image], style: list[Image.Image], batch: int, crop: int, seed: int,
                 workers: int = 8, depth: int = 16, put=lambda a: a, style_crop: int = 0):
        self.sources = [(content, 1.0, 1.6, crop), (style, 1.0, 1.3, style_crop or crop)]
        self.batch, self.put = batch, put
        self.rng = np.random.default_rng(seed)
        self.orders = [[], []]
        self.pool = concurrent.futures.ThreadPoolExecutor(workers)
        self.queue: queue.Queue = queue.Queue(depth)
        threading.Thread(target=self._fill, daemon=True).start()

    def _next_index(self, which: int) -> int:
        if not self.orders[which]:
            self.orders[which] = list(self.rng.permutation(len(self.sources[which][0])))
        return self.orders[which].pop()

    def _fill(self) -> None:
        while True:
            jobs = []
            for which, (images, lo, hi, crop) in enumerate(self.sources):
                seeds = self.rng.integers(0, 2**31, self.batch)
                picks = [self._next_index(which) for _ in range(self.batch)]
                jobs.append([self.pool.submit(random_crop, images[i], crop, lo, hi, np.random.default_rng(s))
                             for i, s in zip(picks, seeds)])
            self.queue.put(tuple(self.put(np.stack([j.result() for j in js])) for js in jobs))

    def __next__(self):
        return self.queue.get()


def weighted_images(spec: str) -> list[Image.Image]:
    """The images of `spec` ("DIR[:N],DIR[:N]..."), each folder's repeated N times (default 1)."""
    images = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        folder, sep, repeat = part.rpartition(":")  # as nst_tf.data.scan_sources reads it
        if not sep or not repeat.isdigit():
            folder, repeat = part, "1"
        images += load_images(list_images(folder)) * int(repeat)
    return images


# -- the loop -------------------------------------------------------------------------------------------
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--network", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                     "nst_tf", "models", "arbitrary", "weights.npz"),
                   help="the starting network's weights.npz (default: the bundled one)")
    p.add_argument("--student", default="",
                   help="train nst_tf.mobile's transformer from these initial weights (transformer/<layer>/<i>, "
                        "device_pack.py pack --student) with the network above as a frozen teacher")
    p.add_argument("--distill_weight", type=float, default=10.0, help="student: squared pixel error to the teacher")
    p.add_argument("--init", default="",
                   help="comma-separated weights files of layers the network lacks, as decoder/<layer>/<i> "
                        "(device_pack.py pack --linear_rank / --moment_head: their initialisation)")
    p.add_argument("--pack", required=True, help="the loss-only VGG16 layers (device_pack.py pack)")
    p.add_argument("--content_dir", required=True)
    p.add_argument("--style_dir", required=True,
                   help="comma-separated folders, each optionally FOLDER:N to repeat its images N times per epoch")
    p.add_argument("--out", required=True)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--style_crop", type=int, default=0, help="crop of the style images (default: --crop)")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--learning_rate", type=float, default=5e-4)
    p.add_argument("--lr_decay", type=float, default=5e-5)
    p.add_argument("--content_weight", type=float, default=1.0)
    p.add_argument("--style_weight", type=float, default=10.0)
    p.add_argument("--tv_weight", type=float, default=1.0)
    p.add_argument("--identity_weight", type=float, default=10.0)
    p.add_argument("--inversion_weight", type=float, default=0.0,
                   help="relu4_1 of the output against the decoder's relu4_1 input (nst-train --inversion_weight)")
    p.add_argument("--style_relative", action="store_true",
                   help="style term over the photo's own style loss, per example (nst-train --style_relative)")
    p.add_argument("--style_target", type=float, default=0.0, help="with --style_relative: push only above this")
    p.add_argument("--style_layers", default=",".join(LEVELS))
    p.add_argument("--max_steps", type=int, default=10**9)
    p.add_argument("--max_seconds", type=float, default=420.0, help="training time, compilation included")
    p.add_argument("--snapshot_fraction", type=float, default=0.5, help="also save at this fraction of the time")
    p.add_argument("--checkpoint_seconds", type=float, default=60.0,
                   help="save the resumable state (decoder_final.npz, adam.npz) this often, and at the end")
    p.add_argument("--resume", default="", help="a previous --out folder: continue its decoder, Adam state and step")
    p.add_argument("--log_every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.student and args.inversion_weight:
        raise SystemExit("--inversion_weight is for the arbitrary-style decoder, not --student")
    started = time.time()
    print(f"jax {jax.__version__} on {jax.devices()}", flush=True)
    os.makedirs(args.out, exist_ok=True)
    vgg, dec = load_weights(args.network, args.pack)
    if args.init:
        dec = {**load_parts(*args.init.split(",")).get("decoder", {}), **dec}  # the network's own layers win
    style_layers = tuple(n.strip() for n in args.style_layers.split(",") if n.strip())
    missing = [n for n in (*LEVELS, PHOTO_CONTENT_LAYER, *style_layers) if n not in vgg] + \
              [n for n in DECODER_LAYERS if n not in dec]
    for group in (LINEAR_LAYERS, HEAD_LAYERS):
        if any(n in dec for n in group):
            missing += [n for n in group if n not in dec]
    if missing:
        raise SystemExit(f"{args.pack}: missing layers {missing}")
    weights = {"content": args.content_weight, "style": args.style_weight, "tv": args.tv_weight,
               "identity": args.identity_weight, "distill": args.distill_weight, "inversion": args.inversion_weight,
               "style_target": args.style_target if args.style_relative else None}
    vgg = jax.tree_util.tree_map(jnp.asarray, vgg)
    if args.student:
        part, params = "transformer", load_parts(args.student).get("transformer")
        if not params or "bottleneck" not in params:
            raise SystemExit(f"{args.student}: no transformer/<layer>/<i> weights (device_pack.py pack --student)")
        teacher = jax.tree_util.tree_map(jnp.asarray, dec)
        step_fn = make_step(lambda sp, c, s: student_terms(sp, teacher, vgg, c, s, weights, style_layers),
                            args.learning_rate, args.lr_decay)
    else:
        part, params = "decoder", dec
        step_fn = make_step(lambda d, c, s: loss_terms(d, vgg, c, s, weights, style_layers),
                            args.learning_rate, args.lr_decay)
    step = 0
    zeros = jax.tree_util.tree_map(np.zeros_like, params)
    state = {"iterations": 0, "m": zeros, "v": zeros}
    if args.resume:
        params, state, step = load_state(args.resume, params, part)
        print(f"resumed from {args.resume} at step {step}", flush=True)
    params = jax.tree_util.tree_map(jnp.asarray, params)
    state = {"iterations": jnp.asarray(state["iterations"], jnp.int32),
             "m": jax.tree_util.tree_map(jnp.asarray, state["m"]), "v": jax.tree_util.tree_map(jnp.asarray, state["v"])}
    batches = Batches(load_images(list_images(args.content_dir)), weighted_images(args.style_dir),
                      args.batch_size, args.crop, args.seed + step,  # a resumed run does not replay the same batches
                      put=jax.device_put, style_crop=args.style_crop)
    log = open(os.path.join(args.out, "log.jsonl"), "a")
    first_step, skipped, snapshot_done, window = step, 0, False, []
    train_started = last_saved = time.time()
    while step < args.max_steps and time.time() - started < args.max_seconds:
        content, style = next(batches)
        params, state, terms, finite = step_fn(params, state, content, style)
        window.append((terms, finite))  # read back only at log time: the host never waits for the device
        step += 1
        if step == first_step + 1:
            jax.block_until_ready(params)
            print(f"first step (compilation) done at {time.time() - started:.1f} s", flush=True)
            train_started, window = time.time(), []
        if step % args.log_every == 0 and window:
            flags = [bool(f) for _, f in window]
            bad = flags.count(False)
            skipped += bad
            if bad == len(flags):
                raise SystemExit(f"step {step}: {bad} consecutive non-finite steps; stopping")
            good = [t for t, f in zip([t for t, _ in window], flags) if f]
            record = {"step": step, "seconds": round(time.time() - started, 1),
                      "steps_per_second": round((step - first_step - 1) / max(time.time() - train_started, 1e-9), 2),
                      "skipped": bad, **{k: round(float(np.mean([float(t[k]) for t in good])), 5) for k in good[0]}}
            print(json.dumps(record), flush=True)
            log.write(json.dumps(record) + "\n")
            log.flush()
            window = []
        if not snapshot_done and time.time() - started > args.snapshot_fraction * args.max_seconds:
            save_params(params, os.path.join(args.out, f"{part}_half.npz"), part)
            log.write(json.dumps({"snapshot": f"{part}_half.npz", "step": step}) + "\n")
            snapshot_done = True
        if time.time() - last_saved > args.checkpoint_seconds:
            save_state(params, state, step, args.out, part)
            last_saved = time.time()
    save_state(params, state, step, args.out, part)
    summary = {"final_step": step, "skipped": skipped, "seconds": round(time.time() - started, 1), **vars(args)}
    log.write(json.dumps(summary) + "\n")
    log.close()
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
