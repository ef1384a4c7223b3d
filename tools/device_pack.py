"""Carry a training run to a JAX-only accelerator machine and bring its weights back (see tools/jax_train.py).

  python tools/device_pack.py pack --out=.device [--model=DIR] [--crop=256] [--content_target=adain]
      [--photo_weight=W] [--style_layers=L1,L2,...] [--quality=85] [--style_quality=0] [--extra_styles=LIST.txt]
      network/: with --model, the network to start from when git does not track it (its config.json and trained
      parts; jax_train.py fills in the bundled VGG16 encoder, which travels with the repository, as does a tracked
      folder such as checkpoints/arbitrary_strength: --network names it directly);
      pack.npz: the offline ImageNet VGG16's convolutions past the encoder's block4_conv1 that the run's losses
      reach through (float16; give pack the run's --content_target, --photo_weight and --style_layers): block4_conv2
      for the photo content target or --photo_weight, block4_conv2 to block5_conv1 for a block5_conv1 style layer
      (12.5 MiB; --block5 adds that layer to --style_layers); none when every layer is the encoder's;
      content/: the training photos shrunk to the largest size a crop can use (short side crop * 1.6, JPEG
      --quality); style/: the paintings, as they are (--style_quality=Q: re-encoded as JPEG Q); with
      --extra_styles=LIST.txt, style_extra/: the listed paintings, shrunk like the photos
      (jax_train.py --style_dir=.device/style,.device/style_extra:80).
      With --linear_rank=R: also linear_init.npz, the Keras initialisation of the linear transform at relu4_1
      (nst_tf.linear_transform.build_style_net and build_transfer, decoder/<layer>/<i>) for jax_train.py --init.
      With --moment_head=H: also head_init.npz, the Keras initialisation of the moment head (its last layer zero).
      With --student: also student_init.npz, the initial weights of nst_tf.mobile's transformer (Keras' own
      initialisers, --seed; float16, compressed) for jax_train.py --student; --student_channels=32,64,128 makes
      it wider.
      Last it prints what would travel (git's tracked and untracked-not-ignored files plus --out) against the
      64 MiB a device call carries, and `trips`: the carry lists of the device calls that take --out there (one,
      [".device"], when all of it fits beside the working tree; else its entries in as few calls as fit, each call's
      files staying on the warm machine for the next; `trips` alone prints them again). It exits 1 when one entry
      alone does not fit.
  python tools/device_pack.py unpack --decoder=OUT/decoder_f16.npz --out=DIR [--model=DIR] [--linear_rank=R]
      [--moment_head=H]
      a network folder (config.json + weights.npz, as nst-train writes) with the returned trained parts (float16 or
      float32: decoder_f16.npz, decoder_final.npz) on --model's config and encoder (and, with --linear_rank /
      --moment_head, the trained linear transform / moment head); --model=checkpoints/arbitrary_strength for the
      strength recipe (its strength input and palette layer).
  python tools/device_pack.py trained --model=DIR --out=checkpoints/arbitrary_strength
      DIR's config.json and trained parts, without the VGG16 encoder (loading fills in the bundled one's): a newer
      network to start from that travels with the repository (an untracked one does not fit beside the data).
  python tools/device_pack.py unpack --transformer=OUT/transformer_final.npz --out=DIR
      a nst_tf.mobile network folder: the bundled network's encoder (its style predictor) + the trained transformer
      (its widths read from the file; --student_channels, if given, must match them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("NST_TF_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
ENCODER_END = "block4_conv1"  # the network's encoder (bundled, float16) is VGG16 up to here
PHOTO_CONTENT_LAYER = "block4_conv2"  # the photo content target's and --photo_weight's layer
DEFAULT_STYLE_LAYERS = "block1_conv1,block2_conv1,block3_conv1,block4_conv1"  # jax_train.py's default
TRAVEL_LIMIT = 64 * 2**20  # what one device call carries: the working tree git knows of, plus the carried paths


def run_loss_layers(content_target: str = "photo", photo_weight: float = 0.0,
                    style_layers: str = DEFAULT_STYLE_LAYERS) -> tuple[str, ...]:
    """The VGG16 layers a jax_train.py run reads beyond the encoder's levels: its content layer(s) and style
    layers (jaxnst.losses.Recipe.loss_layers)."""
    content = (PHOTO_CONTENT_LAYER if content_target == "photo" else ENCODER_END,)
    photo = (PHOTO_CONTENT_LAYER,) if photo_weight else ()
    return tuple(dict.fromkeys((*content, *photo, *(n.strip() for n in style_layers.split(",") if n.strip()))))


def loss_layer_arrays(vgg, layers: tuple[str, ...]) -> dict[str, np.ndarray]:
    """{encoder/<layer>/<i>: float16} of the Keras VGG16 `vgg`'s convolutions past the encoder (block4_conv1) that
    reaching every one of `layers` runs through; ValueError naming a layer `vgg` does not have."""
    names = [layer.name for layer in vgg.layers]
    unknown = [n for n in layers if n not in names]
    if unknown:
        raise ValueError(f"unknown VGG16 layer {unknown[0]!r} (choose from "
                         f"{', '.join(n for n in names if 'conv' in n or 'pool' in n)})")
    deepest = max((names.index(n) for n in layers), default=-1)
    return {f"encoder/{name}/{i}": w.astype(np.float16) for name in names[names.index(ENCODER_END) + 1:deepest + 1]
            for i, w in enumerate(vgg.get_layer(name).get_weights())}


def save_float16(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Initial weights as compressed float16, like the other weights that travel (jax_train.py reads float32)."""
    np.savez_compressed(path, **{k: w.astype(np.float16) for k, w in arrays.items()})


