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


def _report(name, unit, waived, other, raw, seconds, verbose) -> int:
    print(f"{name:<12} {unit:<12} {sum(waived.values()):>16}  {seconds:6.1f} s  "
          + (", ".join(f"{k}×{v}" for k, v in sorted(other.items())) or "none"), flush=True)
    if verbose:
        for k, v in sorted(waived.items()):
            print(f"    waived {k}×{v}: {WAIVERS[k].split('. ')[0]}")
    if other:
        print(raw)
        return 1
    return 0


def lint_all(*, verbose: bool = False, out_root: Path | None = None, configs=None,
             units=("mac", "coprocessor")) -> int:
    """Generate the shipped configs' units and lint them; 0 if clean (after waivers).

    ``units``: ``"mac"`` (the MAC engine) and ``"coprocessor"`` (the AXI4 top,
    ``npegen_<config>``). ``configs``: names (default: every shipped config). Generating
    and linting the default design's co-processor takes minutes; progress goes to stderr.
    """
    import sys
    import time

    from generators.build import coprocessor_name, to_verilog, write_unit
    from generators.config import load_config, shipped_configs
    from generators.rtl.coprocessor import Coprocessor
    from generators.rtl.engine import MacEngine

    out_root = Path(out_root or "build/lint")
    status = 0
    print(f"{'design':<12} {'unit':<12} {'waived warnings':>16}  {'lint':>8}  unwaived")
    for name in configs or shipped_configs():
        cfg = load_config(name)
        out = out_root / name
        out.mkdir(parents=True, exist_ok=True)
        if "mac" in units:
            write_unit(MacEngine.from_config(cfg), "npe_mac", out)
            t0 = time.monotonic()
            result = lint_verilog(out / "npe_mac.v", "npe_mac")
            status |= _report(name, "mac", *result, time.monotonic() - t0, verbose)
        if "coprocessor" in units:
            top = coprocessor_name(cfg)
            t0 = time.monotonic()
            print(f"[npegen lint] {name}: generating {top}.v", file=sys.stderr, flush=True)
            (out / f"{top}.v").write_text(to_verilog(Coprocessor(cfg), top, separator="_"))
            print(f"[npegen lint] {name}: generated in {time.monotonic() - t0:.0f} s; linting",
                  file=sys.stderr, flush=True)
            t0 = time.monotonic()
            result = lint_verilog(out / f"{top}.v", top)
            status |= _report(name, "coprocessor", *result, time.monotonic() - t0, verbose)
    return status
