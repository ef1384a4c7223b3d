"""Keras' Adam, the jitted training step, weights and resumable state in and out, and the training loop.

Weights files hold `<part>/<layer>/<0|1>` arrays (the network folders' naming). The run saves its resumable state
in --out (`<part>_final.npz`: the trained weights, float32; adam.npz: Adam's moments, the iteration and the step)
every --checkpoint_seconds and at the end; with --return_dir it also writes `<part>_f16.npz` there (the trained
weights as float16, compressed: what device_pack.py unpack reads, small enough to come back from a GPU machine)
and a copy of the log.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst import data
from jaxnst.losses import Recipe, loss_terms, student_terms
from jaxnst.model import DECODER_LAYERS, FILM_LAYERS, HEAD_LAYERS, LINEAR_LAYERS, STRENGTH_LAYERS, vgg_path

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUNDLED_WEIGHTS = os.path.join(ROOT, "nst_tf", "models", "arbitrary", "weights.npz")


# -- Adam and the step --------------------------------------------------------------------------------------
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
    """A jitted step (params, state, content, style, strength, directions) -> (params, state, mean terms, finite)
    of the per-example terms_fn(params, content, style, strength, directions); skips non-finite updates."""

    def batch_loss(params, content, style, strength, directions):
        terms = terms_fn(params, content, style, strength, directions)
        return jnp.mean(terms["total"]), {k: jnp.mean(v) for k, v in terms.items()}

    @jax.jit
    def step(params, state, content, style, strength, directions):
        (loss, terms), grads = jax.value_and_grad(batch_loss, has_aux=True)(params, content, style, strength,
                                                                             directions)
        finite = jnp.isfinite(loss) & jnp.all(jnp.array([jnp.all(jnp.isfinite(g)) for g in
                                                         jax.tree_util.tree_leaves(grads)]))
        new_params, new_state = adam_update(params, grads, state, learning_rate, lr_decay)
        keep = lambda a, b: jnp.where(finite, a, b)  # noqa: E731
        return (jax.tree_util.tree_map(keep, new_params, params), jax.tree_util.tree_map(keep, new_state, state),
                terms, finite)

    return step


# -- weights in and out ------------------------------------------------------------------------------------
def load_parts(*paths: str) -> dict[str, dict]:
    """Weights files of `<part>/<layer>/<0|1>` arrays -> {part: {layer: (kernel, bias)}}, float32."""
    parts: dict[str, dict] = {}
    for path in paths:
        with np.load(path) as arrays:
            for key in arrays.files:
                part, layer, index = key.split("/")
                parts.setdefault(part, {}).setdefault(layer, [None, None])[int(index)] = \
                    arrays[key].astype(np.float32)
    return {part: {k: tuple(v) for k, v in layers.items()} for part, layers in parts.items()}


def read_network(path: str) -> tuple[dict[str, dict], dict]:
    """A network folder (config.json + weights.npz) or a weights.npz -> (its parts, its config or {}). A folder of
    the trained parts alone (a checkpoint) gets the bundled VGG16 encoder, and one saved before the strength
    embedding's excess ramps gets zero ones, as nst_tf.network.ArbitraryStyleNetwork.load does."""
    config = {}
    weights = path
    if os.path.isdir(path):
        weights = os.path.join(path, "weights.npz")
        try:
            with open(os.path.join(path, "config.json")) as f:
                config = json.load(f)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"{os.path.join(path, 'config.json')}: cannot read it ({exc})") from None
    try:
        parts = load_parts(weights)
        if "encoder" not in parts:
            parts["encoder"] = load_parts(BUNDLED_WEIGHTS)["encoder"]
    except (OSError, ValueError, KeyError) as exc:
        raise SystemExit(f"{weights}: not a network's weights ({exc})") from None
    decoder = parts.get("decoder", {})
    if "strength_embed1" in decoder and "strength_excess" not in decoder:
        decoder["strength_excess"] = tuple(np.zeros_like(w) for w in decoder["strength_embed1"])
    return parts, config


