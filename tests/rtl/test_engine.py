"""MacEngine in Amaranth's simulator against the engine golden model (short streams;
the long exhaustive runs are cocotb runs of the generated Verilog, test_engine_cocotb.py)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from generators.rtl.engine import MAX_PIPELINE_STAGES, MacEngine
from testbenches.engine_model import engine_reference
from testbenches.engine_sim import set_op
from testbenches.engine_vectors import (concat, long_dot, random_groups, saturating_stream,
                                        special_stream)

XR_NPE = ("fp4_e2m1", "posit4_1", "posit8_0", "posit16_1")


def simulate(engine: MacEngine, ops: dict, *, ready_prob=1.0, valid_prob=1.0, seed=0):
    rng = np.random.default_rng(seed)
    n = len(ops["a"])
    beats = []

    async def testbench(ctx):
        sent = 0
        idle = 0
        while sent < n or idle < 40:
            offer = sent < n and rng.random() < valid_prob
            ctx.set(engine.i.valid, offer)
            if offer:
                set_op(ctx, engine, ops, sent)
            ready = rng.random() < ready_prob
            ctx.set(engine.o.ready, ready)
            if offer and ctx.get(engine.i.ready):
                sent += 1
            if ctx.get(engine.o.valid) and ready:
                o = engine.o.payload
                beats.append(tuple(ctx.get(getattr(o, f)) for f in
                                   ("code", "lane", "last", "nan", "inf", "saturated")))
                idle = 0        # drain until no beat has come for a while
            elif sent >= n:
                idle += 1
            await ctx.tick()

    sim = Simulator(engine)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return beats


def check(engine, ops, beats):
    want = engine_reference(engine.geometry, ops)
    assert len(beats) == len(want), f"{len(beats)} beats, expected {len(want)}"
    got = np.array(beats, dtype=np.int64).reshape(-1, 6)
    for col, name in enumerate(("code", "lane", "last", "nan", "inf", "saturated")):
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


@pytest.mark.parametrize("stages", [2, 7, MAX_PIPELINE_STAGES])
def test_specials_and_saturation(stages):
    # guard_bits=1 so that a few products saturate the accumulators
    engine = MacEngine(word_bits=16, formats=XR_NPE, guard_bits=1, pipeline_stages=stages)
    rng = np.random.default_rng(7)
    ops = concat(special_stream(engine.geometry, "posit8_0", XR_NPE),
                 special_stream(engine.geometry, "fp4_e2m1", XR_NPE),
                 long_dot(engine.geometry, "posit4_1", "posit16_1", rng, terms=64),
                 *[saturating_stream(engine.geometry, fmt, "posit16_1", dot=dot)
                   for fmt in ("posit16_1", "posit4_1", "posit8_0") for dot in (True, False)])
    want = engine_reference(engine.geometry, ops)
    assert want.saturated.any() and want.nan.any(), "the stream must saturate and see NaR"
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




def test_no_isolation_same_results():
    rng = np.random.default_rng(3)
    engine = MacEngine(word_bits=16, formats=XR_NPE, guard_bits=15, operand_isolation=False)
    ops = concat(random_groups(engine.geometry, XR_NPE, XR_NPE, rng, n_ops=80), MIXED_WIDTHS)
    check(engine, ops, simulate(engine, ops, ready_prob=0.7))


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


@pytest.mark.parametrize("stages", [3, MAX_PIPELINE_STAGES])
@pytest.mark.parametrize("lane_bits", [4, 8, 16])
def test_unused_lanes_do_not_toggle(lane_bits, stages):
    """With operand isolation the datapaths of the other lane modes toggle zero times per
    operation; without it they toggle (so the count is able to see them)."""
    from testbenches.toggles import mode_stream, toggles_per_operation

    counts = {}
    for iso in (True, False):
        engine = MacEngine(word_bits=16, formats=XR_NPE, pipeline_stages=stages,
                           operand_isolation=iso)
        counts[iso] = toggles_per_operation(engine, mode_stream(engine, lane_bits, n_ops=60))
    others = [b for b in counts[True] if b != lane_bits]
    assert counts[True][lane_bits] > 0
    assert all(counts[True][b] == 0 for b in others), counts[True]
    assert all(counts[False][b] > 0 for b in others), counts[False]


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
