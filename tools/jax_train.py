"""nst-train's training step in JAX, for an accelerator machine that has JAX but no TensorFlow.

The device machines lent to this project carry JAX (CUDA) and no TensorFlow, and a TensorFlow wheel is far larger
than what may travel there. tools/jaxnst reproduces `nst_tf.train.Trainer.compute_losses` and its Keras Adam update
with numpy, Pillow and JAX only: the arbitrary-style network (VGG16 encoder to relu4_1, multi-level AdaIN, the skip
decoder, the optional linear transform, moment head, strength input, skip fade and palette layer) with the photo or
AdaIN content target, the Gram style term at any VGG16 layers and its viewing-scale twin (against the shrunk or
the whole style crop), TV, identity, inversion, photo (beside the AdaIN target), layout (the photo's light and dark)
and palette terms, the per-example strength and its loss weighting; and the previous phone-sized student.
tests/test_jax_train.py checks it against the TensorFlow trainer where JAX is installed.

The strength recipe with the current run's flags (docs/training.md, "On a lent GPU"):
  python tools/device_pack.py pack --out=.device --crop=256 --model=checkpoints/arbitrary_strength \
      --content_target=adain --photo_weight=3 --style_layers=block1_conv1,block2_conv1,block3_conv1,block4_conv1,\
block5_conv1 --quality=75 --style_quality=75 --extra_styles=configs/train_styles_extra.txt   # here; prints `trips`
  python3 tools/jax_train.py --recipe=configs/train_arbitrary_strength.cfg --network=checkpoints/arbitrary_strength \
      --pack=.device/pack.npz --identity_weight=20 --photo_weight=3 --layout_weight=10 --style_layers=<as above> \
      --content_dir=.device/content --style_dir=.device/style,.device/style_extra:80 --out=runs/jax \
      --return_dir=$OUT --max_seconds=520                      # there, in the last of the device calls `trips` lists
  python tools/device_pack.py unpack --decoder=<returned>/decoder_f16.npz --model=checkpoints/arbitrary_strength \
      --out=runs/gpu/network                                                                        # here again

--recipe reads an nst-train flag file: its flags that this tool has become defaults (the command line wins); the data
folders, the VGG weights and nst-train's loop settings are not used, and the architecture flags must match the
starting network's config.json (skip_fade included: from run 4 on, checkpoints/arbitrary_strength must be refreshed
from a network of the recipe, `device_pack.py trained`, before it can start a run). --network takes a network folder
(config.json + weights.npz; a folder of the trained parts alone gets the bundled VGG16 encoder) or a weights.npz. The
run saves its resumable state in --out every --checkpoint_seconds and at the end; `--resume=<that folder>` continues
it (step counter and Adam state, fresh batches).

With the linear transform or moment head added to a network without them: `pack --linear_rank=32` /
`--moment_head=256` write their Keras initialisation, `--init=.device/linear_init.npz` adds it here and
`unpack --linear_rank=32` / `--moment_head=256` builds the network folder. The student: `--student=<initial
transformer>` trains nst_tf.mobile's transformer with the network as a frozen teacher.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from jaxnst.losses import CONTENT_TARGETS, VIEWING_TARGETS
from jaxnst.model import LEVELS
from jaxnst.train import BUNDLED_WEIGHTS, run

ARCHITECTURE_FLAGS = ("skip_levels", "linear_rank", "moment_head", "strength_units", "palette", "skip_fade")
BOOLEAN_FLAGS = ("palette", "skip_fade")
UNUSED_FLAGS = ("content_dir", "style_dir", "weights", "steps", "image_every", "checkpoint_every", "snapshot_every",
                "keep_checkpoints", "max_bad_steps", "strategy", "cpu_devices", "init_from", "model_dir", "network",
                "flagfile")


def parser() -> argparse.ArgumentParser:
    """jax_train.py's arguments (nst-train's names where they mean the same)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default="", help="an nst-train flag file (configs/train_*.cfg): its flags as defaults")
    p.add_argument("--network", default=BUNDLED_WEIGHTS,
                   help="the starting network: a folder (config.json + weights.npz) or a weights.npz (default: the "
                        "bundled one's)")
    p.add_argument("--palette", action="store_true", help="a --network weights.npz has the palette layer")
    p.add_argument("--skip_fade", action="store_true",
                   help="a --network weights.npz has the skip fade (its skip projections fade out above strength 1)")
    p.add_argument("--student", default="",
                   help="train nst_tf.mobile's transformer from these initial weights (transformer/<layer>/<i>, "
                        "device_pack.py pack --student) with the network above as a frozen teacher")
    p.add_argument("--init", default="",
                   help="comma-separated weights files of layers the network lacks, as decoder/<layer>/<i> "
                        "(device_pack.py pack --linear_rank / --moment_head: their initialisation)")
    p.add_argument("--pack", default="", help="VGG16 layers beyond the encoder (device_pack.py pack's pack.npz): "
                                              "needed by the photo content target, --photo_weight and style "
                                              "layers past block4_conv1")
    p.add_argument("--content_dir", required=True)
    p.add_argument("--style_dir", required=True,
                   help="comma-separated folders, each optionally FOLDER:N to repeat its images N times per epoch")
    p.add_argument("--out", required=True, help="the resumable state and the log")
    p.add_argument("--return_dir", default="", help="also write the float16 weights and the log here ($OUT)")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--style_crop", type=int, default=0, help="crop of the style images (default: --crop)")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--learning_rate", type=float, default=5e-4)
    p.add_argument("--lr_decay", type=float, default=5e-5)
    p.add_argument("--content_target", default="photo", choices=CONTENT_TARGETS)
    p.add_argument("--content_weight", type=float, default=1.0)
    p.add_argument("--style_weight", type=float, default=10.0)
    p.add_argument("--tv_weight", type=float, default=1.0)
    p.add_argument("--identity_weight", type=float, default=10.0)
    p.add_argument("--inversion_weight", type=float, default=0.0,
                   help="relu4_1 of the output against the decoder's relu4_1 input (nst-train --inversion_weight)")
    p.add_argument("--photo_weight", type=float, default=0.0,
                   help="with --content_target=adain: block4_conv2 of the output against the photo's as well, divided "
                        "by 1 + k under the strength control (nst-train --photo_weight)")
    p.add_argument("--layout_weight", type=float, default=0.0,
                   help="the output's luminance, average-pooled by 8 and standardised, against the photo's, divided "
                        "by 1 + k under the strength control (nst-train --layout_weight)")
    p.add_argument("--distill_weight", type=float, default=10.0, help="student: squared pixel error to the teacher")
    p.add_argument("--palette_weight", type=float, default=0.0,
                   help="sliced Wasserstein distance of the output's pixel colours to the style crop's")
    p.add_argument("--viewing_weight", type=float, default=0.0,
                   help="a second Gram style term with output and style crop resized by --viewing_scale")
    p.add_argument("--viewing_scale", type=float, default=0.5)
    p.add_argument("--viewing_target", default="shrunk", choices=VIEWING_TARGETS,
                   help="the style crop in the viewing term: shrunk like the output, or whole (nst-train's flag)")
    p.add_argument("--strength_max", type=float, default=0.0,
                   help="> 0: a strength per example, uniform in [0, this] (the network needs the strength input)")
    p.add_argument("--strength_zero", type=float, default=0.0, help="this share of the examples at strength 0")
    p.add_argument("--style_relative", action="store_true",
                   help="style term over the photo's own style loss, per example (nst-train --style_relative)")
    p.add_argument("--style_target", type=float, default=0.0, help="with --style_relative: push only above this")
    p.add_argument("--style_layers", default=",".join(LEVELS))
    p.add_argument("--max_steps", type=int, default=10**9)
    p.add_argument("--max_seconds", type=float, default=420.0, help="training time, compilation included")
    p.add_argument("--snapshot_fraction", type=float, default=0.5, help="also save at this fraction of the time")
    p.add_argument("--checkpoint_seconds", type=float, default=60.0,
                   help="save the resumable state (<part>_final.npz, adam.npz) this often, and at the end")
    p.add_argument("--resume", default="", help="a previous --out folder: continue its weights, Adam state and step")
    p.add_argument("--log_every", type=int, default=100)
    p.add_argument("--workers", type=int, default=8, help="threads making the random crops")
    p.add_argument("--seed", type=int, default=0)
    return p


