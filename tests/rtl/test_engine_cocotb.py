"""The MAC engine's generated Verilog under cocotb, on Verilator and on Icarus.

Each design is generated once per session and built once per simulator (testbenches.sim
caches builds by content). Bit-exact against testbenches.engine_model; a mismatch prints
the operands in the formats' own notation.
"""

from __future__ import annotations


import numpy as np
import pytest

from conftest import require_simulator
from generators.build import write_unit
from generators.config import load_config
from generators.formats import get_format
from generators.rtl.engine import MacEngine
from testbenches.engine_model import engine_reference, split_lanes
from testbenches.engine_vectors import (concat, exhaustive_pairs, long_dot, random_groups,
                                        saturating_stream, special_stream)
from testbenches.sim import BUILD_ROOT, SIMULATORS
from testbenches.stream_runner import pack_fields, run_stream_unit, unpack_fields

RESULT_FIELDS = ("code", "lane", "last", "nan", "inf", "saturated")

# Icarus runs the reference design (a 537-bit bf16 quire) at ~200 operations/s against
# Verilator's ~8000, and smaller engines several times faster. So on Icarus every pair of
# 8-bit codes runs through the reference design without its 16-bit formats, the
# full-length random and dot-product streams through the XR-NPE engine (136-bit quire,
# 20 stages), and the reference design gets the same kinds of streams, shorter.
ICARUS_SHARE = {"random16": 6000, "random_mixed": 2000, "dot_terms": 1000}
NARROW_FORMATS = ("fp4_e2m1", "posit4_1", "posit8_0", "fp8_e4m3", "int8")
RANDOM16_OPS = 100_000      # the proof: >= 10^5 random 16-bit operations ...
DOT_TERMS = 10_000          # ... and dot products of >= 10^4 terms, on each simulator


# The reference config's engine; the XR-NPE formats with 1 guard bit so that accumulators
# saturate within a few operations; and two for Icarus's share (see ICARUS_SHARE).
DESIGNS = {
    "default": lambda: MacEngine.from_config(load_config("default")),
    "xr_npe": lambda: MacEngine.from_config(load_config("xr_npe")),
    # The reference design without its 16-bit formats (every output format kept).
    "default_narrow": lambda: MacEngine.from_config(
        load_config("default"), formats=NARROW_FORMATS,
        output_formats=load_config("default").engine.formats),
    "xr_npe_g1": lambda: MacEngine.from_config(load_config("xr_npe"), guard_bits=1),
}
_generated: dict = {}


def design(name: str):
    if name not in _generated:
        engine = DESIGNS[name]()
        out = BUILD_ROOT.parent / "gen" / name
        manifest = write_unit(engine, "npe_mac", out)
        _generated[name] = (engine, out / "npe_mac.v", manifest)
    return _generated[name]


def run(simulator, name, ops, *, ready_prob=1.0, valid_prob=1.0, seed=1, tag="run", toggles=()):
    engine, vfile, manifest = design(name)
    fields_in = next(p["fields"] for p in manifest["ports"] if p["name"] == "i__payload")
    fields_out = next(p["fields"] for p in manifest["ports"] if p["name"] == "o__payload")
    words = pack_fields(fields_in, {
        "a": ops["a"], "b": ops["b"],
        "fmt_a": [engine.format_index(f) for f in ops["fmt_a"]],
        "fmt_b": [engine.format_index(f) for f in ops["fmt_b"]],
        "out_fmt": [engine.output_format_index(f) for f in ops["out_fmt"]],
        "dot": ops["dot"].astype(int), "first": ops["first"].astype(int),
        "last": ops["last"].astype(int),
    })
    want = engine_reference(engine.geometry, ops)
    result = run_stream_unit(simulator, vfile, "npe_mac", words, len(want), seed=seed,
                             ready_prob=ready_prob, valid_prob=valid_prob, tag=tag,
                             toggles=toggles)
    got = unpack_fields(fields_out, result.words)
    compare(engine, ops, want, got)
    return result


