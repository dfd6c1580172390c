"""FormatDecoder against the formats' exact NumPy decoders (Amaranth simulator)."""

import math

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from generators.formats import FORMATS, get_format
from generators.rtl.decode import (
    FormatDecoder,
    PartitionedPositDecoder,
    TableDecoder,
    common_widths,
    decoded_layout,
    decoded_fields,
    decoded_widths,
    format_params,
    leading_zeros,
)
from testbenches.sim import read_pipelined

FIELDS = ("special", "inf", "zero", "sign", "exp", "sig")


def simulate(dut, codes, *, apply=None, filler=None, read=None):
    """Decode every code with one testbench; returns a list of field dicts. A pipelined
    decoder is read one loading cycle later, with another code applied by then, and its
    enable is low (another code applied) a random quarter of the cycles. ``apply`` and
    ``filler`` replace how a vector is applied and what is applied in between (a
    TableDecoder's vectors carry the format index too); ``read`` what is read (a
    PartitionedPositDecoder has several views)."""
    pipelined = hasattr(dut, "en")
    latency = dut.pipeline
    rng = np.random.default_rng(len(codes))
    out = []

    def read_fields(ctx):
        return {f: ctx.get(getattr(dut.decoded, f)) for f in FIELDS}

    async def testbench(ctx):
        out.extend(await read_pipelined(
            ctx, apply=apply or (lambda ctx, code: ctx.set(dut.code, int(code))),
            read=read or read_fields,
            vectors=codes, latency=latency,
            filler=filler or (lambda: int(rng.integers(1 << len(dut.code)))),
            enable=dut.en if pipelined else None,
            stall=(lambda: rng.random() < 0.25) if pipelined else None))

    sim = Simulator(dut)
    if pipelined:
        sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return out


def check(fmt, dut, codes):
    """Decoded fields must rebuild ``fmt.decode`` exactly; returns the decoded fields."""
    codes = np.asarray(codes, dtype=np.int64)
    want = fmt.decode(codes)
    got = simulate(dut, codes)
    sig_limit = 1 << len(dut.decoded.sig)
    errors = []
    for code, v, f in zip(codes, want, got):
        v = float(v)
        if math.isnan(v):
            ok = f == dict(special=1, inf=0, zero=0, sign=0, exp=0, sig=0)
        elif math.isinf(v):
            ok = f == dict(special=0, inf=1, zero=0, sign=int(v < 0), exp=0, sig=0)
        elif v == 0:
            ok = f == dict(special=0, inf=0, zero=1, sign=int(math.copysign(1, v) < 0),
                           exp=0, sig=0)
        else:
            ok = (f["special"] == f["inf"] == f["zero"] == 0
                  and 0 < f["sig"] < sig_limit
                  and fmt.min_exponent <= f["exp"] <= fmt.max_exponent
                  and (-1) ** f["sign"] * math.ldexp(f["sig"], f["exp"]) == v)
        if not ok:
            errors.append(f"{fmt.describe(int(code))}: got {f}")
    assert not errors, f"{len(errors)} wrong decodes, e.g.\n  " + "\n  ".join(errors[:10])
    return got


def corner_codes(fmt):
    """0, NaR/sign-only code, ±maxpos/max, ±minpos/min subnormal, ±1, inf/NaN codes."""
    n = fmt.bits
    top = 1 << (n - 1)
    base = [0, 1, 2, 3, top - 1, top - 2, top, top + 1, top + 2, (1 << n) - 1, (1 << n) - 2]
    values = np.array([1.0, -1.0, 2.0, -0.5, fmt.max_value, -fmt.max_value, fmt.min_value,
                       -fmt.min_value, np.inf, -np.inf, np.nan])
    base += [int(c) for c in fmt.encode(values)]
    p = format_params(fmt)
    if p.kind == "float":                               # every subnormal, both signs
        m = p.mantissa_bits
        base += list(range(1 << m)) + [top | c for c in range(1 << m)]
        base += [(((1 << p.exponent_bits) - 1) << m) | c for c in range(1 << m)]
    return sorted({c % (1 << n) for c in base})


SMALL = [name for name, f in FORMATS.items() if f.bits <= 8] + [
    "posit5_1", "posit6_2", "posit3_0", "posit2_0", "posit7_4"]


