"""Shared pieces of the command-line tools: quiet TensorFlow, one-line errors, progress."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class UsageError(ValueError):
    """A bad flag value (one-line message)."""


def fail(message: str, code: int = 1) -> None:
    """Print `error: message` on one line to stderr and exit with `code`."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def show_flags_in_help(module_name: str) -> None:
    """List a CLI module's flags in --help when it runs as a console script (absl lists sys.argv[0]'s flags only)."""
    from absl import flags

    for flag in flags.FLAGS.get_key_flags_for_module(module_name):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)


def guarded(main: Callable[[list[str]], int | None]) -> Callable[[list[str]], int | None]:
    """Wrap an absl main so that known errors become one line and a non-zero exit (and --help lists its flags)."""
    show_flags_in_help(main.__module__)

    def wrapper(argv: list[str]) -> int | None:
        from nst_tf.images import ImageError
        from nst_tf.weights import WeightsError

        if len(argv) > 1:
            fail(f"unexpected arguments: {' '.join(argv[1:])} (flags are --name=value)", 2)
        try:
            return main(argv)
        except UsageError as exc:
            fail(str(exc), 2)
        except (ImageError, WeightsError, ValueError, OSError) as exc:
            fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        except (MemoryError, *_resource_exhausted()) as exc:
            fail(out_of_memory_line(exc))
        except KeyboardInterrupt:
            fail("interrupted", 130)
        return None

    return wrapper


HELP_FLAGS = ("--help", "-help", "-h", "-?", "--helpshort", "--helpfull", "--helpxml")


def run_app(main: Callable[[list[str]], int | None], **kwargs) -> None:
    """absl's app.run of guarded(main), except that asking for help exits 0 (absl exits 1 after printing it)."""
    from absl import app

    try:
        app.run(guarded(main), **kwargs)
    except SystemExit as exc:
        if exc.code == 1 and any(arg.split("=")[0] in HELP_FLAGS for arg in sys.argv[1:]):
            raise SystemExit(0) from None
        raise


def out_of_memory_line(exc: BaseException) -> str:
    """The one line for an out-of-memory error: the fast path's own (tiling.OutOfMemory names the size and the
    fix), or a general one."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if text.startswith("out of memory"):
        return text
    return "out of memory: use a smaller --size, or tiles (--tile=512 where the command has it)"


def _resource_exhausted() -> tuple[type[BaseException], ...]:
    """TensorFlow's out-of-memory error if TensorFlow is loaded (never imports it)."""
    tf = sys.modules.get("tensorflow")
    errors = getattr(tf, "errors", None)
    return (errors.ResourceExhaustedError,) if errors is not None else ()


def split_list(value: str | None) -> list[str]:
    """'a,b, c' -> ['a', 'b', 'c']; empty or None -> []."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def parse_floats(value: str | None, name: str) -> list[float] | None:
    """'0.7,0.3' -> [0.7, 0.3]; empty -> None; bad numbers -> UsageError."""
    items = split_list(value)
    if not items:
        return None
    try:
        return [float(v) for v in items]
    except ValueError:
        raise UsageError(f"--{name}={value}: expected comma-separated numbers") from None


def require_positive(name: str, value: float) -> None:
    """UsageError unless value > 0."""
    if value is None or value <= 0:
        raise UsageError(f"--{name} must be positive, got {value}")


def require_non_negative(name: str, value: float) -> None:
    """UsageError unless value >= 0."""
    if value is None or value < 0:
        raise UsageError(f"--{name} must be non-negative, got {value}")


def styles_and_blend(style: str | None, style_blend: str | None) -> tuple[list[str], list[float] | None]:
    """Parse --style (comma-separated paths) and --style_blend (one non-negative weight per style)."""
    paths = split_list(style)
    if not paths:
        raise UsageError("--style is empty")
    blend = parse_floats(style_blend, "style_blend")
    if blend is not None and len(blend) != len(paths):
        raise UsageError(f"--style_blend has {len(blend)} weights for {len(paths)} styles")
    if blend is not None and (any(b < 0 for b in blend) or sum(blend) <= 0):
        raise UsageError(f"--style_blend={style_blend}: weights must be non-negative, sum > 0")
    return paths, blend


def apply_preset(flag_values, name: str | None) -> None:
    """Make a bundled preset's settings (nst_tf.presets) the defaults: flags given explicitly still win."""
    if not name:
        return
    from absl import flags

    from nst_tf import presets

    try:
        settings = presets.load(name)
    except (ValueError, OSError) as exc:
        raise UsageError(f"--preset={name}: {exc}") from None
    for key, value in settings.items():
        if key not in flag_values:
            raise UsageError(f"--preset={name}: sets --{key}, which this command does not have")
        try:
            flag_values.set_default(key, value)
        except flags.Error as exc:
            raise UsageError(f"--preset={name}: --{key}={value}: {exc}") from None


def check_sources(name: str, spec: str | None) -> None:
    """FileNotFoundError for the first source of an image-source list (`a,b.txt,c:80`) that does not exist."""
    for part in split_list(spec):
        source, sep, repeat = part.rpartition(":")
        source = source if sep and repeat.isdigit() else part  # SOURCE:N, as nst_tf.data.scan_sources reads it
        if "://" not in source and not os.path.exists(source):
            raise FileNotFoundError(f"{source}: no such file or folder (--{name})")
