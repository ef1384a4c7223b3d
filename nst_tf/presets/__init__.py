"""Bundled presets of nst-stylize's optimiser settings, selected by name (`--preset=quality`).

Each preset is a flagfile in this folder (`<name>.cfg`, shipped as package data): a first line `# description`,
then one `--flag=value` per line. A preset gives new defaults; flags given explicitly (on the command line or in
one's own `--flagfile`) win, in any order.
"""

from __future__ import annotations

import os

FOLDER = os.path.dirname(os.path.abspath(__file__))


def names() -> list[str]:
    """The bundled presets' names, sorted."""
    return sorted(f[:-4] for f in os.listdir(FOLDER) if f.endswith(".cfg"))


def path(name: str) -> str:
    """The flagfile of a bundled preset; ValueError naming the choices for an unknown name."""
    if name not in names():
        raise ValueError(f"unknown preset {name!r} (choose from {', '.join(names())})")
    return os.path.join(FOLDER, f"{name}.cfg")


def describe(name: str) -> str:
    """The preset's one-line description (its first comment line)."""
    with open(path(name)) as f:
        return f.readline().lstrip("#").strip()


def load(name: str) -> dict[str, str]:
    """A preset's settings: flag name -> value as written (a bare `--flag` reads as 'true')."""
    settings = {}
    with open(path(name)) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not line.startswith("--") or len(line) < 3:
                raise ValueError(f"{path(name)}:{number}: expected --flag=value, got {line!r}")
            key, _, value = line[2:].partition("=")
            settings[key] = value if "=" in line else "true"
    return settings