def shrink(src: str, dst: str, short_side: int, quality: int = 85) -> None:
    """Copy an image as a JPEG of `quality`, shrunk so its short side is at most `short_side` (never enlarged; 0:
    as it is)."""
    with Image.open(src) as im:
        im = im.convert("RGB")
        scale = short_side / min(im.size) if short_side else 1.0
        if scale < 1:
            im = im.resize((round(im.size[0] * scale), round(im.size[1] * scale)), Image.BICUBIC)
        im.save(dst, "JPEG", quality=quality)


def git_tracks(path: str) -> bool:
    """Whether git tracks `path` in this repository (so it travels to the device machine with the working tree)."""
    path = os.path.abspath(path)
    if os.path.commonpath([path, ROOT]) != ROOT:
        return False
    found = subprocess.run(["git", "ls-files", "--error-unmatch", os.path.relpath(path, ROOT)], cwd=ROOT,
                           capture_output=True)
    return found.returncode == 0


def write_trained(model_dir: str, out: str) -> None:
    """A network folder at `out` with `model_dir`'s config.json and trained parts, not its VGG16 encoder (loading
    it fills in the bundled one's, as for checkpoints/arbitrary_strength)."""
    from nst_tf.network_io import read_folder, write_folder

    config_json, arrays = read_folder(model_dir)
    write_folder(out, {k: w.astype(np.float16) for k, w in arrays.items() if not k.startswith("encoder/")},
                 config_json)


def pack_network(model_dir: str, out: str) -> str:
    """What jax_train.py --network should name to start from `model_dir`: the folder itself when git tracks it,
    else `out`/network, written here with its config.json and trained parts (write_trained)."""
    if git_tracks(os.path.join(model_dir, "weights.npz")) and git_tracks(os.path.join(model_dir, "config.json")):
        return os.path.relpath(os.path.abspath(model_dir), ROOT)
    write_trained(model_dir, os.path.join(out, "network"))
    return os.path.join(out, "network")


def folder_bytes(path: str) -> int:
    """Bytes of the file `path`, or of every file under the folder `path`."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def travel_bytes(out: str) -> tuple[int, int]:
    """(bytes of the files git tracks or does not ignore, outside `out`; bytes under `out`): what a device call
    carries with `out` in its carry list."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    inside = os.path.abspath(out) + os.sep
    paths = [os.path.join(ROOT, f) for f in listed if f]
    tree = sum(os.path.getsize(p) for p in paths if os.path.isfile(p) and not p.startswith(inside))
    return tree, folder_bytes(out)


