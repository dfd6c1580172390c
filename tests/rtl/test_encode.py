"""FixedToFormat and FixedToFormats against ``testbenches.golden.round_to_format``, bit for
bit (Amaranth sim)."""

from fractions import Fraction

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from generators.formats import FORMATS, Posit, accumulator_geometry, get_format
from generators.rtl.decode import format_params
from generators.rtl.encode import (FixedToFormat, FixedToFormats, Normalizer, balanced_cuts,
                                    deepest_segment)
from testbenches.golden import round_to_format
from testbenches.sim import read_pipelined

# (acc_width, lsb_exponent): the posit8_0 quire, the posit16_1 quire, a coarse one whose
# LSB lies above many formats' smallest values.
GEOMETRIES = [(32, -12), (128, -56), (24, -2)]
EXTRA = [
    ("bf16", 64, -140),          # reaches bf16's subnormals (2**-133 .. 2**-127)
    ("bf16", 160, -70),          # beyond bf16's max: overflow to inf
    ("fp8_e5m2", 71, -32),       # its exact accumulator: subnormals and overflow
    ("fp8_e4m3", 43, -18),
    ("fp4_e2m1", 11, -2),
    ("posit8_2", 104, -48),
    ("posit4_1", 20, -8),
    ("int8", 22, 0),
    ("int4", 16, 3),             # LSB weight 8
    ("posit5_1", 40, -20),       # generic posits
    ("posit3_0", 12, -6),
    ("posit10_3", 96, -40),
    ("posit16_1", 6, -3),        # accumulators narrower than the output's fraction
    ("bf16", 5, 0),
    ("fp8_e4m3", 8, 6),          # LSB above the format's max: only overflow and zero
    ("posit8_0", 2, 0),          # the narrowest accumulator
]
CASES = [(name, w, lsb) for name in FORMATS for w, lsb in GEOMETRIES] + EXTRA


def simulate(dut, vectors):
    """Codes for ``vectors`` of (value, nan, pos_inf, neg_inf), in one testbench."""
    out = []

    async def testbench(ctx):
        for value, nan, pos_inf, neg_inf in vectors:
            ctx.set(dut.value, value)
            ctx.set(dut.nan, nan)
            ctx.set(dut.pos_inf, pos_inf)
            ctx.set(dut.neg_inf, neg_inf)
            out.append(ctx.get(dut.code))

    sim = Simulator(dut)
    sim.add_testbench(testbench)
    sim.run()
    return out


def compare(fmt, width, lsb, vectors):
    dut = FixedToFormat(fmt, acc_width=width, lsb_exponent=lsb)
    got = simulate(dut, vectors)
    values = np.array([v[0] for v in vectors], dtype=object)
    flags = {k: np.array([v[i] for v in vectors], dtype=bool)
             for i, k in ((1, "nan"), (2, "pos_inf"), (3, "neg_inf"))}
    want = round_to_format(values, lsb, fmt, **flags)
    errors = []
    for (value, nan, pinf, ninf), g, w in zip(vectors, got, want):
        if g != int(w):
            x = Fraction(value) * Fraction(2) ** lsb
            errors.append(f"value {value} * 2**{lsb} (= {float(x)!r}) nan={nan} +inf={pinf} "
                          f"-inf={ninf}: got {fmt.describe(g)}, want {fmt.describe(int(w))}")
    assert not errors, (f"{fmt.name}, acc_width={width}, lsb_exponent={lsb}: "
                        f"{len(errors)}/{len(vectors)} wrong, e.g.\n  " + "\n  ".join(errors[:10]))
    return len(vectors)


def boundaries(fmt):
    """Positive rounding boundaries and representable values of ``fmt`` (exact floats).

    Posits: the boundary between two neighbouring codes is the ⟨n+1, es⟩ code between
    them. Minifloats: the midpoint of two neighbours (and of max and the next step).
    Integers: k + 1/2.
    """
    p = format_params(fmt)
    if p.kind == "posit":
        wider = Posit(fmt.bits + 1, p.es)
        v = wider.decode(np.arange(1, 1 << fmt.bits, dtype=np.int64))
        return v[np.isfinite(v)]
    if p.kind == "float":
        v = fmt.decode(fmt.all_codes())
        v = np.unique(v[np.isfinite(v) & (v >= 0)])
        step = v[-1] - v[-2]
        v = np.append(v, v[-1] + step)                   # the code after max (overflow)
        mids = (v[1:] + v[:-1]) / 2
        return np.concatenate([v[1:], mids])
    top = 1 << (fmt.bits - 1)
    k = np.arange(0, top + 2, dtype=np.float64)
    return np.concatenate([k, k + 0.5])


