"""generators.formats against independent implementations: ml_dtypes (fp4/fp8/bf16) and
softposit (posit8_0, posit16_1, es=2 posits, posit32_2).

Raw codes: ml_dtypes arrays are viewed as uint8/uint16; a softposit ``posit*_t`` holds
its bits in ``.v``; ``posit_2_t`` (any n, es=2) holds them left-aligned in 32 bits.
"""

import numpy as np
import pytest

from generators.formats import FORMATS, Posit

ml_dtypes = pytest.importorskip("ml_dtypes")
sp = pytest.importorskip("softposit")

SEED = 7_340_033

ML_TYPES = {
    "fp4_e2m1": ml_dtypes.float4_e2m1fn,
    "fp8_e4m3": ml_dtypes.float8_e4m3fn,
    "fp8_e5m2": ml_dtypes.float8_e5m2,
    "bf16": ml_dtypes.bfloat16,
}


def ml_encode(name, x):
    fmt = FORMATS[name]
    with np.errstate(all="ignore"):
        return np.asarray(x, np.float64).astype(ML_TYPES[name]).view(fmt.code_dtype)


def ml_decode(name, codes):
    fmt = FORMATS[name]
    with np.errstate(invalid="ignore"):
        return np.asarray(codes, fmt.code_dtype).view(ML_TYPES[name]).astype(np.float64)


def assert_codes_equal(name, x, got, want):
    bad = np.flatnonzero(got != want)
    if bad.size:
        fmt = FORMATS[name]
        lines = [f"{x[i]!r} ({np.float64(x[i]).view(np.uint64):#018x}): npegen "
                 f"{fmt.describe(int(got[i]))}, oracle {fmt.describe(int(want[i]))}"
                 for i in bad[:8]]
        raise AssertionError(f"{bad.size} of {len(x)} {name} codes differ:\n" + "\n".join(lines))


def negative_nan(x):
    return np.isnan(x) & np.signbit(x)


def expected_like_ml(name, x, want):
    """ml_dtypes' codes, except the one documented difference: fp4 (no NaN) maps every NaN
    to 0x8, where ml_dtypes maps a negative NaN to 0x0."""
    if name == "fp4_e2m1":
        assert np.all(want[negative_nan(x)] == 0x0)   # still ml_dtypes' behaviour?
        want = np.where(np.isnan(x), 0x8, want).astype(want.dtype)
    return want


# ------------------------------------------------------------------------------------
# ml_dtypes
# ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(ML_TYPES))
def test_ml_dtypes_decode_every_code(name):
    fmt = FORMATS[name]
    codes = fmt.all_codes()
    ours, theirs = fmt.decode(codes), ml_decode(name, codes)
    assert np.array_equal(np.isnan(ours), np.isnan(theirs))
    ok = ~np.isnan(theirs)
    assert np.array_equal(ours[ok], theirs[ok])
    assert np.array_equal(np.signbit(ours[ok]), np.signbit(theirs[ok]))   # -0.0 too


def _grid_inputs(name):
    """Every representable value, every midpoint between neighbours, their float64 and
    float32 neighbours, both signs, and the specials."""
    values = FORMATS[name].decode(FORMATS[name].all_codes())
    finite = np.unique(np.abs(values[np.isfinite(values)]))
    mids = (finite[1:] + finite[:-1]) / 2
    top = finite[-1]
    beyond = [top * 1.0625, top * 1.125, top * 1.5, top * 2, top * 1e3, finite[1] / 2,
              finite[1] / 4, finite[1] * 0.75]
    pos = np.concatenate([finite, mids, beyond])
    pos = np.concatenate([
        pos,
        np.nextafter(pos, np.inf), np.nextafter(pos, 0),
        np.nextafter(pos.astype(np.float32), np.float32(np.inf)).astype(np.float64),
        np.nextafter(pos.astype(np.float32), np.float32(0)).astype(np.float64),
    ])
    specials = [0.0, np.inf, np.nan, 1e300, 5e-324, 1e-45, 3.5e38, 3.4028234663852886e38]
    return np.concatenate([pos, -pos, specials, np.negative(specials)])


def round_to_odd_float32(x):
    """float64 -> float32 rounded to odd (truncate toward zero, set the LSB if inexact).

    ml_dtypes fed these values rounds once correctly into formats of at most 22
    significand bits, so it gives the single rounding npegen implements.
    """
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        f32 = x.astype(np.float32)
        back = f32.astype(np.float64)
        bits = f32.view(np.uint32)
        bits = np.where(np.abs(back) > np.abs(x), bits - 1, bits)
        bits = np.where((back != x) & np.isfinite(back), bits | 1, bits).astype(np.uint32)
        odd = bits.view(np.float32).astype(np.float64)
    # past float32's range (or nan/inf) float32's own overflow is already right
    return np.where(np.isfinite(x) & (np.abs(x) < 3.4e38), odd, x)


