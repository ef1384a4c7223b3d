"""nst-train's flags on the command line: --init_from, --lr_decay and --seed, each checked on the weights it writes."""

import numpy as np
import pytest
from conftest import run_cli

from nst_tf.network import ArbitraryStyleNetwork, NetworkConfig

LEARNING_RATE = 0.01
LR_DECAY = 9.0  # inverse-time decay: the second step is lr / (1 + 9 * 1) = lr / 10


@pytest.fixture(scope="module")
def setup(tmp_path_factory, lpips_weights):
    """A folder for the runs, holding a saved network (random decoder, relu4_1 only) to start from."""
    root = tmp_path_factory.mktemp("train_cli")
    source = ArbitraryStyleNetwork(NetworkConfig(preprocessing="torch", skip_levels=0))  # lpips VGG16: torch
    source.save(str(root / "source"))
    return root


def train(setup, folders, lpips_weights, run: str, seed: int):
    """Two steps of nst-train from the saved network on the random photos and paintings of `folders` (conftest's
    train_folders); the decoder's weights it wrote."""
    proc = run_cli("nst_tf.cli.train", f"--content_dir={folders / 'content'}", f"--style_dir={folders / 'style'}",
                   f"--model_dir={setup / run}", f"--weights={lpips_weights}", f"--init_from={setup / 'source'}",
                   "--skip_levels=0", "--steps=2", "--batch_size=1", "--crop=32", f"--learning_rate={LEARNING_RATE}",
                   f"--lr_decay={LR_DECAY}", f"--seed={seed}", "--log_every=1", "--image_every=100")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"decoder initialised from {setup / 'source'}" in proc.stdout
    return ArbitraryStyleNetwork.load(str(setup / run / "network")).decoder.get_weights()


def test_init_from_and_lr_decay(setup, train_folders, lpips_weights):
    """--init_from: the decoder starts from the saved one, so two Adam steps move each weight by at most
    lr + lr / (1 + lr_decay) (Adam's first steps are about lr each; a random start would be far away);
    --lr_decay: the largest move is about 1.1 lr, not the 2 lr of two undecayed steps."""
    source = ArbitraryStyleNetwork.load(str(setup / "source")).decoder.get_weights()
    first = train(setup, train_folders, lpips_weights, "a", seed=5)
    moved = max(float(np.abs(a - b).max()) for a, b in zip(first, source))
    bound = LEARNING_RATE * (1 + 1 / (1 + LR_DECAY))
    print(f"largest move from the saved decoder: {moved / LEARNING_RATE:.3f} lr (bound {bound / LEARNING_RATE:.2f} "
          "lr; undecayed steps would reach 2 lr)")
    assert LEARNING_RATE < moved <= bound * 1.02 + 1e-4  # float16 weights on both sides


@pytest.mark.slow  # two more training runs: benchmarks/slow_checks.py, not the 10-minute CI suite
def test_seed(setup, train_folders, lpips_weights):
    """--seed: the same seed gives the same weights, another seed other batches and other weights."""
    first = train(setup, train_folders, lpips_weights, "d", seed=5)
    again = train(setup, train_folders, lpips_weights, "b", seed=5)
    other = train(setup, train_folders, lpips_weights, "c", seed=6)
    # Adam's first step is about lr * sign(gradient): a weight whose gradient is ~0 may take either sign from float
    # round-off (threads), so count the weights that moved apart instead of taking the largest difference
    apart = lambda x, y: float(np.mean(np.concatenate([(np.abs(a - b) > 0.5 * LEARNING_RATE).ravel()  # noqa: E731
                                                       for a, b in zip(x, y)])))
    same, differ = apart(first, again), apart(first, other)
    print(f"weights more than lr/2 apart: same seed {same:.2%}, another seed {differ:.2%}")
    assert same < 0.001 and differ > 10 * max(same, 0.001)
