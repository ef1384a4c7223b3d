"""Network folders on disk: the weighted mean of several (average_folders) and its command line."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, last_line

from nst_tf.network import NetworkConfig
from nst_tf.network_io import average_folders, write_folder


def test_average_folders_by_hand(tmp_path):
    config = NetworkConfig().to_json()
    write_folder(str(tmp_path / "a"), {"decoder/x/0": np.array([1.0, 2.0]), "decoder/y/0": np.array([[3.0]])}, config)
    write_folder(str(tmp_path / "b"), {"decoder/x/0": np.array([3.0, 5.0]), "decoder/y/0": np.array([[6.0]])}, config)
    average_folders([str(tmp_path / "a"), str(tmp_path / "b")], str(tmp_path / "mean"))
    with np.load(tmp_path / "mean" / "weights.npz") as mean:
        np.testing.assert_array_equal(mean["decoder/x/0"], [2.0, 3.5])
        np.testing.assert_array_equal(mean["decoder/y/0"], [[4.5]])
        assert mean["decoder/x/0"].dtype == np.float16  # as every saved network
    assert (tmp_path / "mean" / "config.json").read_text() == config
    write_folder(str(tmp_path / "c"), {"decoder/x/0": np.array([1.0, 2.0])}, config)
    with pytest.raises(ValueError, match="not the architecture"):
        average_folders([str(tmp_path / "a"), str(tmp_path / "c")], str(tmp_path / "bad"))
    with pytest.raises(FileNotFoundError, match=r"/nope/config.json: missing \(a model folder holds"):
        average_folders([str(tmp_path / "a"), str(tmp_path / "nope")], str(tmp_path / "bad"))
    assert not (tmp_path / "bad").exists()  # nothing written on either error
    tool = [sys.executable, os.path.join(ROOT, "tools", "average_networks.py")]  # its command line
    proc = subprocess.run([*tool, f"--out={tmp_path / 'cli2'}", str(tmp_path / "a"), str(tmp_path / "c")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and last_line(proc.stderr).startswith(f"error: {tmp_path / 'c'}: not the arch")
    assert not (tmp_path / "cli2" / "weights.npz").exists()
    # weighted: 0.75 a + 0.25 b; and a network without the moment head counts as one with a zero head
    headed = NetworkConfig(moment_head=2).to_json()
    write_folder(str(tmp_path / "h"), {"decoder/x/0": np.array([3.0, 5.0]), "decoder/y/0": np.array([[6.0]]),
                                       "moment_head/mhead_1/0": np.array([7.0]),
                                       "moment_head/mhead_2/0": np.array([8.0])}, headed)
    average_folders([str(tmp_path / "a"), str(tmp_path / "h")], str(tmp_path / "mix"), weights=[3, 1])
    with np.load(tmp_path / "mix" / "weights.npz") as mix:
        np.testing.assert_array_equal(mix["decoder/x/0"], [1.5, 2.75])
        np.testing.assert_array_equal(mix["moment_head/mhead_1/0"], [7.0])  # the same first layer in both
        np.testing.assert_array_equal(mix["moment_head/mhead_2/0"], [2.0])  # 0.75 * 0 + 0.25 * 8
    assert (tmp_path / "mix" / "config.json").read_text() == headed
    with pytest.raises(ValueError, match="2 weights for 1 folders"):
        average_folders([str(tmp_path / "a")], str(tmp_path / "bad"), weights=[1, 1])