@pytest.mark.parametrize("name", SMALL)
def test_every_code(name):
    fmt = get_format(name)
    dut = FormatDecoder(fmt)
    fields = check(fmt, dut, fmt.all_codes())
    assert len(fields) == 1 << fmt.bits
    assert_tight(fmt, dut, fields)


@pytest.mark.parametrize("pipeline", [1, 2])
@pytest.mark.parametrize("name", SMALL + ["posit16_1", "bf16"])
def test_pipelined_decoder(name, pipeline):
    """Registered inside: the same fields ``pipeline`` cycles later (all codes of the
    small formats, sampled codes of the 16-bit ones)."""
    fmt = get_format(name)
    dut = FormatDecoder(fmt, pipeline=pipeline)
    if fmt.bits <= 8:
        codes = fmt.all_codes()
    else:
        rng = np.random.default_rng(17)
        codes = corner_codes(fmt) + [int(c) for c in rng.integers(0, 1 << fmt.bits, 1500)]
    assert_tight(fmt, dut, check(fmt, dut, codes))


@pytest.mark.parametrize("name", ["posit16_1", "posit16_2", "bf16", "posit12_3"])
def test_sampled_codes(name):
    fmt = get_format(name)
    rng = np.random.default_rng(16)
    codes = corner_codes(fmt) + [int(c) for c in rng.integers(0, 1 << fmt.bits, 2500)]
    dut = FormatDecoder(fmt)
    assert_tight(fmt, dut, check(fmt, dut, codes))


def test_posit32_2():
    fmt = get_format("posit32_2")
    rng = np.random.default_rng(32)
    codes = corner_codes(fmt) + [int(c) for c in rng.integers(0, 1 << 32, 300, dtype=np.int64)]
    # long regimes too: codes whose magnitude has few significant bits
    codes += [int(c) >> int(s) for c, s in zip(rng.integers(0, 1 << 32, 100, dtype=np.int64),
                                               rng.integers(1, 31, 100))]
    check(fmt, FormatDecoder(fmt), codes)


def test_shared_layout():
    """With the widths of every format, each decoder still decodes exactly."""
    sig_bits, exp_bits = common_widths(FORMATS)
    for name in ("fp4_e2m1", "posit8_0", "fp8_e4m3", "int8"):
        fmt = get_format(name)
        dut = FormatDecoder(fmt, sig_bits=sig_bits, exp_bits=exp_bits)
        assert len(dut.decoded.sig) == sig_bits and len(dut.decoded.exp) == exp_bits
        check(fmt, dut, fmt.all_codes())


def test_widths():
    assert decoded_widths("posit8_0") == (6, 4)       # 5 fraction bits; exp -6 .. 6
    assert decoded_widths("posit16_1") == (13, 6)     # exp -28 .. 28
    assert decoded_widths("posit4_1") == (1, 4)       # no fraction bits; exp -4 .. 4
    assert decoded_widths("fp4_e2m1") == (2, 2)       # exp -1 .. 1
    assert decoded_widths("fp8_e4m3") == (4, 5)       # exp -9 .. 5
    assert decoded_widths("bf16") == (8, 9)           # exp -133 .. 120
    assert decoded_widths("int8") == (8, 1)           # |-128| = 128
    assert common_widths(["posit8_0", "bf16", "int8"]) == (8, 9)


def assert_tight(fmt, dut, fields):
    """The default widths are the minimum: some code needs every bit of sig and exp."""
    sig_bits, exp_bits = len(dut.decoded.sig), len(dut.decoded.exp)
    assert (sig_bits, exp_bits) == decoded_widths(fmt)
    assert max(f["sig"] for f in fields).bit_length() == sig_bits, fmt.name
    if exp_bits > 1:
        half = 1 << (exp_bits - 2)
        assert any(f["exp"] < -half or f["exp"] >= half for f in fields), fmt.name


