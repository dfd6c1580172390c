"""``npegen lint``: verilator --lint-only -Wall over the generated Verilog, with waivers.

Every warning code that Amaranth's Verilog back end produces by construction is listed,
with the reason, in ``lint_waivers.yaml`` beside this file; any other warning fails.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

import yaml

__all__ = ["WAIVERS", "lint_verilog", "lint_all"]

WAIVERS: dict = yaml.safe_load((Path(__file__).with_name("lint_waivers.yaml")).read_text())
_WARNING = re.compile(r"%(Warning|Error)-([A-Z0-9_]+)")


def lint_verilog(vfile: Path, top: str) -> tuple[Counter, Counter, str]:
    """Lint one file. Returns (waived counts, unwaived counts, raw output)."""
    from testbenches.sim import prepare_environment

    prepare_environment()
    proc = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", top, str(vfile)],
                          capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    counts = Counter(m.group(2) for m in _WARNING.finditer(out))
    waived = Counter({k: v for k, v in counts.items() if k in WAIVERS})
    other = Counter({k: v for k, v in counts.items() if k not in WAIVERS})
    # Verilator exits non-zero whenever it warned; only a real error (not the final
    # "Exiting due to N warning(s)") or an unwaived warning is a failure.
    errors = [line for line in out.splitlines()
              if line.startswith("%Error:") and "Exiting due to" not in line]
    if errors:
        other["ERROR"] = len(errors)
    return waived, other, out


def lint_all(*, verbose: bool = False, out_root: Path | None = None) -> int:
    """Generate every shipped config's units and lint them; 0 if clean (after waivers)."""
    from generators.build import write_unit
    from generators.config import load_config, shipped_configs
    from generators.rtl.engine import MacEngine

    out_root = Path(out_root or "build/lint")
    status = 0
    print(f"{'design':<12} {'unit':<8} {'waived warnings':>16}  unwaived")
    for name in shipped_configs():
        cfg = load_config(name)
        out = out_root / name
        write_unit(MacEngine.from_config(cfg), "npe_mac", out)
        waived, other, raw = lint_verilog(out / "npe_mac.v", "npe_mac")
        print(f"{name:<12} {'mac':<8} {sum(waived.values()):>16}  "
              + (", ".join(f"{k}×{v}" for k, v in sorted(other.items())) or "none"))
        if verbose:
            for k, v in sorted(waived.items()):
                print(f"    waived {k}×{v}: {WAIVERS[k].split('.')[0]}")
        if other:
            status = 1
            print(raw)
    return status
