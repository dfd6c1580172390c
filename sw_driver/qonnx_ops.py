"""npegen's own QONNX custom ops: ``PositQuant``, a posit⟨n, es⟩ fake-quantizer.

The ONNX domain of the ops here is the module path, ``"sw_driver.qonnx_ops"``
(:data:`DOMAIN`). Node semantics::

    PositQuant(x, scale; n, es) -> y = decode(encode(x / scale)) * scale

with the posit rounding of :class:`generators.formats.Posit` (round to nearest, ties to
the even bit pattern; a nonzero finite value never becomes 0 or NaR: it saturates to
±minpos / ±maxpos; 0 stays 0; NaN and ±inf become NaR, i.e. NaN in the output). ``scale``
is a float tensor broadcastable to ``x`` (normally a scalar initializer). The arithmetic
is done in float64 and the output is float32.

How qonnx 1.0 finds the op
--------------------------
``qonnx.custom_op.registry.getCustomOp`` looks a node up by ``(node.domain,
node.op_type)`` in its cache; on a miss it *imports the module named like the domain*
(``importlib.import_module("sw_driver.qonnx_ops")``, after ``add_domain_alias``
resolution) and picks classes listed in its ``__all__`` whose name is the op type
(``PositQuant``, or ``PositQuant_vN`` for opset N). So a model with this op runs in
``execute_onnx`` without importing this module first, as long as ``sw_driver`` is
importable. Importing the module also registers the class eagerly
(``registry.add_op_to_domain``), and the legacy ``custom_op`` dict is provided for tools
that read it (e.g. older FINN-style lookups).
"""

from __future__ import annotations

import functools

import numpy as np
from onnx import TensorProto, helper

from qonnx.core.datatype import DataType
from qonnx.custom_op import registry as _registry
from qonnx.custom_op.base import CustomOp

from generators.formats import Posit

__all__ = ["DOMAIN", "PositQuant", "make_posit_quant_node", "posit_quant"]

DOMAIN = "sw_driver.qonnx_ops"
"""The ONNX domain string of npegen's custom ops (equal to this module's path)."""


@functools.lru_cache(maxsize=None)
def _posit(n: int, es: int) -> Posit:
    return Posit(n, es)


def posit_quant(x, scale, n: int, es: int) -> np.ndarray:
    """``decode(encode(x / scale)) * scale`` in float64 (the reference of the op)."""
    fmt = _posit(int(n), int(es))
    x64 = np.asarray(x, dtype=np.float64)
    s64 = np.asarray(scale, dtype=np.float64)
    scaled = np.broadcast_to(x64 / s64, np.broadcast_shapes(x64.shape, s64.shape))
    q = fmt.decode(fmt.encode(np.ascontiguousarray(scaled))).reshape(scaled.shape)
    return q * s64


class PositQuant(CustomOp):
    """Posit⟨n, es⟩ quantize-dequantize with a scale (domain ``sw_driver.qonnx_ops``).

    Inputs: ``x`` (float tensor), ``scale`` (float, broadcastable to ``x``; positive).
    Attributes: ``n`` (int, 2..32), ``es`` (int, 0..4). Output: float32, shape of ``x``.
    """

    def get_nodeattr_types(self):
        return {
            # posit width in bits
            "n": ("i", True, 8),
            # exponent bits
            "es": ("i", True, 0),
        }

    def make_shape_compatible_op(self, model):
        # Same shape as the input, float32: a Cast does both for ONNX shape inference.
        return helper.make_node(
            "Cast",
            inputs=[self.onnx_node.input[0]],
            outputs=[self.onnx_node.output[0]],
            to=int(TensorProto.FLOAT),
        )

    def infer_node_datatype(self, model):
        model.set_tensor_datatype(self.onnx_node.output[0], DataType["FLOAT32"])

    def execute_node(self, context, graph):
        node = self.onnx_node
        x = context[node.input[0]]
        scale = context[node.input[1]]
        y = posit_quant(x, scale, self.get_nodeattr("n"), self.get_nodeattr("es"))
        context[node.output[0]] = np.asarray(y, dtype=np.float32)

    def verify_node(self):
        info = []
        node = self.onnx_node
        try:
            n = self.get_nodeattr("n")
            es = self.get_nodeattr("es")
            _posit(int(n), int(es))
            info.append(f"PositQuant ⟨{n}, {es}⟩ is a valid posit format.")
        except Exception as e:  # noqa: BLE001 - report, as qonnx's verify_node does
            info.append(f"PositQuant attributes invalid: {e}")
        if node.domain != DOMAIN:
            info.append(f"PositQuant domain is {node.domain!r}, expected {DOMAIN!r}.")
        if len(node.input) == 2:
            info.append("PositQuant has the right number of inputs (x, scale).")
        else:
            info.append(f"PositQuant needs 2 inputs (x, scale), has {len(node.input)}.")
        return info


# Legacy registration dict (the pattern of qonnx.custom_op.channels_last and FINN).
custom_op = {"PositQuant": PositQuant}

# Eager registration: after `import sw_driver.qonnx_ops`, the registry cache has the op.
_registry.add_op_to_domain(DOMAIN, PositQuant)


def make_posit_quant_node(inp: str, scale_name: str, out: str, n: int, es: int,
                          name: str | None = None):
    """An ONNX ``PositQuant`` node (domain :data:`DOMAIN`): ``out = PositQuant(inp, scale_name)``.

    Remember to add ``helper.make_opsetid(DOMAIN, 1)`` to the model's opset imports.
    """
    Posit(n, es)  # validate the format early
    return helper.make_node(
        "PositQuant",
        inputs=[inp, scale_name],
        outputs=[out],
        domain=DOMAIN,
        name=name if name is not None else out + "_PositQuant",
        n=int(n),
        es=int(es),
    )