def test_argument_checks():
    with pytest.raises(ValueError, match="sig_bits must be at least 6 for posit8_0, not 4"):
        FormatDecoder("posit8_0", sig_bits=4)
    with pytest.raises(ValueError, match="exp_bits must be at least 9 for bf16, not 8"):
        FormatDecoder("bf16", exp_bits=8)
    with pytest.raises(TypeError, match="sig_bits must be an integer or None, not 6.0"):
        FormatDecoder("posit8_0", sig_bits=6.0)
    with pytest.raises(TypeError, match="sig_bits must be a positive integer, not 0"):
        decoded_layout(sig_bits=0, exp_bits=4)
    with pytest.raises(ValueError, match="formats must name at least one format"):
        common_widths([])
    with pytest.raises(ValueError, match="unknown format 'posit8_9'"):
        FormatDecoder("posit8_9")


@pytest.mark.parametrize("width", [1, 2, 5, 8, 13])
def test_leading_zeros(width):
    m = Module()
    x = Signal(width)
    count, norm = leading_zeros(m, x)
    values = range(1 << width) if width <= 8 else range(1, 1 << width, 37)

    async def testbench(ctx):
        for v in values:
            ctx.set(x, v)
            lz, got = ctx.get(count), ctx.get(norm)
            if v:
                assert lz == width - v.bit_length(), (width, v, lz)
                assert got == v << lz, (width, v, got)
            else:
                assert lz >= width - 1 and got == 0, (width, lz, got)

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()


def test_layout_fields():
    layout = decoded_layout(sig_bits=13, exp_bits=6)
    assert [name for name, _ in layout] == list(FIELDS)
    assert layout.size == 4 + 6 + 13


@pytest.mark.parametrize("name", list(FORMATS) + ["posit32_2"])
def test_converts_to_verilog(name):
    text = verilog.convert(FormatDecoder(name), name=f"dec_{name}")
    assert f"module dec_{name}" in text


@pytest.mark.parametrize("pipeline", [1, 2])
def test_pipelined_decoder_holds_for_invalid_codes(pipeline):
    """Codes with ``valid`` low are not loaded (operand isolation): a valid code's fields
    come out ``pipeline`` advancing cycles later whatever invalid codes came between, and
    while only invalid codes arrive the output does not change."""
    fmt = get_format("posit8_0")
    dut = FormatDecoder(fmt, pipeline=pipeline)
    rng = np.random.default_rng(5)
    codes = [int(c) for c in rng.integers(0, 256, 300)]
    valid = [bool(v) for v in rng.random(300) < 0.5]
    want = {int(c): f for c, f in zip(fmt.all_codes(), simulate(FormatDecoder(fmt), fmt.all_codes()))}
    errors = []

    async def testbench(ctx):
        ctx.set(dut.en, 1)
        ports = [getattr(dut.decoded, f) for f in FIELDS]
        history = []
        last_valid = None
        for code, v in zip(codes, valid):
            ctx.set(dut.code, code)
            ctx.set(dut.valid, v)
            await ctx.tick()
            history.append((code, v))
            got = dict(zip(FIELDS, (ctx.get(p) for p in ports)))
            if len(history) >= pipeline:
                code_in, v_in = history[-pipeline]
                if v_in:
                    last_valid = code_in
                if last_valid is not None and got != want[last_valid]:
                    errors.append((code_in, v_in, last_valid, got))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert not errors, f"{len(errors)} wrong, e.g. {errors[:3]}"


def simulate_table(dut, vectors):
    """``dut`` (a TableDecoder) over ``vectors`` of (format index, code), as :func:`simulate`."""
    rng = np.random.default_rng(len(vectors) + 1)

    def apply(ctx, vector):
        idx, code = vector
        ctx.set(dut.code, int(code))
        if len(dut.formats) > 1:
            ctx.set(dut.fmt, idx)

    return simulate(dut, vectors, apply=apply,
                    filler=lambda: (int(rng.integers(len(dut.formats))),
                                    int(rng.integers(1 << len(dut.code)))))


