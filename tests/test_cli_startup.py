"""Every command answers --help, flag errors and missing files before TensorFlow loads, run as its console script."""

import subprocess
import sys

import pytest
from conftest import ROOT, last_line

# As a console script does it: import the module, call run(); sys.argv[0] is the script's name.
LAUNCH = """
import sys
sys.argv[0] = "nst-{name}"
from nst_tf.cli.{module} import run
try:
    run()
except SystemExit as exc:
    code = exc.code
print("tensorflow loaded:", "tensorflow" in sys.modules, file=sys.stderr)
sys.exit(code)
"""
COMMANDS = {"stylize": "stylize", "train": "train", "export": "export", "video": "video", "augment": "augment"}


def launch(name: str, *args: str) -> tuple[subprocess.CompletedProcess, bool]:
    """Run nst-<name> with `args`; the process and whether TensorFlow was imported."""
    code = LAUNCH.format(name=name, module=COMMANDS[name])
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    loaded = proc.stderr.strip().splitlines()[-1]
    assert loaded.startswith("tensorflow loaded:"), proc.stderr[-1000:]
    return proc, loaded.endswith("True")


@pytest.mark.parametrize("name", COMMANDS)
def test_help_lists_the_flags_without_tensorflow(name):
    proc, tf_loaded = launch(name, "--help")
    assert proc.returncode == 0, proc.stderr[-500:]  # absl itself exits 1 after the help
    flags = [line for line in proc.stdout.splitlines() if line.startswith("  --")]
    assert len(flags) >= 8, proc.stdout[-2000:]  # absl lists none for a console script unless told
    assert not tf_loaded


@pytest.mark.parametrize("name, args, message", [
    ("stylize", ["--content=a.jpg", "--style=b.jpg", "--output=o.jpg", "--size=0"], "--size must be positive"),
    # tiles under 60 px once stopped with a oneDNN pooling traceback in the optimiser's style analysis
    ("stylize", ["--content=a.jpg", "--style=b.jpg", "--output=o.jpg", "--tile=32"],
     "--tile must be 0 (untiled) or at least 64 px, got 32"),
    ("stylize", ["--content=a.jpg", "--style=b.jpg", "--output=o.jpg", "--tile=128", "--tile_overlap=128"],
     "--tile_overlap must be smaller than the tile (128 px), got 128"),
    ("stylize", ["--content=a.jpg", "--style=b.jpg", "--output=o.jpg", "--method=fast", "--tile=32"],
     "--tile must be 0 (untiled) or a multiple of 8 of at least 256 with --method=fast, got 32"),
    ("train", ["--style_dir=s", "--model_dir=m"], "--content_dir is required"),
    ("export", ["--formats=onnx"], "unknown format(s) onnx"),
    ("video", ["--input=a.mp4", "--style=b.jpg", "--output=o.mp4", "--size=-3"], "--size must be non-negative"),
    ("augment", ["--input_dir=.", "--output_dir=o", "--styles=b.jpg", "--per_image=0"], "--per_image must be positive"),
])
def test_flag_errors_come_before_tensorflow(name, args, message):
    proc, tf_loaded = launch(name, *args)
    assert proc.returncode == 2 and message in last_line(proc.stderr.rsplit("tensorflow loaded", 1)[0])
    assert "Traceback" not in proc.stderr and proc.stderr.count("error:") == 1
    assert not tf_loaded


@pytest.mark.parametrize("name, args", [
    ("stylize", ["--content={missing}", "--style={missing}", "--output={tmp}/o.jpg", "--method=fast"]),
    ("video", ["--input={missing}", "--style={missing}", "--output={tmp}/o.mp4"]),
])
def test_deprecated_alpha_warns_and_is_the_strength(name, args, tmp_path):
    """nst-stylize and nst-video --alpha: the same warning naming --strength, then the run goes on (here to the
    missing input file)."""
    missing = str(tmp_path / "missing.jpg")
    proc, tf_loaded = launch(name, *(a.format(missing=missing, tmp=tmp_path) for a in args), "--alpha=0.5")
    assert "warning: --alpha is deprecated; use --strength (the same below 1)" in proc.stderr
    assert proc.returncode == 1 and last_line(proc.stderr.rsplit("tensorflow loaded", 1)[0]).startswith(
        f"error: {missing}") and not tf_loaded


@pytest.mark.parametrize("name, args", [
    ("stylize", ["--content={missing}", "--style={missing}", "--output={tmp}/o.jpg"]),
    ("train", ["--content_dir={tmp},{missing}:3", "--style_dir={tmp}", "--model_dir={tmp}/m"]),
    ("export", ["--checkpoint={missing}", "--output_dir={tmp}/e", "--data_dir={tmp}"]),
    ("video", ["--input={tmp}", "--style={missing}", "--output={tmp}/o.mp4"]),
    ("augment", ["--input_dir={tmp}", "--output_dir={tmp}_out", "--styles={missing}"]),
])
def test_missing_files_are_named_before_tensorflow(name, args, tmp_path):
    missing = str(tmp_path / "missing.jpg")
    proc, tf_loaded = launch(name, *(a.format(missing=missing, tmp=tmp_path) for a in args))
    error = last_line(proc.stderr.rsplit("tensorflow loaded", 1)[0])
    assert proc.returncode == 1 and error.startswith(f"error: {missing}"), error
    assert not tf_loaded