def _describe_beat(engine, ops, want, k):
    """The operands behind read-out beat k, in the formats' notation."""
    ends = np.nonzero(ops["last"])[0]
    counts = np.where(ops["dot"][ends], 1, [engine.geometry.mode(get_format(ops["fmt_a"][e]).bits).lanes for e in ends])
    op_end = ends[np.searchsorted(np.cumsum(counts), k, side="right")]
    start = op_end
    while start > 0 and not ops["first"][start]:
        start -= 1
    lane = int(want.lane[k])
    lines = []
    for i in range(start, min(op_end + 1, start + 6)):
        fa, fb = get_format(ops["fmt_a"][i]), get_format(ops["fmt_b"][i])
        L = engine.geometry.mode(fa.bits).lanes
        ca = split_lanes(np.array([ops["a"][i]]), fa.bits, L)[0]
        cb = split_lanes(np.array([ops["b"][i]]), fb.bits, L)[0]
        lanes = range(L) if ops["dot"][i] else [lane]
        lines.append(f"    op {i} ({'dot' if ops['dot'][i] else 'simd'}): " + "; ".join(
            f"{fa.describe(int(ca[l]))} x {fb.describe(int(cb[l]))}" for l in lanes))
    if op_end + 1 - start > 6:
        lines.append(f"    ... {op_end + 1 - start} operations in this accumulation")
    return "\n".join(lines)


def compare(engine, ops, want, got):
    n = len(want)
    assert len(got["code"]) == n, f"{len(got['code'])} read-out beats, expected {n}"
    problems = []
    for name in RESULT_FIELDS:
        exp = getattr(want, name).astype(np.int64)
        bad = np.nonzero(got[name] != exp)[0]
        for k in bad[:5]:
            problems.append(f"beat {k} lane {want.lane[k]}: {name} = {got[name][k]}, expected {exp[k]}\n"
                            + _describe_beat(engine, ops, want, int(k)))
        if bad.size:
            problems.append(f"({bad.size} beats differ in {name})")
    assert not problems, "RTL differs from the golden model:\n" + "\n".join(problems)


EXHAUSTIVE = [
    ("default", "fp4_e2m1", "fp4_e2m1"),
    ("default", "posit8_0", "posit8_0"),
    ("default", "fp8_e4m3", "fp8_e4m3"),
    ("default", "int8", "int8"),
    ("xr_npe_g1", "posit4_1", "posit4_1"),
    ("xr_npe_g1", "fp4_e2m1", "posit4_1"),
]


def _pair_runs():
    """(simulator, design, format a, format b); the test id names the design that runs."""
    for sim in SIMULATORS:
        for name, fa, fb in EXHAUSTIVE:
            if sim == "icarus" and name == "default":
                name = "default_narrow"         # (see DESIGNS)
            yield pytest.param(sim, name, fa, fb, id=f"{sim}-{name}-{fa}x{fb}")


@pytest.mark.rtl
@pytest.mark.parametrize("sim,name,fa,fb", list(_pair_runs()))
def test_every_code_pair(sim, name, fa, fb):
    """Every pair of codes, one operation each, read out in every output format."""
    simulator = require_simulator(sim)
    engine = design(name)[0]
    ops = exhaustive_pairs(engine.geometry, fa, fb, engine.output_formats)
    run(simulator, name, ops, tag=f"pairs-{fa}-{fb}")


