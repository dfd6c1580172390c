"""Unit tests of generators.formats, with exact (Fraction) models written independently
of the implementation: posits from the Posit Standard's definition (values and the
bit-string rounding), minifloats from sign/exponent/mantissa arithmetic.

The oracle comparisons against ml_dtypes and softposit are in test_formats_oracles.py.
"""

import dataclasses
import json
import math
import pickle
from fractions import Fraction

import numpy as np
import pytest

from generators import formats as F
from generators.formats import (
    FORMATS,
    AccumulatorGeometry,
    Integer,
    Minifloat,
    Posit,
    UnknownFormatError,
    accumulator_geometry,
    format_formats_table,
    formats_table,
    get_format,
    lanes,
)

SEED = 20240611


# ------------------------------------------------------------------------------------
# Exact posit model (Posit Standard), independent of generators.formats
# ------------------------------------------------------------------------------------
def posit_value(code, n, es):
    """Exact value of a posit code as a Fraction; None for NaR."""
    if code == 0:
        return Fraction(0)
    if code == 1 << (n - 1):
        return None
    negative = code >> (n - 1) == 1
    if negative:
        code = (-code) % (1 << n)
    s = format(code, f"0{n}b")[1:]
    run = 1
    while run < len(s) and s[run] == s[0]:
        run += 1
    k = run - 1 if s[0] == "1" else -run
    rest = s[run + 1:]
    exp_bits = rest[:es].ljust(es, "0")
    e = int(exp_bits, 2) if es else 0
    f = rest[es:]
    frac = Fraction(int(f, 2), 1 << len(f)) if f else Fraction(0)
    v = Fraction(2) ** (k * (1 << es) + e) * (1 + frac)
    return -v if negative else v


def floor_log2(x: Fraction) -> int:
    e = x.numerator.bit_length() - x.denominator.bit_length()
    if Fraction(2) ** e > x:
        e -= 1
    return e


def posit_round(x, n, es):
    """Code of x (Fraction, or float nan/inf) by the standard's rule: write the exact
    regime|exponent|fraction bit string, keep n-1 bits, round to nearest even on that
    bit string; never to 0 or NaR (saturate to minpos/maxpos)."""
    if isinstance(x, float) and not math.isfinite(x):
        return 1 << (n - 1)
    x = Fraction(x)
    if x == 0:
        return 0
    negative = x < 0
    x = abs(x)
    maxpos = Fraction(2) ** ((n - 2) * (1 << es))
    if x >= maxpos:
        body = (1 << (n - 1)) - 1
    elif x <= 1 / maxpos:
        body = 1
    else:
        scale = floor_log2(x)
        k, e = divmod(scale, 1 << es)
        string = ("1" * (k + 1) + "0") if k >= 0 else ("0" * -k + "1")
        string += format(e, f"0{es}b") if es else ""
        f = x / Fraction(2) ** scale - 1
        for _ in range(n + 2):
            f *= 2
            string += "1" if f >= 1 else "0"
            f -= 1 if f >= 1 else 0
        body = int(string[:n - 1], 2)
        round_bit = string[n - 1] == "1"
        sticky = "1" in string[n:] or f != 0
        if round_bit and (sticky or body & 1):
            body += 1
    return (-body) % (1 << n) if negative else body


# ------------------------------------------------------------------------------------
# Exact minifloat model
# ------------------------------------------------------------------------------------
def minifloat_value(code, e_bits, m_bits, bias, special):
    """Exact value: Fraction, or float nan / ±inf."""
    bits = 1 + e_bits + m_bits
    sign = -1 if code >> (bits - 1) else 1
    e = (code >> m_bits) & ((1 << e_bits) - 1)
    m = code & ((1 << m_bits) - 1)
    top = (1 << e_bits) - 1
    if special == "ieee" and e == top:
        return sign * math.inf if m == 0 else math.nan
    if special == "fn" and e == top and m == (1 << m_bits) - 1:
        return math.nan
    if e == 0:
        v = Fraction(m, 1 << m_bits) * Fraction(2) ** (1 - bias)
    else:
        v = (1 + Fraction(m, 1 << m_bits)) * Fraction(2) ** (e - bias)
    return sign * v