def check_against_ml_dtypes(name, x):
    fmt = FORMATS[name]
    want = expected_like_ml(name, x, ml_encode(name, x))
    # ml_dtypes goes float64 -> float32 -> format; via_float32 reproduces that exactly.
    assert_codes_equal(name, x, fmt.encode(x, via_float32=True), want)
    # The default rounds once. It agrees wherever the float64 is exactly a float32 ...
    with np.errstate(over="ignore", invalid="ignore"):
        is_f32 = (x.astype(np.float32).astype(np.float64) == x) | ~np.isfinite(x)
    got = fmt.encode(x)
    assert_codes_equal(name, x[is_f32], got[is_f32], want[is_f32])
    # ... and with ml_dtypes of the float32 rounded to odd everywhere else.
    rest = x[~is_f32]
    single = expected_like_ml(name, rest, ml_encode(name, round_to_odd_float32(rest)))
    assert_codes_equal(name, rest, got[~is_f32], single)
    return int((~is_f32).sum())


def _grid_inputs(name):
    """Every representable value, every midpoint between neighbours, their float64 and
    float32 neighbours, both signs, and the specials."""
    values = FORMATS[name].decode(FORMATS[name].all_codes())
    finite = np.unique(np.abs(values[np.isfinite(values)]))
    mids = (finite[1:] + finite[:-1]) / 2
    top = finite[-1]
    beyond = [top * 1.0625, top * 1.125, top * 1.5, top * 2, top * 1e3, finite[1] / 2,
              finite[1] / 4, finite[1] * 0.75]
    pos = np.concatenate([finite, mids, beyond])
    with np.errstate(over="ignore"):
        pos32 = pos.astype(np.float32)
        pos = np.concatenate([
            pos,
            np.nextafter(pos, np.inf), np.nextafter(pos, 0),
            np.nextafter(pos32, np.float32(np.inf)).astype(np.float64),
            np.nextafter(pos32, np.float32(0)).astype(np.float64),
        ])
    specials = [0.0, np.inf, np.nan, 1e300, 5e-324, 1e-45, 3.5e38, 3.4028234663852886e38]
    return np.concatenate([pos, -pos, specials, np.negative(specials)])


@pytest.mark.parametrize("name", list(ML_TYPES))
def test_ml_dtypes_encode_grid_and_midpoints(name):
    assert check_against_ml_dtypes(name, _grid_inputs(name)) > 0


def _random_inputs(name, rng, count):
    """Random float64s: raw bit patterns (NaN payloads, infs, subnormals, huge and tiny
    exponents) and values around the format's range, both signs, plus -0.0."""
    fmt = FORMATS[name]
    quarter = count // 4
    raw64 = rng.integers(0, 2 ** 64, quarter, dtype=np.uint64, endpoint=False).view(np.float64)
    raw32 = rng.integers(0, 2 ** 32, quarter, dtype=np.uint64).astype(np.uint32).view(np.float32)
    with np.errstate(invalid="ignore"):
        raw32 = raw32.astype(np.float64)
    span = np.ldexp(rng.uniform(1, 2, quarter),
                    rng.integers(fmt.min_exponent - 3, fmt.max_exponent + 3, quarter))
    near = np.ldexp(rng.uniform(1, 2, count - 3 * quarter),
                    rng.integers(-3, 4, count - 3 * quarter))
    x = np.concatenate([raw64, raw32, span, near])
    x = np.where(rng.random(x.size) < 0.5, -x, x)          # negation flips NaN signs too
    return np.concatenate([x, [-0.0, 0.0, np.inf, -np.inf, np.nan, -np.nan]])


@pytest.mark.parametrize("name", list(ML_TYPES))
def test_ml_dtypes_encode_random(name):
    x = _random_inputs(name, np.random.default_rng(SEED), 120_000)
    assert check_against_ml_dtypes(name, x) > 10_000


