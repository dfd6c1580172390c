"""The golden models (testbenches.golden) against external oracles and exact arithmetic.

softposit's quires give fused dot products with a single rounding for ⟨8,0⟩ and ⟨16,1⟩;
for other formats the reference is exact rational arithmetic (fractions) with an
independent brute-force rounding (nearest representable value, ties to the even code).
"""

from fractions import Fraction

import numpy as np
import pytest
import softposit as sp

from generators.formats import AccumulatorGeometry, accumulator_geometry, get_format
from testbenches import golden

P8, P16 = get_format("posit8_0"), get_format("posit16_1")


def softposit_dot(kind, a_codes, b_codes):
    q = sp.quire8() if kind == 8 else sp.quire16()
    mk = sp.posit8 if kind == 8 else sp.posit16
    for x, y in zip(a_codes, b_codes):
        q.qma(mk(bits=int(x)), mk(bits=int(y)))
    return q.toPosit().v.v


@pytest.mark.parametrize("fmt,kind,terms,count", [(P8, 8, 40, 400), (P16, 16, 200, 300)])
def test_fused_dot_against_softposit_quire(fmt, kind, terms, count):
    rng = np.random.default_rng(kind)
    a = rng.integers(0, 1 << fmt.bits, size=(count, terms))
    b = rng.integers(0, 1 << fmt.bits, size=(count, terms))
    nar = 1 << (fmt.bits - 1)
    a[a == nar] = 0   # NaR is checked separately; softposit's quire keeps it sticky too
    b[b == nar] = 0
    # the standard quire: n-1 carry bits (softposit's quire8 is 32 bits, quire16 128)
    got, flags = golden.dot(fmt, a, fmt, b, fmt, guard_bits=fmt.bits - 1)
    assert not flags["saturated"].any()
    want = np.array([softposit_dot(kind, a[i], b[i]) for i in range(count)])
    bad = np.nonzero(got != want)[0]
    assert bad.size == 0, f"row {bad[0]}: golden {got[bad[0]]:#x}, softposit {want[bad[0]]:#x}"


def test_every_posit8_product_rounded_once_equals_softposit():
    codes = np.arange(256)
    a, b = np.meshgrid(codes, codes, indexing="ij")
    got, _ = golden.dot(P8, a.reshape(-1, 1), P8, b.reshape(-1, 1), P8)
    want = np.array([(sp.posit8(bits=int(x)) * sp.posit8(bits=int(y))).v.v
                     for x, y in zip(a.ravel(), b.ravel())])
    assert np.array_equal(got, want)


def exact_value(fmt, code):
    x = fmt.decode(np.array([code]))[0]
    return None if not np.isfinite(x) else Fraction(x)


_TABLES = {}


def brute_force_round(fmt, value: Fraction) -> int:
    """Nearest finite code, ties to the even code; a zero keeps the exact value's sign.

    Independent of the formats' encoders: it searches the decoded values of all codes
    (float64 only narrows the search to a few neighbours; they are compared exactly).
    """
    if fmt.name not in _TABLES:
        codes = fmt.all_codes().astype(np.int64)
        vals = fmt.decode(codes)
        keep = np.isfinite(vals)
        order = np.argsort(vals[keep], kind="stable")
        _TABLES[fmt.name] = (codes[keep][order], vals[keep][order])
    codes, vals = _TABLES[fmt.name]
    i = int(np.searchsorted(vals, float(value)))
    best, best_d = None, None
    for c, v in zip(codes[max(0, i - 3):i + 3].tolist(), vals[max(0, i - 3):i + 3].tolist()):
        if v == 0 and bool(np.signbit(v)) != (value < 0) and fmt.kind == "float":
            continue            # a zero result keeps the sign of the exact value (IEEE)
        d = abs(Fraction(v) - value)
        if best_d is None or d < best_d or (d == best_d and c % 2 == 0 and best % 2 == 1):
            best, best_d = c, d
    return best