@pytest.mark.rtl
def test_random_16bit_and_format_switching(simulator):
    """Random accumulation groups of 16-bit operations (posit⟨16,1⟩ and bf16), then of
    every format with the lane mode switching between groups. The full length runs
    through the reference design on Verilator; on Icarus through the XR-NPE engine
    (posit⟨16,1⟩ and its other formats), with a shorter stream through the reference
    design for bf16 and the formats only it has."""
    streams = []        # (design, 16-bit formats, random 16-bit ops, mixed ops)
    if simulator == "icarus":
        streams += [("xr_npe", ["posit16_1"], RANDOM16_OPS, 20_000),
                    ("default", ["posit16_1", "bf16"], ICARUS_SHARE["random16"],
                     ICARUS_SHARE["random_mixed"])]
    else:
        streams += [("default", ["posit16_1", "bf16"], RANDOM16_OPS, 20_000)]
    for name, wide, n16, n_mixed in streams:
        engine = design(name)[0]
        rng = np.random.default_rng(16)
        ops = concat(
            random_groups(engine.geometry, wide, engine.output_formats, rng, n_ops=n16,
                          max_group=4),
            random_groups(engine.geometry, engine.formats, engine.output_formats, rng,
                          n_ops=n_mixed, max_group=5),
        )
        assert np.count_nonzero(np.isin(ops["fmt_a"], wide)) >= min(n16, RANDOM16_OPS)
        run(simulator, name, ops, tag=f"random16-{name}")


@pytest.mark.rtl
def test_long_dot_products(simulator):
    """Dot products of DOT_TERMS terms through the quire, read out once, in every lane
    mode (on Icarus through the XR-NPE engine at full length, see above)."""
    streams = []        # (design, [(format, output format)], terms)
    full = [("posit16_1", "posit16_1"), ("posit8_0", "bf16"), ("fp4_e2m1", "posit16_1")]
    if simulator == "icarus":
        streams += [("xr_npe", [("posit16_1", "posit16_1"), ("posit8_0", "posit16_1"),
                                ("fp4_e2m1", "posit8_0")], DOT_TERMS),
                    ("default", full, ICARUS_SHARE["dot_terms"])]
    else:
        streams += [("default", full, DOT_TERMS)]
    for name, pairs, terms in streams:
        engine = design(name)[0]
        rng = np.random.default_rng(10)
        ops = concat(*[long_dot(engine.geometry, fmt, out, rng, terms=terms)
                       for fmt, out in pairs])
        run(simulator, name, ops, tag=f"longdot-{name}")


@pytest.mark.rtl
@pytest.mark.parametrize("ready_prob,valid_prob", [(0.3, 1.0), (0.7, 0.5)])
def test_backpressure(simulator, ready_prob, valid_prob):
    engine = design("xr_npe_g1")[0]
    rng = np.random.default_rng(int(ready_prob * 10))
    ops = random_groups(engine.geometry, engine.formats, engine.output_formats, rng,
                        n_ops=4000, max_group=3)
    run(simulator, "xr_npe_g1", ops, ready_prob=ready_prob, valid_prob=valid_prob,
        seed=int(ready_prob * 100), tag=f"bp-{ready_prob}-{valid_prob}")


@pytest.mark.rtl
def test_nar_nan_and_saturation(simulator):
    engine = design("xr_npe_g1")[0]
    rng = np.random.default_rng(5)
    # every lane mode saturates, in dot and in SIMD mode
    # (steps=3, up=2: the first overflow at the step before the last, still in the staged
    # check's pending bits when the read-out takes the sum; test_engine checks that property
    # of this geometry on the golden model)
    saturating = [saturating_stream(engine.geometry, fmt, "posit16_1", dot=dot, **steps)
                  for fmt in ("posit16_1", "posit4_1", "posit8_0") for dot in (True, False)
                  for steps in ({}, {"steps": 3, "up": 2})]
    ops = concat(*[special_stream(engine.geometry, f, engine.output_formats) for f in engine.formats],
                 long_dot(engine.geometry, "posit16_1", "posit16_1", rng, terms=200), *saturating)
    result = run(simulator, "xr_npe_g1", ops, tag="specials")
    want = engine_reference(engine.geometry, ops)
    assert want.saturated.any() and want.nan.any(), "the stream must exercise saturation and NaR"
