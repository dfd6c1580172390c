"""`npegen matmul`, `npegen run` and `npegen demo` (model backend; the RTL backends are the
same code paths, covered in tests/rtl/)."""

import json
from pathlib import Path

import numpy as np

from generators.cli import main

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"


def test_matmul_json(capsys):
    assert main(["matmul", "--config", "tiny", "--m", "5", "--n", "3", "--k", "40",
                 "--format", "posit8_0", "--out-format", "fp4_e2m1", "--bias", "--relu",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["bit_exact"] is True and report["macs"] == 5 * 3 * 40
    assert {"backend", "m", "n", "k", "in_format", "out_format", "cycles",
            "utilization"} <= set(report)


def test_run_mlp_json_and_output(capsys, tmp_path):
    out = tmp_path / "y.npy"
    assert main(["run", str(DIGITS / "mlp_int8.onnx"), "--config", "default",
                 "--input", f"{DIGITS / 'digits_test.npz'}:x", "--labels",
                 f"{DIGITS / 'digits_test.npz'}:y", "--output", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [l["name"] for l in report["layers"]] == ["fc1_matmul", "fc2_matmul"]
    assert report["accuracy"] > 0.95 and report["top1_agreement"] == 1.0
    assert np.load(out).shape == (360, 10)


def test_run_plan_error_exits_2(capsys):
    plan = DIGITS / "plans" / "mixed_mlp.yaml"
    assert main(["run", str(DIGITS / "cnn_int8.onnx"), "--config", "default",
                 "--plan", str(plan)]) == 2
    err = capsys.readouterr().err
    assert "layers.fc2_matmul: names no layer of the model; its layers are conv1, fc" in err


def test_demo_on_the_model_backend(capsys):
    assert main(["demo", "--config", "tiny", "--backend", "model"]) == 0
    out = capsys.readouterr().out
    assert "conv1" in out and "identical to" in out
