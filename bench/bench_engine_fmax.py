"""ECP5 Fmax and area of the MAC engine by pipeline depth (Yosys synth_ecp5 + nextpnr-ecp5 on
LFE5U-25F CABGA256, YoWASP). Writes bench/results/engine_fmax.json and engine_fmax.md.

    python bench/bench_engine_fmax.py [--quick] [--config NAME] [--stages 3,6,10,14] [--seeds 5]

nextpnr is constrained to 150 MHz (the engine's goal) and routes with timing-driven rip-up,
``npegen synth``'s flow for the engine since it has ``--clock-mhz``; the table's "nextpnr"
column says which flow each row was measured with.

Each point is one synthesis and place and route (several minutes for xr_npe); with
``--seeds N``, N placements of it (nextpnr seeds 1..N), the median reported with the range
(placement alone moves Fmax by several MHz). Rows of
earlier runs at other depths (or of other configs) are kept: one row per config and depth,
so a new depth can be measured without redoing the others.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

from generators.rtl.engine import MAX_PIPELINE_STAGES, PIPELINE_REGISTERS
from generators.synth import synth_unit

OUT = Path(__file__).resolve().parent / "results"
#: A placement of the engine takes one to three minutes; one seed once ran for over 25
#: (stopped by hand). Such a seed is stopped and left out of the median, and listed.
PLACEMENT_TIMEOUT = 15 * 60


def _arg(argv, name, default):
    return argv[argv.index(name) + 1] if name in argv else default


def _fmax(row):
    """The Fmax cell: the median of several placements with their range."""
    each = sorted(f for f in row.get("fmax_seeds", {}).values() if f)
    stopped = row.get("placements_timed_out")
    note = f", seeds {stopped} stopped after {PLACEMENT_TIMEOUT} s" if stopped else ""
    if len(each) < 2:
        return f"{row['fmax_mhz']}{note and f' ({note[2:]})'}"
    return f"{row['fmax_mhz']} ({each[0]}–{each[-1]}, {len(each)} seeds{note})"


def _flow(row):
    """nextpnr's clock constraint and rip-up of a row (rows before ``--clock-mhz``
    were constrained to 200 MHz without timing-driven rip-up)."""
    clock = row.get("clock_mhz", 200.0)
    return f"{clock:g} MHz{', tmg-ripup' if row.get('tmg_ripup') else ''}"


def main(argv):
    config = _arg(argv, "--config", "xr_npe")
    default_stages = f"3,{MAX_PIPELINE_STAGES}" if "--quick" in argv else \
        f"1,3,6,8,10,12,{MAX_PIPELINE_STAGES}"
    stages = [int(s) for s in _arg(argv, "--stages", default_stages).split(",")]
    seeds = int(_arg(argv, "--seeds", "1"))
    # which design a row measured (rows of earlier runs are kept, see above)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip() or None
    rows = []
    for k, n in enumerate(stages, 1):
        t0 = time.monotonic()
        print(f"[{k}/{len(stages)}] {config}: {n} pipeline stages ...", flush=True)
        # with the ten latest-arriving registers: what the next cut would have to address
        r = synth_unit(config, unit="mac", target="ecp5", fmax=True, pipeline_stages=n,
                       progress=False, paths=10, seeds=seeds,
                       placement_timeout=PLACEMENT_TIMEOUT)
        added = PIPELINE_REGISTERS[n - 2] if n > 1 else "-"
        rows.append({"config": config, "pipeline_stages": n, "added_register": added,
                     "commit": commit, **r})
        print(f"    {_fmax(r)} MHz, {r['luts']} LUT4, {r['ffs']} FF "
              f"({time.monotonic() - t0:.0f} s)", flush=True)
    OUT.mkdir(exist_ok=True)
    path = OUT / "engine_fmax.json"
    new = {(r["config"], r["pipeline_stages"]) for r in rows}
    if path.exists():
        rows += [r for r in json.loads(path.read_text())
                 if (r["config"], r["pipeline_stages"]) not in new]
    rows.sort(key=lambda r: (r["config"], r["pipeline_stages"]))
    path.write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["| config | stages | register added last | Fmax (MHz) | nextpnr | LUT4 | FF | CCU2C "
             "| commit |",
             "|---|---:|---|---:|---|---:|---:|---:|---|"]
    lines += [f"| {r['config']} | {r['pipeline_stages']} | {r['added_register']} | "
              f"{_fmax(r)} | {_flow(r)} | {r['luts']} | {r['ffs']} | {r['carry']} | "
              f"{r.get('commit') or 'before 4d50b28'} |" for r in rows]
    table = "\n".join(lines) + "\n"
    (OUT / "engine_fmax.md").write_text(table)
    print("\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
