"""Run quantized QONNX models on the co-processor, layer by layer, each in its own precision.

::

    runner = QonnxRunner("cnn_int8.onnx", device, plan="plan.yaml")
    out, report = runner.run(x)

* **Import** with qonnx: ``ModelWrapper``, ``cleanup_model(preserve_qnt_ops=True)`` (weight
  quantizers must stay: they say which precision a layer was trained for) and shape
  inference. Shapes must be static.
* **Lowering**: ``MatMul``, ``Gemm`` and ``Conv`` (im2col on the host) whose weight is an
  initializer — directly or through a quantizer (``Quant``/``IntQuant``, ``BipolarQuant``,
  ``FloatQuant``, npegen's ``PositQuant``, or ``DequantizeLinear``) — become co-processor
  jobs. A following bias ``Add`` and ``Relu`` are fused into the job when the format can
  hold the bias (floating-point and posit formats; an integer format keeps them on the
  host, in float, exactly as the reference does). Every other node runs on the host
  through qonnx's node execution (onnxruntime or qonnx custom ops).
* **Precision per layer**: from the model's quantizers (IntQuant 8/4 bits → int8/int4,
  FloatQuant e4m3/e5m2/e2m1 → fp8_e4m3/fp8_e5m2/fp4_e2m1, PositQuant⟨n,es⟩ → posit<n>_<es>)
  or from a precision plan (YAML: ``default:`` plus ``layers:`` by name or glob, each with
  ``weights``, ``activations``, ``output``) — the plan is how posits are asked for.
* **Scales**: a tensor with a quantizer of scale ``s`` in its native format is sent as the
  codes of ``x / s``, exactly the quantizer's grid; in another format its scale maps the
  calibrated range (the quantizer's, or the weight's maximum) onto the format: to the
  largest value for integer and minifloat formats, to min(2^⌊log2(maxpos)/2⌋, 8) for
  posits (their precision is best around 1). Results are decoded and multiplied by ``s_a · s_w``.

The report compares every lowered layer's output with qonnx's own execution of the model
(the reference), and the model output with it (top-1 agreement for classifiers).
"""

from __future__ import annotations

import fnmatch
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from generators.formats import get_format

__all__ = ["QonnxRunner", "LayerPlan", "MappingError", "load_plan", "LayerReport"]

QUANT_OPS = ("Quant", "IntQuant", "BipolarQuant", "FloatQuant", "PositQuant")
LOWERABLE = ("MatMul", "Gemm", "Conv")


class MappingError(ValueError):
    """A model or plan that cannot be mapped onto the co-processor; the message says why."""


@dataclass(frozen=True)
class LayerPlan:
    weights: str
    activations: str
    output: str


@dataclass
class LayerReport:
    name: str
    op: str
    shape: tuple          # (M, N, K)
    weights: str
    activations: str
    output: str
    fused: str            # "bias+relu", "bias", "relu" or ""
    macs: int
    cycles: int
    utilization: float
    jobs: int
    max_abs_error: float
    rms_error: float
    ref_max_abs: float


@dataclass
class RunReport:
    backend: str
    config: str
    layers: list = field(default_factory=list)
    host_ops: list = field(default_factory=list)
    top1_agreement: Optional[float] = None
    accuracy: Optional[float] = None
    ref_accuracy: Optional[float] = None
    output_max_abs_error: float = 0.0
    seconds: float = 0.0

    def to_dict(self):
        return asdict(self)

    def table(self) -> str:
        head = (f"{'layer':<18} {'op':<6} {'M×N×K':<16} {'act/wgt -> out':<30} {'fused':<9} "
                f"{'MACs':>10} {'cycles':>9} {'util':>6} {'max|err|':>9} {'rms err':>9}")
        lines = [head, "-" * len(head)]
        for r in self.layers:
            m, n, k = r.shape
            fmts = f"{r.activations}/{r.weights} -> {r.output}"
            lines.append(f"{r.name[:18]:<18} {r.op:<6} {f'{m}x{n}x{k}':<16} {fmts:<30} "
                         f"{r.fused or '-':<9} {r.macs:>10} {r.cycles:>9} "
                         f"{r.utilization:>6.1%} {r.max_abs_error:>9.3g} {r.rms_error:>9.3g}")
        tot_macs = sum(r.macs for r in self.layers)
        tot_cyc = sum(r.cycles for r in self.layers)
        lines.append("-" * len(head))
        lines.append(f"{'total':<18} {'':<6} {'':<16} {'':<30} {'':<9} {tot_macs:>10} "
                     f"{tot_cyc:>9}")
        if self.host_ops:
            lines.append(f"on the host: {', '.join(self.host_ops)}")
        if self.top1_agreement is not None:
            lines.append(f"top-1 agreement with the qonnx reference: {self.top1_agreement:.2%}")
        if self.accuracy is not None:
            lines.append(f"accuracy: {self.accuracy:.2%} (qonnx reference {self.ref_accuracy:.2%})")
        lines.append(f"model output max |error| vs reference: {self.output_max_abs_error:.4g}; "
                     f"{self.seconds:.2f} s on {self.backend} ({self.config})")
        return "\n".join(lines)