def minifloat_round(x: float, fmt: Minifloat) -> int:
    """Code of one float64 by exact nearest on the value grid, ties to the even code
    (for mantissa_bits >= 1 that is the even mantissa) (scalar model)."""
    m_bits, bias, special = fmt.mantissa_bits, fmt.bias, fmt.special
    sign_code = 1 << (fmt.bits - 1)
    top = (1 << fmt.exponent_bits) - 1
    sign = sign_code if math.copysign(1, x) < 0 else 0
    overflow = {"ieee": top << m_bits, "fn": (top << m_bits) | ((1 << m_bits) - 1),
                "none": fmt._max_code}[special]
    if math.isnan(x):
        if special == "none":
            return sign_code
        return sign | ((top << m_bits) | (1 << (m_bits - 1)) if special == "ieee" else overflow)
    if math.isinf(x):
        return sign | overflow
    emin = 1 - bias

    def code_of(value):          # magnitude code of a grid value, possibly past the max
        if value == 0:
            return 0
        scale = floor_log2(value)
        if scale < emin:
            return int(value / Fraction(2) ** (emin - m_bits))
        mantissa = int((value / Fraction(2) ** scale - 1) * (1 << m_bits))
        return ((scale - emin + 1) << m_bits) | mantissa

    a = Fraction(abs(x))
    q = Fraction(2) ** (max(floor_log2(a) if a else emin, emin) - m_bits)   # grid spacing
    lo = (a / q).__floor__() * q
    hi = lo + q
    if a - lo < hi - a:
        code = code_of(lo)
    elif a - lo > hi - a:
        code = code_of(hi)
    else:
        code = code_of(lo) if code_of(lo) % 2 == 0 else code_of(hi)
    if code > fmt._max_code:
        return sign | overflow
    return sign | code


# ------------------------------------------------------------------------------------
# Posits against the model
# ------------------------------------------------------------------------------------
SMALL_POSITS = [(2, 0), (3, 0), (3, 1), (4, 0), (4, 1), (4, 2), (5, 0), (5, 1), (6, 2),
                (7, 3), (8, 4), (10, 1)]


def _probe_values(n, es):
    """Every value of the (n+2)-bit posit (so all n-bit values, all (n+1)-bit boundaries
    and the quarter points), the float64 neighbours of each, arithmetic midpoints of
    n-bit neighbours, and values past both ends."""
    vals = {posit_value(c, n + 2, es) for c in range(1 << (n + 2))} - {None}
    n_bit = sorted(v for v in (posit_value(c, n, es) for c in range(1 << n)) if v is not None)
    vals |= {(a + b) / 2 for a, b in zip(n_bit, n_bit[1:])}
    maxpos = n_bit[-1]
    vals |= {maxpos * 3, maxpos * 1000, -maxpos * 1.5, 1 / (maxpos * 3), -1 / (maxpos * 7)}
    floats = sorted({float(v) for v in vals})
    floats += [float(np.nextafter(v, np.inf)) for v in floats]
    floats += [float(np.nextafter(v, -np.inf)) for v in floats]
    floats += [0.0, -0.0, math.inf, -math.inf, math.nan, 1e300, -1e300, 5e-324, -5e-324]
    return floats


@pytest.mark.parametrize("n,es", SMALL_POSITS, ids=[f"posit{n}_{es}" for n, es in SMALL_POSITS])
def test_small_posit_decode_and_encode_exhaustive(n, es):
    fmt = Posit(n, es)
    codes = fmt.all_codes()
    expected = [posit_value(int(c), n, es) for c in codes]
    got = fmt.decode(codes)
    for c, g, e in zip(codes, got, expected):
        if e is None:
            assert math.isnan(g), fmt.describe(int(c))
        else:
            assert Fraction(g) == e, f"{fmt.describe(int(c))} decodes to {g}, expected {e}"
    xs = _probe_values(n, es)
    got = fmt.encode(np.array(xs))
    want = [posit_round(x, n, es) for x in xs]
    bad = [(x, int(g), w) for x, g, w in zip(xs, got, want) if g != w]
    assert not bad, "\n".join(f"{x!r}: got {fmt.describe(g)}, expected {fmt.describe(w)}"
                              for x, g, w in bad[:10])