def trained_params(parts: dict[str, dict]) -> dict:
    """Every part but the encoder, its layers in one dict (the names are unique across parts)."""
    return {k: v for part, layers in parts.items() if part != "encoder" for k, v in layers.items()}


def missing_layers(vgg: dict, params: dict, recipe: Recipe) -> list[str]:
    """The VGG16 convolutions the recipe's layers are reached through and the network's layers that are not in
    `vgg` / `params` (an optional part counts when any of its layers is there)."""
    missing = [n for n in vgg_path(recipe.loss_layers) if n not in vgg] + [n for n in DECODER_LAYERS if n not in params]
    for group in (LINEAR_LAYERS, HEAD_LAYERS, STRENGTH_LAYERS + FILM_LAYERS):
        if any(n in params for n in group):
            missing += [n for n in group if n not in params]
    return missing


def _savez_atomic(path: str, arrays: dict[str, np.ndarray], compressed: bool = False) -> None:
    """np.savez (or savez_compressed) to a temporary file beside `path`, then rename."""
    tmp = path + ".tmp.npz"
    (np.savez_compressed if compressed else np.savez)(tmp, **arrays)
    os.replace(tmp, path)


def save_params(params: dict, path: str, part: str = "decoder", dtype=np.float32) -> None:
    """Weights as `<part>/<layer>/<0|1>` arrays of `dtype` (float16: compressed), atomically."""
    arrays = {f"{part}/{name}/{i}": np.asarray(w, dtype) for name, pair in params.items() for i, w in enumerate(pair)}
    _savez_atomic(path, arrays, compressed=dtype == np.float16)


def save_state(params: dict, state: dict, step: int, out: str, part: str = "decoder", return_dir: str = "") -> None:
    """The resumable state in `out`: <part>_final.npz (the trained weights) and adam.npz (moments, counters); with
    `return_dir`, also <part>_f16.npz (float16, compressed) and log.jsonl there."""
    save_params(params, os.path.join(out, f"{part}_final.npz"), part)
    arrays = {f"{kind}/{name}/{i}": np.asarray(w, np.float32)
              for kind in ("m", "v") for name, pair in state[kind].items() for i, w in enumerate(pair)}
    arrays.update(iterations=np.asarray(state["iterations"]), step=np.asarray(step))
    _savez_atomic(os.path.join(out, "adam.npz"), arrays)
    if return_dir:
        save_params(params, os.path.join(return_dir, f"{part}_f16.npz"), part, np.float16)
        shutil.copyfile(os.path.join(out, "log.jsonl"), os.path.join(return_dir, "log.jsonl.tmp"))
        os.replace(os.path.join(return_dir, "log.jsonl.tmp"), os.path.join(return_dir, "log.jsonl"))


def load_state(directory: str, params: dict, part: str = "decoder") -> tuple[dict, dict, int]:
    """(weights, Adam state, step) saved by save_state; SystemExit naming the file when it does not fit `params`."""
    path = os.path.join(directory, "adam.npz")
    try:
        saved = load_parts(os.path.join(directory, f"{part}_final.npz")).get(part, {})
        with np.load(path) as arrays:
            moments = {kind: {name: tuple(arrays[f"{kind}/{name}/{i}"] for i in range(len(pair)))
                              for name, pair in params.items()} for kind in ("m", "v")}
            iterations, step = int(arrays["iterations"]), int(arrays["step"])
    except (OSError, KeyError) as exc:
        raise SystemExit(f"{path}: cannot resume from it ({exc})") from None
    shapes = lambda d: {k: tuple(np.shape(w) for w in v) for k, v in d.items()}  # noqa: E731
    if shapes(saved) != shapes(params) or shapes(moments["m"]) != shapes(params):
        raise SystemExit(f"{path}: the saved {part} does not fit this network")
    return saved, {"iterations": iterations, **moments}, step