# ---- precision plans -----------------------------------------------------------------
_PLAN_KEYS = ("weights", "activations", "output")


def load_plan(plan, layer_names, *, formats, output_formats):
    """Validate a plan (a dict or a YAML path) against a model's lowerable layers and a
    design's formats. Returns ``(default, {layer: partial dict})``."""
    import yaml
    if isinstance(plan, (str, Path)):
        path = Path(plan)
        try:
            plan = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise MappingError(f"cannot read precision plan {path}: {exc}") from None
    if not isinstance(plan, dict):
        raise MappingError("a precision plan is a mapping with 'default' and/or 'layers'")
    unknown = set(plan) - {"default", "layers"}
    if unknown:
        raise MappingError(f"precision plan: unknown key(s) {', '.join(sorted(unknown))}; "
                           f"expected 'default' and 'layers'")
    errors = []

    def entry(where, e):
        if not isinstance(e, dict):
            errors.append(f"{where}: must be a mapping of {', '.join(_PLAN_KEYS)}")
            return {}
        for key, value in e.items():
            if key not in _PLAN_KEYS:
                errors.append(f"{where}: unknown key {key!r}; expected {', '.join(_PLAN_KEYS)}")
                continue
            allowed = output_formats if key == "output" else formats
            if value not in allowed:
                errors.append(f"{where}.{key}: {value!r} is not "
                              f"{'an output' if key == 'output' else 'a'} format of this design; "
                              f"it has {', '.join(allowed)}")
        return {k: v for k, v in e.items() if k in _PLAN_KEYS}

    default = entry("default", plan.get("default", {}))
    layers = {}
    for pattern, e in (plan.get("layers") or {}).items():
        matched = [n for n in layer_names if fnmatch.fnmatchcase(n, str(pattern))]
        if not matched:
            errors.append(f"layers.{pattern}: names no layer of the model; its layers are "
                          f"{', '.join(layer_names)}")
        spec = entry(f"layers.{pattern}", e)
        for name in matched:
            layers.setdefault(name, {}).update(spec)
    if errors:
        raise MappingError("precision plan:\n  " + "\n  ".join(errors))
    return default, layers


# ---- quantizers -------------------------------------------------------------------------
@dataclass
class _Quant:
    """What a quantizer node says: its native format (or None), scale, calibrated range."""
    node: object
    fmt: Optional[str]
    scale: float
    max_abs: float


