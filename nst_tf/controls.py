"""The optimiser's controls by name: nst-stylize's flags and nst_tf.stylize's keywords, in one place.

`resolve` merges the defaults, a bundled preset and given values, and checks them (no TensorFlow); `options`
turns them into `optimize.Options` and `extractor` builds the loss network they name. nst-stylize and the Python
API both call these, so a control means the same thing in either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# name -> default, as nst-stylize's flags give them (tests/test_api.py checks that the two agree)
DEFAULTS: dict[str, object] = {
    "size": 512,
    "scales": "",
    "min_scale": 256,
    "steps": "300",
    "content_weight": 1.0,
    "style_weight": 10.0,
    "tv_weight": 1.0,
    "content_layers": "block4_conv2",
    "style_layers": "block1_conv1,block2_conv1,block3_conv1,block4_conv1,block5_conv1",
    "style_layer_weights": "",
    "style_scale": 1.0,
    "preserve_colors": "none",
    "optimizer": "adam",
    "learning_rate": 0.02,
    "average": 0.0,
    "init": "content",
    "style_loss": "gram",
    "seed": 0,
    "tile": 0,
    "tile_overlap": 64,
    "precision": "float32",
    "jit_compile": False,
    "weights": "imagenet",
    "backbone": None,
    "preprocessing": "auto",
}
CHOICES = {"preserve_colors": ("none", "luminance", "histogram"), "optimizer": ("adam", "lbfgs"),
           "style_loss": ("gram", "sliced_wasserstein"),
           "precision": ("float32", "mixed_bfloat16", "mixed_float16"), "backbone": (None, "vgg19", "vgg16"),
           "preprocessing": ("auto", "caffe", "torch")}
# The optimiser's smallest tile: styles are analysed in windows as narrow as tile // 4 + 1 px at an image's edge,
# and VGG's four poolings before block5_conv1 need 16 (tiles under 60 stopped with a oneDNN pooling error).
MIN_TILE = 64
FLOATS = ("content_weight", "style_weight", "tv_weight", "style_scale", "learning_rate", "average")
INTS = ("size", "min_scale", "seed", "tile", "tile_overlap")


class ControlError(ValueError):
    """A bad control value: one line naming the control (`steps must be positive, got -3`)."""

    def __init__(self, name: str, problem: str):
        super().__init__(f"{name}{problem}")
        self.name, self.problem = name, problem

    def as_flag(self) -> str:
        """The message as a command line names it (`--steps must be positive, got -3`)."""
        return f"--{self.name}{self.problem}"


def split_list(value: object) -> list[str]:
    """'a,b, c' or ['a', 'b'] -> a list of non-empty stripped strings; empty or None -> []."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return [v.strip() for v in items if v.strip()]


def from_text(name: str, text: str) -> object:
    """A control's value from its text in a flagfile or preset (`--size=256` -> 256)."""
    if name not in DEFAULTS:
        raise ControlError(name, f": unknown control (known: {', '.join(DEFAULTS)})")
    try:
        if name in INTS:
            return int(text)
        if name in FLOATS:
            return float(text)
    except ValueError:
        raise ControlError(name, f"={text}: expected a number") from None
    if name == "jit_compile":
        if text.lower() not in ("true", "false", "1", "0"):
            raise ControlError(name, f"={text}: expected true or false")
        return text.lower() in ("true", "1")
    return text


def preset_values(name: str) -> dict[str, object]:
    """A bundled preset's controls (nst_tf.presets), typed."""
    from nst_tf import presets

    try:
        settings = presets.load(name)
    except (ValueError, OSError) as exc:
        raise ControlError("preset", f"={name}: {exc}") from None
    return {key: from_text(key, value) for key, value in settings.items()}


def _number(name: str, value: object, kind: type) -> float:
    whole = isinstance(value, (int, float)) and float(value).is_integer()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not whole):
        raise ControlError(name, f"={value!r}: expected {'an integer' if kind is int else 'a number'}")
    return kind(value)