def read_recipe(path: str) -> dict[str, str | bool]:
    """An absl flag file's `--name=value` lines (`--name` alone: True), '#' comments skipped."""
    flags: dict[str, str | bool] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                if not line.startswith("--"):
                    raise SystemExit(f"{path}:{number}: not a --flag line: {line}")
                name, sep, value = line[2:].partition("=")
                flags[name] = value if sep else True
    except OSError as exc:
        raise SystemExit(f"{path}: cannot read it ({exc.strerror})") from None
    return flags


def _flag_bool(value: str | bool) -> bool:
    """An absl boolean flag's value in a flag file."""
    return value is True or str(value).lower() in ("true", "1")


def check_architecture(recipe: dict, network: str) -> None:
    """SystemExit when the recipe's architecture flags differ from the network folder's config.json."""
    path = os.path.join(network, "config.json")
    if not os.path.isfile(path):
        return
    with open(path) as f:
        config = json.load(f)
    recipe = {**recipe, **{name: False for name in BOOLEAN_FLAGS if f"no{name}" in recipe}}
    for name in ARCHITECTURE_FLAGS:
        if name not in recipe:
            continue
        if name in BOOLEAN_FLAGS:
            wanted, have = _flag_bool(recipe[name]), bool(config.get(name, False))
        else:
            wanted, have = int(recipe[name]), int(config.get(name, 0))
        if wanted != have:
            raise SystemExit(f"{path}: {name} is {have}, the recipe asks for {wanted}")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments, with the --recipe file's flags as defaults."""
    p = parser()
    args = p.parse_args(argv)
    if not args.recipe:
        return args
    recipe = read_recipe(args.recipe)
    check_architecture(recipe, args.network)
    known = {a.dest for a in p._actions} - {"network", "content_dir", "style_dir", "recipe"}
    switches = {a.dest for a in p._actions if isinstance(a, argparse._StoreTrueAction)}
    defaults = {}
    for name, value in recipe.items():
        if name in switches:
            defaults[name] = _flag_bool(value)
        elif name.startswith("no") and name[2:] in switches and value is True:
            defaults[name[2:]] = False
        elif name in known:
            defaults[name] = value
    ignored = sorted(k for k in recipe if k not in defaults and k[2:] not in defaults)
    unknown = [k for k in ignored if k not in UNUSED_FLAGS + ARCHITECTURE_FLAGS
               and k not in [f"no{name}" for name in BOOLEAN_FLAGS]]
    if unknown:
        raise SystemExit(f"{args.recipe}: flags this tool does not have: {', '.join(unknown)}")
    p.set_defaults(**defaults)
    args = p.parse_args(argv)
    checked = [k for k in ignored if k in ARCHITECTURE_FLAGS]
    print(f"{args.recipe}: not used here: {', '.join(k for k in ignored if k not in checked)}; checked against the "
          f"network: {', '.join(checked) or 'none'}", file=sys.stderr, flush=True)
    return args


def main() -> None:
    run(parse())


if __name__ == "__main__":
    main()
