"""Bit-exact golden models of npegen's arithmetic.

Every RTL test compares against these functions, bit for bit. They implement the MAC
semantics of ARCHITECTURE.md ("MAC semantics") with NumPy for the bulk of the work and
Python integers wherever an accumulator is wider than 63 bits:

* a product of two codes is **exact** (a float64 product of two decoded values is exact
  as long as the two significands together have at most 53 bits, which holds for every
  format of up to 26 bits; wider formats take an integer path);
* accumulation is **exact** in a two's-complement fixed-point accumulator described by an
  :class:`~generators.formats.AccumulatorGeometry` (LSB weight, span, guard bits). The
  accumulator adds one *step* at a time — the products of one operand word, i.e. all the
  lanes that the hardware adds in the same cycle — and **saturates**, sticky: from the
  first step whose sum leaves ``[-2**(width-1), 2**(width-1) - 1]`` LSBs, the result is
  the bound on that side and the ``saturated`` flag is set, whatever later steps add
  (see :class:`generators.rtl.accumulator.PartitionedAccumulator` for why);
* NaN/NaR inputs, ``inf * 0`` and ``+inf + -inf`` set the sticky ``nan`` flag; infinities
  (fp8_e5m2, bf16) are tracked as sticky ``pos_inf``/``neg_inf`` flags beside the
  accumulator, which cannot hold them;
* the result is rounded **once**, when the accumulator is read out, into any output
  format: round to nearest even, with that format's own saturation / NaN rules
  (``out_fmt.encode``). The exact accumulator value is first reduced to a float64 with
  *round to odd*, which preserves correct round-to-nearest-even into any format with at
  most 51 significand bits (every format here);
* an optional bias is preloaded into the accumulator before the first step (rounded to
  nearest even at the accumulator LSB and saturated — exact whenever the bias format's
  range lies inside the accumulator's, e.g. a bias in the input format); an optional
  ReLU maps every non-NaN result whose sign bit is set (including -0) to +0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from generators.formats import (AccumulatorGeometry, Format, accumulator_geometry,
                               fixed_to_float, get_format)

__all__ = [
    "AccumulatorFlags",
    "exact_products",
    "to_fixed",
    "accumulate",
    "round_to_format",
    "apply_relu",
    "dot",
    "matmul",
]


@dataclass(frozen=True)
class AccumulatorFlags:
    """Sticky flags of one accumulator, as the hardware reports them."""

    nan: bool = False
    pos_inf: bool = False
    neg_inf: bool = False
    saturated: bool = False


def _as_codes(fmt: Format, codes) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.dtype.kind not in "iu":
        raise TypeError(f"codes must be an integer array, not {codes.dtype}")
    if codes.size and (codes.min() < 0 or codes.max() >= (1 << fmt.bits)):
        raise ValueError(f"codes must be in 0..{(1 << fmt.bits) - 1} for {fmt.name}")
    return codes.astype(np.int64)


def exact_products(fmt_a, a_codes, fmt_b, b_codes):
    """Exact products of two code arrays (broadcast against each other).

    Returns
    -------
    products : ndarray of float64
        The exact product of the decoded values (NaN where a NaN/NaR is involved or for
        ``inf * 0``; ±inf for infinite operands).
    """
    fmt_a, fmt_b = get_format(fmt_a), get_format(fmt_b)
    if fmt_a.bits + fmt_b.bits > 53:
        raise NotImplementedError(
            f"exact products of {fmt_a.name} x {fmt_b.name} need more than float64's 53 "
            f"significand bits; formats of up to 26 bits are supported")
    a = fmt_a.decode(_as_codes(fmt_a, a_codes))
    b = fmt_b.decode(_as_codes(fmt_b, b_codes))
    with np.errstate(invalid="ignore", over="ignore"):
        return a * b


def to_fixed(values, lsb_exponent: int) -> np.ndarray:
    """Exact finite float64 values as integer multiples of ``2**lsb_exponent``.

    Returns an int64 array when every value fits in 62 bits, else an object array of
    Python ints. Raises ``ValueError`` if a value is not a multiple of the LSB (it would
    be a bug in the accumulator geometry, never a rounding to hide).
    """
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError("to_fixed takes finite values only")
    mant, exp = np.frexp(values)                   # values = mant * 2**exp, 0.5 <= |mant| < 1
    mant_int = (mant * 2.0**53).astype(np.int64)    # exact: 53-bit significand
    shift = exp.astype(np.int64) - 53 - lsb_exponent
    zero = mant_int == 0
    # drop trailing zero bits where the shift is negative
    neg = (shift < 0) & ~zero
    if np.any(neg):
        k = -shift[neg]
        low = mant_int[neg] & ((np.int64(1) << np.minimum(k, 62)) - 1)
        if np.any((low != 0) | (k > 62)):
            raise ValueError(f"a value is not a multiple of 2**{lsb_exponent}")
    fits = (~zero & (shift >= 0) & (shift + 54 <= 62)) | neg
    if np.all(fits | zero):
        out = np.zeros(values.shape, dtype=np.int64)
        pos = (shift >= 0) & ~zero
        out[pos] = mant_int[pos] << shift[pos]
        out[neg] = mant_int[neg] >> -shift[neg]
        return out
    out = np.empty(values.shape, dtype=object)
    for idx in np.ndindex(values.shape):
        m, s = int(mant_int[idx]), int(shift[idx])
        out[idx] = 0 if m == 0 else (m << s if s >= 0 else m >> -s)
    return out


def accumulate(step_sums, geometry: AccumulatorGeometry, *, initial=0):
    """Saturating accumulation of per-step exact sums along the last axis.

    Parameters
    ----------
    step_sums : array of int (int64 or object), shape ``(..., steps)``
        Exact sum of each step's products in accumulator LSBs.
    geometry : AccumulatorGeometry
    initial : int or array of int
        Accumulator contents before the first step (e.g. a preloaded bias).

    Returns
    -------
    values : ndarray, shape ``(...)``
        int64 when every value fits, else object (Python ints).
    saturated : ndarray of bool
    """
    lo, hi = -(1 << (geometry.width - 1)), (1 << (geometry.width - 1)) - 1
    step_sums = np.asarray(step_sums)
    lead, steps = step_sums.shape[:-1], step_sums.shape[-1]
    init = np.asarray(initial)
    if init.dtype.kind not in "iuO":
        raise TypeError(f"initial must be integer, not {init.dtype}")
    init = np.broadcast_to(init, lead)

    def magnitude(a):
        return max((abs(int(a.min())), abs(int(a.max())))) if a.size else 0

    # Prefix sums answer "did this accumulator ever leave its range?" for all outputs at
    # once; a row that did ends at the bound on the side of its first excursion.
    bound = magnitude(init) + magnitude(step_sums) * steps
    if step_sums.dtype != object and init.dtype != object and bound < (1 << 62):
        dtype = np.int64
    else:
        dtype = object
    start = init[..., None].astype(dtype)
    prefix = np.concatenate([start, np.cumsum(step_sums.astype(dtype), axis=-1) + start], axis=-1)
    values = prefix[..., -1].copy()
    if bound <= hi:
        return values, np.zeros(lead, dtype=bool)
    outside = (prefix < lo) | (prefix > hi)
    saturated = outside.any(axis=-1)
    if np.any(saturated):
        first = np.take_along_axis(prefix, np.argmax(outside, axis=-1)[..., None], axis=-1)[..., 0]
        values = values.astype(object)
        values[saturated] = np.where(first[saturated] > hi, hi, lo)
    return values, saturated


def round_to_format(values, lsb_exponent: int, out_fmt, *, nan=False, pos_inf=False,
                    neg_inf=False) -> np.ndarray:
    """Round exact accumulator values (integers of weight ``2**lsb_exponent``) once.

    The flags (scalars or arrays broadcast against ``values``) override the value: NaN
    wins, then +inf together with -inf is NaN, then a single infinity. Returns codes.
    """
    out_fmt = get_format(out_fmt)
    values = np.asarray(values)
    if values.dtype != object and values.size and np.abs(values).max() < (1 << 53):
        x = np.ldexp(values.astype(np.float64), lsb_exponent)   # exact: < 53 bits
    else:
        x = np.empty(values.shape, dtype=np.float64)
        for idx in np.ndindex(values.shape):
            x[idx] = fixed_to_float(int(values[idx]), lsb_exponent)
    nan, pos_inf, neg_inf = (np.broadcast_to(np.asarray(f, dtype=bool), x.shape)
                             for f in (nan, pos_inf, neg_inf))
    x = np.where(pos_inf, np.inf, x)
    x = np.where(neg_inf, -np.inf, x)
    x = np.where(nan | (pos_inf & neg_inf), np.nan, x)
    return out_fmt.encode(x)


def apply_relu(out_fmt, codes) -> np.ndarray:
    """ReLU on output codes: a non-NaN code with its sign bit set (also -0) becomes +0."""
    out_fmt = get_format(out_fmt)
    codes = np.asarray(codes)
    sign = (codes.astype(np.int64) >> (out_fmt.bits - 1)) & 1
    negative = (sign == 1) & ~(out_fmt.is_special(codes) & np.isnan(out_fmt.decode(codes)))
    zero = out_fmt.encode(np.zeros(1))[0]
    return np.where(negative, zero, codes).astype(codes.dtype)


def _bias_to_fixed(bias_fmt: Format, bias_codes, geometry: AccumulatorGeometry):
    """Bias codes -> (accumulator integers, nan, +inf, -inf); RNE at the accumulator LSB."""
    x = bias_fmt.decode(_as_codes(bias_fmt, bias_codes))
    special = ~np.isfinite(x)
    finite = np.where(special, 0.0, x)
    scaled = np.ldexp(finite, -geometry.lsb_exponent)
    # np.rint is round-half-even; it is exact here because scaled is a float64 whose
    # fractional part (if any) is represented exactly.
    ints = to_fixed(np.rint(scaled), 0)
    return ints, np.isnan(x), x == np.inf, x == -np.inf


def dot(fmt_a, a_codes, fmt_b, b_codes, out_fmt, *, lanes: int = 1,
        guard_bits: Optional[int] = None, geometry: Optional[AccumulatorGeometry] = None,
        bias_fmt=None, bias=None, relu: bool = False):
    """Fused dot product(s) along the last axis, rounded once into ``out_fmt``.

    ``lanes`` products form one accumulation step (the lanes of one operand word in
    dot-product mode); a last partial step is padded with zero products.

    Returns
    -------
    codes : ndarray of ``out_fmt.code_dtype``, shape ``a_codes.shape[:-1]`` (broadcast)
    flags : dict of bool arrays ``nan``, ``pos_inf``, ``neg_inf``, ``saturated``
    """
    fmt_a, fmt_b, out_fmt = get_format(fmt_a), get_format(fmt_b), get_format(out_fmt)
    if lanes < 1:
        raise ValueError(f"lanes must be at least 1, not {lanes}")
    if geometry is None:
        geometry = accumulator_geometry(fmt_a, fmt_b, guard_bits=guard_bits)
    prod = exact_products(fmt_a, a_codes, fmt_b, b_codes)
    nan = np.any(np.isnan(prod), axis=-1)
    pos_inf = np.any(prod == np.inf, axis=-1)
    neg_inf = np.any(prod == -np.inf, axis=-1)
    finite = np.where(np.isfinite(prod), prod, 0.0)
    k = finite.shape[-1]
    steps = -(-k // lanes) if k else 0
    pad = steps * lanes - k
    if pad:
        finite = np.concatenate([finite, np.zeros(finite.shape[:-1] + (pad,))], axis=-1)
    fixed = to_fixed(finite, geometry.lsb_exponent)
    if fixed.dtype != object and fixed.size and int(np.abs(fixed).max()) * lanes >= (1 << 62):
        fixed = fixed.astype(object)    # the step sum would overflow int64
    fixed = fixed.reshape(fixed.shape[:-1] + (steps, lanes)).sum(axis=-1)
    initial = 0
    if bias is not None:
        bias_fmt = out_fmt if bias_fmt is None else get_format(bias_fmt)
        initial, b_nan, b_pinf, b_ninf = _bias_to_fixed(bias_fmt, bias, geometry)
        initial = np.broadcast_to(initial, nan.shape)
        nan, pos_inf, neg_inf = nan | b_nan, pos_inf | b_pinf, neg_inf | b_ninf
    values, saturated = accumulate(fixed, geometry, initial=initial)
    codes = round_to_format(values, geometry.lsb_exponent, out_fmt,
                            nan=nan, pos_inf=pos_inf, neg_inf=neg_inf)
    if relu:
        codes = apply_relu(out_fmt, codes)
    flags = {"nan": nan | (pos_inf & neg_inf), "pos_inf": pos_inf, "neg_inf": neg_inf,
             "saturated": saturated}
    return codes, flags


def matmul(fmt_a, a_codes, fmt_b, b_codes, out_fmt, *, lanes: int = 1,
           guard_bits: Optional[int] = None, geometry: Optional[AccumulatorGeometry] = None,
           bias_fmt=None, bias=None, relu: bool = False):
    """C = A·B (+ bias per column, optional ReLU) on codes; every C[m, n] a fused dot product.

    ``a_codes`` is M×K, ``b_codes`` K×N, ``bias`` (optional) has N codes in ``bias_fmt``
    (default: ``out_fmt``). Returns ``(codes M×N, flags)`` as :func:`dot` does.
    """
    a = np.asarray(a_codes)
    b = np.asarray(b_codes)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul needs A of shape M×K and B of shape K×N, "
                         f"not {a.shape} and {b.shape}")
    if bias is not None:
        bias = np.asarray(bias)
        if bias.shape != (b.shape[1],):
            raise ValueError(f"bias must have N = {b.shape[1]} codes, not shape {bias.shape}")
        bias = np.broadcast_to(bias[None, :], (a.shape[0], b.shape[1]))
    return dot(fmt_a, a[:, None, :], fmt_b, b.T[None, :, :], out_fmt, lanes=lanes,
               guard_bits=guard_bits, geometry=geometry, bias_fmt=bias_fmt, bias=bias,
               relu=relu)
