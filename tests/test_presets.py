"""nst_tf.presets: the bundled nst-stylize presets, --preset, and the presets from an installed wheel."""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest
from conftest import ROOT, last_line, run_cli

from nst_tf import presets

PACKAGE_FILES = ("nst_tf", "setup.cfg", "pyproject.toml", "README.md")  # what a wheel is built from


def test_bundled_presets_load_and_describe_themselves():
    assert presets.names() == ["large", "preview", "quality"]
    for name in presets.names():
        assert presets.describe(name), name
        settings = presets.load(name)
        assert settings["size"].isdigit() and settings["optimizer"] == "adam", (name, settings)
    assert presets.load("preview")["size"] == "256" and presets.load("large")["tile"] == "768"
    with pytest.raises(ValueError, match="unknown preset 'fancy' \\(choose from large, preview, quality\\)"):
        presets.path("fancy")


def test_a_malformed_preset_line_is_named(tmp_path, monkeypatch):
    (tmp_path / "odd.cfg").write_text("# odd\n--size=64\nsize 128\n")
    monkeypatch.setattr(presets, "FOLDER", str(tmp_path))
    with pytest.raises(ValueError, match="odd.cfg:3: expected --flag=value, got 'size 128'"):
        presets.load("odd")


def _resolved(*args: str) -> dict:
    """nst-stylize's flag values after parsing `args` and applying --preset, as main() does (no TensorFlow)."""
    code = ("import sys; from nst_tf.cli import common, stylize; F = stylize.FLAGS; F(['x', *sys.argv[1:]]); "
            "common.apply_preset(F, F.preset); "
            "print(F.size, F.scales, F.steps, F.tile, F.learning_rate, 'tensorflow' in sys.modules, sep='|')")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-1000:]
    size, scales, steps, tile, learning_rate, tf_loaded = proc.stdout.strip().split("|")
    return {"size": int(size), "scales": scales, "steps": steps, "tile": int(tile), "lr": float(learning_rate),
            "tf": tf_loaded}


def test_preset_gives_defaults_and_explicit_flags_win(tmp_path):
    assert _resolved("--preset=quality") == {"size": 512, "scales": "auto", "steps": "40,15,20", "tile": 0,
                                             "lr": 0.02, "tf": "False"}
    assert _resolved("--preset=large")["tile"] == 768
    # explicit flags win whether they come before or after --preset, on the command line or in one's own flagfile
    own = tmp_path / "mine.cfg"
    own.write_text("# mine\n--learning_rate=0.05\n--steps=7\n")
    resolved = _resolved("--size=96", "--preset=quality", f"--flagfile={own}")
    assert resolved == {"size": 96, "scales": "auto", "steps": "7", "tile": 0, "lr": 0.05, "tf": "False"}
    assert _resolved(f"--flagfile={own}")["size"] == 512  # no preset: nst-stylize's own defaults
    own.write_text("--preset=preview\n--steps=3\n")  # a preset named inside one's own flagfile
    assert _resolved(f"--flagfile={own}")["size"] == 256 and _resolved(f"--flagfile={own}")["steps"] == "3"


def test_unknown_preset_is_refused_before_tensorflow(tmp_path):
    proc = run_cli("nst_tf.cli.stylize", "--preset=fancy", "--content=a.jpg", "--style=b.jpg",
                   f"--output={tmp_path / 'o.jpg'}")
    assert proc.returncode != 0
    assert "--preset=fancy: value should be one of <large|preview|quality>" in proc.stderr
    assert not os.listdir(tmp_path)


def _copy_sources(target) -> str:
    """The files a wheel is built from, copied away from the clone (no build folders left in it)."""
    for name in PACKAGE_FILES:
        source = os.path.join(ROOT, name)
        if os.path.isdir(source):
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(source, target / name)
    return str(target)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """A wheel built from a copy of the sources, installed into a fresh venv that sees the system's TensorFlow."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = _copy_sources(tmp / "src")
    wheels = tmp / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(wheels), source], check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("nst_tf-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, timeout=300)
    work = tmp / "elsewhere"  # no clone and no configs/ here
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {"wheel": wheel, "venv": venv, "bin": venv / "bin", "work": work, "env": env}


def test_presets_ship_in_the_wheel(installed):
    assert {f"nst_tf/presets/{n}.cfg" for n in presets.names()} <= set(zipfile.ZipFile(installed["wheel"]).namelist())
    code = "import nst_tf.presets as p; print(p.path('quality'))"
    where = subprocess.run([str(installed["bin"] / "python"), "-c", code], cwd=installed["work"],
                           env=installed["env"], capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(installed["venv"])) and os.path.isfile(where), where  # the wheel's copy
    proc = subprocess.run([str(installed["bin"] / "nst-stylize"), "--preset=quality", "--help"], cwd=installed["work"],
                          env=installed["env"], capture_output=True, text=True, timeout=120)
    assert "<large|preview|quality>" in proc.stdout and "High quality: 512 px" in proc.stdout, proc.stderr[-1000:]


@pytest.mark.slow
def test_presets_work_from_an_installed_wheel(installed, data_dir, lpips_weights):
    """A tiny run of the installed nst-stylize with --preset=quality, outside the clone."""
    work = installed["work"]
    proc = subprocess.run([str(installed["bin"] / "nst-stylize"), "--preset=quality", f"--weights={lpips_weights}",
                           f"--content={data_dir}/content/tubingen.jpg", f"--style={data_dir}/styles/wave.jpg",
                           "--output=out.png", "--size=48", "--min_scale=32", "--steps=2"],
                          cwd=work, env=installed["env"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (work / "out.png").is_file() and "wrote out.png" in last_line(proc.stdout)