def resolve(values: Mapping[str, object] | None = None, preset: str | None = None) -> dict[str, object]:
    """The defaults, then a bundled preset's settings, then `values`; every control checked (ControlError)."""
    merged = dict(DEFAULTS)
    if preset:
        merged.update(preset_values(preset))
    for name, value in (values or {}).items():
        if name not in DEFAULTS:
            raise ControlError(name, f": unknown control (known: {', '.join(DEFAULTS)})")
        merged[name] = value
    for name in INTS:
        merged[name] = _number(name, merged[name], int)
    for name in FLOATS:
        merged[name] = _number(name, merged[name], float)
    for name, choices in CHOICES.items():
        if merged[name] not in choices:
            raise ControlError(name, f"={merged[name]}: choose from {', '.join(str(c) for c in choices)}")
    for name in ("size", "learning_rate", "style_scale"):
        if merged[name] <= 0:
            raise ControlError(name, f" must be positive, got {merged[name]}")
    for name in ("content_weight", "style_weight", "tv_weight", "tile", "tile_overlap"):
        if merged[name] < 0:
            raise ControlError(name, f" must be non-negative, got {merged[name]}")
    if merged["tile"] and merged["tile"] < MIN_TILE:
        raise ControlError("tile", f" must be 0 (untiled) or at least {MIN_TILE} px, got {merged['tile']}")
    if merged["tile"] and merged["tile_overlap"] >= merged["tile"]:
        raise ControlError("tile_overlap", f" must be smaller than the tile ({merged['tile']} px), "
                           f"got {merged['tile_overlap']}")
    if not 0.0 <= merged["average"] < 1.0:
        raise ControlError("average", f" must be in [0, 1), got {merged['average']}")
    merged["scales"] = scales(merged)
    merged["steps"] = steps(merged, len(merged["scales"]))
    merged["style_layer_weights"] = floats("style_layer_weights", merged["style_layer_weights"])
    for name in ("content_layers", "style_layers"):
        merged[name] = tuple(split_list(merged[name]))
        if not merged[name]:
            raise ControlError(name, " is empty")
    return merged


def floats(name: str, value: object) -> tuple[float, ...] | None:
    """'0.7,0.3' or [0.7, 0.3] -> (0.7, 0.3); empty -> None."""
    items = split_list(value)
    if not items:
        return None
    try:
        return tuple(float(v) for v in items)
    except ValueError:
        raise ControlError(name, f"={value}: expected comma-separated numbers") from None


def scales(values: Mapping[str, object]) -> tuple[int, ...]:
    """The coarse-to-fine long sides: `scales` ('auto', '256,362,512', a sequence or empty) ending at `size`."""
    from nst_tf.scales import scale_ladder

    size, spec = values["size"], values["scales"]
    if isinstance(spec, str) and spec.strip() == "auto":
        return scale_ladder(size, values["min_scale"])
    if not split_list(spec):
        return (size,)
    try:
        result = tuple(int(v) for v in split_list(spec))
    except ValueError:
        raise ControlError("scales", f"={spec}: expected comma-separated sizes or 'auto'") from None
    if any(s <= 0 for s in result) or list(result) != sorted(result):
        raise ControlError("scales", f"={spec}: sizes must be positive and ascending")
    if result[-1] != size:
        raise ControlError("scales", f" must end at size={size}, got {result[-1]}")
    return result


def steps(values: Mapping[str, object], n_scales: int) -> tuple[int, ...]:
    """Steps per scale from `steps` (300, '100,80,60' or a sequence): one value, or one per scale."""
    spec = values["steps"]
    items = [str(spec)] if isinstance(spec, int) and not isinstance(spec, bool) else split_list(spec)
    try:
        result = tuple(int(v) for v in items)
    except ValueError:
        raise ControlError("steps", f"={spec}: expected integers") from None
    if not result or any(n <= 0 for n in result):
        raise ControlError("steps", f" must be positive, got {spec}")
    if len(result) not in (1, n_scales):
        raise ControlError("steps", f" has {len(result)} values for {n_scales} scales")
    return result


def options(values: Mapping[str, object], init: object = None, blend: Sequence[float] | None = None):
    """The optimize.Options that resolved controls describe (`init`: a name or an image; default the control)."""
    from nst_tf import optimize
    from nst_tf.objective import LossWeights

    layer_weights = values["style_layer_weights"]
    return optimize.Options(
        scales=values["scales"], steps=values["steps"], optimizer=values["optimizer"],
        learning_rate=values["learning_rate"], average=values["average"],
        init=values["init"] if init is None else init, seed=values["seed"],
        style_blend=tuple(blend) if blend else None, style_scale=values["style_scale"],
        preserve_colors=values["preserve_colors"], tile=values["tile"], tile_overlap=values["tile_overlap"],
        jit_compile=values["jit_compile"], style_loss=values["style_loss"],
        weights=LossWeights(content=values["content_weight"], style=values["style_weight"],
                            tv=values["tv_weight"], style_layers=layer_weights))


def extractor(values: Mapping[str, object]):
    """The loss network the controls name (weights, backbone, layers, preprocessing, precision)."""
    import keras

    from nst_tf import features

    if values["precision"] != "float32":
        keras.mixed_precision.set_global_policy(values["precision"])
    return features.build_extractor(values["weights"], values["backbone"], list(values["content_layers"]),
                                    list(values["style_layers"]), values["preprocessing"])