def _scalar(model, name, what, node):
    value = model.get_initializer(name)
    if value is None:
        raise MappingError(f"node {node.name} ({node.op_type}): {what} must be a constant")
    value = np.asarray(value)
    if value.size != 1:
        raise MappingError(f"node {node.name} ({node.op_type}): only per-tensor {what} can "
                           f"be mapped, not shape {value.shape}")
    return float(value.reshape(()))


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            from onnx import helper
            v = helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def _describe_quant(model, node) -> _Quant:
    op = node.op_type
    if op in ("Quant", "IntQuant"):
        scale = _scalar(model, node.input[1], "scale", node)
        zp = _scalar(model, node.input[2], "zero point", node)
        bits = _scalar(model, node.input[3], "bit width", node)
        if zp != 0:
            raise MappingError(f"node {node.name}: zero point {zp} — only symmetric "
                               f"(zero point 0) quantizers map onto the co-processor")
        signed = _attr(node, "signed", 1)
        fmt = {8: "int8", 4: "int4"}.get(int(bits)) if signed else None
        return _Quant(node, fmt, scale, scale * (2 ** (int(bits) - 1) - 1))
    if op == "BipolarQuant":
        scale = _scalar(model, node.input[1], "scale", node)
        return _Quant(node, "int4", scale, scale)
    if op == "FloatQuant":
        scale = _scalar(model, node.input[1], "scale", node)
        e = int(_scalar(model, node.input[2], "exponent bit width", node))
        mnt = int(_scalar(model, node.input[3], "mantissa bit width", node))
        max_val = _scalar(model, node.input[5], "max value", node)
        fmt = {(4, 3): "fp8_e4m3", (5, 2): "fp8_e5m2", (2, 1): "fp4_e2m1"}.get((e, mnt))
        return _Quant(node, fmt, scale, scale * max_val)
    if op == "PositQuant":
        scale = _scalar(model, node.input[1], "scale", node)
        n, es = int(_attr(node, "n")), int(_attr(node, "es"))
        name = f"posit{n}_{es}"
        try:
            get_format(name)
        except Exception:
            name = None
        target = _posit_target(name) if name else 1.0
        return _Quant(node, name, scale, scale * target)
    if op == "DequantizeLinear":
        scale = _scalar(model, node.input[1], "scale", node)
        if len(node.input) > 2 and node.input[2]:
            zp = _scalar(model, node.input[2], "zero point", node)
            if zp != 0:
                raise MappingError(f"node {node.name}: zero point {zp} — only symmetric "
                                   f"quantization maps onto the co-processor")
        return _Quant(node, "int8", scale, scale * 127)
    raise AssertionError(op)


def _posit_target(fmt_name) -> float:
    # Posits are most precise around 1: the calibrated maximum goes to sqrt(maxpos), at
    # most 8, so that typical values sit near 1 and a dot product's sum still fits a
    # 16-bit output posit (products of two maxima stay at 64).
    fmt = get_format(fmt_name)
    return min(2.0 ** math.floor(math.log2(fmt.max_value) / 2), 8.0)


def _target(fmt_name) -> float:
    """The value a tensor's calibrated maximum is mapped to in ``fmt_name``."""
    if fmt_name.startswith("posit"):
        return _posit_target(fmt_name)
    if fmt_name.startswith("int"):          # symmetric: +127, not the -128 end
        return float(2 ** (get_format(fmt_name).bits - 1) - 1)
    return float(get_format(fmt_name).max_value)


def _cleanup(model):
    """qonnx's cleanup_model, minus what would lose information we need.

    ``cleanup_model(preserve_qnt_ops=True)`` still folds FloatQuant (and PositQuant) weight
    quantizers into plain constants (STACK.md trap 6), which loses the layer's format; and
    it renames every node, which makes a precision plan name layers the user never saw.
    So: the same transformations, with every quantizer excluded from constant folding, and
    node names given only where they are missing or repeated.
    """
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import (GiveUniqueNodeNames, GiveUniqueParameterTensors,
                                              RemoveStaticGraphInputs, RemoveUnusedTensors)
    from qonnx.transformation.infer_shapes import InferShapes
    for node in model.graph.node:
        if node.op_type in ("Quant", "Trunc", "BipolarQuant"):
            node.domain = "qonnx.custom_op.general"
    keep = list(QUANT_OPS) + ["QuantizeLinear", "DequantizeLinear"]
    for t in (InferShapes(), GiveUniqueParameterTensors(), FoldConstants(exclude_op_types=keep),
              RemoveUnusedTensors(), RemoveStaticGraphInputs()):
        model = model.transform(t)
    names = [n.name for n in model.graph.node]
    if any(not n for n in names) or len(set(names)) != len(names):
        model = model.transform(GiveUniqueNodeNames())
    return model.transform(InferShapes())