def plan_trips(sizes: dict[str, int], room: int) -> list[list[str]]:
    """`sizes` ({carry path: bytes}) in as few groups of at most `room` bytes as first-fit, largest first, finds;
    ValueError naming an entry larger than `room` alone."""
    trips: list[tuple[int, list[str]]] = []
    for path, size in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])):
        if size > room:
            raise ValueError(f"{path}: {size / 2**20:.1f} MiB, over the {room / 2**20:.1f} MiB a device call has "
                             "room for beside the working tree")
        for i, (used, paths) in enumerate(trips):
            if used + size <= room:
                trips[i] = (used + size, paths + [path])
                break
        else:
            trips.append((size, [path]))
    return [sorted(paths) for _, paths in trips]


def trips_for(out: str) -> tuple[int, int, list[list[str]]]:
    """(working tree bytes, bytes under `out`, the carry lists of the device calls that take `out` there): [[out]]
    when it fits beside the working tree in one call, else its entries (paths relative to the repository) spread
    over as few calls as fit (plan_trips); ValueError when one entry alone does not."""
    tree, carried = travel_bytes(out)
    relative = os.path.relpath(os.path.abspath(out), ROOT)
    if tree + carried <= TRAVEL_LIMIT:
        return tree, carried, [[relative]]
    sizes = {os.path.join(relative, name): folder_bytes(os.path.join(out, name)) for name in sorted(os.listdir(out))}
    return tree, carried, plan_trips(sizes, TRAVEL_LIMIT - tree)


def report_trips(out: str, **extra) -> None:
    """Print (JSON) what would travel and the device calls that carry it; SystemExit when it cannot travel."""
    try:
        tree, carried, trips = trips_for(out)
    except ValueError as exc:
        sys.exit(f"{out}: {exc}; pack with a lower --quality / --style_quality or remove what the run does not need")
    print(json.dumps({**extra, "out_mib": round(carried / 2**20, 1), "working_tree_mib": round(tree / 2**20, 1),
                      "travels_mib": round((tree + carried) / 2**20, 1), "limit_mib": TRAVEL_LIMIT // 2**20,
                      "trips": trips}))
    if len(trips) > 1:
        print(f"{out}: over {TRAVEL_LIMIT // 2**20} MiB with the working tree in one device call: carry it in "
              f"{len(trips)} calls on the same warm machine, in this order, each carrying one list of `trips` (what "
              "an earlier call carried stays there: ignored paths a call does not name are kept); the last one "
              "runs jax_train.py", file=sys.stderr)


def pack(args) -> None:
    from nst_tf import weights as weights_lib
    from nst_tf.network import BUNDLED_DIR, ArbitraryStyleNetwork

    model_dir = args.model or BUNDLED_DIR
    net = ArbitraryStyleNetwork.load(model_dir)
    if net.config.skip_levels != 3 or net.config.preprocessing != "torch":
        sys.exit(f"{args.model or 'bundled network'}: jax_train.py supports skip_levels=3 with torch preprocessing")
    os.makedirs(args.out, exist_ok=True)
    pack_path = os.path.join(args.out, "pack.npz")
    if args.photo_weight and args.content_target != "adain":
        sys.exit("error: --photo_weight needs --content_target=adain (as jax_train.py)")
    style_layers = args.style_layers + (",block5_conv1" if args.block5 else "")
    vgg = weights_lib.build_backbone("vgg16", weights_lib.resolve("lpips", "vgg16").path)
    try:
        arrays = loss_layer_arrays(vgg, run_loss_layers(args.content_target, args.photo_weight, style_layers))
    except ValueError as exc:
        sys.exit(f"error: --style_layers: {exc}")
    if arrays:
        np.savez_compressed(pack_path, **arrays)
    elif os.path.exists(pack_path):
        os.remove(pack_path)  # an earlier pack's: it would only take room
    pack_layers = sorted({k.split("/")[1] for k in arrays})
    shutil.rmtree(os.path.join(args.out, "network"), ignore_errors=True)
    network = pack_network(model_dir, args.out) if args.model else "(the bundled weights, the default)"
    short = math.ceil(args.crop * 1.6)
    for sub, src in (("content", args.content_dir), ("style", args.style_dir)):
        dst = os.path.join(args.out, sub)
        shutil.rmtree(dst, ignore_errors=True)
        os.makedirs(dst)
        for name in sorted(os.listdir(src)):
            if name.lower().endswith((".jpg", ".jpeg", ".png")):
                jpeg = os.path.join(dst, os.path.splitext(name)[0] + ".jpg")
                if sub == "content":
                    shrink(os.path.join(src, name), jpeg, short, args.quality)
                elif args.style_quality:
                    shrink(os.path.join(src, name), jpeg, 0, args.style_quality)
                else:
                    shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
    shutil.rmtree(os.path.join(args.out, "style_extra"), ignore_errors=True)
    if args.extra_styles:
        from nst_tf.data import read_image_list

        dst = os.path.join(args.out, "style_extra")
        os.makedirs(dst)
        for path in read_image_list(args.extra_styles):
            shrink(path, os.path.join(dst, os.path.splitext(os.path.basename(path))[0] + ".jpg"), short, args.quality)
    if args.student:  # a 32,64,128 student: 8.8 MB in float32, 3.4 MB here
        save_float16(os.path.join(args.out, "student_init.npz"), student_init(args.seed, args.student_channels))
    if args.linear_rank:
        save_float16(os.path.join(args.out, "linear_init.npz"), linear_init(args.linear_rank, args.seed))
    if args.moment_head:
        save_float16(os.path.join(args.out, "head_init.npz"), head_init(net.config, args.moment_head, args.seed))
    report_trips(args.out, network=network, palette=net.config.palette, pack_layers=pack_layers)


