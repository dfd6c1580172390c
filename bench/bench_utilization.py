"""PE-array utilization of the co-processor, measured on the RTL (Verilator + cocotbext-axi).

Utilization = MACs / (busy cycles × peak MACs per cycle), from the hardware's own counters
(MACS, BUSY_CYCLES: START to DONE, all DMA included). For each lane mode of the design
(4-, 8- and 16-bit operands) and each shape: with AxiRam as it is and with 20 cycles of
added read latency. Also the DMA bytes moved against the minimum (every operand byte read
once, every result byte written once).

The RTL of the 16-PE reference design simulates at only ~600 cycles/s under cocotb, so a
full sweep takes hours; the default run measures 64³ and 128³ in every mode and 256³ in
the 4-bit mode (the lowest predicted utilization) on the RTL, and gives every shape — up to
256³ in all modes — from the model backend's cycle estimate too (calibrated against the
RTL: within 3 % on the rows measured here). ``--full`` runs every shape on the RTL.

Writes bench/results/utilization_lat<N>.json per latency and utilization.md (all latencies
measured so far); prints the table.
Options: --latency N (run only that one; default: 0 and 20), --full, --quick,
--config NAME (default: default), --rtl BITS:MxNxK[,...] (run only these on the RTL, e.g.
``--rtl 4:256x256x256``; the other RTL rows already in bench/results are kept).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from generators.formats import get_format
from sw_driver.packing import row_bytes
from testbenches.coproc_runner import design, matmul_step, run_plan
from testbenches.matmul_model import expected_c, random_job, read_c

OUT = Path(__file__).resolve().parent / "results"

FULL_SHAPES = [(64, 64, 64), (128, 128, 128), (256, 256, 256), (256, 64, 512), (100, 300, 200),
               (33, 257, 129)]
# What the RTL runs by default (per lane width); everything else: model estimate only.
RTL_SHAPES = {4: [(64, 64, 64), (128, 128, 128), (256, 256, 256)],
              8: [(64, 64, 64), (128, 128, 128)],
              16: [(64, 64, 64), (128, 128, 128)]}
QUICK_SHAPES = [(64, 64, 64), (33, 57, 129)]
LATENCIES = (0, 20)
# Results are checked bit for bit where the golden model is fast (it uses Python integers
# for wide accumulators): up to this many MACs.
CHECK_MACS = 128 ** 3


def mode_formats(top):
    """One representative format per lane width: (A/B format, output format)."""
    by_width = {}
    for f in top.engine["formats"]:
        by_width.setdefault(get_format(f).bits, f)
    out = "bf16" if "bf16" in top.engine["output_formats"] else top.engine["output_formats"][-1]
    return [(by_width[w], out) for w in sorted(by_width)]


def model_estimates(config, shapes, latency=0):
    """The model backend's rows for every shape and mode (cycles estimated, bytes exact)."""
    from sw_driver.device import Device
    from testbenches.matmul_model import random_codes
    rows = []
    rng = np.random.default_rng(1)
    with Device.open("model", config, read_latency=latency) as dev:
        top, _ = design(config)
        for fmt, out_fmt in mode_formats(top):
            lanes = top.engine["word_bits"] // get_format(fmt).bits
            for m, n, k in shapes:
                res = dev.matmul(random_codes(fmt, (m, k), rng), random_codes(fmt, (k, n), rng),
                                 fmt_a=fmt, out_fmt=out_fmt,
                                 bias=random_codes(fmt, (n,), rng))
                s = res.stats
                bits = get_format(fmt).bits
                rows.append({
                    "source": "model estimate", "config": config, "format": fmt,
                    "out_format": out_fmt, "lanes": lanes, "m": m, "n": n, "k": k,
                    "latency": latency, "macs": s.macs, "busy_cycles": s.busy_cycles,
                    "utilization": s.utilization(dev.peak_macs_per_cycle(fmt)),
                    "read_bytes": s.read_bytes, "write_bytes": s.write_bytes,
                    "min_read_bytes": (m + n) * row_bytes(k, bits) + row_bytes(n, bits),
                    "min_write_bytes": m * row_bytes(n, get_format(out_fmt).bits),
                    "results_checked": None, "status_error": 0})
    return rows


