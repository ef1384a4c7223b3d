"""Interruption: SIGINT/SIGTERM leave a resumable state and never a corrupt output."""

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, last_line, run_cli

from nst_tf import images

# SIGTERM goes through the CLIs' own handler; SIGINT is Python's KeyboardInterrupt, the same path after it, so
# its run is a slow check (benchmarks/slow_checks.py) to keep CI under its time budget
SIGNALS = [pytest.param(signal.SIGINT, marks=pytest.mark.slow, id="SIGINT"), pytest.param(signal.SIGTERM, id="SIGTERM")]


def default_sigint() -> None:
    """In the child before exec: SIGINT at its default, as in a terminal's foreground job. A shell ignores SIGINT in
    the jobs it starts in the background, children inherit that, and Python then installs no KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(module: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)


def wait_for(path, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise AssertionError(f"process ended early: {proc.stderr.read()[-1500:]}")
        if time.time() > deadline:
            proc.kill()
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.2)


@pytest.mark.parametrize("signum", SIGNALS)
def test_stylize_interrupt_saves_partial_and_resumes(tmp_path, data_dir, lpips_weights, signum):
    output = tmp_path / "out.png"
    args = [f"--content={data_dir}/content/tubingen.jpg", f"--style={data_dir}/styles/starry_night.jpg",
            f"--weights={lpips_weights}", "--size=96", f"--output={output}"]
    proc = start("nst_tf.cli.stylize", *args, "--steps=100000", "--save_every=2")
    wait_for(tmp_path / "out.step00002.png", proc)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    partial = tmp_path / "out.partial.png"
    assert proc.returncode == 130, stderr[-1000:]
    assert "interrupted at step" in last_line(stderr) and str(partial) in last_line(stderr)
    assert not output.exists()
    assert images.load_image(str(partial)).shape == (72, 96, 3)  # a complete, decodable image
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]
    resumed = run_cli("nst_tf.cli.stylize", *args, "--steps=2", f"--init={partial}")
    assert resumed.returncode == 0, resumed.stderr[-1000:]
    assert images.load_image(str(output)).shape == (72, 96, 3)


@pytest.mark.parametrize("signum", SIGNALS)
def test_train_interrupt_checkpoints_and_resumes(tmp_path, data_dir, random_vgg16_weights, signum):
    model_dir = tmp_path / "run"
    args = [f"--content_dir={data_dir}/content", f"--style_dir={data_dir}/styles", f"--model_dir={model_dir}",
            f"--weights={random_vgg16_weights}", "--batch_size=2", "--crop=32", "--checkpoint_every=1",
            "--log_every=1", "--image_every=1000"]
    proc = start("nst_tf.cli.train", *args, "--steps=100000")
    wait_for(model_dir / "checkpoints" / "checkpoint", proc)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-1000:]
    line = last_line(stderr)
    assert "interrupted at step" in line and "run the same command to resume" in line
    step = int(line.split("interrupted at step ")[1].split(";")[0])
    resumed = run_cli("nst_tf.cli.train", *args, f"--steps={step + 1}")
    assert resumed.returncode == 0, resumed.stderr[-1000:]
    assert f"at step {step}" in resumed.stdout and f"done: step {step + 1}" in resumed.stdout
