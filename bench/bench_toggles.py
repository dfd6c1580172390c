"""Toggles per operation of each lane mode's datapath, with and without operand isolation
(Amaranth simulator, random accumulation groups of one lane mode at a time).

Writes bench/results/toggles.json and toggles.md. Each row is one stream: the mode it
uses, and the bits that changed per operation in every mode's own datapath (decoder
inputs, decode registers, products, aligned addends) and in the datapaths two modes share
(``8+16``: the decoders of a posit<16,es> lane or two posit<8,es> lanes). With isolation
the columns of the datapaths the stream's mode does not use must be 0.
"""

import json
import sys
from pathlib import Path

from generators.config import load_config
from generators.formats import get_format
from generators.rtl.engine import MacEngine
from testbenches.toggles import (datapath_label, datapath_modes, mode_stream,
                                 toggles_per_operation)

OUT = Path(__file__).resolve().parent / "results"


def main(argv):
    configs = ["xr_npe"] if "--quick" in argv else ["xr_npe", "default"]
    n_ops = 100 if "--quick" in argv else 400
    rows = []
    for name in configs:
        cfg = load_config(name)
        widths = sorted({get_format(f).bits for f in cfg.engine.formats})
        for iso in (True, False):
            for bits in widths:
                engine = MacEngine.from_config(cfg, operand_isolation=iso)
                print(f"{name}: {bits}-bit lanes, isolation {'on' if iso else 'off'} ...",
                      flush=True)
                counts = toggles_per_operation(engine, mode_stream(engine, bits, n_ops=n_ops))
                rows.append({"config": name, "isolation": iso, "mode": bits, "operations": n_ops,
                             "toggles_per_op": {datapath_label(b): round(c, 2)
                                                for b, c in counts.items()},
                             "idle": [datapath_label(b) for b in counts
                                      if bits not in datapath_modes(b)]})
    OUT.mkdir(exist_ok=True)
    (OUT / "toggles.json").write_text(json.dumps(rows, indent=2) + "\n")
    columns = ["4", "8", "16", "8+16"]
    lines = ["| config | isolation | stream | " + " | ".join(
                 f"{c}-bit datapath" for c in columns) + " |",
             "|---|---|---|" + "---:|" * len(columns)]
    for r in rows:
        cells = [str(r["toggles_per_op"].get(c, "–")) for c in columns]
        lines.append(f"| {r['config']} | {'on' if r['isolation'] else 'off'} | "
                     f"{r['mode']}-bit lanes | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    (OUT / "toggles.md").write_text("Bit toggles per operation of each lane mode's datapath\n\n"
                                    + table + "\n")
    print("\n" + table)
    bad = [r for r in rows if r["isolation"] and any(
        r["toggles_per_op"][label] != 0 for label in r["idle"])]
    if bad:
        print(f"\nFAIL: unused lanes toggled with isolation on: {bad}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