def test_ml_dtypes_behaviours_documented_in_the_brief():
    """The special cases the module docstring relies on, checked on this ml_dtypes."""
    x = [1e9, -1e9, np.inf, np.nan, -0.0]
    assert ml_encode("fp8_e4m3", x).tolist() == [0x7F, 0xFF, 0x7F, 0x7F, 0x80]
    assert ml_encode("fp8_e5m2", x).tolist() == [0x7C, 0xFC, 0x7C, 0x7E, 0x80]
    assert ml_encode("fp4_e2m1", x).tolist() == [0x7, 0xF, 0x7, 0x8, 0x8]
    assert ml_encode("bf16", [np.nan, -np.nan]).tolist() == [0x7FC0, 0xFFC0]
    for name in ML_TYPES:
        assert np.array_equal(FORMATS[name].encode(x), expected_like_ml(name, np.array(x),
                                                                        ml_encode(name, x)))
    # ml_dtypes rounds twice from float64 (through float32); npegen once.
    assert ml_encode("bf16", [1 + 2.0 ** -8 + 2.0 ** -30])[0] == 0x3F80
    assert FORMATS["bf16"].encode(1 + 2.0 ** -8 + 2.0 ** -30) == 0x3F81


# ------------------------------------------------------------------------------------
# softposit
# ------------------------------------------------------------------------------------
def _sp_values(make, codes):
    out = []
    for c in codes:
        t = make()
        t.v = int(c)
        out.append(t)
    return out


def two_sum_round_to_odd(a, b):
    """a + b as a float64 rounded to odd: exact sum's RNE into any format with at most
    51 significand bits (posit16 sums can need more than float64's 53 bits)."""
    s = a + b
    bb = s - a
    err = (a - (s - bb)) + (b - bb)                           # exact: a + b = s + err
    bits = s.view(np.int64)
    lsb_even = (bits & 1) == 0
    # move s one ulp toward the exact sum when it is inexact and even
    toward = np.nextafter(s, np.where(err > 0, np.inf, -np.inf))
    return np.where((err != 0) & lsb_even, toward, s)


def test_softposit_posit8_0_codes():
    fmt = FORMATS["posit8_0"]
    codes = fmt.all_codes()
    values = fmt.decode(codes)
    theirs = np.array([sp.convertP8ToDouble(t) for t in _sp_values(sp.posit8_t, codes)])
    theirs[0x80] = np.nan                                     # softposit's NaR reads as inf/nan
    assert np.array_equal(values, theirs, equal_nan=True)
    xs = np.concatenate([values[np.isfinite(values)], (values[1:-1] + values[2:]) / 2,
                         np.random.default_rng(SEED).standard_normal(20_000) * 8,
                         [1e-30, -1e-30, 1e30, -1e30, np.nan, 0.0, -0.0]])
    want = [sp.convertDoubleToP8(float(x)).v for x in xs]
    assert_codes_equal("posit8_0", xs, fmt.encode(xs), np.array(want))


def _all_pairs(n_codes):
    a, b = np.meshgrid(np.arange(n_codes), np.arange(n_codes), indexing="ij")
    return a.ravel(), b.ravel()


def _check_products_and_sums(name, a, b, sp_pairs, exact_sums=True):
    """softposit's a*b and a+b for code pairs (a, b) against decode -> float64 -> encode."""
    fmt = FORMATS[name] if name in FORMATS else Posit(*map(int, name[5:].split("_")))
    va, vb = fmt.decode(a), fmt.decode(b)
    prod = fmt.encode(va * vb)                                  # float64 products are exact
    total = fmt.encode(va + vb if exact_sums else two_sum_round_to_odd(va, vb))
    want_prod, want_sum = sp_pairs(a, b)
    for what, got, want in (("*", prod, want_prod), ("+", total, want_sum)):
        bad = np.flatnonzero(got != want)
        assert not bad.size, "\n".join(
            f"{fmt.describe(int(a[i]))} {what} {fmt.describe(int(b[i]))}: npegen "
            f"{fmt.describe(int(got[i]))}, softposit {fmt.describe(int(want[i]))}"
            for i in bad[:8]) + f"\n({bad.size} of {a.size} differ)"


def test_softposit_posit8_0_all_products_and_sums():
    a, b = _all_pairs(256)
    ts = _sp_values(sp.posit8_t, range(256))

    def pairs(a, b):
        mul = [sp.p8_mul(ts[x], ts[y]).v for x, y in zip(a.tolist(), b.tolist())]
        add = [sp.p8_add(ts[x], ts[y]).v for x, y in zip(a.tolist(), b.tolist())]
        return np.array(mul), np.array(add)

    _check_products_and_sums("posit8_0", a, b, pairs)