def test_posit_boundaries_are_the_odd_longer_codes():
    """Cross-check the model itself: the value of an odd (n+1)-bit code is a tie that
    goes to the even neighbour; just above/below it goes up/down."""
    for n, es in [(4, 1), (5, 0), (6, 2), (8, 0)]:
        # odd positive (n+1)-bit codes strictly between minpos and maxpos
        for c in range(3, (1 << n) - 1, 2):
            boundary = posit_value(c, n + 1, es)
            lower, upper = c >> 1, (c >> 1) + 1
            assert posit_round(boundary, n, es) == (lower if lower % 2 == 0 else upper)
            eps = boundary / 2 ** 60
            assert posit_round(boundary + eps, n, es) == upper
            assert posit_round(boundary - eps, n, es) == lower


@pytest.mark.parametrize("n,es", [(17, 0), (20, 3), (24, 1), (32, 0), (32, 2), (32, 4)])
def test_wide_posit_arithmetic_path_against_model(n, es):
    """Posits over 16 bits decode and encode by arithmetic, not tables."""
    fmt = Posit(n, es)
    rng = np.random.default_rng(SEED + n * 8 + es)
    codes = np.concatenate([rng.integers(0, 1 << n, 1500, dtype=np.uint64),
                            np.array([0, 1, 2, (1 << (n - 1)) - 1, 1 << (n - 1),
                                      (1 << (n - 1)) + 1, (1 << n) - 1], dtype=np.uint64)])
    values = fmt.decode(codes)
    for c, v in zip(codes, values):
        e = posit_value(int(c), n, es)
        assert (math.isnan(v) if e is None else Fraction(v) == e), fmt.describe(int(c))
    scale = (n - 2) << es
    # Ties: odd (n+1)-bit codes with every regime length (short codes near 0 have long
    # zero regimes, their mirror images long one regimes) and their float64 neighbours,
    # so the sticky bit must see fraction bits far down.
    top = rng.integers(1, n - 1, 800)
    odd = (rng.integers(0, 1 << 62, 800, dtype=np.uint64) % (np.uint64(1) << top.astype(np.uint64))
           | (np.uint64(1) << top.astype(np.uint64)) | np.uint64(1)).astype(object)
    odd = np.concatenate([odd, (1 << n) - odd])
    ties = np.array([float(posit_value(int(c), n + 1, es)) for c in odd])
    x = np.concatenate([
        np.ldexp(rng.uniform(1, 2, 2500), rng.integers(-scale - 3, scale + 3, 2500)),
        values[np.isfinite(values)] * (1 + rng.uniform(-2.0 ** -20, 2.0 ** -20, len(codes) - 1)),
        ties, np.nextafter(ties, np.inf), np.nextafter(ties, 0),
    ])
    x *= rng.choice([-1.0, 1.0], x.size)
    got = fmt.encode(x)
    for xi, g in zip(x, got):
        w = posit_round(float(xi), n, es)
        assert g == w, f"{xi!r}: got {fmt.describe(int(g))}, expected {fmt.describe(w)}"


