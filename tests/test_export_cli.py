"""nst-export's --network, --int8 and --threads: the command line's options reach the export, and the export does
what each value says (the int8 scheme on the phone-sized network's transfer model)."""

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest
from conftest import ROOT

from nst_tf import export, fast, mobile
from nst_tf.network import BUNDLED_DIR

SIZE = 32

# nst-export's main with nst_tf.export.export replaced by a recorder (no conversion): what reached it
PROBE = """
import dataclasses, json, sys
from absl import app
from nst_tf import export
from nst_tf.cli import common, export as cli

def record(net, options, data_dir, checkpoint=None):
    print("probe: " + json.dumps({"options": dataclasses.asdict(options), "checkpoint": checkpoint,
                                  "network": type(net).__name__}), flush=True)
    return {}

export.export, export.summary = record, lambda report: []
app.run(common.guarded(cli.main), argv=["nst-export", *sys.argv[1:]])
"""


def probe(cwd, *args: str) -> dict:
    """Run nst-export with PROBE in `cwd`; what reached nst_tf.export.export."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("probe: ")]
    return json.loads(lines[-1][len("probe: "):])


def test_network_int8_and_threads_reach_the_export(tmp_path, data_dir):
    """--network=mobile exports the bundled phone-sized network into export/mobile as mobile_style (unless told
    otherwise); --int8 and --threads are the export's options as given."""
    phone = probe(tmp_path, "--network=mobile", "--int8=dynamic", "--threads=3", f"--data_dir={data_dir}")
    assert phone["network"] == "MobileStyleNetwork" and phone["checkpoint"] == mobile.BUNDLED_DIR
    options = phone["options"]
    assert (options["output_dir"], options["model_name"]) == (os.path.join("export", "mobile"), "mobile_style")
    assert (options["int8"], options["threads"]) == ("dynamic", 3)
    default = probe(tmp_path, "--int8=full", "--threads=1", f"--output_dir={tmp_path / 'out'}",
                    f"--data_dir={data_dir}")
    assert default["network"] == "ArbitraryStyleNetwork" and default["checkpoint"] == BUNDLED_DIR
    options = default["options"]
    assert (options["output_dir"], options["model_name"]) == (str(tmp_path / "out"), "arbitrary_style")
    assert (options["int8"], options["threads"]) == ("full", 1)
    assert not os.path.exists(tmp_path / "export")  # the recorder wrote nothing


@pytest.fixture(scope="module")
def transfer(tmp_path_factory):
    """The phone-sized network and the SavedModel its fixed-size TFLite transfer model is converted from."""
    net = fast.load_network("mobile")
    options = export.ExportOptions(content_size=SIZE, style_size=SIZE)
    variant = export.TFLiteVariant("transfer", "int8")
    source = export.write_tflite_source(net, variant, options, str(tmp_path_factory.mktemp("transfer")))
    return net, variant, source


def test_int8_full_and_dynamic_give_their_schemes(transfer, data_dir):
    """--int8=full keeps the full-integer model (QUANTIZE/DEQUANTIZE around int8 kernels) whatever its measured error;
    --int8=dynamic converts with int8 weights and float activations and needs no calibration images."""
    net, variant, source = transfer
    options = export.ExportOptions(content_size=SIZE, style_size=SIZE, parity_pairs=1, calibration_samples=2,
                                   threads=1)
    pairs = export.parity_pairs(data_dir, options)
    calibration = export.calibration_data(net, data_dir, options)["transfer"]
    full, record = export.convert_int8(source, variant, net, pairs, calibration, replace(options, int8="full"))
    assert record["scheme"].startswith("full-integer") and "full_integer_attempt" in record
    ops = export.tflite_ops(full)
    assert "QUANTIZE" in ops and "DEQUANTIZE" in ops, ops
    dynamic, record = export.convert_int8(source, variant, net, pairs, [], replace(options, int8="dynamic"))
    assert record["scheme"].startswith("dynamic-range") and "full_integer_attempt" not in record
    assert record["float_layers"] == []  # within the bounds with every convolution int8: none kept in float
    assert "QUANTIZE" not in export.tflite_ops(dynamic)
    assert export.non_builtin_ops(dynamic) == []
