"""Area of the MAC engine per shipped config, shared multiplier vs separate multipliers
(Yosys synth_xilinx -family xc7 -nodsp, YoWASP). Writes bench/results/engine_area.json."""

import json
import sys
from pathlib import Path

from generators.config import shipped_configs
from generators.synth import synth_unit

OUT = Path(__file__).resolve().parent / "results"


def main(argv):
    """``--quick``: xr_npe only; ``--configs a,b``: those configs, their rows replacing the
    ones already in the JSON (the others are kept, with the commit they were measured at
    in their ``"commit"`` field)."""
    configs = ["xr_npe"] if "--quick" in argv else shipped_configs()
    if "--configs" in argv:
        configs = argv[argv.index("--configs") + 1].split(",")
    rows = []
    for name in configs:
        for share in ("yes", "no"):
            print(f"synthesizing {name} share_multiplier={share} ...", flush=True)
            r = synth_unit(name, unit="mac", target="xc7", share_multiplier=share, progress=False)
            rows.append({"config": name, "share_multiplier": share == "yes",
                         "commit": _commit(), **r})
    OUT.mkdir(exist_ok=True)
    if "--configs" in argv and (OUT / "engine_area.json").exists():
        kept = [r for r in json.loads((OUT / "engine_area.json").read_text())
                if r["config"] not in configs]
        rows = kept + rows
        configs = list(dict.fromkeys(r["config"] for r in rows))
    (OUT / "engine_area.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\n{'config':<10} {'shared':>6} {'LUT':>7} {'FF':>6} {'CARRY4':>7}")
    for r in rows:
        print(f"{r['config']:<10} {str(r['share_multiplier']):>6} {r['luts']:>7} {r['ffs']:>6} {r['carry']:>7}")
    by = {(r["config"], r["share_multiplier"]): r for r in rows}
    for name in configs:
        s, b = by[(name, True)]["luts"], by[(name, False)]["luts"]
        print(f"{name}: shared/separate LUT ratio {s / b:.2f}" if b else f"{name}: no LUTs?")
    return 0


def _commit() -> str:
    import subprocess
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=OUT.parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