@pytest.mark.parametrize("pipeline", [0, 2])
@pytest.mark.parametrize("formats", [
    ("fp4_e2m1", "posit4_1"),                            # xr_npe's 4-bit lanes
    ("posit4_1",), ("int4",), ("posit4_0", "fp4_e2m1", "int4"),
    ("posit8_0",), ("fp8_e4m3", "fp8_e5m2", "int8", "posit8_2"),
    ("posit3_0", "posit3_1"),
])
def test_table_decoder_equals_format_decoders(formats, pipeline):
    """Every code of every format: the table gives what that format's FormatDecoder (at
    the same widths) gives, field for field, with the format changing every cycle; so
    ``decoded_fields`` is checked against the RTL decoders (themselves checked against the
    formats' decoders above)."""
    sig_bits, exp_bits = common_widths(formats)
    dut = TableDecoder(formats, pipeline=pipeline)
    vectors = [(idx, code) for idx, f in enumerate(formats)
               for code in range(1 << get_format(f).bits)]
    order = np.random.default_rng(1).permutation(len(vectors))
    vectors = [vectors[i] for i in order]
    got = simulate_table(dut, vectors)
    want = {}
    for idx, f in enumerate(formats):
        codes = list(range(1 << get_format(f).bits))
        ref = simulate(FormatDecoder(f, sig_bits=sig_bits, exp_bits=exp_bits), codes)
        want.update({(idx, c): r for c, r in zip(codes, ref)})
    bad = [f"{formats[idx]} {get_format(formats[idx]).describe(code)}: table {g}, "
           f"decoder {want[(idx, code)]}" for (idx, code), g in zip(vectors, got)
           if g != want[(idx, code)]]
    assert not bad, f"{len(bad)} differ, e.g.\n  " + "\n  ".join(bad[:10])


def test_table_decoder_argument_checks():
    with pytest.raises(ValueError, match=r"formats must have one code width, not fp4_e2m1 "
                                         r"\(4 bits\), posit8_0 \(8 bits\)"):
        TableDecoder(["fp4_e2m1", "posit8_0"])
    with pytest.raises(ValueError, match="pipeline must be 0, 1 or 2, not 3"):
        TableDecoder(["fp4_e2m1"], pipeline=3)
    with pytest.raises(ValueError, match="sig_bits and exp_bits must be at least"):
        TableDecoder(["posit8_0"], sig_bits=2)


