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


def _model(nodes, inits, k=12, n=5, batch=6, extra_opsets=()):
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid(QDOM, 1),
                                                    *extra_opsets])
    model.ir_version = 8
    return model


def test_posit_quantized_model_maps_natively(device):
    """PositQuant (npegen's own QONNX op) gives the layer its posit format; qonnx runs the
    same model as the reference."""
    from sw_driver.qonnx_ops import DOMAIN, make_posit_quant_node
    rng = np.random.default_rng(4)
    w = rng.normal(size=(12, 5)).astype(np.float32)
    nodes = [make_posit_quant_node("x", "sx", "xq", 8, 0, name="qx"),
             make_posit_quant_node("w", "sw", "wq", 8, 0, name="qw"),
             helper.make_node("MatMul", ["xq", "wq"], ["y"], name="fc")]
    inits = [_init("w", w), _init("sx", 0.25), _init("sw", 0.125)]
    runner = QonnxRunner(_model(nodes, inits, extra_opsets=[helper.make_opsetid(DOMAIN, 1)]),
                         device)
    assert (runner.layers[0].plan.activations, runner.layers[0].plan.weights) == \
        ("posit8_0", "posit8_0")
    x = rng.uniform(-3, 3, size=(6, 12)).astype(np.float32)
    out, _ = runner.run(x)
    ref, _ = runner.reference(x)
    # The quantizer's own scale and format: exact products, one bf16 rounding.
    assert np.max(np.abs(out - ref)) <= 2 ** -8 * np.max(np.abs(ref))


def test_bipolar_and_qdq_paths(device):
    """BipolarQuant weights (±1, as int codes) and a QuantizeLinear/DequantizeLinear pair."""
    rng = np.random.default_rng(5)
    w = rng.normal(size=(12, 5)).astype(np.float32)
    qx, i1 = _quant("x", "xq", 3.0 / 127, 8, "qx")
    nodes = [qx, helper.make_node("BipolarQuant", ["w", "ws"], ["wq"], domain=QDOM, name="bq"),
             helper.make_node("MatMul", ["xq", "wq"], ["y"], name="fc")]
    runner = QonnxRunner(_model(nodes, i1 + [_init("w", w), _init("ws", 0.5)]), device,
                         plan={"default": {"weights": "int8"}})
    x = rng.uniform(-3, 3, size=(6, 12)).astype(np.float32)
    out, _ = runner.run(x)
    ref, _ = runner.reference(x)
    assert np.max(np.abs(out - ref)) <= 2 ** -8 * np.max(np.abs(ref)) + 1e-6

    w_int = rng.integers(-127, 128, size=(12, 5)).astype(np.int8)
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xi"], name="ql"),
             helper.make_node("DequantizeLinear", ["xi", "s", "z"], ["xq"], name="dql"),
             helper.make_node("DequantizeLinear", ["wi", "sw"], ["wq"], name="dqw"),
             helper.make_node("MatMul", ["xq", "wq"], ["y"], name="fc")]
    inits = [_init("s", 0.05), numpy_helper.from_array(np.int8(0), "z"),
             numpy_helper.from_array(w_int, "wi"), _init("sw", 0.01)]
    runner = QonnxRunner(_model(nodes, inits), device)
    assert runner.layers[0].plan.weights == "int8"
    out, _ = runner.run(x)
    ref, _ = runner.reference(x)
    assert np.max(np.abs(out - ref)) <= 2 ** -8 * np.max(np.abs(ref)) + 1e-6


def test_non_constant_weight_and_unknown_op_are_named(device):
    nodes = [helper.make_node("MatMul", ["x", "x2"], ["y"], name="fc")]
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6, 12]),
                                           helper.make_tensor_value_info("x2", TensorProto.FLOAT, [12, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [6, 5])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    with pytest.raises(MappingError, match=r"node fc \(MatMul\): its weight x2 is not a constant"):
        QonnxRunner(model, device)
    rng = np.random.default_rng(6)
    qx, i1 = _quant("x", "xq", 3.0 / 127, 8, "qx")
    qw, i2 = _quant("w", "wq", 0.01, 8, "qw")
    nodes = [qx, qw, helper.make_node("MatMul", ["xq", "wq"], ["m0"], name="fc"),
             helper.make_node("NoSuchOp", ["m0"], ["y"], name="mystery", domain="nowhere.ops")]
    model = _model(nodes, i1 + i2 + [_init("w", rng.normal(size=(12, 5)))])
    with pytest.raises(MappingError, match=r"node mystery \(NoSuchOp, domain 'nowhere.ops'\) "
                                           r"cannot run on the host"):
        QonnxRunner(model, device)
