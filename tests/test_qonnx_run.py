"""QonnxRunner on small hand-built QONNX models (model backend): every op path, plans,
fusion, and each mapping error with its message."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sw_driver.device import Device
from sw_driver.qonnx_run import MappingError, QonnxRunner

QDOM = "qonnx.custom_op.general"


def _init(name, value):
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def _quant(inp, out, scale, bits, name):
    inits = [_init(f"{name}_s", scale), _init(f"{name}_z", 0.0), _init(f"{name}_b", bits)]
    node = helper.make_node("Quant", [inp, f"{name}_s", f"{name}_z", f"{name}_b"], [out],
                            domain=QDOM, name=name, signed=1, narrow=0, rounding_mode="ROUND")
    return node, inits


def mlp_model(rng, *, batch=6, k=12, n=5, relu=True, gemm=False, dynamic=False):
    w = rng.normal(size=(k, n)).astype(np.float32)
    b = rng.normal(size=n).astype(np.float32)
    nodes, inits = [], []
    qx, i1 = _quant("x", "xq", 3.0 / 127, 8, "qx")
    qw, i2 = _quant("w", "wq", float(np.abs(w).max()) / 127, 8, "qw")
    nodes += [qx, qw]
    inits += i1 + i2 + [_init("w", w.T if gemm else w), _init("b", b)]
    if gemm:
        nodes.append(helper.make_node("Gemm", ["xq", "wq", "b"], ["y0"], name="fc", transB=1))
    else:
        nodes.append(helper.make_node("MatMul", ["xq", "wq"], ["m0"], name="fc"))
        nodes.append(helper.make_node("Add", ["m0", "b"], ["y0"], name="add"))
    last = "y0"
    if relu:
        nodes.append(helper.make_node("Relu", ["y0"], ["y1"], name="relu"))
        last = "y1"
    nodes.append(helper.make_node("Identity", [last], ["y"], name="out"))
    dim = "N" if dynamic else batch
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [dim, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [dim, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid(QDOM, 1)])
    model.ir_version = 8
    return model


@pytest.fixture(scope="module")
def device():
    return Device.open("model", "default")


@pytest.mark.parametrize("gemm", [False, True])
def test_int8_layer_matches_qonnx(device, gemm):
    rng = np.random.default_rng(0)
    runner = QonnxRunner(mlp_model(rng, gemm=gemm), device)
    layer = runner.layers[0]
    assert (layer.plan.activations, layer.plan.weights) == ("int8", "int8")
    assert layer.fused == ""          # int8 keeps bias and ReLU on the host, in float
    x = rng.uniform(-3, 3, size=(6, 12)).astype(np.float32)
    out, report = runner.run(x)
    ref, _ = runner.reference(x)
    # int8 products summed exactly, one rounding into bf16: relative error ≤ 2^-8
    assert np.max(np.abs(out - ref)) <= 2 ** -8 * np.max(np.abs(ref)) + 1e-6
    assert report.layers[0].macs == 6 * 12 * 5
    assert "Identity" in report.host_ops


def test_plan_posits_fuse_bias_and_relu(device):
    rng = np.random.default_rng(1)
    runner = QonnxRunner(mlp_model(rng), device, plan={
        "default": {"weights": "posit8_0", "activations": "posit8_0", "output": "posit16_1"}})
    assert runner.layers[0].fused == "bias+relu"
    x = rng.uniform(-3, 3, size=(6, 12)).astype(np.float32)
    out, report = runner.run(x)
    ref, _ = runner.reference(x)
    assert np.all(out >= 0)
    assert np.max(np.abs(out - ref)) < 0.15 * np.max(np.abs(ref))     # 8-bit posits
    assert "posit8_0" in report.table()


def test_plan_errors_list_what_exists(device):
    rng = np.random.default_rng(2)
    model = mlp_model(rng)
    with pytest.raises(MappingError, match=r"layers.conv\*: names no layer .* are fc"):
        QonnxRunner(model, device, plan={"layers": {"conv*": {"weights": "int8"}}})
    with pytest.raises(MappingError, match=r"default.weights: 'posit32_2' is not a format of "
                                           r"this design; it has fp4_e2m1"):
        QonnxRunner(model, device, plan={"default": {"weights": "posit32_2"}})
    with pytest.raises(MappingError, match="same width"):
        QonnxRunner(model, device, plan={"default": {"weights": "posit8_0",
                                                     "activations": "fp4_e2m1"}})
    tiny = Device.open("model", "tiny")
    with pytest.raises(MappingError, match="int8 .* not in this design"):
        QonnxRunner(model, tiny)


def test_dynamic_shapes_are_refused(device):
    with pytest.raises(MappingError, match="dynamic shape"):
        QonnxRunner(mlp_model(np.random.default_rng(3), dynamic=True), device)