# ---- the runner ---------------------------------------------------------------------------
@dataclass
class _Layer:
    node: object
    name: str
    op: str
    data_in: str                  # the tensor fed to the co-processor (quantized or not)
    act_quant: Optional[_Quant]
    weight: np.ndarray            # float weight (the weight quantizer's input)
    weight_quant: Optional[_Quant]
    skip_nodes: list              # weight quantizer nodes (not run on the host)
    bias: Optional[np.ndarray]
    bias_node: object             # a fused Add node, if any
    relu_node: object
    out_tensor: str               # tensor produced after the fused nodes
    layer_out: str                # the lowered node's own output (for the report)
    plan: Optional[LayerPlan] = None
    fused: str = ""


class QonnxRunner:
    """A QONNX model prepared for the co-processor behind ``device``.

    Parameters
    ----------
    model : str, Path, onnx.ModelProto or ModelWrapper
    device : sw_driver.device.Device
    plan : dict, str or Path, optional
        Precision plan (see the module docstring); without one, each layer takes the
        formats of its quantizers, and the output the design's widest output format.
    """

    def __init__(self, model, device, plan=None):
        from qonnx.core.modelwrapper import ModelWrapper
        import sw_driver.qonnx_ops  # noqa: F401  (registers PositQuant with qonnx)

        if not isinstance(model, ModelWrapper):
            model = ModelWrapper(str(model) if isinstance(model, Path) else model)
        for node in model.graph.node:
            if node.op_type not in LOWERABLE and not _host_runnable(node):
                raise MappingError(f"node {node.name} ({node.op_type}, domain "
                                   f"{node.domain!r}) cannot run on the host: neither "
                                   f"onnxruntime nor a registered qonnx custom op implements "
                                   f"it, and the co-processor runs only MatMul, Gemm and Conv")
        self.model = _cleanup(model)
        self.device = device
        self._check_static()
        self.layers = self._find_layers()
        formats, out_formats = device.formats, device.output_formats
        default, per_layer = load_plan(plan, [l.name for l in self.layers], formats=formats,
                                       output_formats=out_formats) if plan is not None else ({}, {})
        widest = device.widest_output_format
        errors = []
        for layer in self.layers:
            spec = {**default, **per_layer.get(layer.name, {})}
            act = spec.get("activations") or (layer.act_quant.fmt if layer.act_quant else None)
            wgt = spec.get("weights") or (layer.weight_quant.fmt if layer.weight_quant else None)
            out = spec.get("output") or widest
            for role, f in (("activations", act), ("weights", wgt)):
                if f is None:
                    errors.append(f"layer {layer.name} ({layer.op}): no {role} format — its "
                                  f"quantizer gives none the co-processor has; name one in "
                                  f"a precision plan")
                elif f not in formats:
                    errors.append(f"layer {layer.name} ({layer.op}): {role} format {f} (from "
                                  f"its quantizer) is not in this design ({', '.join(formats)}); "
                                  f"choose one with a precision plan")
            if act in formats and wgt in formats and get_format(act).bits != get_format(wgt).bits:
                errors.append(f"layer {layer.name}: activations {act} and weights {wgt} must "
                              f"have the same width (one lane mode)")
            layer.plan = LayerPlan(wgt, act, out)
        if errors:
            raise MappingError("cannot map the model:\n  " + "\n  ".join(errors))
        for layer in self.layers:
            layer.fused = self._fusion(layer)

    # -- analysis ------------------------------------------------------------------------
    def _check_static(self):
        g = self.model.graph
        for vi in list(g.input) + list(g.output):
            dims = vi.type.tensor_type.shape.dim
            if any(not d.HasField("dim_value") or d.dim_value <= 0 for d in dims):
                raise MappingError(f"tensor {vi.name} has a dynamic shape "
                                   f"({[d.dim_param or d.dim_value for d in dims]}); export the "
                                   f"model with static shapes (fixed batch size)")

    def _const_through_quant(self, tensor):
        """(float weight, quantizer or None, quantizer nodes) if ``tensor`` is a constant,
        possibly behind a quantizer."""
        m = self.model
        init = m.get_initializer(tensor)
        if init is not None:
            return np.asarray(init, dtype=np.float64), None, []
        prod = m.find_producer(tensor)
        if prod is None:
            return None
        if prod.op_type in QUANT_OPS or prod.op_type == "DequantizeLinear":
            src = m.get_initializer(prod.input[0])
            nodes = [prod]
            if src is None and prod.op_type == "DequantizeLinear":
                ql = m.find_producer(prod.input[0])
                if ql is not None and ql.op_type == "QuantizeLinear":
                    src = m.get_initializer(ql.input[0])
                    nodes.append(ql)
                    if src is not None:
                        src = np.asarray(src, dtype=np.float64)
            elif src is not None and prod.op_type == "DequantizeLinear":
                src = np.asarray(src, dtype=np.float64) * _scalar(m, prod.input[1], "scale", prod)
            if src is None:
                return None
            quant = _describe_quant(m, prod)
            src = np.asarray(src, dtype=np.float64)
            if prod.op_type == "BipolarQuant":
                # Binarization is the layer's meaning, not a rounding: keep the ±scale
                # values whatever format carries them.
                src = np.where(src >= 0, 1.0, -1.0) * quant.scale
            return src, quant, nodes
        return None

    def _act_quant(self, tensor):
        prod = self.model.find_producer(tensor)
        if prod is not None and (prod.op_type in QUANT_OPS or prod.op_type == "DequantizeLinear"):
            return _describe_quant(self.model, prod)
        return None

    def _find_layers(self):
        m = self.model
        layers = []
        for node in m.graph.node:
            if node.op_type not in LOWERABLE:
                continue
            w_index = 1
            if node.op_type == "Gemm":
                if _attr(node, "transA", 0):
                    raise MappingError(f"node {node.name} (Gemm): transA=1 is not supported")
                if _attr(node, "alpha", 1.0) != 1.0 or _attr(node, "beta", 1.0) != 1.0:
                    raise MappingError(f"node {node.name} (Gemm): alpha and beta must be 1")
            if node.op_type == "Conv" and (_attr(node, "group", 1) != 1):
                raise MappingError(f"node {node.name} (Conv): grouped convolution "
                                   f"(group={_attr(node, 'group')}) cannot be lowered")
            found = self._const_through_quant(node.input[w_index])
            if found is None:
                raise MappingError(f"node {node.name} ({node.op_type}): its weight "
                                   f"{node.input[w_index]} is not a constant (or a quantized "
                                   f"constant); the co-processor needs one operand in memory "
                                   f"ahead of time")
            weight, wq, wq_nodes = found
            if node.op_type == "MatMul":
                if weight.ndim != 2:
                    raise MappingError(f"node {node.name} (MatMul): weight of shape "
                                       f"{weight.shape} is not 2-D")
                w_kn = weight
            elif node.op_type == "Gemm":
                w_kn = weight.T if _attr(node, "transB", 0) else weight
            else:
                w_kn = weight.reshape(weight.shape[0], -1).T        # (C·kh·kw) × OC
            bias = None
            bias_node = relu_node = None
            out = node.output[0]
            if node.op_type in ("Gemm", "Conv") and len(node.input) > 2 and node.input[2]:
                b = m.get_initializer(node.input[2])
                if b is None:
                    raise MappingError(f"node {node.name}: bias must be a constant")
                bias = np.asarray(b, dtype=np.float64).reshape(-1)
            consumers = m.find_consumers(out) or []
            if bias is None and len(consumers) == 1 and consumers[0].op_type == "Add":
                add = consumers[0]
                other = add.input[1] if add.input[0] == out else add.input[0]
                b = m.get_initializer(other)
                if b is not None and np.asarray(b).size == w_kn.shape[1]:
                    bias = np.asarray(b, dtype=np.float64).reshape(-1)
                    bias_node, out = add, add.output[0]
                    consumers = m.find_consumers(out) or []
            if len(consumers) == 1 and consumers[0].op_type == "Relu":
                relu_node = consumers[0]
                out = relu_node.output[0]
            layers.append(_Layer(
                node=node, name=node.name, op=node.op_type, data_in=node.input[0],
                act_quant=self._act_quant(node.input[0]), weight=w_kn, weight_quant=wq,
                skip_nodes=wq_nodes, bias=bias, bias_node=bias_node, relu_node=relu_node,
                out_tensor=out, layer_out=node.output[0]))
        if not layers:
            raise MappingError("the model has no MatMul, Gemm or Conv with a constant weight: "
                               "nothing to run on the co-processor")
        return layers

    @staticmethod
    def _fusion(layer) -> str:
        """Bias and ReLU go into the job only where the format can hold the bias."""
        int_fmt = layer.plan.activations.startswith("int")
        parts = []
        if layer.bias is not None and not int_fmt:
            parts.append("bias")
        if layer.relu_node is not None and (layer.bias is None or not int_fmt):
            parts.append("relu")
        return "+".join(parts)

    # -- execution ----------------------------------------------------------------------
    def reference(self, x):
        """qonnx's execution of the model: (output, full context)."""
        from qonnx.core.onnx_exec import execute_onnx
        ctx = execute_onnx(self.model, {self.model.graph.input[0].name: x},
                           return_full_exec_context=True)
        return ctx[self.model.graph.output[0].name], ctx

    @staticmethod
    def _scale_for(quant: Optional[_Quant], fmt: str, data_max: float) -> float:
        if quant is not None and quant.fmt == fmt:
            return quant.scale                      # the quantizer's own grid
        top = quant.max_abs if quant is not None else data_max
        if top == 0:
            top = 1.0
        return top / _target(fmt)

    def _run_layer(self, layer: _Layer, x: np.ndarray):
        p = layer.plan
        node = layer.node
        if layer.op == "Conv":
            a, out_shape = _im2col(node, x, layer.weight.shape[1])
        else:
            a = x.reshape(-1, x.shape[-1])
            out_shape = x.shape[:-1] + (layer.weight.shape[1],)
        s_a = self._scale_for(layer.act_quant, p.activations, float(np.max(np.abs(a))))
        s_w = self._scale_for(layer.weight_quant, p.weights, float(np.max(np.abs(layer.weight))))
        fa, fw = get_format(p.activations), get_format(p.weights)
        # Saturating conversion, as the quantizers do (fp8_e4m3 would give NaN past 448).
        a_codes = fa.encode(np.clip(a / s_a, -fa.max_value, fa.max_value))
        w_codes = fw.encode(np.clip(layer.weight / s_w, -fw.max_value, fw.max_value))
        fused = layer.fused
        kwargs = {}
        if "bias" in fused:
            scaled = layer.bias / (s_a * s_w)
            if np.max(np.abs(scaled)) <= fw.max_value:
                kwargs.update(bias=scaled, fmt_bias=p.weights)
            else:       # the bias does not fit the format at this scale: host, in float
                fused = ""
        res = self.device.matmul(a_codes.astype(np.int64), w_codes.astype(np.int64),
                                 fmt_a=p.activations, fmt_b=p.weights, out_fmt=p.output,
                                 relu="relu" in fused, **kwargs)
        y = res.values * (s_a * s_w)
        if layer.bias is not None and "bias" not in fused:
            y = y + layer.bias
        if layer.relu_node is not None and "relu" not in fused:
            y = np.maximum(y, 0.0)
        res.fused = fused
        if layer.op == "Conv":
            n, oc, oh, ow = out_shape
            y = y.reshape(n, oh, ow, oc).transpose(0, 3, 1, 2)
        else:
            y = y.reshape(out_shape)
        return y.astype(np.float32), res

    def run(self, x, *, labels=None, backend_name=None, config_name=None):
        """Run the model on ``x``; returns ``(output, RunReport)``."""
        from qonnx.core.onnx_exec import execute_node
        t0 = time.monotonic()
        m = self.model
        g = m.graph
        try:
            ref_out, ref_ctx = self.reference(x)
        except Exception as exc:
            bad = next((n for n in g.node if not _host_runnable(n)), None)
            if bad is not None:
                raise MappingError(f"node {bad.name} ({bad.op_type}) cannot run on the host: "
                                   f"neither onnxruntime nor a registered qonnx custom op "
                                   f"implements it ({exc})") from None
            raise
        ctx = m.make_empty_exec_context()
        ctx[g.input[0].name] = np.asarray(x, dtype=np.float32)
        by_node = {id(l.node): l for l in self.layers}
        skip = {id(n) for l in self.layers for n in l.skip_nodes}
        fused = set()
        for l in self.layers:
            if l.bias_node is not None:
                fused.add(id(l.bias_node))
            if l.relu_node is not None:
                fused.add(id(l.relu_node))
        opset = m.model.opset_import[0].version if m.model.opset_import else 13
        report = RunReport(backend=backend_name or getattr(self.device.transport, "name", "?"),
                           config=config_name or self.device.regmap.config_name)
        for node in g.node:
            if id(node) in skip or id(node) in fused:
                continue
            layer = by_node.get(id(node))
            if layer is None:
                try:
                    execute_node(node, ctx, g, opset)
                except Exception as exc:
                    raise MappingError(f"node {node.name} ({node.op_type}) cannot run on the "
                                       f"host: {exc}") from None
                if node.op_type not in report.host_ops:
                    report.host_ops.append(node.op_type)
                continue
            y, res = self._run_layer(layer, np.asarray(ctx[layer.data_in], dtype=np.float64))
            ctx[layer.out_tensor] = y
            ref = np.asarray(ref_ctx[layer.out_tensor], dtype=np.float64)
            err = y.astype(np.float64) - ref
            st = res.stats
            m_, k_ = (int(np.prod(y.shape)) // layer.weight.shape[1], layer.weight.shape[0])
            peak = self.device.peak_macs_per_cycle(layer.plan.activations)
            report.layers.append(LayerReport(
                name=layer.name, op=layer.op, shape=(m_, layer.weight.shape[1], k_),
                weights=layer.plan.weights, activations=layer.plan.activations,
                output=layer.plan.output, fused=res.fused, macs=st.macs,
                cycles=st.busy_cycles, utilization=st.utilization(peak), jobs=res.jobs,
                max_abs_error=float(np.max(np.abs(err))),
                rms_error=float(np.sqrt(np.mean(err ** 2))),
                ref_max_abs=float(np.max(np.abs(ref)))))
        out = np.asarray(ctx[g.output[0].name])
        report.output_max_abs_error = float(np.max(np.abs(out - ref_out)))
        if out.ndim == 2 and out.shape[1] > 1:
            report.top1_agreement = float(np.mean(out.argmax(1) == ref_out.argmax(1)))
            if labels is not None:
                labels = np.asarray(labels)
                report.accuracy = float(np.mean(out.argmax(1) == labels))
                report.ref_accuracy = float(np.mean(ref_out.argmax(1) == labels))
        report.seconds = time.monotonic() - t0
        return out, report


def _host_runnable(node) -> bool:
    """Whether qonnx can execute ``node`` (standard ONNX ops through onnxruntime)."""
    if node.domain in ("", "ai.onnx"):
        return True
    from qonnx.custom_op.registry import getCustomOp
    try:
        getCustomOp(node)
        return True
    except Exception:
        return False


def _im2col(node, x, out_channels):
    """Conv input (N, C, H, W) -> columns (N·OH·OW, C·kh·kw) and the output shape."""
    ks = _attr(node, "kernel_shape")
    strides = _attr(node, "strides", [1, 1])
    pads = _attr(node, "pads", [0, 0, 0, 0])
    dil = _attr(node, "dilations", [1, 1])
    if _attr(node, "auto_pad", "NOTSET") not in ("NOTSET", ""):
        raise MappingError(f"node {node.name} (Conv): auto_pad is not supported; export "
                           f"with explicit pads")
    if x.ndim != 4 or ks is None or len(ks) != 2:
        raise MappingError(f"node {node.name} (Conv): only 2-D convolutions map")
    n, c, h, w = x.shape
    kh, kw = ks
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh = (h + pads[0] + pads[2] - dil[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (w + pads[1] + pads[3] - dil[1] * (kw - 1) - 1) // strides[1] + 1
    cols = np.empty((n, oh, ow, c, kh, kw), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            hi = i * dil[0]
            wj = j * dil[1]
            cols[:, :, :, :, i, j] = xp[:, :, hi:hi + strides[0] * oh:strides[0],
                                        wj:wj + strides[1] * ow:strides[1]].transpose(0, 2, 3, 1)
    return cols.reshape(n * oh * ow, c * kh * kw), (n, out_channels, oh, ow)