@pytest.mark.parametrize("fmt_name,out_name", [("fp8_e4m3", "fp8_e4m3"), ("fp4_e2m1", "fp8_e5m2"),
                                               ("int8", "bf16"), ("posit4_1", "bf16"), ("posit8_0", "fp8_e5m2"),
                                               ("bf16", "bf16")])
def test_dot_against_exact_fractions(fmt_name, out_name):
    fmt, out = get_format(fmt_name), get_format(out_name)
    rng = np.random.default_rng(len(fmt_name) + len(out_name))
    finite = np.array([c for c in range(1 << fmt.bits)
                       if np.isfinite(fmt.decode(np.array([c]))[0])])
    # keep results in the output's range: small operands for narrow outputs
    scale = 8 if out.max_value < 1e4 else len(finite)
    small = finite[np.argsort(np.abs(fmt.decode(finite)))][: max(4, len(finite) // scale)]
    for trial in range(30):
        k = int(rng.integers(1, 12))
        a = rng.choice(small, size=k)
        b = rng.choice(small, size=k)
        exact = sum(exact_value(fmt, x) * exact_value(fmt, y) for x, y in zip(a, b))
        if abs(exact) > Fraction(out.max_value):
            continue
        got, flags = golden.dot(fmt, a, fmt, b, out)
        if exact == 0:
            assert out.decode(np.array([int(got)]))[0] == 0
            continue
        assert int(got) == brute_force_round(out, exact), \
            f"{[fmt.describe(int(x)) for x in a]} . {[fmt.describe(int(y)) for y in b]} = {exact}"


def test_accumulator_saturation_is_sticky():
    geo = AccumulatorGeometry(lsb_exponent=0, span_bits=4, guard_bits=0, width=5)  # -16..15
    values, sat = golden.accumulate(np.array([[10, 10, -30, 5], [-10, -10, 30, 1]]), geo)
    # 10 -> 20 leaves the range: 15 from then on, although 20 - 30 + 5 = -5 would fit
    assert values.tolist() == [15, -16] and sat.tolist() == [True, True]
    values, sat = golden.accumulate(np.array([[10, 5, -30]]), geo)
    assert values.tolist() == [-15] and sat.tolist() == [False]
    values, sat = golden.accumulate(np.array([[1, 2]]), geo, initial=np.array([40]))
    assert values.tolist() == [15] and sat.tolist() == [True]
    values, sat = golden.accumulate(np.array([[1, 2], [1, 2]]), geo, initial=np.array([-40, 3]))
    assert values.tolist() == [-16, 6] and sat.tolist() == [True, False]


def test_lanes_group_products_per_step():
    # with 2 lanes the clamp sees the sum of each pair: +12-12 never saturates
    geo = AccumulatorGeometry(lsb_exponent=-2, span_bits=4, guard_bits=0, width=5)
    f = get_format("int4")
    a = f.encode(np.array([[4.0, -4.0]]))
    b = f.encode(np.array([[3.0, 3.0]]))
    _, per_product = golden.dot(f, a, f, b, "int8", lanes=1, geometry=geo)
    _, per_pair = golden.dot(f, a, f, b, "int8", lanes=2, geometry=geo)
    assert per_product["saturated"].item() and not per_pair["saturated"].item()


def test_nan_inf_rules():
    bf = get_format("bf16")
    inf, one, zero, nan = bf.encode(np.array([np.inf, 1.0, 0.0, np.nan]))
    code, flags = golden.dot(bf, [inf, one], bf, [one, one], bf)
    assert bf.decode(np.array([code]))[0] == np.inf and flags["pos_inf"]
    code, flags = golden.dot(bf, [inf, inf], bf, [one, bf.encode(np.array([-1.0]))[0]], bf)
    assert np.isnan(bf.decode(np.array([code]))[0]) and flags["nan"]
    code, flags = golden.dot(bf, [inf], bf, [zero], "posit8_0")
    assert code == 0x80 and flags["nan"]                      # inf * 0 -> NaR
    code, _ = golden.dot(P8, [0x80, 0x40], P8, [0x40, 0x40], "fp4_e2m1")
    assert code == 0x8                                         # NaN into fp4: 100…0
    code, _ = golden.dot(bf, [inf], bf, [one], "fp4_e2m1")
    assert code == 0x7                                         # +inf saturates to 6


def test_bias_and_relu():
    f = get_format("posit8_0")
    A = f.encode(np.array([[1.0, 2.0], [-1.0, 0.5]]))
    B = f.encode(np.array([[1.0, -1.0], [1.0, 2.0]]))
    bias = f.encode(np.array([0.5, -4.0]))
    codes, _ = golden.matmul(f, A, f, B, f, bias=bias)
    assert np.array_equal(f.decode(codes), np.array([[3.5, -1.0], [0.0, -2.0]]))
    codes, _ = golden.matmul(f, A, f, B, f, bias=bias, relu=True)
    assert np.array_equal(f.decode(codes), np.array([[3.5, 0.0], [0.0, 0.0]]))
    # relu turns -0 into +0 for minifloats and leaves NaN alone
    fp = get_format("fp8_e4m3")
    neg0, nan = fp.encode(np.array([-0.0, np.nan]))
    assert golden.apply_relu(fp, np.array([neg0, nan])).tolist() == [0, int(nan)]


def test_matmul_shapes_and_errors():
    f = get_format("int8")
    rng = np.random.default_rng(0)
    A = rng.integers(0, 256, size=(3, 5))
    B = rng.integers(0, 256, size=(5, 4))
    codes, _ = golden.matmul(f, A, f, B, "int8")
    assert codes.shape == (3, 4)
    exact = f.decode(A) @ f.decode(B)
    assert np.array_equal(f.decode(codes), np.clip(exact, -128, 127))
    with pytest.raises(ValueError, match="M×K and B of shape K×N"):
        golden.matmul(f, A, f, A, "int8")
    with pytest.raises(ValueError, match="bias must have N = 4 codes"):
        golden.matmul(f, A, f, B, "int8", bias=np.zeros(3, dtype=np.int64))


def test_large_matmul_is_vectorized():
    # 128³ in posit8_0: must run through the int64 fast path (well under a second)
    f = get_format("posit8_0")
    rng = np.random.default_rng(1)
    A = rng.integers(0, 256, size=(128, 128))
    B = rng.integers(0, 256, size=(128, 128))
    A[A == 0x80] = 0
    B[B == 0x80] = 0
    codes, flags = golden.matmul(f, A, f, B, "posit16_1", lanes=2)
    want = get_format("posit16_1").encode(f.decode(A) @ f.decode(B))  # float64 is exact here? check a few exactly
    geo = accumulator_geometry(f)
    for i, j in [(0, 0), (5, 7), (127, 127)]:
        exact = sum(Fraction(f.decode(np.array([A[i, k]]))[0]) * Fraction(f.decode(np.array([B[k, j]]))[0])
                    for k in range(128))
        assert int(codes[i, j]) == brute_force_round(get_format("posit16_1"), exact) or exact == 0


def test_round_to_format_keeps_sticky_bits_beyond_float64():
    # 1 + half an ulp of posit16_1 at 1.0 (ulp 2**-12) is a tie -> even (1.0); a single
    # set bit 2**-56 far below makes it round up. Needs more than 53 bits to see.
    p16 = get_format("posit16_1")
    one, one_up = p16.encode(np.array([1.0, 1.0 + 2.0**-12]))
    tie = (1 << 56) + (1 << 43)
    codes = golden.round_to_format(np.array([tie, tie + 1, -(tie + 1)], dtype=object), -56, p16)
    assert codes[0] == one and codes[1] == one_up
    assert p16.decode(codes[2:])[0] == -(1.0 + 2.0**-12)