# -- the loop ------------------------------------------------------------------------------------------------
def recipe_from(args, palette: bool, skip_fade: bool = False) -> Recipe:
    """The Recipe of jax_train.py's parsed arguments, for a network with or without the palette layer and the skip
    fade."""
    try:
        return Recipe(
            content_weight=args.content_weight, style_weight=args.style_weight, tv_weight=args.tv_weight,
            identity_weight=args.identity_weight, inversion_weight=args.inversion_weight,
            photo_weight=args.photo_weight, layout_weight=args.layout_weight,
            distill_weight=args.distill_weight, palette_weight=args.palette_weight, viewing_weight=args.viewing_weight,
            viewing_scale=args.viewing_scale, viewing_target=args.viewing_target, style_relative=args.style_relative,
            style_target=args.style_target,
            strength_max=args.strength_max, content_target=args.content_target, palette=palette, skip_fade=skip_fade,
            style_layers=tuple(n.strip() for n in args.style_layers.split(",") if n.strip()))
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None


def setup(args):
    """(part, params, step function, recipe) of a run: the network (and student) read, every layer checked."""
    parts, config = read_network(args.network)
    if args.pack:
        try:
            packed = load_parts(args.pack).get("encoder", {})
        except (OSError, ValueError, KeyError) as exc:
            raise SystemExit(f"{args.pack}: cannot read it ({exc}; device_pack.py pack writes it, and on the "
                             "device machine it must have come with this call or an earlier one on the same "
                             "machine)") from None
        parts["encoder"] = {**parts["encoder"], **packed}
    vgg, params = parts["encoder"], trained_params(parts)
    if args.init:
        params = {**load_parts(*args.init.split(",")).get("decoder", {}), **params}  # the network's own layers win
    skip_fade = bool(config.get("skip_fade", False)) if config else bool(getattr(args, "skip_fade", False))
    if getattr(args, "skip_fade", False) and not skip_fade:
        raise SystemExit(f"{os.path.join(args.network, 'config.json')}: the network has no skip_fade (--skip_fade is "
                         "for a --network weights.npz; a folder's config.json says whether it has it)")
    if skip_fade and "strength_embed1" not in params:
        raise SystemExit(f"{args.network}: skip_fade needs the strength input (strength_embed layers)")
    recipe = recipe_from(args, bool(config.get("palette", args.palette)), skip_fade)
    if args.student and (recipe.inversion_weight or recipe.photo_weight or recipe.strength_max or recipe.palette):
        raise SystemExit("--student trains the previous phone-sized design: no --inversion_weight, --photo_weight, "
                         "--strength_max or palette layer")
    missing = missing_layers(vgg, params, recipe)
    if missing:
        raise SystemExit(f"{args.network}: missing layers {missing} (VGG16 layers beyond the encoder: "
                         "device_pack.py pack writes them to pack.npz, given this run's --content_target, "
                         "--photo_weight and --style_layers; --pack names it)")
    vgg = jax.tree_util.tree_map(jnp.asarray, vgg)
    if args.student:
        try:
            student = load_parts(args.student).get("transformer")
        except (OSError, ValueError, KeyError) as exc:
            raise SystemExit(f"{args.student}: cannot read it ({exc})") from None
        if not student or "bottleneck" not in student:
            raise SystemExit(f"{args.student}: no transformer/<layer>/<i> weights (device_pack.py pack --student)")
        teacher = jax.tree_util.tree_map(jnp.asarray, params)
        fn = lambda sp, c, s, k, d: student_terms(sp, teacher, vgg, c, s, recipe, d)  # noqa: E731
        return "transformer", student, make_step(fn, args.learning_rate, args.lr_decay), recipe
    fn = lambda p, c, s, k, d: loss_terms(p, vgg, c, s, recipe, k, d)  # noqa: E731
    return "decoder", params, make_step(fn, args.learning_rate, args.lr_decay), recipe