@pytest.mark.parametrize("pipeline", [1, 2])
def test_table_decoder_holds_on_invalid(pipeline):
    """Operand isolation: a code applied with ``valid`` low does not enter the registers,
    so the table's output keeps the last valid code's fields."""
    dut = TableDecoder(["fp4_e2m1", "posit4_1"], pipeline=pipeline)
    seen = []

    async def testbench(ctx):
        ctx.set(dut.en, 1)
        for code, valid in [(0b0011, 1)] + [(0b0110, 0)] * (pipeline + 2):
            ctx.set(dut.code, code)
            ctx.set(dut.fmt, 1)
            ctx.set(dut.valid, valid)
            await ctx.tick()
            seen.append((ctx.get(dut.decoded.exp), ctx.get(dut.decoded.sig)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    held = seen[pipeline - 1:]
    assert held == [held[0]] * len(held) and held[0] == (-1, 1), seen      # posit4_1 0.5


# --------------------------------------------------------------------------------------
# PartitionedPositDecoder: one wide posit or two narrow ones


def split_vectors(wide, narrow, seed):
    """(split, code) vectors: every narrow code in each half at least twice, beside
    random codes in the other half, and sampled wide codes with their corner cases; in a
    random order, so that ``split`` changes from cycle to cycle."""
    h = narrow.bits
    rng = np.random.default_rng(seed)
    every = np.arange(1 << h)
    halves = [(lo, hi) for lo, hi in zip(every, rng.permutation(every))]
    halves += [(lo, hi) for lo, hi in zip(rng.permutation(every), every)]
    halves += [(c, c) for c in corner_codes(narrow)]
    vectors = [(1, int(lo) | int(hi) << h) for lo, hi in halves]
    vectors += [(0, c) for c in corner_codes(wide)]
    vectors += [(0, int(c)) for c in rng.integers(0, 1 << wide.bits, 1200)]
    return [vectors[i] for i in rng.permutation(len(vectors))]


def expected_split(wide, narrow, vector):
    """What a FormatDecoder of each format gives (``decoded_fields``, itself checked
    against the formats' decoders by the table decoder's test), in the view ``split``
    selects: ``{"wide": fields}`` or ``{"lo": fields, "hi": fields}``."""
    split, code = vector
    if not split:
        return {"wide": decoded_fields(wide, code)}
    h = narrow.bits
    return {"lo": decoded_fields(narrow, code & ((1 << h) - 1)),
            "hi": decoded_fields(narrow, code >> h)}


@pytest.mark.parametrize("pipeline", [0, 1, 2])
@pytest.mark.parametrize("wide,narrow", [("posit16_1", "posit8_0"), ("posit8_2", "posit4_1"),
                                         ("posit16_2", "posit8_1"), ("posit6_0", "posit3_0")])
def test_partitioned_posit_decoder(wide, narrow, pipeline):
    """Each view as a FormatDecoder of its format gives it, field for field: every code of
    the narrow format in each half, sampled wide codes, ``split`` changing every load, and
    (pipelined) stalls with other codes applied."""
    wide, narrow = get_format(wide), get_format(narrow)
    dut = PartitionedPositDecoder(wide, narrow, pipeline=pipeline)
    vectors = split_vectors(wide, narrow, seed=pipeline)
    rng = np.random.default_rng(9)
    views = {"wide": dut.wide, "lo": dut.narrow[0], "hi": dut.narrow[1]}

    def apply(ctx, vector):
        ctx.set(dut.split, vector[0])
        ctx.set(dut.code, vector[1])

    got = simulate(dut, vectors, apply=apply,
                   filler=lambda: (int(rng.integers(2)), int(rng.integers(1 << wide.bits))),
                   read=lambda ctx: {view: {f: ctx.get(getattr(port, f)) for f in FIELDS}
                                     for view, port in views.items()})
    bad = []
    for vector, out in zip(vectors, got):
        for view, want in expected_split(wide, narrow, vector).items():
            if out[view] != want:
                fmt, h = (wide, 0) if view == "wide" else (narrow, narrow.bits * (view == "hi"))
                code = (vector[1] >> h) & ((1 << fmt.bits) - 1)
                bad.append(f"{view} {fmt.describe(code)}: got {out[view]}, want {want}")
    assert not bad, f"{len(bad)} wrong, e.g.\n  " + "\n  ".join(bad[:10])


def test_partitioned_posit_decoder_holds_on_invalid():
    """Operand isolation: with ``valid`` low the registers keep the last valid code."""
    dut = PartitionedPositDecoder("posit16_1", "posit8_0", pipeline=2)
    seen = []

    async def testbench(ctx):
        ctx.set(dut.en, 1)
        for code, split, valid in [(0x4040, 1, 1)] + [(0x1234, 0, 0)] * 4:
            ctx.set(dut.code, code)
            ctx.set(dut.split, split)
            ctx.set(dut.valid, valid)
            await ctx.tick()
            seen.append([(ctx.get(v.exp), ctx.get(v.sig)) for v in (dut.narrow[0], dut.narrow[1])])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert seen[1:] == [[(-5, 32), (-5, 32)]] * 4, seen    # posit8_0 0x40: 1.0 = 32 * 2**-5


def test_partitioned_posit_decoder_argument_checks():
    with pytest.raises(ValueError, match="narrow must be a posit format, not fp8_e4m3"):
        PartitionedPositDecoder("posit16_1", "fp8_e4m3")
    with pytest.raises(ValueError, match=r"wide must have twice narrow's bits, not posit16_1 "
                                         r"\(16 bits\) and posit4_1 \(4 bits\)"):
        PartitionedPositDecoder("posit16_1", "posit4_1")
    with pytest.raises(ValueError, match="pipeline must be 0, 1 or 2, not 3"):
        PartitionedPositDecoder("posit16_1", "posit8_0", pipeline=3)
    with pytest.raises(ValueError, match=r"narrow_widths must be \(sig_bits, exp_bits\) of "
                                         r"at least \(6, 4\) for posit8_0, not \(5, 4\)"):
        PartitionedPositDecoder("posit16_1", "posit8_0", narrow_widths=(5, 4))
    dut = PartitionedPositDecoder("posit16_1", "posit8_0", wide_widths=(16, 9))
    assert len(dut.wide.sig) == 16 and len(dut.wide.exp) == 9 and len(dut.narrow[1].sig) == 6