def test_softposit_posit16_1_codes_and_random_arithmetic():
    fmt = FORMATS["posit16_1"]
    codes = fmt.all_codes()
    ts = _sp_values(sp.posit16_t, codes)
    theirs = np.array([sp.convertP16ToDouble(t) for t in ts])
    theirs[0x8000] = np.nan
    assert np.array_equal(fmt.decode(codes), theirs, equal_nan=True)

    rng = np.random.default_rng(SEED + 16)
    a = rng.integers(0, 1 << 16, 110_000)
    b = rng.integers(0, 1 << 16, 110_000)
    a[:2000] = rng.integers(0x3800, 0x4800, 2000)            # near 1: long fractions
    b[:2000] = rng.integers(0x3800, 0x4800, 2000)

    def pairs(a, b):
        mul = [sp.p16_mul(ts[x], ts[y]).v for x, y in zip(a.tolist(), b.tolist())]
        add = [sp.p16_add(ts[x], ts[y]).v for x, y in zip(a.tolist(), b.tolist())]
        return np.array(mul), np.array(add)

    _check_products_and_sums("posit16_1", a, b, pairs, exact_sums=False)

    xs = np.concatenate([np.ldexp(rng.uniform(1, 2, 30_000), rng.integers(-32, 32, 30_000)),
                         rng.standard_normal(10_000)]) * rng.choice([-1.0, 1.0], 40_000)
    want = np.array([sp.convertDoubleToP16(float(x)).v for x in xs])
    assert_codes_equal("posit16_1", xs, fmt.encode(xs), want)


def _px2(n):
    """softposit's posit_2_t (es = 2, n bits, code left-aligned in 32 bits)."""
    shift = 32 - n

    def make(code):
        t = sp.posit_2_t()
        t.v = int(code) << shift
        return t

    return make, shift


@pytest.mark.parametrize("n", [8, 16])
def test_softposit_es2_posits(n):
    name = f"posit{n}_2"
    fmt = FORMATS[name]
    make, shift = _px2(n)
    rng = np.random.default_rng(SEED + n)
    codes = fmt.all_codes()
    ts = [make(c) for c in codes]
    theirs = np.array([sp.convertPX2ToDouble(t) for t in ts])
    theirs[1 << (n - 1)] = np.nan
    assert np.array_equal(fmt.decode(codes), theirs, equal_nan=True)

    if n == 8:
        a, b = _all_pairs(256)                                   # every pair
    else:
        a = rng.integers(0, 1 << n, 100_000)
        b = rng.integers(0, 1 << n, 100_000)

    def pairs(a, b):
        mul = [sp.pX2_mul(ts[x], ts[y], n).v >> shift for x, y in zip(a.tolist(), b.tolist())]
        add = [sp.pX2_add(ts[x], ts[y], n).v >> shift for x, y in zip(a.tolist(), b.tolist())]
        return np.array(mul), np.array(add)

    _check_products_and_sums(name, a, b, pairs, exact_sums=False)

    scale = (n - 2) * 4
    values = fmt.decode(codes)
    xs = np.concatenate([
        np.ldexp(rng.uniform(1, 2, 20_000), rng.integers(-scale - 3, scale + 3, 20_000)),
        values[np.isfinite(values)],
    ])
    xs *= rng.choice([-1.0, 1.0], xs.size)
    want = np.array([sp.convertDoubleToPX2(float(x), n).v >> shift for x in xs])
    assert_codes_equal(name, xs, fmt.encode(xs), want)


def test_softposit_posit32_2_random():
    fmt = Posit(32, 2)
    rng = np.random.default_rng(SEED + 32)
    codes = np.concatenate([rng.integers(0, 1 << 32, 60_000, dtype=np.uint64),
                            [0, 1, 2, 0x7FFFFFFF, 0x80000001, 0xFFFFFFFF]]).astype(np.uint32)
    ts = _sp_values(sp.posit32_t, codes)
    theirs = np.array([sp.convertP32ToDouble(t) for t in ts])
    theirs[codes == 0x80000000] = np.nan
    assert np.array_equal(fmt.decode(codes), theirs, equal_nan=True)

    values = fmt.decode(codes)
    xs = np.concatenate([
        np.ldexp(rng.uniform(1, 2, 40_000), rng.integers(-125, 125, 40_000)),
        values * (1 + rng.uniform(-2.0 ** -26, 2.0 ** -26, values.size)),   # near codes
        values, [1e-300, 1e300, 0.0, -0.0],
    ]) * np.concatenate([rng.choice([-1.0, 1.0], 40_000 + 2 * values.size), np.ones(4)])
    want = np.array([sp.convertDoubleToP32(float(x)).v for x in xs])
    bad = np.flatnonzero(fmt.encode(xs) != want)
    assert not bad.size, "\n".join(
        f"{xs[i]!r}: npegen {fmt.describe(int(fmt.encode(xs[i])))}, softposit "
        f"{fmt.describe(int(want[i]))}" for i in bad[:8])
