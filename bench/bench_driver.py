"""Speed of the driver's model backend (256³ per lane mode) and its speed-up over the RTL
in simulation (the same job on Verilator). Writes bench/results/driver.json and driver.md.

Options: --config NAME (default: default), --rtl-size S (the RTL comparison job, S³;
default 64), --no-rtl.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from generators.formats import get_format
from sw_driver.device import Device
from testbenches.matmul_model import random_codes

OUT = Path(__file__).resolve().parent / "results"


def one_per_width(formats):
    seen = {}
    for f in formats:
        seen.setdefault(get_format(f).bits, f)
    return [seen[w] for w in sorted(seen)]


def timed(dev, fmt, out, size, rng):
    a = random_codes(fmt, (size, size), rng)
    b = random_codes(fmt, (size, size), rng)
    t0 = time.monotonic()
    res = dev.matmul(a, b, fmt_a=fmt, out_fmt=out)
    return time.monotonic() - t0, res


def main(argv):
    config = argv[argv.index("--config") + 1] if "--config" in argv else "default"
    rtl_size = int(argv[argv.index("--rtl-size") + 1]) if "--rtl-size" in argv else 64
    rng = np.random.default_rng(0)
    rows = []
    with Device.open("model", config) as model:
        out = "bf16" if "bf16" in model.output_formats else model.output_formats[-1]
        formats = one_per_width(model.formats)
        for fmt in formats:
            seconds, res = timed(model, fmt, out, 256, rng)
            rows.append({"backend": "model", "format": fmt, "size": 256, "seconds": seconds,
                         "cycles": res.stats.busy_cycles})
            print(f"model  {fmt:>10} 256^3: {seconds:.3f} s", flush=True)
            seconds, res = timed(model, fmt, out, rtl_size, rng)
            rows.append({"backend": "model", "format": fmt, "size": rtl_size,
                         "seconds": seconds, "cycles": res.stats.busy_cycles})
    if "--no-rtl" not in argv:
        with Device.open("verilator", config) as rtl:
            for fmt in formats:
                seconds, res = timed(rtl, fmt, out, rtl_size, rng)
                rows.append({"backend": "verilator", "format": fmt, "size": rtl_size,
                             "seconds": seconds, "cycles": res.stats.busy_cycles})
                print(f"verilator {fmt:>10} {rtl_size}^3: {seconds:.1f} s "
                      f"({res.stats.busy_cycles / seconds:.0f} cycles/s)", flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "driver.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [f"Driver backends on `{config}` (wall-clock seconds per matmul, host side included).",
             "", "| backend | format | size | seconds | cycles | speed-up of the model |",
             "|---|---|---:|---:|---:|---:|"]
    model_t = {(r["format"], r["size"]): r["seconds"] for r in rows if r["backend"] == "model"}
    for r in rows:
        sp = ""
        if r["backend"] != "model":
            sp = f"{r['seconds'] / model_t[(r['format'], r['size'])]:.0f}×"
        lines.append(f"| {r['backend']} | {r['format']} | {r['size']}³ | {r['seconds']:.3f} | "
                     f"{r['cycles']} | {sp} |")
    table = "\n".join(lines) + "\n"
    (OUT / "driver.md").write_text(table)
    print()
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