@pytest.mark.parametrize("name", [n for n, f in FORMATS.items() if f.kind == "posit"])
def test_shipped_posits_decode_exactly(name):
    fmt = FORMATS[name]
    codes = fmt.all_codes()
    values = fmt.decode(codes)
    step = max(1, len(codes) // 4096)
    for c in list(range(0, len(codes), step)) + [len(codes) - 1]:
        e = posit_value(c, fmt.n, fmt.es)
        assert (math.isnan(values[c]) if e is None else Fraction(values[c]) == e)
    # strictly increasing over the signed order: -maxpos .. maxpos
    signed = values[np.argsort(codes.astype(np.int64) ^ (1 << (fmt.bits - 1)))]
    assert np.all(np.diff(signed[1:]) > 0)


# ------------------------------------------------------------------------------------
# Minifloats and integers against the model
# ------------------------------------------------------------------------------------
MINIFLOATS = [n for n, f in FORMATS.items() if f.kind == "float"]
EXTRA_MINIFLOATS = [
    Minifloat(name="e3m2_ieee", exponent_bits=3, mantissa_bits=2, bias=3, special="ieee"),
    Minifloat(name="e2m3_none", exponent_bits=2, mantissa_bits=3, bias=1, special="none"),
    Minifloat(name="e5m2_fn", exponent_bits=5, mantissa_bits=2, bias=16, special="fn"),
    Minifloat(name="e4m0_fn", exponent_bits=4, mantissa_bits=0, bias=7, special="fn"),
]


def _all_minifloats():
    return [FORMATS[n] for n in MINIFLOATS] + EXTRA_MINIFLOATS


@pytest.mark.parametrize("fmt", _all_minifloats(), ids=lambda f: f.name)
def test_minifloat_decode_exhaustive(fmt):
    codes = fmt.all_codes()
    got = fmt.decode(codes)
    for c, g in zip(codes, got):
        e = minifloat_value(int(c), fmt.exponent_bits, fmt.mantissa_bits, fmt.bias, fmt.special)
        if isinstance(e, float):
            assert (math.isnan(g) and math.isnan(e)) or g == e, fmt.describe(int(c))
        else:
            assert Fraction(g) == e and math.copysign(1, g) == (-1 if c >> (fmt.bits - 1) else 1)
    assert fmt.max_value == np.nanmax(got[np.isfinite(got)])
    assert fmt.min_value == np.min(got[got > 0])


@pytest.mark.parametrize("fmt", _all_minifloats(), ids=lambda f: f.name)
def test_minifloat_encode_single_rounding_against_model(fmt):
    """encode() rounds the float64 value once, exactly (no float32 detour)."""
    rng = np.random.default_rng(SEED)
    values = fmt.decode(fmt.all_codes())
    finite = np.unique(np.abs(values[np.isfinite(values)]))
    mids = (finite[1:] + finite[:-1]) / 2
    pool = np.concatenate([finite, mids, np.nextafter(mids, 0), np.nextafter(mids, np.inf)])
    k = 6000 if fmt.bits <= 8 else 20000
    x = np.concatenate([
        rng.choice(pool, k) * (1 + rng.choice([0, 2.0 ** -40, -(2.0 ** -40), 2.0 ** -30], k)),
        np.ldexp(rng.uniform(1, 2, k), rng.integers(fmt.min_exponent - 4, fmt.max_exponent + 4, k)),
        [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e300, -1e300, 5e-324, -5e-324],
    ])
    x[:2 * k] *= rng.choice([-1.0, 1.0], 2 * k)
    got = fmt.encode(x)
    for xi, g in zip(x, got):
        w = minifloat_round(float(xi), fmt)
        assert g == w, f"{xi!r}: got {fmt.describe(int(g))}, expected {fmt.describe(w)}"


def test_wide_mantissa_minifloat_against_numpy_float16():
    """A minifloat too wide for an encode table (fp16, e5m10) takes the search path;
    numpy's float16 rounds float64 once, correctly, so it is an oracle for it."""
    fp16 = Minifloat(name="fp16", exponent_bits=5, mantissa_bits=10, bias=15, special="ieee")
    assert fp16._key_bits > F._MAX_KEY_BITS
    codes = fp16.all_codes()
    values = fp16.decode(codes)
    assert np.array_equal(values, codes.view(np.float16).astype(np.float64), equal_nan=True)
    rng = np.random.default_rng(SEED)
    finite = np.unique(np.abs(values[np.isfinite(values)]))
    mids = (finite[1:] + finite[:-1]) / 2
    x = np.concatenate([finite, mids, np.nextafter(mids, 0), np.nextafter(mids, np.inf),
                        np.ldexp(rng.uniform(1, 2, 50_000), rng.integers(-27, 18, 50_000)),
                        [np.inf, 1e300, 65520.0, 65519.99, 0.0]])
    x = np.concatenate([x, -x])
    with np.errstate(over="ignore"):
        want = x.astype(np.float16).view(np.uint16)
    assert np.array_equal(fp16.encode(x), want)
    assert fp16.encode(np.nan) == 0x7E00 and fp16.encode(-np.nan) == 0xFE00


def test_bf16_double_rounding_is_opt_in():
    """ml_dtypes rounds float64 -> float32 -> bf16; npegen rounds once unless asked."""
    bf16 = FORMATS["bf16"]
    x = 1 + 2.0 ** -8 + 2.0 ** -30           # just above a bf16 tie, which float32 hides
    assert bf16.encode(x) == 0x3F81
    assert bf16.encode(x, via_float32=True) == 0x3F80
    e4m3 = FORMATS["fp8_e4m3"]
    assert e4m3.encode(1 + 2.0 ** -4 + 2.0 ** -30) == 0x39
    assert e4m3.encode(1 + 2.0 ** -4 + 2.0 ** -30, via_float32=True) == 0x38


@pytest.mark.parametrize("bits", [2, 4, 8, 12, 32])
def test_integer_encode_decode(bits):
    fmt = Integer(bits)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999999999999994, hi + 0.5, hi + 0.4,
                  lo - 0.5, lo - 0.6, 1e300, -1e300, np.inf, -np.inf, np.nan, -np.nan, -0.0,
                  hi, lo])
    want = [max(lo, min(hi, round(v))) if math.isfinite(v) else
            (lo if math.isnan(v) or v < 0 else hi) for v in x.tolist()]
    want = [w & ((1 << bits) - 1) for w in want]
    assert fmt.encode(x).tolist() == want
    if bits <= 16:
        codes = fmt.all_codes()
        signed = [c - (1 << bits) if c > hi else c for c in codes.tolist()]
        assert fmt.decode(codes).tolist() == signed
        assert np.array_equal(fmt.encode(fmt.decode(codes)), codes)
    else:
        assert fmt.decode([0, 1, (1 << bits) - 1, 1 << (bits - 1)]).tolist() == [0, 1, -1, lo]


