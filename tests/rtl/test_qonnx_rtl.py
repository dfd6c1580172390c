"""The example models through the RTL (Verilator, Icarus) and through the model backend:
identical outputs, layer by layer, and the same counters except cycles."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import require_simulator
from sw_driver.device import Device
from sw_driver.qonnx_run import QonnxRunner

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits"
PLAN = {"default": {"activations": "posit8_0", "weights": "posit8_0", "output": "posit16_1"},
        "layers": {"fc*": {"activations": "fp4_e2m1", "weights": "fp4_e2m1"}}}


@pytest.fixture(scope="module")
def small_models(tmp_path_factory):
    """The example models exported with a batch of 4 (a short simulation)."""
    out = tmp_path_factory.mktemp("digits4")
    subprocess.run([sys.executable, str(DIGITS / "export.py"), "--batch", "4", "--out-dir",
                    str(out)], check=True, capture_output=True, timeout=300)
    return out


# The CNN's 256-row convolution is slow on Icarus; there the MLP covers the same path.
@pytest.mark.parametrize("sim,net", [("verilator", "mlp"), ("verilator", "cnn"),
                                     ("icarus", "mlp")])
def test_examples_rtl_equal_model(sim, small_models, net):
    simulator = require_simulator(sim)
    data = np.load(DIGITS / "digits_test.npz")
    x = (data["x"] if net == "mlp" else data["x_img"])[:4]
    model_file = small_models / f"{net}_int8.onnx"
    results = {}
    for backend in ("model", simulator):
        with Device.open(backend, "tiny") as dev:
            out, report = QonnxRunner(model_file, dev, plan=PLAN).run(x)
            results[backend] = (out, report)
    (m_out, m_rep), (r_out, r_rep) = results["model"], results[simulator]
    np.testing.assert_array_equal(r_out, m_out)
    assert [l.name for l in r_rep.layers] == [l.name for l in m_rep.layers]
    for lm, lr in zip(m_rep.layers, r_rep.layers):
        assert (lr.macs, lr.fused, lr.activations) == (lm.macs, lm.fused, lm.activations)
        assert abs(lm.cycles / lr.cycles - 1) < 0.25, (lm.name, lm.cycles, lr.cycles)
    assert r_rep.top1_agreement >= 0.75
