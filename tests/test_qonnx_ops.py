"""PositQuant, npegen's posit quantizer op for QONNX (sw_driver.qonnx_ops)."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from generators.formats import Posit, get_format

qonnx = pytest.importorskip("qonnx")
from qonnx.core.datatype import DataType  # noqa: E402
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.core.onnx_exec import execute_onnx  # noqa: E402
from qonnx.custom_op.registry import getCustomOp  # noqa: E402
from qonnx.transformation.infer_datatypes import InferDataTypes  # noqa: E402
from qonnx.transformation.infer_shapes import InferShapes  # noqa: E402

from sw_driver.qonnx_ops import DOMAIN, PositQuant, make_posit_quant_node  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _model(shape, n, es, scale, with_shape_info=True):
    node = make_posit_quant_node("x", "s", "y", n, es, name="pq0")
    out_vi = helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                           list(shape) if with_shape_info else None)
    graph = helper.make_graph(
        [node], "posit_quant_test",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [out_vi],
        initializer=[numpy_helper.from_array(np.asarray(scale, dtype=np.float32), "s")],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                helper.make_opsetid(DOMAIN, 1)])
    m.ir_version = min(m.ir_version, 9)
    return ModelWrapper(m)


def _reference(x, scale, n, es):
    fmt = Posit(n, es)
    xs = x.astype(np.float64) / np.float64(np.float32(scale))
    return (fmt.decode(fmt.encode(xs.ravel())).reshape(x.shape) * np.float64(np.float32(scale))
            ).astype(np.float32)


@pytest.mark.parametrize("n,es,scale", [(8, 0, 0.05), (4, 1, 0.5), (16, 1, 3.0), (6, 2, 1.0)])
def test_positquant_executes_and_matches_posit(n, es, scale):
    rng = np.random.default_rng(n * 10 + es)
    x = rng.normal(0, 4 * scale, size=(5, 7, 3)).astype(np.float32)
    fmt = Posit(n, es)
    # zero, saturation to ±maxpos, saturation to ±minpos (never 0), exact codes
    x.flat[0] = 0.0
    x.flat[1] = 1e6 * scale * fmt.max_value
    x.flat[2] = -1e6 * scale * fmt.max_value
    x.flat[3] = 1e-3 * scale * fmt.min_value
    x.flat[4] = -1e-3 * scale * fmt.min_value
    x.flat[5] = np.float32(scale)  # 1.0 exactly
    model = _model(x.shape, n, es, scale)
    y = execute_onnx(model, {"x": x})["y"]
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_array_equal(y, _reference(x, scale, n, es))
    s = np.float64(np.float32(scale))
    assert y.flat[0] == 0.0
    assert y.flat[1] == np.float32(fmt.max_value * s)
    assert y.flat[2] == np.float32(-fmt.max_value * s)
    assert y.flat[3] == np.float32(fmt.min_value * s)
    assert y.flat[4] == np.float32(-fmt.min_value * s)
    assert y.flat[5] == np.float32(s)
    # the outputs are posit values times the scale (up to the float32 rounding of the product)
    codes = fmt.encode(y.astype(np.float64).ravel() / s)
    np.testing.assert_allclose(fmt.decode(codes) * s, y.astype(np.float64).ravel(), rtol=2**-23)


def test_positquant_matches_named_format_and_nar():
    fmt = get_format("posit8_0")
    x = np.array([[0.3, -1.7, 100.0, np.nan, 0.0, 1e-30]], dtype=np.float32)
    y = execute_onnx(_model(x.shape, 8, 0, 1.0), {"x": x})["y"]
    want = fmt.decode(fmt.encode(x.astype(np.float64))).astype(np.float32)
    np.testing.assert_array_equal(y, want)  # NaN -> NaR -> NaN (assert_array_equal: NaN==NaN)
    assert np.isnan(y[0, 3]) and y[0, 2] == 64.0 and y[0, 5] == 2.0 ** -6


def test_positquant_per_channel_scale_broadcasts():
    x = np.linspace(-3, 3, 24, dtype=np.float32).reshape(2, 3, 4)
    scale = np.array([0.5, 1.0, 2.0], dtype=np.float32).reshape(1, 3, 1)
    y = execute_onnx(_model(x.shape, 8, 0, scale), {"x": x})["y"]
    fmt = Posit(8, 0)
    want = fmt.decode(fmt.encode((x.astype(np.float64) / scale).ravel())).reshape(x.shape) * scale
    np.testing.assert_array_equal(y, want.astype(np.float32))


def test_positquant_shape_and_datatype_inference():
    model = _model((4, 6), 8, 0, 0.25, with_shape_info=False)
    model = model.transform(InferShapes())
    assert model.get_tensor_shape("y") == [4, 6]
    model = model.transform(InferDataTypes())
    assert model.get_tensor_datatype("y") == DataType["FLOAT32"]
    # the custom node survives shape inference (qonnx swaps it back in)
    assert [(n.op_type, n.domain) for n in model.graph.node] == [("PositQuant", DOMAIN)]


def test_positquant_custom_op_interface():
    node = make_posit_quant_node("a", "sc", "b", 16, 1, name="pq")
    assert node.domain == "sw_driver.qonnx_ops" and node.name == "pq"
    inst = getCustomOp(node)
    assert isinstance(inst, PositQuant)
    assert inst.get_nodeattr("n") == 16 and inst.get_nodeattr("es") == 1
    info = inst.verify_node()
    assert not any("invalid" in s or "needs" in s for s in info), info
    with pytest.raises(ValueError):
        make_posit_quant_node("a", "sc", "b", 8, 9)


def test_positquant_resolved_without_importing_the_module(tmp_path):
    """qonnx imports the domain module by name: a fresh process need not import it."""
    model = _model((3,), 8, 0, 1.0)
    path = tmp_path / "pq.onnx"
    onnx.save(model.model, str(path))
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.core.onnx_exec import execute_onnx
        assert "sw_driver.qonnx_ops" not in sys.modules
        m = ModelWrapper({str(path)!r})
        y = execute_onnx(m, {{"x": np.array([0.3, 100.0, -1.7], dtype=np.float32)}})["y"]
        assert "sw_driver.qonnx_ops" in sys.modules
        print(y.tolist())
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[0.296875, 64.0, -1.6875]"  # posit8_0 of 0.3, 100, -1.7