def targeted(fmt, width, lsb, rng, limit=900):
    """Boundaries (ties), ±1 LSB around them, both signs; powers of two; extremes."""
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    fixed = []
    for x in boundaries(fmt):
        q = Fraction(float(x)) / Fraction(2) ** lsb
        if q.denominator == 1 and 0 < q.numerator <= hi + 1:
            fixed.append(q.numerator)
    fixed = sorted(set(fixed))
    if len(fixed) > limit // 6:
        fixed = [int(f) for f in rng.choice(fixed, limit // 6, replace=False)]
    out = set()
    for f in fixed:
        for d in (-1, 0, 1):
            out.update((f + d, -(f + d)))
    for j in range(width - 1):                    # powers of two and their neighbours
        for d in (-1, 0, 1):
            out.update(((1 << j) + d, -((1 << j) + d)))
    out.update((0, 1, -1, 2, -2, lo, lo + 1, hi, hi - 1, hi >> 1, lo >> 1))
    return sorted(v for v in out if lo <= v <= hi)


def random_values(width, rng, count):
    """Random values of random bit lengths (so every exponent shows up), random sign."""
    out = []
    for _ in range(count):
        bits = int(rng.integers(1, width))
        mag = int.from_bytes(rng.bytes((bits + 7) // 8), "little") % (1 << bits)
        out.append(-mag if rng.random() < 0.5 else mag)
    return out


@pytest.mark.parametrize("name,width,lsb", CASES)
def test_rounding(name, width, lsb):
    fmt = get_format(name)
    rng = np.random.default_rng([width, lsb + 1000, fmt.bits])
    values = targeted(fmt, width, lsb, rng) + random_values(width, rng, 500)
    compare(fmt, width, lsb, [(v, 0, 0, 0) for v in values])


@pytest.mark.parametrize("name", list(FORMATS))
def test_flags(name):
    """NaN wins, +inf with -inf is NaN, then one infinity; over any value."""
    fmt = get_format(name)
    width, lsb = 32, -12
    values = [0, 1, -1, 12345, -12345, (1 << 31) - 1, -(1 << 31)]
    vectors = [(v, nan, p, n) for v in values for nan in (0, 1) for p in (0, 1) for n in (0, 1)]
    compare(fmt, width, lsb, vectors)


def test_bf16_exact_accumulator():
    """bf16's 537-bit Kulisch accumulator elaborates and rounds correctly (smoke)."""
    geom = accumulator_geometry("bf16")
    width, lsb = geom.width, geom.lsb_exponent
    fmt = get_format("bf16")
    rng = np.random.default_rng(537)
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    values = [0, 1, -1, lo, hi, 1 << -lsb, -(1 << -lsb), 3 << (-lsb - 134), 1 << (-lsb - 134)]
    values += random_values(width, rng, 40)
    vectors = [(v, 0, 0, 0) for v in values] + [(5, 1, 0, 0), (5, 0, 1, 0), (5, 0, 0, 1)]
    compare(fmt, width, lsb, vectors)


@pytest.mark.parametrize("formats,width,lsb", [
    (("fp4_e2m1", "posit4_1", "posit8_0", "posit16_1"), 128, -56),      # xr_npe's read-out
    (("fp4_e2m1", "posit4_1", "posit8_0", "posit16_1", "fp8_e4m3", "bf16", "int8"), 96, -60),
    (("int8", "int4", "fp8_e5m2"), 40, -9),
])
@pytest.mark.parametrize("isolate,registered,normalizer_pipeline,split_rounding,split_fields", [
    (True, False, 0, False, False), (False, False, 0, False, False),
    (True, True, 4, True, False), (False, False, 0, True, False),
    (True, True, 4, True, True), (False, False, 0, False, True)])
def test_shared_normalizer(formats, width, lsb, isolate, registered, normalizer_pipeline,
                           split_rounding, split_fields):
    """One normalizer, a rounder per format picked at run time: every format's codes equal
    the golden model's, with the value and the format changing together each cycle. The
    pipelined variant loads its registers on a random enable and is fed garbage in the
    cycles without it."""
    check_shared(formats, width, lsb, isolate=isolate, registered=registered,
                 normalizer_pipeline=normalizer_pipeline, split_rounding=split_rounding,
                 split_fields=split_fields)


@pytest.mark.parametrize("registered,normalizer_pipeline,split_rounding,split_fields,"
                         "normalizer_register_input", [
    (False, 0, False, False, False), (True, 4, True, True, False), (True, 5, True, True, True)])
def test_lsb_offset(registered, normalizer_pipeline, split_rounding, split_fields,
                    normalizer_register_input):
    """``lsb_offset`` raises the value's LSB exponent at run time (an engine's read-out
    of lane modes with different LSBs, xr_npe's offsets 0, 44 and 48 among them): each
    code is the golden rounding of ``value * 2**(lsb + offset)``, with the offset changing
    every cycle."""
    check_shared(("fp4_e2m1", "posit4_1", "posit8_0", "posit16_1"), 128, -56,
                 offsets=(0, 1, 44, 48), isolate=True, registered=registered,
                 normalizer_pipeline=normalizer_pipeline, split_rounding=split_rounding,
                 split_fields=split_fields, normalizer_register_input=normalizer_register_input)


def check_shared(formats, width, lsb, offsets=(0,), **params):
    fmts = [get_format(f) for f in formats]
    max_offset = max(offsets)
    dut = FixedToFormats(formats, acc_width=width, lsb_exponent=lsb, max_lsb_offset=max_offset,
                         **params)
    latency = dut.latency
    assert latency == (params["registered"] + params["normalizer_pipeline"]
                       + params["split_rounding"] + params["split_fields"])
    rng = np.random.default_rng([width, len(formats), max_offset])
    vectors = []         # (value, format index, offset, nan, pos_inf, neg_inf)
    for idx, fmt in enumerate(fmts):
        for offset in offsets:
            values = (targeted(fmt, width, lsb + offset, rng, limit=300 // len(offsets))
                      + random_values(width, rng, 150 // len(offsets)))
            vectors += [(v, idx, offset, 0, 0, 0) for v in values]
            vectors += [(7, idx, offset, 1, 0, 0), (7, idx, offset, 0, 1, 0),
                        (-7, idx, offset, 0, 0, 1), (9, idx, offset, 0, 1, 1)]
    order = rng.permutation(len(vectors))
    vectors = [vectors[i] for i in order]
    codes = []

    def apply(ctx, vector):
        value, idx, offset, nan, pinf, ninf = vector
        ctx.set(dut.value, value)
        ctx.set(dut.fmt, idx)
        if max_offset:
            ctx.set(dut.lsb_offset, offset)
        ctx.set(dut.nan, nan)
        ctx.set(dut.pos_inf, pinf)
        ctx.set(dut.neg_inf, ninf)

    def garbage():
        return (random_values(width, rng, 1)[0], int(rng.integers(len(fmts))),
                int(rng.choice(offsets)), *rng.integers(2, size=3).tolist())

    async def testbench(ctx):
        codes.extend(await read_pipelined(
            ctx, apply=apply, read=lambda ctx: ctx.get(dut.code), vectors=vectors,
            latency=latency, filler=garbage, enable=dut.en if latency else None,
            stall=(lambda: rng.random() >= 0.75) if latency else None))

    sim = Simulator(dut)
    if latency:
        sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    pairs = list(zip(vectors, codes))       # (vector, code)
    assert len(pairs) == len(vectors)
    errors = []
    for idx, fmt in enumerate(fmts):
        for offset in offsets:
            rows = [(v, g) for v, g in pairs if v[1] == idx and v[2] == offset]
            want = round_to_format(np.array([r[0][0] for r in rows], dtype=object),
                                   lsb + offset, fmt,
                                   nan=np.array([r[0][3] for r in rows], dtype=bool),
                                   pos_inf=np.array([r[0][4] for r in rows], dtype=bool),
                                   neg_inf=np.array([r[0][5] for r in rows], dtype=bool))
            errors += [f"{fmt.name}: value {v[0]} * 2**{lsb + offset} flags {v[3:]}: got "
                       f"{fmt.describe(g)}, want {fmt.describe(int(w))}"
                       for (v, g), w in zip(rows, want) if g != int(w)]
    assert not errors, f"{len(errors)} wrong, e.g.\n  " + "\n  ".join(errors[:10])


def normalize(dut, values, outputs, seed=0):
    """``dut``'s ``outputs`` (a tuple of port names) for each of ``values``. A pipelined
    Normalizer is read ``dut.pipeline`` loading cycles later, with random values applied
    meanwhile and its enable low (and a random value applied) a quarter of the cycles."""
    rng = np.random.default_rng(seed)
    width = len(dut.value)
    got = []

    async def testbench(ctx):
        got.extend(await read_pipelined(
            ctx, apply=lambda ctx, value: ctx.set(dut.value, value),
            read=lambda ctx: tuple(ctx.get(getattr(dut, o)) for o in outputs),
            vectors=values, latency=dut.pipeline,
            filler=lambda: int(rng.integers(0, 1 << 62)) % (1 << width) - (1 << (width - 1)),
            enable=dut.en if dut.pipeline else None,
            stall=(lambda: rng.random() < 0.25) if dut.pipeline else None))

    sim = Simulator(dut)
    if dut.pipeline:
        sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return got


@pytest.mark.parametrize("pipeline", [0, 1, 3, 5])
def test_normalizer_keeps_leading_bits_and_sticky(pipeline):
    dut = Normalizer(acc_width=12, keep=4, pipeline=pipeline)
    cases = [(0b000101101001, 0, 0b1011, 1), (-0b000101101000, 1, 0b1011, 1),
             (0b000101100000, 0, 0b1011, 0), (0b11, 0, 0b1100, 0), (-2048, 1, 0b1000, 0)]
    got = normalize(dut, [c[0] for c in cases], ("negative", "top", "sticky"))
    assert got == [c[1:] for c in cases]


@pytest.mark.parametrize("pipeline", [0, 2])
def test_normalizer_wider_keep_than_value(pipeline):
    """keep >= acc_width: no sticky bits, the top zero-padded, the same latency."""
    dut = Normalizer(acc_width=5, keep=8, pipeline=pipeline)
    cases = [(0b00101, 0b10100000, 2), (-0b00011, 0b11000000, 3), (-16, 0b10000000, 0)]
    got = normalize(dut, [c[0] for c in cases], ("top", "count", "sticky", "zero"))
    assert got == [(c[1], c[2], 0, 0) for c in cases]


def test_argument_checks():
    with pytest.raises(ValueError, match="acc_width must be at least 2 for posit8_0, not 1"):
        FixedToFormat("posit8_0", acc_width=1, lsb_exponent=0)
    with pytest.raises(TypeError, match="acc_width must be an integer, not 32.0"):
        FixedToFormat("posit8_0", acc_width=32.0, lsb_exponent=0)
    with pytest.raises(TypeError, match="lsb_exponent must be an integer, not '-12'"):
        FixedToFormat("posit8_0", acc_width=32, lsb_exponent="-12")
    with pytest.raises(ValueError, match="unknown format 'fp8'"):
        FixedToFormat("fp8", acc_width=32, lsb_exponent=0)
    with pytest.raises(ValueError, match="formats must not be empty"):
        FixedToFormats([], acc_width=32, lsb_exponent=0)
    with pytest.raises(ValueError, match="keep must be a positive integer, not 0"):
        Normalizer(acc_width=32, keep=0)
    with pytest.raises(ValueError, match=r"sign_extend must be ascending widths from 1 to 32, "
                                         r"not \(8, 8\)"):
        Normalizer(acc_width=32, keep=4, sign_extend=(8, 8))
    with pytest.raises(ValueError, match=r"sign_extend must be ascending widths from 1 to 32, "
                                         r"not \(8, 33\)"):
        FixedToFormats(["posit8_0"], acc_width=32, lsb_exponent=0, sign_extend=(8, 33))
    with pytest.raises(ValueError, match="pipeline must be an integer from 0 to 6 for a "
                                         "32-bit value, not 7"):
        Normalizer(acc_width=32, keep=4, pipeline=7)
    with pytest.raises(ValueError, match="normalizer_pipeline must be an integer from 0 to 6"):
        FixedToFormats(["posit8_0"], acc_width=32, lsb_exponent=0, normalizer_pipeline=7)
    with pytest.raises(ValueError, match="register_input needs a pipeline of at least 1 "
                                         "register"):
        Normalizer(acc_width=32, keep=4, register_input=True)
    with pytest.raises(ValueError, match="normalizer_register_input needs a "
                                         "normalizer_pipeline of at least 1 register"):
        FixedToFormats(["posit8_0"], acc_width=32, lsb_exponent=0,
                       normalizer_register_input=True)
    with pytest.raises(ValueError, match="max_lsb_offset must be a non-negative integer, not -1"):
        FixedToFormats(["posit8_0"], acc_width=32, lsb_exponent=0, max_lsb_offset=-1)


@pytest.mark.parametrize("name,width,lsb", [
    ("posit16_1", 128, -56), ("posit8_0", 32, -12), ("bf16", 537, -266), ("fp8_e4m3", 43, -18),
    ("fp4_e2m1", 11, -2), ("int8", 22, 0),
])
def test_converts_to_verilog(name, width, lsb):
    text = verilog.convert(FixedToFormat(name, acc_width=width, lsb_exponent=lsb), name="enc")
    assert "module enc" in text


@pytest.mark.parametrize("stages", [3, 7, 10])
def test_balanced_cuts_never_deeper_than_even_spread(stages):
    def deepest(cuts):
        return deepest_segment(stages, cuts)

    for n in range(stages + 1):
        cuts = balanced_cuts(stages, n)
        assert list(cuts) == sorted(set(cuts)) and len(cuts) == n
        assert all(0 <= c < stages for c in cuts)
        even = [-(-(k + 1) * stages // (n + 1)) - 1 for k in range(n)]
        assert deepest(cuts) <= deepest(even)
    if stages == 7:     # a 128-bit read-out with 4 normalizer registers (xr_npe)
        assert deepest(balanced_cuts(7, 3)) < deepest([1, 3, 5])
    with pytest.raises(ValueError, match="cannot place 8 registers after 7 shift stages"):
        balanced_cuts(7, 8)
    for n in range(stages + 1):     # with a tail after the last stage (the increment)
        with_tail = balanced_cuts(stages, n, tail=2)
        assert (deepest_segment(stages, with_tail, tail=2)
                <= deepest_segment(stages, balanced_cuts(stages, n), tail=2))
    if stages == 7:     # xr_npe's normalizer: the tail moves the last register later
        assert (deepest_segment(7, balanced_cuts(7, 4, tail=2), tail=2)
                < deepest_segment(7, balanced_cuts(7, 4), tail=2))


def normalized_magnitude(value, width, keep):
    """(negative, zero, count, top, sticky) of ``value`` as :class:`Normalizer` defines
    them, from Python's integers (count None for 0: any count is right there)."""
    magnitude = abs(value)
    if not magnitude:
        return value < 0, True, None, 0, False
    count = width - magnitude.bit_length()
    normalized = magnitude << count                 # leading one at bit width - 1
    if keep >= width:
        return value < 0, False, count, normalized << (keep - width), False
    return (value < 0, False, count, normalized >> (width - keep),
            bool(normalized & ((1 << (width - keep)) - 1)))


def compared(got, want):
    """A :class:`Normalizer`'s ``(negative, zero, count, top, sticky)`` in the form of
    :func:`normalized_magnitude`'s ``want`` (the count not compared for 0)."""
    return (bool(got[0]), bool(got[1]), got[2] if want[2] is not None else None, got[3],
            bool(got[4]))


@pytest.mark.parametrize("width", [2, 3, 5, 8, 9, 11])
def test_normalizer_every_value(width):
    """Every value of a small width, kept bits from 1 to beyond the width, with no
    registers, the most and one more than there are shift stages (the input registered),
    and the input registered with one and with the most registers (``register_input``):
    the one's complement shifter and its increment against ``abs``. The cases it must
    get right are all here: the most negative value, -1, values whose magnitude is a
    power of two (the increment overflows) and ones whose low bits are all zero (the
    carry reaches the kept bits)."""
    stages = (width - 1).bit_length()
    values = list(range(-(1 << (width - 1)), 1 << (width - 1)))
    errors = []
    for keep in sorted({1, 2, 3, width - 1, width, width + 2} - {0}):
        for pipeline, register_input in sorted({(0, False), (stages, False), (stages + 1, False),
                                                (1, True), (stages, True)}):
            dut = Normalizer(acc_width=width, keep=keep, pipeline=pipeline,
                             register_input=register_input)
            got = normalize(dut, values, ("negative", "zero", "count", "top", "sticky",
                                          "shifter_count", "carried"), seed=keep)
            for v, g in zip(values, got):
                want = normalized_magnitude(v, width, keep)
                if g[5] - g[6] != g[2]:
                    errors.append(f"keep {keep} pipeline {pipeline} ({register_input}) value {v}: "
                                  f"count {g[2]} is not shifter_count {g[5]} - carried {g[6]}")
                g = compared(g, want)
                if g != want:
                    errors.append(f"keep {keep} pipeline {pipeline} ({register_input}) value {v}: "
                                  f"got {g}, want {want}")
    assert not errors, f"{len(errors)} wrong, e.g.\n  " + "\n  ".join(errors[:10])


@pytest.mark.parametrize("widths", [(5, 7, 12), (3, 6, 9), (4,), (12,)])
@pytest.mark.parametrize("pipeline,register_input", [(0, False), (2, False), (5, False),
                                                     (1, True), (3, True)])
def test_normalizer_sign_extend(widths, pipeline, register_input):
    """With ``sign_extend`` the normalizer sign-extends ``value`` from the width that
    ``wider`` selects (the bits above it are ignored, whatever they are), with ``sign``
    as the value's sign: every value of every width, above the width random bits. With
    ``register_input`` (the engine's read-out), the first stage's decision is made from
    the inputs before the register and ``sign`` and ``wider`` cross it too."""
    width, keep = 12, 4
    rng = np.random.default_rng(pipeline)
    dut = Normalizer(acc_width=width, keep=keep, pipeline=pipeline, sign_extend=widths,
                     register_input=register_input)
    vectors, wants = [], []
    for w in widths:
        for low in range(1 << w):
            raw = low | int(rng.integers(0, 1 << width)) >> w << w
            value = low - (1 << w) * (low >> (w - 1))
            vectors.append((raw, low >> (w - 1), [int(w > v) for v in widths[:-1]]))
            wants.append(normalized_magnitude(value, width, keep))

    def apply(ctx, vector):
        raw, sign, wider = vector
        ctx.set(dut.value, raw)
        ctx.set(dut.sign, sign)
        if len(widths) > 1:
            ctx.set(dut.wider, sum(b << j for j, b in enumerate(wider)))

    def filler():
        return (int(rng.integers(0, 1 << width)), int(rng.integers(0, 2)),
                [int(b) for b in rng.integers(0, 2, len(widths) - 1)])

    got = []

    async def testbench(ctx):
        got.extend(await read_pipelined(
            ctx, apply=apply, vectors=vectors, latency=dut.pipeline, filler=filler,
            read=lambda ctx: tuple(ctx.get(getattr(dut, o)) for o in
                                   ("negative", "zero", "count", "top", "sticky")),
            enable=dut.en if dut.pipeline else None,
            stall=(lambda: rng.random() < 0.25) if dut.pipeline else None))

    sim = Simulator(dut)
    if dut.pipeline:
        sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    errors = []
    for v, g, want in zip(vectors, got, wants):
        g = compared(g, want)
        if g != want:
            errors.append(f"{v}: got {g}, want {want}")
    assert not errors, f"{len(errors)} wrong, e.g.\n  " + "\n  ".join(errors[:10])


@pytest.mark.parametrize("pipeline", [0, 4, 8])
def test_normalizer_random_wide_values(pipeline):
    """The xr_npe read-out's width (128 bits, 14 kept): random values of every magnitude,
    powers of two and their negations, and values with long runs of zeros below the
    kept bits."""
    rng = np.random.default_rng(pipeline)
    width, keep = 128, 14
    values = [-(1 << 127), (1 << 127) - 1, 0, -1, 1]
    for bits in range(1, 128):
        values += [1 << (bits - 1), -(1 << (bits - 1)), -(1 << (bits - 1)) - 1]
        for _ in range(3):
            v = int(rng.integers(0, 1 << 62)) << 66 | int(rng.integers(0, 1 << 62)) << 4
            v = (v | 1 << 127) >> (128 - bits)
            values += [v, -v, -(v >> max(bits - keep - 1, 0) << max(bits - keep - 1, 0))]
    values = [v for v in values if -(1 << 127) <= v < 1 << 127]
    dut = Normalizer(acc_width=width, keep=keep, pipeline=pipeline)
    got = normalize(dut, values, ("negative", "zero", "count", "top", "sticky"))
    errors = []
    for v, g in zip(values, got):
        want = normalized_magnitude(v, width, keep)
        g = compared(g, want)
        if g != want:
            errors.append(f"value {v:#x}: got {g}, want {want}")
    assert not errors, f"{len(errors)} of {len(values)} wrong, e.g.\n  " + "\n  ".join(errors[:10])
