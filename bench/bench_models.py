"""Accuracy of the example models (examples/digits) per precision plan, and the CNN's
per-layer cycles and utilization, on the co-processor model of a design (default:
``default``), bit-exact with the RTL. Writes bench/results/models.json and models.md.

Options: --config NAME, --backend model|verilator (verilator: the whole test set through
the RTL; slow).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"
OUT = Path(__file__).resolve().parent / "results"

PLANS = ["native", "fp8_e4m3", "posit8_0", "posit16_1", "fp4_e2m1", "posit4_1", "mixed"]


def main(argv):
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    from sw_driver.device import Device
    from sw_driver.qonnx_run import MappingError, QonnxRunner

    onnx.IR_VERSION = min(onnx.IR_VERSION, 13)      # STACK.md trap 6
    config = argv[argv.index("--config") + 1] if "--config" in argv else "default"
    backend = argv[argv.index("--backend") + 1] if "--backend" in argv else "model"
    data = np.load(DIGITS / "digits_test.npz")
    inputs = {"mlp": data["x"], "cnn": data["x_img"]}
    labels = data["y"]
    rows, layer_rows = [], []
    with Device.open(backend, config) as dev:
        for net in ("mlp", "cnn"):
            fm = ModelWrapper(str(DIGITS / f"{net}_float.onnx"))
            ref = execute_onnx(fm, {fm.graph.input[0].name: inputs[net]})[fm.graph.output[0].name]
            rows.append({"model": net, "plan": "float (no quantizers, host)",
                         "accuracy": float(np.mean(ref.argmax(1) == labels))})
            for plan in PLANS:
                model = DIGITS / f"{net}_int8.onnx"
                plan_file = None
                if plan == "native":
                    label = "int8 (the model's quantizers)"
                elif plan == "mixed":
                    plan_file = DIGITS / "plans" / f"mixed_{net}.yaml"
                    label = "mixed (plans/mixed_%s.yaml)" % net
                elif plan == "fp8_e4m3" and net == "cnn":
                    model, label = DIGITS / "cnn_fp8.onnx", "fp8_e4m3 (FloatQuant model)"
                else:
                    plan_file = DIGITS / "plans" / f"{plan}.yaml"
                    label = plan
                try:
                    runner = QonnxRunner(model, dev, plan=plan_file)
                except MappingError as exc:
                    print(f"{net} {plan}: skipped: {exc}", flush=True)
                    continue
                t0 = time.monotonic()
                _, rep = runner.run(inputs[net], labels=labels, backend_name=backend,
                                    config_name=config)
                host = time.monotonic() - t0
                row = {"model": net, "plan": label, "accuracy": rep.accuracy,
                       "reference_accuracy": rep.ref_accuracy,
                       "top1_agreement": rep.top1_agreement,
                       "macs": sum(l.macs for l in rep.layers),
                       "cycles": sum(l.cycles for l in rep.layers), "host_seconds": host}
                rows.append(row)
                print(f"{net:>4} {label:<36} accuracy {rep.accuracy:.2%}  cycles {row['cycles']}",
                      flush=True)
                if net == "cnn":
                    for l in rep.layers:
                        layer_rows.append({"plan": label, **{k: getattr(l, k) for k in (
                            "name", "op", "shape", "activations", "weights", "output", "fused",
                            "macs", "cycles", "utilization", "max_abs_error", "rms_error")}})
    OUT.mkdir(exist_ok=True)
    (OUT / "models.json").write_text(json.dumps({"config": config, "backend": backend,
                                                 "models": rows, "cnn_layers": layer_rows},
                                                indent=2) + "\n")
    lines = [f"Digits test set (360 images), design `{config}`, backend `{backend}` "
             f"(cycles: {'estimated by the model' if backend == 'model' else 'RTL counters'}).",
             "", "| model | precision | accuracy | top-1 vs qonnx reference | cycles |",
             "|---|---|---:|---:|---:|"]
    for r in rows:
        agree = f"{r['top1_agreement']:.1%}" if r.get("top1_agreement") is not None else "–"
        cyc = r.get("cycles", "–")
        lines.append(f"| {r['model']} | {r['plan']} | {r['accuracy']:.2%} | {agree} | {cyc} |")
    lines += ["", "CNN per layer:", "",
              "| precision | layer | op | M×N×K | formats | fused | MACs | cycles | utilization |",
              "|---|---|---|---|---|---|---:|---:|---:|"]
    for r in layer_rows:
        m, n, k = r["shape"]
        lines.append(f"| {r['plan']} | {r['name']} | {r['op']} | {m}×{n}×{k} | "
                     f"{r['activations']}/{r['weights']}→{r['output']} | {r['fused'] or '–'} | "
                     f"{r['macs']} | {r['cycles']} | {r['utilization']:.1%} |")
    table = "\n".join(lines) + "\n"
    (OUT / "models.md").write_text(table)
    print()
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
