"""Write the digits example models as QONNX (ONNX opset 13 + qonnx quantizers).

    python examples/digits/export.py [--batch 360] [--out-dir examples/digits] [--check]

Reads the trained weights and calibration maxima from ``weights.npz`` (written by
``train.py``), so the output is a pure function of that file and of the batch size:
running it again gives the same bytes.

Models (static shapes; the batch ``B`` becomes the matmul M dimension):

* ``mlp_float.onnx``, ``cnn_float.onnx`` — the float networks.
* ``mlp_int8.onnx``, ``cnn_int8.onnx`` — 8-bit qonnx ``Quant`` (IntQuant: signed,
  narrow=0, rounding_mode ROUND, zero point 0, per-tensor scale max|x|/127) on the network
  input, on every MatMul/Gemm/Conv weight and on every MatMul/Gemm/Conv input activation.
* ``cnn_fp8.onnx`` — the CNN with qonnx ``FloatQuant`` e4m3 (exponent 4 bits, mantissa 3,
  bias 7, max 448, has_nan, subnormals, saturating) in the same places, scale max|x|/448.
* ``digits_test.npz`` — ``x`` (360 x 64), ``x_img`` (360 x 1 x 8 x 8), ``y`` (labels).

Tensor and node names are fixed (see README.md); every quantizer ``<q>`` has its own
initializers ``<q>_scale``, ``<q>_zeropt``, ``<q>_bitwidth`` (Quant) or ``<q>_scale``,
``<q>_exponent_bitwidth``, ``<q>_mantissa_bitwidth``, ``<q>_exponent_bias``,
``<q>_max_val`` (FloatQuant), all float32 scalars.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent


def _load_train():
    """``train.py`` next to this file (data split, deterministic npz writer), by path."""
    import importlib.util

    name = "npegen_examples_digits_train"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / "train.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


_train = _load_train()

QONNX_DOMAIN = "qonnx.custom_op.general"
OPSET = 13
IR_VERSION = 8  # onnxruntime 1.x executes it (opset 13 needs IR >= 7)
DEFAULT_BATCH = 360
INT8_QMAX = 127.0
FP8_MAX = 448.0

MODELS = ("mlp_float", "mlp_int8", "cnn_float", "cnn_int8", "cnn_fp8")


class _Graph:
    """A tiny builder that keeps nodes in order and records every tensor's shape."""

    def __init__(self, name, quant):
        self.name = name
        self.quant = quant  # None, "int8" or "fp8"
        self.nodes, self.inits, self.shapes = [], [], {}

    def init(self, name, array):
        array = np.asarray(array, dtype=np.float32)
        self.inits.append(numpy_helper.from_array(array, name))
        self.shapes[name] = list(array.shape)
        return name

    def node(self, op, inputs, output, shape, name, domain="", **attrs):
        self.nodes.append(helper.make_node(op, inputs, [output], name=name, domain=domain,
                                           **attrs))
        self.shapes[output] = list(shape)
        return output

    def quantize(self, tensor, qname, absmax, out):
        """Insert the quantizer of this graph's kind on ``tensor``; returns the output name."""
        if self.quant is None:
            return tensor
        shape = self.shapes[tensor]
        absmax = float(absmax)
        if self.quant == "int8":
            scale = self.init(f"{qname}_scale", np.float32(absmax / INT8_QMAX))
            zeropt = self.init(f"{qname}_zeropt", np.float32(0.0))
            bits = self.init(f"{qname}_bitwidth", np.float32(8.0))
            return self.node("Quant", [tensor, scale, zeropt, bits], out, shape, qname,
                             domain=QONNX_DOMAIN, signed=1, narrow=0, rounding_mode="ROUND")
        if self.quant == "fp8":
            scale = self.init(f"{qname}_scale", np.float32(absmax / FP8_MAX))
            eb = self.init(f"{qname}_exponent_bitwidth", np.float32(4.0))
            mb = self.init(f"{qname}_mantissa_bitwidth", np.float32(3.0))
            bias = self.init(f"{qname}_exponent_bias", np.float32(7.0))
            mx = self.init(f"{qname}_max_val", np.float32(FP8_MAX))
            return self.node("FloatQuant", [tensor, scale, eb, mb, bias, mx], out, shape,
                             qname, domain=QONNX_DOMAIN, has_inf=0, has_nan=1,
                             has_subnormal=1, saturation=1, rounding_mode="ROUND")
        raise ValueError(f"unknown quantizer kind {self.quant!r}")

    def weight(self, name, array, qname):
        """A weight initializer, through its quantizer when the graph is quantized."""
        w = self.init(name, array)
        return self.quantize(w, qname, np.abs(np.asarray(array, np.float64)).max(),
                             f"{name}_q")

    def model(self, inp, out):
        shapes = self.shapes
        init_names = {t.name for t in self.inits}
        vi = [helper.make_tensor_value_info(n.output[0], TensorProto.FLOAT, shapes[n.output[0]])
              for n in self.nodes if n.output[0] != out]
        graph = helper.make_graph(
            self.nodes, self.name,
            [helper.make_tensor_value_info(inp, TensorProto.FLOAT, shapes[inp])],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, shapes[out])],
            initializer=self.inits, value_info=vi)
        assert inp not in init_names
        opsets = [helper.make_opsetid("", OPSET)]
        if self.quant is not None:
            opsets.append(helper.make_opsetid(QONNX_DOMAIN, 1))
        m = helper.make_model(graph, opset_imports=opsets,
                              producer_name="npegen examples/digits/export.py")
        m.ir_version = IR_VERSION
        onnx.checker.check_model(m)
        return m