# ------------------------------------------------------------------------------------
# Properties common to all formats
# ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(FORMATS))
def test_roundtrip_every_code(name):
    fmt = FORMATS[name]
    codes = fmt.all_codes()
    special = fmt.is_special(codes)
    assert special.dtype == bool
    values = fmt.decode(codes)
    assert np.array_equal(special, ~np.isfinite(values))
    back = fmt.encode(values[~special])
    assert back.dtype == fmt.code_dtype
    assert np.array_equal(back, codes[~special]), name


def test_nan_policy():
    for name in FORMATS:
        fmt = FORMATS[name]
        got = fmt.encode([np.nan, -np.nan])
        if fmt.kind == "posit" or not fmt.has_nan:
            assert got.tolist() == [fmt.nar_code] * 2, name
        else:
            assert np.isnan(fmt.decode(got)).all()
            assert got[0] >> (fmt.bits - 1) == 0 and got[1] >> (fmt.bits - 1) == 1
    assert FORMATS["fp4_e2m1"].encode(np.nan) == 0x8
    assert FORMATS["int8"].encode(np.nan) == 0x80
    assert FORMATS["int4"].encode(-np.nan) == 0x8


def test_saturation_and_overflow():
    enc = {n: FORMATS[n].encode for n in FORMATS}
    assert enc["fp4_e2m1"]([1e9, -1e9, np.inf, -np.inf, 7.0, -0.0]).tolist() == [7, 15, 7, 15, 7, 8]
    assert enc["fp8_e4m3"]([1e9, -1e9, np.inf, 464.0, 464.5]).tolist() == \
        [0x7F, 0xFF, 0x7F, 0x7E, 0x7F]
    assert enc["fp8_e5m2"]([1e9, -np.inf, 61440.0, 61439.99]).tolist() == [0x7C, 0xFC, 0x7C, 0x7B]
    assert enc["bf16"]([np.inf, 1e39, -1e300, 1e-300, -1e-300]).tolist() == \
        [0x7F80, 0x7F80, 0xFF80, 0, 0x8000]
    # posits never round to zero or NaR
    assert enc["posit8_0"]([1e-300, -1e-300, 1e300, -1e300, np.inf, 5e-324]).tolist() == \
        [0x01, 0xFF, 0x7F, 0x81, 0x80, 0x01]
    assert enc["posit16_1"]([-0.0, 0.0]).tolist() == [0, 0]


def test_shapes_and_dtypes():
    fmt = FORMATS["posit16_1"]
    x = np.arange(12.0).reshape(3, 4) - 6
    for name in FORMATS:
        f = FORMATS[name]
        codes = f.encode(x)
        assert codes.shape == (3, 4) and codes.dtype == f.code_dtype
        assert f.decode(codes).shape == (3, 4)
        assert f.encode(1.0).shape == ()
        assert f.encode([]).shape == (0,)
    assert fmt.decode(np.array([0x4000], dtype=np.uint16))[0] == 1.0
    assert fmt.encode(np.float32(1.0)) == 0x4000
    # non-contiguous input
    assert np.array_equal(fmt.encode(x[:, ::2]), fmt.encode(x[:, ::2].copy()))
    assert FORMATS["bf16"].encode(x.T).shape == (4, 3)
    assert Posit(32, 2).code_dtype == np.uint32 and Posit(9, 0).code_dtype == np.uint16