def main(argv):
    config = argv[argv.index("--config") + 1] if "--config" in argv else "default"
    shapes = QUICK_SHAPES if "--quick" in argv else FULL_SHAPES
    latencies = [int(argv[argv.index("--latency") + 1])] if "--latency" in argv else LATENCIES
    top, _ = design(config)
    R, C = top.config.array.rows, top.config.array.cols
    rng = np.random.default_rng(0)
    rows = []
    t_all = time.monotonic()
    for latency in latencies:
        steps, meta = [], []
        base = 0x1000
        for fmt, out_fmt in mode_formats(top):
            lanes = top.engine["word_bits"] // get_format(fmt).bits
            rtl_shapes = shapes if "--full" in argv or "--quick" in argv else \
                RTL_SHAPES[get_format(fmt).bits]
            if "--rtl" in argv:
                picked = [item.split(":") for item in argv[argv.index("--rtl") + 1].split(",")]
                rtl_shapes = [tuple(int(x) for x in shp.split("x")) for bits, shp in picked
                              if int(bits) == get_format(fmt).bits]
            for m, n, k in rtl_shapes:
                job = random_job(rng, top.engine["formats"], m=m, n=n, k=k, fmt_a=fmt,
                                 fmt_b=fmt, out_fmt=out_fmt,
                                 output_formats=top.engine["output_formats"], bias=True,
                                 relu=False)
                st = matmul_step(top, job, None, base=base)
                base = st["end"]
                steps.append(st)
                meta.append((fmt, out_fmt, lanes, (m, n, k)))
        print(f"latency {latency}: running {len(steps)} jobs on {config} "
              f"({R}x{C} PEs) ...", flush=True)
        t0 = time.monotonic()
        _, out = run_plan("verilator", config, steps, latency=latency, tag=f"util-{latency}")
        print(f"  simulated in {time.monotonic() - t0:.0f} s", flush=True)
        for st, res, (fmt, out_fmt, lanes, (m, n, k)) in zip(steps, out["results"], meta):
            c = res["counters"]
            job = st["job"]
            peak = R * C * lanes
            bits = get_format(fmt).bits
            min_read = (m + n) * row_bytes(k, bits) + row_bytes(n, bits)
            min_write = m * row_bytes(n, get_format(out_fmt).bits)
            checked = None
            if m * n * k <= CHECK_MACS:
                want, _ = expected_c(job, word_bits=top.engine["word_bits"],
                                     formats=top.engine["formats"],
                                     guard_bits=top.engine["guard_bits"])
                mem = bytearray(st["read"][0]) + res["data"]
                checked = bool(np.array_equal(read_c(job, mem), want))
                if not checked:
                    print(f"  WRONG RESULTS for {fmt} {m}x{n}x{k}", flush=True)
            row = {
                "source": "RTL", "config": config, "format": fmt, "out_format": out_fmt, "lanes": lanes,
                "m": m, "n": n, "k": k, "latency": latency,
                "macs": c["MACS"], "busy_cycles": c["BUSY_CYCLES"],
                "compute_cycles": c["COMPUTE_CYCLES"],
                "read_stall_cycles": c["READ_STALL_CYCLES"],
                "write_stall_cycles": c["WRITE_STALL_CYCLES"],
                "peak_macs_per_cycle": peak,
                "utilization": c["MACS"] / (c["BUSY_CYCLES"] * peak),
                "read_bytes": c["READ_BYTES"], "write_bytes": c["WRITE_BYTES"],
                "min_read_bytes": min_read, "min_write_bytes": min_write,
                "status_error": res["status"]["ERROR"], "results_checked": checked,
            }
            rows.append(row)
            print(f"  {fmt:>10} {m:>4}x{n:<4}x{k:<4} util {row['utilization']:6.1%}  "
                  f"read {c['READ_BYTES'] / min_read:4.2f}x min", flush=True)
    OUT.mkdir(exist_ok=True)
    for latency in latencies:
        path = OUT / f"utilization_lat{latency}.json"
        new = [r for r in rows if r["latency"] == latency]
        if "--rtl" in argv and path.exists():     # keep the rows measured before
            key = lambda r: (r["config"], r["format"], r["m"], r["n"], r["k"])
            done = {key(r) for r in new}
            new = [r for r in json.loads(path.read_text()) if key(r) not in done] + new
        path.write_text(json.dumps(new, indent=2) + "\n")
    rows = []
    for f in sorted(OUT.glob("utilization_lat*.json")):
        rows += [r for r in json.loads(f.read_text()) if r["config"] == config]
    for latency in LATENCIES:
        rows += model_estimates(config, shapes, latency)
    lines = [f"Utilization of `{config}` ({R}x{C} PEs, {top.config.axi.data_bits}-bit AXI, "
             f"k_tile {top.config.buffers.k_tile}); bias on; measured with the hardware counters.",
             "",
             "| source | A/B format | lanes | M×N×K | latency | utilization | read / min | "
             "write / min | checked |",
             "|---|---|---:|---|---:|---:|---:|---:|:---:|"]
    for r in rows:
        chk = {True: "yes", False: "**WRONG**", None: "–"}[r["results_checked"]]
        lat = "–" if r["latency"] is None else r["latency"]
        lines.append(f"| {r.get('source', 'RTL')} | {r['format']} | {r['lanes']} | "
                     f"{r['m']}×{r['n']}×{r['k']} | {lat} | {r['utilization']:.1%} | "
                     f"{r['read_bytes'] / r['min_read_bytes']:.2f} | "
                     f"{r['write_bytes'] / r['min_write_bytes']:.2f} | {chk} |")
    table = "\n".join(lines) + "\n"
    (OUT / "utilization.md").write_text(table)
    print()
    print(table)
    print(f"total {time.monotonic() - t_all:.0f} s")
    bad = [r for r in rows if r["results_checked"] is False or r["status_error"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
