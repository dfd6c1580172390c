"""``npegen matmul`` and ``npegen run``: the driver from the command line."""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

BACKENDS = ("model", "verilator", "icarus")


def add_commands(sub) -> None:
    p = sub.add_parser("matmul", help="run a random matmul job on a backend and check it "
                                      "bit for bit against the golden model")
    p.add_argument("--config", default="default", help="shipped config name (default: default)")
    p.add_argument("--backend", choices=BACKENDS, default="model")
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--format", dest="in_format", default=None,
                   help="A and B format (default: the config's first format)")
    p.add_argument("--out-format", default=None,
                   help="output format (default: the widest output format)")
    p.add_argument("--bias", action="store_true", help="add a random bias")
    p.add_argument("--relu", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_matmul)

    p = sub.add_parser("run", help="run a quantized QONNX model on the co-processor, layer "
                                   "by layer, and compare with qonnx's reference execution")
    p.add_argument("model", help="QONNX model (.onnx)")
    p.add_argument("--config", default="default")
    p.add_argument("--backend", choices=BACKENDS, default="model")
    p.add_argument("--plan", default=None, help="precision plan (YAML)")
    p.add_argument("--input", default=None, help="input tensor (file.npy or file.npz:key); "
                                                 "default: random input of the model's shape")
    p.add_argument("--labels", default=None, help="labels (file.npy or file.npz:key) for an "
                                                  "accuracy figure")
    p.add_argument("--output", default=None, help="write the model's output here (.npy)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_run)


def _load_array(spec: str):
    """``file.npy``, or ``file.npz:key`` for one array of an archive."""
    path, _, key = spec.partition(".npz:")
    if key:
        with np.load(path + ".npz") as archive:
            if key not in archive:
                raise SystemExit(f"error: {path}.npz has no array {key!r}; it has "
                                 f"{', '.join(archive.files)}")
            return archive[key]
    return np.load(spec)


def cmd_demo(args) -> int:
    """Generate the default design, run the example CNN on its RTL (Verilator), print the
    per-layer table and compare with the model backend."""
    from pathlib import Path

    from sw_driver.device import Device
    from sw_driver.qonnx_run import QonnxRunner
    from testbenches.coproc_runner import design

    root = Path(__file__).resolve().parents[1]
    digits = root / "examples" / "digits"
    config = getattr(args, "config", None) or "default"
    backend = getattr(args, "backend", None) or "verilator"
    model = digits / "cnn_int8.onnx"
    plan = digits / "plans" / "mixed_cnn.yaml"
    t0 = time.monotonic()
    print(f"[1/3] generating the {config} design (Amaranth -> Verilog; minutes the first "
          f"time, cached in build/gen) ...", flush=True)
    top, out = design(config)
    print(f"      {out / 'npegen_top.v'}  ({top.config.array.rows}x{top.config.array.cols} "
          f"PEs, formats {', '.join(top.engine['formats'])})")
    print(f"      register map: {out / 'regmap.md'}, {out / 'regmap.h'}")
    data = np.load(digits / "digits_test.npz")
    x, y = data["x_img"], data["y"]
    print(f"[2/3] running {model.name} with {plan.name} on {backend} (the first Verilator "
          f"build of a design takes a while; it is cached in build/sim) ...", flush=True)
    with Device.open(backend, config) as dev:
        out_rtl, report = QonnxRunner(model, dev, plan=plan).run(
            x, labels=y, backend_name=backend, config_name=config)
    print(report.table())
    print("[3/3] the same on the NumPy model of the co-processor ...", flush=True)
    with Device.open("model", config) as dev:
        out_model, mreport = QonnxRunner(model, dev, plan=plan).run(x, labels=y)
    same = bool(np.array_equal(out_rtl, out_model))
    print(f"      model backend: accuracy {mreport.accuracy:.2%}, outputs "
          f"{'identical to' if same else 'DIFFERENT from'} the RTL's; demo took "
          f"{time.monotonic() - t0:.0f} s")
    return 0 if same else 1


def cmd_matmul(args) -> int:
    from generators.formats import get_format
    from sw_driver.device import Device
    from testbenches import golden
    from testbenches.matmul_model import random_codes

    rng = np.random.default_rng(args.seed)
    with Device.open(args.backend, args.config) as dev:
        fmt = args.in_format or dev.formats[0]
        out = args.out_format or dev.widest_output_format
        a = random_codes(fmt, (args.m, args.k), rng)
        b = random_codes(fmt, (args.k, args.n), rng)
        bias = random_codes(fmt, (args.n,), rng) if args.bias else None
        t0 = time.monotonic()
        res = dev.matmul(a, b, fmt_a=fmt, out_fmt=out, bias=bias, relu=args.relu)
        seconds = time.monotonic() - t0
        lanes = dev.caps["WORD_BITS"] // get_format(fmt).bits
        from generators.geometry import engine_geometry
        geo = engine_geometry(word_bits=dev.caps["WORD_BITS"], formats=dev.formats,
                              guard_bits=dev.caps["GUARD_BITS"]).mode_of(fmt)
        want, _ = golden.matmul(fmt, a, fmt, b, out, lanes=lanes, geometry=geo.dot,
                                bias_fmt=fmt if args.bias else None, bias=bias, relu=args.relu)
        exact = bool(np.array_equal(res.codes, want))
        s = res.stats
        report = {"backend": args.backend, "config": args.config, "m": args.m, "n": args.n,
                  "k": args.k, "in_format": fmt, "out_format": out, "bit_exact": exact,
                  "cycles": s.busy_cycles, "macs": s.macs,
                  "utilization": s.utilization(dev.peak_macs_per_cycle(fmt)),
                  "jobs": res.jobs, "seconds": seconds,
                  "cycles_estimated": args.backend == "model"}
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:>18}: {value:.3f}" if isinstance(value, float) else f"{key:>18}: {value}")
    return 0 if exact else 1


def cmd_run(args) -> int:
    from sw_driver.device import Device
    from sw_driver.qonnx_run import MappingError, QonnxRunner

    try:
        with Device.open(args.backend, args.config) as dev:
            runner = QonnxRunner(args.model, dev, plan=args.plan)
            inp = runner.model.graph.input[0]
            shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
            if args.input:
                x = _load_array(args.input).astype(np.float32)
                if list(x.shape) != shape:
                    print(f"error: --input has shape {list(x.shape)}, the model expects "
                          f"{shape}", file=sys.stderr)
                    return 2
            else:
                x = np.random.default_rng(args.seed).uniform(0, 1, size=shape).astype(np.float32)
            labels = _load_array(args.labels) if args.labels else None
            out, report = runner.run(x, labels=labels, backend_name=args.backend,
                                     config_name=args.config)
    except MappingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output:
        np.save(args.output, out)
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(report.table())
    return 0


def main(argv=None):   # for `python -m sw_driver.commands`
    parser = argparse.ArgumentParser(prog="npegen")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