def test_code_validation():
    fmt = FORMATS["posit8_0"]
    with pytest.raises(ValueError, match=r"posit8_0 codes must be in 0\.\.255, not 256"):
        fmt.decode([1, 256])
    with pytest.raises(ValueError, match="not -1"):
        fmt.decode([-1])
    with pytest.raises(TypeError, match="must be integers"):
        fmt.decode([1.5])
    with pytest.raises(ValueError, match=r"0\.\.15, not 16"):
        FORMATS["fp4_e2m1"].describe(16)
    with pytest.raises(ValueError, match="at most 16 bits"):
        Posit(32, 2).all_codes()


def test_describe():
    p8 = FORMATS["posit8_0"]
    assert p8.describe(0x41) == "posit8_0 0x41 (sign=+ regime=0 exp=- frac=0b00001 = 1.03125)"
    assert p8.describe(0xBF) == "posit8_0 0xbf (sign=- regime=0 exp=- frac=0b00001 = -1.03125)"
    assert p8.describe(0x80) == "posit8_0 0x80 (NaR)"
    assert p8.describe(0) == "posit8_0 0x00 (zero = 0.0)"
    assert p8.describe(0x7F) == "posit8_0 0x7f (sign=+ regime=6 exp=- frac=- = 64.0)"
    p82 = FORMATS["posit8_2"]
    assert p82.describe(0x7E) == "posit8_2 0x7e (sign=+ regime=5 exp=[00] frac=- = 1048576.0)"
    assert p82.describe(0x7B) == "posit8_2 0x7b (sign=+ regime=3 exp=0b11 frac=- = 32768.0)"
    assert p82.describe(0x7D) == "posit8_2 0x7d (sign=+ regime=4 exp=0b1[0] frac=- = 262144.0)"
    assert p82.describe(0x4C) == "posit8_2 0x4c (sign=+ regime=0 exp=0b01 frac=0b100 = 3.0)"
    assert FORMATS["posit16_1"].describe(0x4000).startswith("posit16_1 0x4000 (sign=+ regime=0")
    assert FORMATS["fp4_e2m1"].describe(0x3) == "fp4_e2m1 0x3 (+1.5)"
    assert FORMATS["fp4_e2m1"].describe(0x8) == "fp4_e2m1 0x8 (-0.0)"
    assert FORMATS["fp4_e2m1"].describe(0x1) == "fp4_e2m1 0x1 (+0.5 subnormal)"
    assert FORMATS["fp8_e4m3"].describe(0xFF) == "fp8_e4m3 0xff (-NaN)"
    assert FORMATS["fp8_e5m2"].describe(0x7C) == "fp8_e5m2 0x7c (+inf)"
    assert FORMATS["bf16"].describe(0x3F80) == "bf16 0x3f80 (+1.0)"
    assert FORMATS["int4"].describe(0x8) == "int4 0x8 (-8)"
    assert FORMATS["int8"].describe(0x05) == "int8 0x05 (+5)"
    assert Posit(32, 2).describe(0x40000000).endswith("= 1.0)")


# ------------------------------------------------------------------------------------
# Construction, registry, geometry, tables
# ------------------------------------------------------------------------------------
def test_constructor_validation():
    with pytest.raises(ValueError, match="^n must be between 2 and 32, not 40$"):
        Posit(40, 0)
    with pytest.raises(ValueError, match="^es must be between 0 and 4, not 5$"):
        Posit(8, 5)
    with pytest.raises(TypeError, match="n must be an int, not float"):
        Posit(8.0, 0)
    with pytest.raises(TypeError, match="es must be an int, not bool"):
        Posit(8, True)
    with pytest.raises(ValueError, match="^bits must be between 2 and 32, not 1$"):
        Integer(1)
    kw = dict(name="x", exponent_bits=4, mantissa_bits=3, bias=7, special="fn")
    with pytest.raises(TypeError):
        Minifloat("x", 4, 3, 7, "fn")                       # keyword-only
    with pytest.raises(ValueError, match="special must be one of 'ieee', 'fn', 'none', not 'inf'"):
        Minifloat(**{**kw, "special": "inf"})
    with pytest.raises(ValueError, match="exponent_bits must be between 1 and 8, not 9"):
        Minifloat(**{**kw, "exponent_bits": 9})
    with pytest.raises(ValueError, match="at most 16 bits; y .e8m8. would have 17"):
        Minifloat(**{**kw, "name": "y", "exponent_bits": 8, "mantissa_bits": 8})
    with pytest.raises(ValueError, match="needs exponent_bits >= 2"):
        Minifloat(**{**kw, "exponent_bits": 1, "special": "ieee"})
    with pytest.raises(ValueError, match="float32's range"):
        Minifloat(**{**kw, "bias": 200})
    with pytest.raises(TypeError, match="name must be a non-empty str"):
        Minifloat(**{**kw, "name": ""})