def _log_record(window: list, step: int, started: float, train_started: float, first_step: int) -> dict:
    """The mean terms of the steps in `window` that were applied, with the pace; SystemExit when none was."""
    flags = [bool(f) for _, f in window]
    bad = flags.count(False)
    if bad == len(flags):
        raise SystemExit(f"step {step}: {bad} consecutive non-finite steps; stopping")
    good = [t for (t, _), f in zip(window, flags) if f]
    return {"step": step, "seconds": round(time.time() - started, 1),
            "steps_per_second": round((step - first_step - 1) / max(time.time() - train_started, 1e-9), 2),
            "skipped": bad, **{k: round(float(np.mean([float(t[k]) for t in good])), 5) for k in good[0]}}


def run(args) -> dict:
    """Train until --max_steps or --max_seconds, saving the resumable state; returns the summary."""
    started = time.time()
    print(f"jax {jax.__version__} on {jax.devices()}", flush=True)
    os.makedirs(args.out, exist_ok=True)
    if args.return_dir:
        os.makedirs(args.return_dir, exist_ok=True)
    part, params, step_fn, recipe = setup(args)
    print(f"recipe: {recipe}", flush=True)
    step = 0
    zeros = jax.tree_util.tree_map(np.zeros_like, params)
    state = {"iterations": 0, "m": zeros, "v": zeros}
    if args.resume:
        params, state, step = load_state(args.resume, params, part)
        print(f"resumed from {args.resume} at step {step}", flush=True)
    params = jax.tree_util.tree_map(jnp.asarray, params)
    state = {"iterations": jnp.asarray(state["iterations"], jnp.int32),
             "m": jax.tree_util.tree_map(jnp.asarray, state["m"]), "v": jax.tree_util.tree_map(jnp.asarray, state["v"])}
    batches = data.Batches(data.load_images(data.list_images(args.content_dir)), data.weighted_images(args.style_dir),
                           args.batch_size, args.crop, args.seed + step,  # a resumed run does not replay the batches
                           put=jax.device_put, style_crop=args.style_crop, workers=args.workers)
    rng = np.random.default_rng([args.seed, step])  # the strengths and the palette term's directions
    log = open(os.path.join(args.out, "log.jsonl"), "a")
    first_step, skipped, snapshot_done, window = step, 0, False, []
    train_started = last_saved = time.time()
    while step < args.max_steps and time.time() - started < args.max_seconds:
        content, style = next(batches)
        strength = data.sample_strength(rng, args.batch_size, recipe.strength_max, args.strength_zero)
        params, state, terms, finite = step_fn(params, state, content, style, strength, data.random_directions(rng))
        window.append((terms, finite))  # read back only at log time: the host never waits for the device
        step += 1
        if step == first_step + 1:
            jax.block_until_ready(params)
            print(f"first step (compilation) done at {time.time() - started:.1f} s", flush=True)
            train_started, window = time.time(), []
        if step % args.log_every == 0 and window:
            record = _log_record(window, step, started, train_started, first_step)
            skipped += record["skipped"]
            print(json.dumps(record), flush=True)
            log.write(json.dumps(record) + "\n")
            log.flush()
            window = []
        if not snapshot_done and time.time() - started > args.snapshot_fraction * args.max_seconds:
            save_params(params, os.path.join(args.out, f"{part}_half.npz"), part)
            log.write(json.dumps({"snapshot": f"{part}_half.npz", "step": step}) + "\n")
            snapshot_done = True
        if time.time() - last_saved > args.checkpoint_seconds:
            log.flush()
            save_state(params, state, step, args.out, part, args.return_dir)
            last_saved = time.time()
    summary = {"final_step": step, "skipped": skipped, "seconds": round(time.time() - started, 1), **vars(args)}
    log.write(json.dumps(summary) + "\n")
    log.close()
    save_state(params, state, step, args.out, part, args.return_dir)
    print(json.dumps(summary), flush=True)
    return summary