def build_mlp(w, batch=DEFAULT_BATCH, quant=None):
    """MLP 64 -> 32 (ReLU) -> 10 with MatMul (weights K x N) + Add (bias)."""
    suffix = quant or "float"
    g = _Graph(f"digits_mlp_{suffix}", quant)
    g.shapes["x"] = [batch, 64]
    x = g.quantize("x", "x_quant", w["calib_input_absmax"], "x_q")
    w1 = g.weight("fc1_w", w["mlp_fc1_w"], "fc1_w_quant")
    h = g.node("MatMul", [x, w1], "fc1_mm", [batch, 32], "fc1_matmul")
    h = g.node("Add", [h, g.init("fc1_b", w["mlp_fc1_b"])], "fc1_out", [batch, 32], "fc1_bias")
    h = g.node("Relu", [h], "relu1_out", [batch, 32], "relu1")
    h = g.quantize(h, "fc2_in_quant", w["calib_mlp_fc2_in_absmax"], "fc2_in_q")
    w2 = g.weight("fc2_w", w["mlp_fc2_w"], "fc2_w_quant")
    o = g.node("MatMul", [h, w2], "fc2_mm", [batch, 10], "fc2_matmul")
    o = g.node("Add", [o, g.init("fc2_b", w["mlp_fc2_b"])], "logits", [batch, 10], "fc2_bias")
    return g.model("x", o)


def build_cnn(w, batch=DEFAULT_BATCH, quant=None):
    """CNN: Conv 1->8 3x3 pad 1 (+bias), ReLU, MaxPool 2x2, Flatten, Gemm(transB=1) -> 10."""
    suffix = quant or "float"
    g = _Graph(f"digits_cnn_{suffix}", quant)
    g.shapes["x"] = [batch, 1, 8, 8]
    x = g.quantize("x", "x_quant", w["calib_input_absmax"], "x_q")
    wc = g.weight("conv1_w", w["cnn_conv1_w"], "conv1_w_quant")
    h = g.node("Conv", [x, wc, g.init("conv1_b", w["cnn_conv1_b"])], "conv1_out",
               [batch, 8, 8, 8], "conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
               strides=[1, 1], dilations=[1, 1], group=1)
    h = g.node("Relu", [h], "relu1_out", [batch, 8, 8, 8], "relu1")
    h = g.node("MaxPool", [h], "pool1_out", [batch, 8, 4, 4], "pool1",
               kernel_shape=[2, 2], strides=[2, 2])
    h = g.node("Flatten", [h], "flat", [batch, 128], "flatten", axis=1)
    h = g.quantize(h, "fc_in_quant", w["calib_cnn_fc_in_absmax"], "fc_in_q")
    wf = g.weight("fc_w", w["cnn_fc_w"], "fc_w_quant")
    o = g.node("Gemm", [h, wf, g.init("fc_b", w["cnn_fc_b"])], "logits", [batch, 10], "fc",
               transB=1)
    return g.model("x", o)


def build_all(weights, batch=DEFAULT_BATCH):
    """``{model name: ModelProto}`` for every shipped model."""
    return {
        "mlp_float": build_mlp(weights, batch, None),
        "mlp_int8": build_mlp(weights, batch, "int8"),
        "cnn_float": build_cnn(weights, batch, None),
        "cnn_int8": build_cnn(weights, batch, "int8"),
        "cnn_fp8": build_cnn(weights, batch, "fp8"),
    }


def load_weights(path=HERE / "weights.npz"):
    with np.load(path) as d:
        return {k: d[k] for k in d.files}


def test_set():
    """``{"x": N x 64, "x_img": N x 1 x 8 x 8, "y": labels}`` of the fixed split."""
    _, _, xte, yte = _train.load_data()
    return {"x": xte.astype(np.float32),
            "x_img": xte.reshape(-1, 1, 8, 8).astype(np.float32),
            "y": yte.astype(np.int64)}


def export(out_dir=HERE, batch=DEFAULT_BATCH, weights_path=HERE / "weights.npz"):
    """Write every model and the test set to ``out_dir``; returns the written paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, model in build_all(load_weights(weights_path), batch).items():
        p = out_dir / f"{name}.onnx"
        p.write_bytes(model.SerializeToString())
        paths.append(p)
    p = out_dir / "digits_test.npz"
    _train.save_npz(p, test_set())
    paths.append(p)
    return paths


def qonnx_accuracy(path, x, y):
    """Test accuracy of a model file executed with qonnx's ``execute_onnx``."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    model = ModelWrapper(str(path))
    inp = model.graph.input[0].name
    out = model.graph.output[0].name
    batch = model.get_tensor_shape(inp)[0]
    correct = 0
    for i in range(0, len(x) - len(x) % batch, batch):
        logits = execute_onnx(model, {inp: x[i:i + batch]})[out]
        correct += int((np.argmax(logits, axis=1) == y[i:i + batch]).sum())
    return correct / (len(x) - len(x) % batch)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                    help="static batch size (the matmul M dimension); default 360")
    ap.add_argument("--out-dir", type=Path, default=HERE)
    ap.add_argument("--weights", type=Path, default=HERE / "weights.npz")
    ap.add_argument("--check", action="store_true",
                    help="execute every model with qonnx and print its test accuracy")
    args = ap.parse_args(argv)
    for p in export(args.out_dir, args.batch, args.weights):
        print(f"wrote {p}")
    if args.check:
        data = test_set()
        for name in MODELS:
            x = data["x"] if name.startswith("mlp") else data["x_img"]
            acc = qonnx_accuracy(args.out_dir / f"{name}.onnx", x, data["y"])
            print(f"{name}: {acc * 100:.2f}% test accuracy (qonnx execute_onnx)")


if __name__ == "__main__":
    main()