def test_format_identity():
    assert Posit(8, 0) == FORMATS["posit8_0"] and hash(Posit(8, 0)) == hash(FORMATS["posit8_0"])
    assert Posit(8, 0) != Posit(8, 1) and Posit(8, 0) != Integer(8)
    assert repr(Posit(16, 1)) == "Posit(16, 1)" and repr(Integer(4)) == "Integer(4)"
    assert "special='fn'" in repr(FORMATS["fp8_e4m3"])
    bf16 = FORMATS["bf16"]
    bf16.encode(1.0)                                           # builds the table
    clone = pickle.loads(pickle.dumps(bf16))
    assert clone == bf16 and clone.encode(1.5) == 0x3FC0
    assert len(pickle.dumps(bf16)) < 2000                      # tables are not pickled
    with pytest.raises(AttributeError, match="immutable"):
        FORMATS["posit8_0"].bits = 9


def test_format_attributes():
    expect = {  # name: (kind, bits, min_value, max_value, min_exponent, max_exponent)
        "fp4_e2m1": ("float", 4, 0.5, 6.0, -1, 2),
        "posit4_1": ("posit", 4, 2.0 ** -4, 16.0, -4, 4),
        "posit8_0": ("posit", 8, 2.0 ** -6, 64.0, -6, 6),
        "posit16_1": ("posit", 16, 2.0 ** -28, 2.0 ** 28, -28, 28),
        "posit8_2": ("posit", 8, 2.0 ** -24, 2.0 ** 24, -24, 24),
        "posit16_2": ("posit", 16, 2.0 ** -56, 2.0 ** 56, -56, 56),
        "fp8_e4m3": ("float", 8, 2.0 ** -9, 448.0, -9, 8),
        "fp8_e5m2": ("float", 8, 2.0 ** -16, 57344.0, -16, 15),
        "bf16": ("float", 16, 2.0 ** -133, (2 - 2.0 ** -7) * 2.0 ** 127, -133, 127),
        "int8": ("int", 8, 1.0, 128.0, 0, 7),
        "int4": ("int", 4, 1.0, 8.0, 0, 3),
    }
    assert list(FORMATS) == list(expect)
    for name, (kind, bits, lo, hi, emin, emax) in expect.items():
        f = FORMATS[name]
        assert (f.name, f.kind, f.bits, f.min_value, f.max_value, f.min_exponent,
                f.max_exponent) == (name, kind, bits, lo, hi, emin, emax)
        assert f.code_dtype == np.dtype(np.uint8 if bits <= 8 else np.uint16)
    assert [n for n, f in FORMATS.items() if f.has_inf] == ["fp8_e5m2", "bf16"]
    assert [n for n, f in FORMATS.items() if not f.has_nan] == ["fp4_e2m1", "int8", "int4"]


def test_get_format():
    assert get_format("posit8_0") is FORMATS["posit8_0"]
    assert get_format(FORMATS["bf16"]) is FORMATS["bf16"]
    custom = Posit(12, 3)
    assert get_format(custom) is custom
    assert get_format("posit32_2") == Posit(32, 2)
    assert get_format("posit5_0").n == 5
    with pytest.raises(UnknownFormatError) as info:
        get_format("posit8-0")
    msg = str(info.value)
    assert "unknown format 'posit8-0'; did you mean 'posit8_0'?" in msg
    assert all(name in msg for name in FORMATS) and "posit<n>_<es>" in msg
    assert isinstance(info.value, ValueError) and isinstance(info.value, KeyError)
    with pytest.raises(KeyError):
        get_format("fp8_e4m4")
    with pytest.raises(ValueError, match="did you mean 'bf16'"):
        get_format("bf61")
    with pytest.raises(UnknownFormatError, match="n must be between 2 and 32, not 40"):
        get_format("posit40_0")
    with pytest.raises(UnknownFormatError) as info:
        get_format("zzzzzz")
    assert "did you mean" not in str(info.value)
    with pytest.raises(TypeError):
        get_format(8)