def student_config(channels: str = ""):
    """nst_tf.mobile's config with `channels` ("32,64,128": full, 1/2, 1/4 resolution; "" keeps the default)."""
    from nst_tf import mobile

    if not channels:
        return mobile.MobileConfig()
    try:
        return mobile.MobileConfig(channels=mobile.parse_channels(channels))
    except ValueError as exc:
        raise ValueError(f"--student_channels {exc}") from None


def student_init(seed: int = 0, channels: str = "") -> dict[str, np.ndarray]:
    """{transformer/<layer>/<i>: float32} of a freshly initialised nst_tf.mobile transformer."""
    import keras

    from nst_tf import mobile, network_io

    keras.utils.set_random_seed(seed)
    model = mobile.build_transformer(student_config(channels))
    return {f"transformer/{k}": w for k, w in network_io.weight_arrays(model).items()}


def fresh_arrays(build, seed: int = 0) -> dict[str, np.ndarray]:
    """{decoder/<layer>/<i>: float32} of the Keras models that `build()` returns, freshly initialised with `seed`."""
    import keras

    keras.utils.set_random_seed(seed)
    return {f"decoder/{layer.name}/{i}": w for model in build()
            for layer in model.layers for i, w in enumerate(layer.get_weights())}


def linear_init(rank: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The initial weights of a linear transform of `rank` (style net + transfer), for jax_train.py --init."""
    from nst_tf import linear_transform

    return fresh_arrays(lambda: (linear_transform.build_style_net(rank), linear_transform.build_transfer(rank)), seed)


def head_init(config, hidden: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The initial weights of a moment head of `hidden` units for `config`'s moments, for jax_train.py --init."""
    from nst_tf import network

    return fresh_arrays(lambda: (network.build_moment_head(config.moments_size, hidden),), seed)


def transformer_widths(path: str) -> tuple[int, ...]:
    """The widths of a returned transformer_*.npz, from its first three convolutions' output channels."""
    try:
        with np.load(path) as data:
            return tuple(int(data[f"transformer/conv{i}/0"].shape[-1]) for i in (1, 2, 3))
    except (OSError, KeyError, ValueError) as exc:
        sys.exit(f"{path}: not a returned transformer ({exc})")


def unpack_student(args) -> None:
    from nst_tf import mobile

    channels = args.student_channels or ",".join(str(c) for c in transformer_widths(args.transformer))
    net = mobile.MobileStyleNetwork(student_config(channels))  # predictor: the bundled VGG16
    try:
        mobile.load_part(net.transformer, args.transformer, "transformer", "does not fit the transformer")
    except ValueError as exc:
        sys.exit(str(exc))
    net.save(args.out)
    print(f"{args.out}: mobile network written")


def unpack(args) -> None:
    from nst_tf.network import ArbitraryStyleNetwork
    from nst_tf.network_io import parted, set_weight_arrays

    if args.transformer:
        return unpack_student(args)

    net = ArbitraryStyleNetwork.load(args.model or None)
    changes = {k: v for k, v in (("linear_rank", args.linear_rank), ("moment_head", args.moment_head))
               if v is not None and v != getattr(net.config, k)}
    if changes:
        source = net
        net = ArbitraryStyleNetwork(dataclasses.replace(source.config, **changes))
        net.encoder.set_weights(source.encoder.get_weights())
    with np.load(args.decoder) as data:
        arrays = parted(dict(data), "decoder")  # jax_train.py names every trained layer decoder/<layer>/<i>
    for model in net.trained_models:
        try:
            set_weight_arrays(model, arrays)
        except (KeyError, ValueError) as exc:
            sys.exit(f"{args.decoder}: does not fit the {model.name} ({exc})")
    net.save(args.out)
    print(f"{args.out}: network written")


def trained(args) -> None:
    try:
        write_trained(args.model, args.out)
    except (OSError, ValueError) as exc:
        sys.exit(str(exc))
    size = os.path.getsize(os.path.join(args.out, "weights.npz"))
    print(f"{args.out}: the trained parts of {args.model} ({size / 2**20:.1f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--out", default=os.path.join(ROOT, ".device"))
    p.add_argument("--model", default="", help="network to start from (default: the bundled one)")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--content_target", default="photo", choices=("photo", "adain"),
                   help="the run's (photo: block4_conv2 in pack.npz)")
    p.add_argument("--photo_weight", type=float, default=0.0,
                   help="the run's (> 0, with --content_target=adain: block4_conv2 in pack.npz)")
    p.add_argument("--style_layers", default=DEFAULT_STYLE_LAYERS,
                   help="the run's (pack.npz holds the convolutions past block4_conv1 up to the deepest)")
    p.add_argument("--quality", type=int, default=85, help="JPEG quality of the photos and the extra paintings")
    p.add_argument("--style_quality", type=int, default=0,
                   help="re-encode the paintings as JPEGs of this quality (0: copy them as they are)")
    p.add_argument("--student", action="store_true", help="also the mobile transformer's initial weights")
    p.add_argument("--student_channels", default="",
                   help="its widths, e.g. 32,64,128 (Johnson et al.'s; default: nst_tf.mobile's 16,32,64)")
    p.add_argument("--linear_rank", type=int, default=0, help="also the linear transform's initial weights")
    p.add_argument("--moment_head", type=int, default=0, help="also the moment head's initial weights (hidden units)")
    p.add_argument("--block5", action="store_true", help="add block5_conv1 to --style_layers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--content_dir", default=os.path.join(DATA, "train_content"))
    p.add_argument("--style_dir", default=os.path.join(DATA, "train_style"))
    p.add_argument("--extra_styles", default="",
                   help="a .txt image list (configs/train_styles_extra.txt) to write, shrunk, to style_extra/")
    u = sub.add_parser("unpack")
    which = u.add_mutually_exclusive_group(required=True)
    which.add_argument("--decoder", help="a returned decoder_*.npz (decoder_f16.npz, decoder_final.npz)")
    which.add_argument("--transformer", help="a returned transformer_*.npz (jax_train.py --student)")
    u.add_argument("--out", required=True)
    u.add_argument("--student_channels", default="",
                   help="with --transformer: its widths (default: read from the file)")
    u.add_argument("--model", default="", help="network whose encoder and config to keep (default: bundled)")
    u.add_argument("--linear_rank", type=int, default=None,
                   help="the returned decoder has the linear transform of this rank (default: as --model)")
    u.add_argument("--moment_head", type=int, default=None,
                   help="the returned decoder has the moment head of this width (default: as --model)")
    r = sub.add_parser("trips", help="print what --out's pack would travel as, against today's working tree")
    r.add_argument("--out", default=os.path.join(ROOT, ".device"))
    t = sub.add_parser("trained")
    t.add_argument("--model", required=True, help="a network folder (nst-train's <model_dir>/network)")
    t.add_argument("--out", required=True, help="the folder to write (checkpoints/arbitrary_strength)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if getattr(args, "student_channels", ""):
        try:
            student_config(args.student_channels)
        except ValueError as exc:
            sys.exit(f"error: {exc}")
    {"pack": pack, "unpack": unpack, "trained": trained, "trips": lambda a: report_trips(a.out)}[args.command](args)


if __name__ == "__main__":
    main()
