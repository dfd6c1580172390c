"""xc7 area of the co-processor of every shipped config, as its shell (the co-processor with
the PEs as black boxes: AXI, DMA, register file, tile buffers, feeder, collector) plus
rows × cols MAC engines (Yosys synth_xilinx -family xc7 -nodsp, YoWASP). Writes
bench/results/coprocessor_area.json and coprocessor_area.md.

    python bench/bench_coprocessor_area.py [--quick] [--config NAME ...]

The sum bounds the flat design's area from above: synthesized flat, Yosys can share logic
between PEs (the B decoders of one column, for example). A flat synthesis of a 16-PE
design takes an hour or more; this takes minutes per config (``default``'s engine, with
bf16's 537-bit quires, takes the longest).
"""

import json
import subprocess
import sys
import time
from pathlib import Path

from generators.config import load_config, shipped_configs
from generators.synth import synth_unit

OUT = Path(__file__).resolve().parent / "results"
KEYS = ("luts", "ffs", "carry", "lutrams", "brams", "dsps")


def main(argv):
    configs = [argv[i + 1] for i, a in enumerate(argv) if a == "--config"] or \
        (["tiny"] if "--quick" in argv else shipped_configs())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip() or None
    rows = []
    for k, name in enumerate(configs, 1):
        cfg = load_config(name)
        pes = cfg.array.rows * cfg.array.cols
        parts = {}
        for unit in ("shell", "mac"):
            t0 = time.monotonic()
            print(f"[{k}/{len(configs)}] {name}: {unit} ...", flush=True)
            parts[unit] = synth_unit(name, unit=unit, target="xc7", progress=False)
            print(f"    {parts[unit]['luts']} LUT, {parts[unit]['ffs']} FF "
                  f"({time.monotonic() - t0:.0f} s)", flush=True)
        shell, mac = parts["shell"], parts["mac"]
        rows.append({"config": name, "pes": pes, "pipeline_stages": mac["pipeline_stages"],
                     "commit": commit,
                     "shell": {key: shell[key] for key in KEYS},
                     "engine": {key: mac[key] for key in KEYS},
                     "total": {key: shell[key] + pes * mac[key] for key in KEYS}})
    OUT.mkdir(exist_ok=True)
    (OUT / "coprocessor_area.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["| config | PEs | engine stages | shell LUT | shell FF | BRAM | LUTRAM | DSP "
             "| engine LUT | engine FF | total LUT (≤) | total FF |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        s, e, t = r["shell"], r["engine"], r["total"]
        lines.append(f"| {r['config']} | {r['pes']} | {r['pipeline_stages']} | {s['luts']} | "
                     f"{s['ffs']} | {t['brams']} | {t['lutrams']} | {t['dsps']} | {e['luts']} | "
                     f"{e['ffs']} | {t['luts']} | {t['ffs']} |")
    table = "\n".join(lines) + "\n"
    (OUT / "coprocessor_area.md").write_text(table)
    print("\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