def test_lanes():
    assert lanes("fp4_e2m1", 16) == 4 and lanes(FORMATS["bf16"], 32) == 2
    assert lanes("posit8_0", 8) == 1 and lanes("bf16", 8) == 0
    with pytest.raises(ValueError, match="word_bits must be between 1"):
        lanes("int8", 0)


def _quire_bits(n, es):
    return (1 << (es + 2)) * (n - 2) + (n - 1) + 1


def test_accumulator_geometry_posit_quires():
    assert accumulator_geometry("posit8_0").width == 32
    assert accumulator_geometry("posit16_1").width == 128
    assert accumulator_geometry("posit4_1").width == 20
    assert accumulator_geometry("posit8_0") == AccumulatorGeometry(
        lsb_exponent=-12, span_bits=24, guard_bits=7, width=32)
    for n in range(3, 33):
        for es in range(5):
            assert accumulator_geometry(Posit(n, es)).width == _quire_bits(n, es), (n, es)


def test_accumulator_geometry_other_formats():
    g = accumulator_geometry("fp8_e4m3", "int8")
    assert (g.lsb_exponent, g.guard_bits) == (-9, 7)
    assert g.span_bits == math.floor(math.log2(448 * 128)) + 9
    assert accumulator_geometry("int8").width == 14 + 7 + 1
    assert accumulator_geometry("posit8_0", guard_bits=0).width == 25
    assert accumulator_geometry("posit8_0", "posit16_1").guard_bits == 15
    assert accumulator_geometry("fp4_e2m1").msb_exponent == -2 + 11 - 2
    with pytest.raises(ValueError, match="guard_bits must be between 0"):
        accumulator_geometry("int8", guard_bits=-1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        accumulator_geometry("int8").width = 3


@pytest.mark.parametrize("a,b", [("fp4_e2m1", None), ("posit4_1", None), ("int4", None),
                                 ("posit8_0", None), ("fp8_e4m3", None), ("fp8_e5m2", None),
                                 ("posit8_2", None), ("fp4_e2m1", "int8"),
                                 ("posit4_1", "fp8_e5m2"), ("int8", None)])
def test_accumulator_geometry_holds_every_product(a, b):
    """Brute force: every product is an integer number of LSBs and the largest one's
    top bit is the first guard bit (position lsb + span)."""
    fa, fb = get_format(a), get_format(b or a)
    g = accumulator_geometry(fa, fb)
    va = [Fraction(v) for v in fa.decode(fa.all_codes()) if np.isfinite(v)]
    vb = [Fraction(v) for v in fb.decode(fb.all_codes()) if np.isfinite(v)]
    lsb = Fraction(2) ** g.lsb_exponent
    products = [x * y for x in va for y in vb]
    assert all((p / lsb).denominator == 1 for p in products)
    assert any((p / lsb / 2).denominator != 1 for p in products)   # LSB is really used
    largest = max(abs(p) for p in products) / lsb
    assert int(largest).bit_length() - 1 == g.span_bits
    assert g.width == g.span_bits + g.guard_bits + 1


def test_formats_table():
    rows = formats_table()
    assert [r["name"] for r in rows] == list(FORMATS)
    json.dumps(rows)                                          # plain Python types only
    by = {r["name"]: r for r in rows}
    assert by["posit16_1"]["accumulator_bits"] == 128 and by["posit8_0"]["lanes"] == 2
    assert by["fp4_e2m1"]["lanes"] == 4 and by["bf16"]["lanes"] == 1
    assert formats_table(word_bits=32)[0]["lanes"] == 8
    assert set(rows[0]) == {"name", "kind", "bits", "min_value", "max_value",
                            "accumulator_bits", "lanes", "nan_inf"}
    assert "NaR 0x80" in by["posit8_0"]["nan_inf"] and "0x8" in by["fp4_e2m1"]["nan_inf"]
    text = format_formats_table(rows)
    lines = text.splitlines()
    assert len(lines) == len(rows) + 2 and lines[0].split()[0] == "format"
    # columns line up: the 'bits' header ends where every bits cell ends
    end = lines[0].index("bits") + 4
    for line, row in zip(lines[2:], rows):
        assert line[:end].endswith(str(row["bits"])), line
    assert "2^-133" in text and "2^-9" in text and "57344" in text and "448" in text


def test_module_has_no_amaranth():
    import ast
    import inspect
    tree = ast.parse(inspect.getsource(F))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= {"__future__", "abc", "dataclasses", "difflib", "functools", "math",
                        "re", "numpy"}, imported
