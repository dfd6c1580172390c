"""Number formats: the one definition every other part of npegen derives from.

Pure NumPy + stdlib (no Amaranth), so the driver can use it on a small board.

Formats
-------
* :class:`Posit` ⟨n, es⟩ — Posit Standard bit layout: sign, regime, ``es`` exponent bits,
  fraction; a negative posit is the two's complement of the whole pattern. One zero
  (code 0) and NaR = ``100…0``. Exponent bits cut off by a long regime count as zeros.
* :class:`Minifloat` — sign, exponent (with a bias), mantissa with subnormals. The
  ``special`` policy says what the all-ones exponent means: ``"ieee"`` (Inf and NaN, as
  fp8_e5m2 and bfloat16), ``"fn"`` (no Inf; only the all-ones exponent *and* mantissa is
  NaN, as fp8_e4m3fn), ``"none"`` (no Inf, no NaN, as fp4_e2m1).
* :class:`Integer` — two's complement.

Decoding (``decode``) is exact: every code of every format here is a float64.

Encoding policy (``encode``: float64 -> codes), round to nearest, ties to even
------------------------------------------------------------------------------
``encode`` rounds the float64 value **once**, exactly. That matters for the golden
model, which reduces a wide accumulator to float64 with round-to-odd and relies on a
single correct rounding after it.

* **Posits**: ties go to the even *bit pattern* (the boundary between two neighbouring
  n-bit codes is the value of the (n+1)-bit code between them, as softposit rounds).
  A nonzero finite value never becomes 0 or NaR: it saturates to ±minpos / ±maxpos.
  ±0 -> 0; NaN and ±inf -> NaR (``100…0``).
* **Minifloats**: as ml_dtypes (``float4_e2m1fn``, ``float8_e4m3fn``, ``float8_e5m2``,
  ``bfloat16``) defines them. Overflow: ``"ieee"`` -> ±Inf; ``"fn"`` -> NaN with the
  sign (so ±inf -> ±NaN too); ``"none"`` saturates to ±max (±inf too). Underflow gives
  ±0 with the sign kept. NaN keeps its sign for formats with NaN and is canonical
  (bf16 0x7fc0, fp8_e5m2 0x7e, fp8_e4m3 0x7f; payload dropped).
* **Integers**: round half to even, saturate to ``[-2**(b-1), 2**(b-1) - 1]``
  (±inf saturate).
* **NaN into a format without NaN** (fp4_e2m1, int8, int4): the "sign bit only" code
  ``100…0`` — the same pattern as posit NaR: fp4 0x8 (= -0), int8 0x80 (= -128),
  int4 0x8 (= -8). The sign of the NaN is ignored.

Differences from ml_dtypes' ``astype`` from float64 (measured with ml_dtypes 0.6.0):

1. ml_dtypes converts float64 through float32, so it rounds twice; e.g. bfloat16 of
   ``1 + 2**-8 + 2**-30`` is 1.0 there and ``1 + 2**-7`` here. For every float64 that is
   exactly a float32 (all codes, all midpoints, all float32 inputs) the two agree.
   ``Minifloat.encode(x, via_float32=True)`` reproduces ml_dtypes bit for bit.
2. ml_dtypes maps a *negative* NaN to fp4 code 0x0 (+0); npegen uses 0x8 for every NaN
   (x86 produces negative NaNs, e.g. ``inf - inf``).
"""

from __future__ import annotations

import abc
import dataclasses
import difflib
import functools
import math
import re

import numpy as np

__all__ = [
    "AccumulatorGeometry",
    "FORMATS",
    "Format",
    "Integer",
    "Minifloat",
    "Posit",
    "UnknownFormatError",
    "accumulator_geometry",
    "format_formats_table",
    "formats_table",
    "get_format",
    "lanes",
]

_SIGN64 = np.uint64(1 << 63)
_MAG64 = np.uint64((1 << 63) - 1)
_FRAC64 = np.uint64((1 << 52) - 1)
_CHUNK = 1 << 15     # elements per block in the streaming encoders (stays in L2)
_MAX_TABLE_BITS = 16  # decode tables and all_codes() only up to this width
_MAX_KEY_BITS = 22    # minifloat encode tables up to 2**22 entries (bf16 needs 2**21)


class UnknownFormatError(ValueError, KeyError):
    """A format name that is neither known nor a valid ``posit<n>_<es>``.

    Subclasses both ``ValueError`` and ``KeyError`` so either ``except`` catches it.
    """

    def __str__(self):  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def _check_int(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, not {value}")
    return int(value)


def _code_dtype(bits):
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if bits <= np.dtype(dtype).itemsize * 8:
            return np.dtype(dtype)
    raise ValueError(f"no unsigned dtype holds {bits} bits")


def _as_float64(x):
    return np.asarray(x, dtype=np.float64)


def _show_value(v):
    """Compact exact notation for a magnitude: far-off powers of two as 2^e."""
    v = float(v)
    if v > 0 and math.frexp(v)[0] == 0.5 and not -3 <= math.log2(v) <= 16:
        return f"2^{int(math.log2(v))}"
    return f"{v:.6g}"


class Format(abc.ABC):
    """A number format: a set of ``bits``-wide codes and their values.

    Attributes
    ----------
    name : str
        Canonical name, e.g. ``"posit8_0"``.
    bits : int
        Code width.
    kind : str
        ``"posit"``, ``"float"`` or ``"int"``.
    has_nan, has_inf : bool
        Whether some code decodes to NaN (posit NaR counts) / to ±inf.
    max_value : float
        Largest finite magnitude. For integers that is ``2**(bits-1)``, the magnitude of
        the most negative value (int4: 8), since that bounds the products.
    min_value : float
        Smallest positive nonzero magnitude (posit minpos, the smallest subnormal, 1).
    min_exponent : int
        log2 of the weight of the LSB of the smallest positive value: posit
        ``-(n-2)*2**es``, minifloat ``1 - bias - mantissa_bits``, integer 0.
    max_exponent : int
        ``floor(log2(max_value))``.
    code_dtype : numpy.dtype
        Smallest unsigned dtype holding a code (uint8, uint16 or uint32).

    Instances are immutable; two formats with the same parameters compare equal.
    """

    kind: str = ""

    def __init__(self, *, name, bits, has_nan, has_inf, max_value, min_value,
                 min_exponent, max_exponent):
        self.name = name
        self.bits = bits
        self.has_nan = has_nan
        self.has_inf = has_inf
        self.max_value = float(max_value)
        self.min_value = float(min_value)
        self.min_exponent = int(min_exponent)
        self.max_exponent = int(max_exponent)
        self.code_dtype = _code_dtype(bits)
        self._frozen = True

    def __setattr__(self, key, value):
        if getattr(self, "_frozen", False) and not key.startswith("_"):
            raise AttributeError(f"{type(self).__name__} is immutable; cannot set {key!r}")
        object.__setattr__(self, key, value)

    # -- identity -------------------------------------------------------------------
    @abc.abstractmethod
    def _key(self) -> tuple: ...

    def __eq__(self, other):
        return type(other) is type(self) and other._key() == self._key()

    def __hash__(self):
        return hash((type(self).__name__, self._key()))

    def __getstate__(self):
        # Lazily built tables are cheap to rebuild and can be megabytes: don't pickle them.
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_table")}

    def __setstate__(self, state):
        object.__setattr__(self, "__dict__", dict(state))

    # -- codes ------------------------------------------------------------------------
    @property
    def nar_code(self) -> int:
        """The "sign bit only" pattern ``100…0`` (posit NaR; NaN for fp4/int)."""
        return 1 << (self.bits - 1)

    def all_codes(self) -> np.ndarray:
        """Every code ``0 .. 2**bits - 1`` in order (formats of at most 16 bits)."""
        if self.bits > _MAX_TABLE_BITS:
            raise ValueError(f"all_codes() would list 2**{self.bits} codes of {self.name}; "
                             f"only formats of at most {_MAX_TABLE_BITS} bits are supported")
        return np.arange(1 << self.bits, dtype=self.code_dtype)

    def _check_codes(self, codes) -> np.ndarray:
        c = np.asarray(codes)
        if c.dtype.kind not in "iu":
            if c.dtype == object or c.size == 0:
                c = c.astype(np.int64)
            else:
                raise TypeError(f"{self.name} codes must be integers, not {c.dtype}")
        if c.size and (c.min() < 0 or c.max() >= (1 << self.bits)):
            bad = c[(c < 0) | (c >= (1 << self.bits))].flat[0]
            raise ValueError(f"{self.name} codes must be in 0..{(1 << self.bits) - 1}, "
                             f"not {int(bad)}")
        return c

    def _check_code(self, code) -> int:
        if isinstance(code, bool) or not isinstance(code, (int, np.integer)):
            raise TypeError(f"a {self.name} code must be an int, not {type(code).__name__}")
        if not 0 <= code < (1 << self.bits):
            raise ValueError(f"{self.name} codes are 0..{(1 << self.bits) - 1}, not {code}")
        return int(code)

    def _hex(self, code) -> str:
        return f"0x{code:0{(self.bits + 3) // 4}x}"

    @functools.cached_property
    def _table_decode(self) -> np.ndarray:
        return self._decode_arith(np.arange(1 << self.bits, dtype=np.uint64))

    def decode(self, codes) -> np.ndarray:
        """Codes -> exact float64 values (NaR/NaN -> nan, Inf -> ±inf); any shape."""
        c = self._check_codes(codes)
        if self.bits <= _MAX_TABLE_BITS:
            return self._table_decode[c]
        return self._decode_arith(c.astype(np.uint64))

    @abc.abstractmethod
    def _decode_arith(self, codes: np.ndarray) -> np.ndarray:
        """Decode a uint64 array of valid codes by arithmetic."""

    def is_special(self, codes) -> np.ndarray:
        """True for the NaR / NaN / Inf codes."""
        return ~np.isfinite(self.decode(codes))

    @abc.abstractmethod
    def encode(self, x) -> np.ndarray:
        """float64 values -> codes (``code_dtype``); see the module docstring for rounding."""

    @abc.abstractmethod
    def describe(self, code: int) -> str:
        """Human-readable notation of one code, for mismatch messages."""

    @property
    @abc.abstractmethod
    def nan_inf_policy(self) -> str:
        """One-line summary of the NaN/Inf/overflow behaviour (for ``npegen formats``)."""


# ------------------------------------------------------------------------------------
# Posits
# ------------------------------------------------------------------------------------
class Posit(Format):
    """A posit ⟨n, es⟩ (Posit Standard layout; generic in n and es).

    Parameters
    ----------
    n : int
        Width in bits, 2..32.
    es : int
        Exponent bits, 0..4.

    Notes
    -----
    ``useed = 2**2**es``; minpos = ``2**-((n-2)*2**es)`` and maxpos = 1/minpos. Every
    ⟨n≤32, es≤4⟩ value is a float64 (exponents within ±480, at most 29 fraction bits).
    """

    kind = "posit"

    def __init__(self, n, es):
        n = _check_int("n", n, 2, 32)
        es = _check_int("es", es, 0, 4)
        scale = (n - 2) << es
        if scale > 1022:  # unreachable with the limits above; keep decode exact if raised
            raise ValueError(f"posit{n}_{es} exceeds the float64 range")
        self.n = n
        self.es = es
        super().__init__(name=f"posit{n}_{es}", bits=n, has_nan=True, has_inf=False,
                         max_value=2.0 ** scale, min_value=2.0 ** -scale,
                         min_exponent=-scale, max_exponent=scale)

    def _key(self):
        return (self.n, self.es)

    def __repr__(self):
        return f"Posit({self.n}, {self.es})"

    @property
    def maxpos_code(self) -> int:
        return (1 << (self.n - 1)) - 1

    @property
    def nan_inf_policy(self) -> str:
        return f"NaR {self._hex(self.nar_code)}; no inf; saturates at minpos/maxpos"

    def _decode_arith(self, codes):
        n, es = self.n, self.es
        u64 = np.uint64
        c = codes.astype(np.uint64)
        body_mask = u64((1 << (n - 1)) - 1)
        negative = (c >> u64(n - 1)) & u64(1) == 1
        mag = np.where(negative, (u64(1 << n) - c) & u64((1 << n) - 1), c) & body_mask
        first = (mag >> u64(max(n - 2, 0))) & u64(1) == 1
        run_source = np.where(first, ~mag & body_mask, mag)
        # the regime is the run of bits equal to the first one: count leading equal bits
        bit_length = np.frexp(run_source.astype(np.float64))[1].astype(np.int64)
        run = (n - 1) - bit_length
        k = np.where(first, run - 1, -run)
        rest_bits = np.maximum((n - 1) - run - 1, 0)          # after the terminator bit
        rest = mag & ((u64(1) << rest_bits.astype(np.uint64)) - u64(1))
        exp_bits = np.minimum(rest_bits, es)
        frac_bits = rest_bits - exp_bits
        exponent = (rest >> frac_bits.astype(np.uint64)).astype(np.int64) << (es - exp_bits)
        fraction = rest & ((u64(1) << frac_bits.astype(np.uint64)) - u64(1))
        scale = (k << es) + exponent
        significand = ((u64(1) << frac_bits.astype(np.uint64)) | fraction).astype(np.float64)
        value = np.ldexp(significand, (scale - frac_bits).astype(np.int32))
        value = np.where(negative, -value, value)
        value = np.where(c == 0, 0.0, value)
        return np.where(c == u64(self.nar_code), np.nan, value)

    def is_special(self, codes) -> np.ndarray:
        return self._check_codes(codes) == self.nar_code

    def encode(self, x) -> np.ndarray:
        """float64 -> posit codes: RNE on the bit pattern, saturating; NaN/inf -> NaR."""
        x = _as_float64(x)
        flat = x.reshape(-1)
        out = np.empty(flat.shape, self.code_dtype)
        for start in range(0, flat.size, _CHUNK):
            out[start:start + _CHUNK] = self._encode_block(flat[start:start + _CHUNK])
        return out.reshape(x.shape)

    def _encode_block(self, x):
        n, es = self.n, self.es
        u64 = np.uint64
        bits = x.view(np.uint64)
        negative = bits >= _SIGN64
        mag_bits = bits & _MAG64
        # Float64 fields. Subnormal float64s are far below any minpos (>= 2**-480), so
        # they only ever saturate and the formula's garbage for them is overwritten.
        scale = (mag_bits >> u64(52)).astype(np.int64) - 1023
        frac = (mag_bits & _FRAC64) << u64(12)                    # left-aligned fraction
        maxscale = (n - 2) << es
        k = np.clip(scale >> es, -(n - 2), n - 3)                   # regime value
        exponent = (scale & ((1 << es) - 1)).astype(np.uint64)
        regime_len = np.where(k >= 0, k + 2, 1 - k).astype(np.uint64)
        # k >= 0: k+1 ones then a zero; k < 0: -k zeros then a one
        regime = np.where(k >= 0, (u64(4) << np.maximum(k, 0).astype(np.uint64)) - u64(2),
                          u64(1))
        head = regime_len + u64(es)                                 # 2 .. 35
        # the bit string regime|exponent|fraction, left-aligned in 64 bits
        string = (regime << (u64(64) - regime_len)) \
            | ((exponent << (u64(64) - head)) if es else u64(0)) \
            | (frac >> head)
        lost = (frac << (u64(64) - head)) != 0                      # fraction bits shifted out
        body = string >> u64(65 - n)                                # n-1 bits after the sign
        round_bit = (string >> u64(64 - n)) & u64(1)
        sticky = ((string & u64((1 << (64 - n)) - 1)) != 0) | lost
        body += round_bit & (sticky.astype(np.uint64) | (body & u64(1)))

        magnitude = np.abs(x)
        body = np.where(magnitude >= 2.0 ** maxscale, u64(self.maxpos_code), body)
        body = np.where(magnitude <= 2.0 ** -maxscale, u64(1), body)
        body = np.where(magnitude == 0, u64(0), body)
        codes = np.where(negative, (u64(1 << n) - body) & u64((1 << n) - 1), body)
        codes = np.where(np.isfinite(x), codes, u64(self.nar_code))
        return codes

    def fields(self, code: int) -> dict:
        """Decoded fields of a nonzero, non-NaR code (of its magnitude's pattern).

        Returns a dict with ``sign`` (+1/-1), ``regime`` (k), ``exponent_bits`` (the
        exponent bits present, as a string, possibly shorter than es), ``exponent``
        (value, cut-off bits as zeros), ``fraction_bits`` (string) and ``value``.
        """
        code = self._check_code(code)
        n, es = self.n, self.es
        if code in (0, self.nar_code):
            raise ValueError(f"{self._hex(code)} is {'zero' if code == 0 else 'NaR'}: "
                             "it has no fields")
        sign = -1 if code >> (n - 1) else 1
        mag = ((1 << n) - code) if sign < 0 else code
        pattern = format(mag, f"0{n}b")[1:]
        run = len(pattern) - len(pattern.lstrip(pattern[0]))
        k = run - 1 if pattern[0] == "1" else -run
        rest = pattern[run + 1:]
        exp_bits, frac_bits = rest[:es], rest[es:]
        exponent = int(exp_bits.ljust(es, "0"), 2) if es else 0
        value = float(self.decode(code))
        return dict(sign=sign, regime=k, exponent_bits=exp_bits, exponent=exponent,
                    fraction_bits=frac_bits, value=value)

    def describe(self, code: int) -> str:
        code = self._check_code(code)
        head = f"{self.name} {self._hex(code)}"
        if code == 0:
            return f"{head} (zero = 0.0)"
        if code == self.nar_code:
            return f"{head} (NaR)"
        f = self.fields(code)
        if self.es == 0:
            exp = "-"
        else:
            missing = self.es - len(f["exponent_bits"])
            exp = ("0b" + f["exponent_bits"] if f["exponent_bits"] else "") \
                + (f"[{'0' * missing}]" if missing else "")
        frac = "0b" + f["fraction_bits"] if f["fraction_bits"] else "-"
        sign = "+" if f["sign"] > 0 else "-"
        return (f"{head} (sign={sign} regime={f['regime']} exp={exp} frac={frac} "
                f"= {f['value']!r})")


# ------------------------------------------------------------------------------------
# Minifloats
# ------------------------------------------------------------------------------------
_SPECIALS = ("ieee", "fn", "none")


class Minifloat(Format):
    """A small binary float: sign, exponent with bias, mantissa, subnormals.

    Parameters (keyword-only)
    -------------------------
    name : str
        Canonical name, e.g. ``"fp8_e4m3"``.
    exponent_bits : int
        1..8.
    mantissa_bits : int
        0..15, with ``1 + exponent_bits + mantissa_bits <= 16``.
    bias : int
        Exponent bias; the format's range must lie within float32's (so ml_dtypes'
        float32 path can be reproduced): ``min_exponent >= -149``, ``max_exponent <= 127``.
    special : {"ieee", "fn", "none"}
        ``"ieee"``: all-ones exponent is Inf (mantissa 0) or NaN; needs
        ``exponent_bits >= 2`` and ``mantissa_bits >= 1``. ``"fn"``: no Inf, only
        all-ones exponent and mantissa is NaN. ``"none"``: every code is a finite number.
    """

    kind = "float"

    def __init__(self, *, name, exponent_bits, mantissa_bits, bias, special):
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, not {name!r}")
        exponent_bits = _check_int("exponent_bits", exponent_bits, 1, 8)
        mantissa_bits = _check_int("mantissa_bits", mantissa_bits, 0, 15)
        bias = _check_int("bias", bias, -(1 << 10), 1 << 10)
        if special not in _SPECIALS:
            raise ValueError(f"special must be one of {', '.join(map(repr, _SPECIALS))}, "
                             f"not {special!r}")
        bits = 1 + exponent_bits + mantissa_bits
        if bits > 16:
            raise ValueError(f"a minifloat has at most 16 bits; {name} (e{exponent_bits}"
                             f"m{mantissa_bits}) would have {bits}")
        if special == "ieee" and (exponent_bits < 2 or mantissa_bits < 1):
            raise ValueError("special='ieee' needs exponent_bits >= 2 and mantissa_bits >= 1 "
                             f"(all-ones exponent = Inf/NaN), not e{exponent_bits}m{mantissa_bits}")
        self.exponent_bits = exponent_bits
        self.mantissa_bits = mantissa_bits
        self.bias = bias
        self.special = special
        man_mask = (1 << mantissa_bits) - 1
        top_exp = (1 << exponent_bits) - 1
        if special == "ieee" or (special == "fn" and mantissa_bits == 0):
            max_code = ((top_exp - 1) << mantissa_bits) | man_mask
        elif special == "fn":
            max_code = (top_exp << mantissa_bits) | (man_mask - 1)
        else:
            max_code = (top_exp << mantissa_bits) | man_mask
        self._max_code = max_code
        min_exponent = 1 - bias - mantissa_bits
        max_value = self._value_unbounded(max_code)
        max_exponent = math.floor(math.log2(max_value)) if max_value > 0 else min_exponent
        if min_exponent < -149 or max_exponent > 127:
            raise ValueError(f"{name} spans 2**{min_exponent} .. 2**{max_exponent}; a "
                             "minifloat must lie within float32's range (2**-149 .. 2**127)")
        super().__init__(name=name, bits=bits, has_nan=special != "none",
                         has_inf=special == "ieee", max_value=max_value,
                         min_value=2.0 ** min_exponent, min_exponent=min_exponent,
                         max_exponent=max_exponent)

    def _key(self):
        return (self.name, self.exponent_bits, self.mantissa_bits, self.bias, self.special)

    def __repr__(self):
        return (f"Minifloat(name={self.name!r}, exponent_bits={self.exponent_bits}, "
                f"mantissa_bits={self.mantissa_bits}, bias={self.bias}, "
                f"special={self.special!r})")

    def _value_unbounded(self, magnitude_code):
        """Value of a magnitude code as if no exponent were special (may run past max)."""
        m = self.mantissa_bits
        e, man = magnitude_code >> m, magnitude_code & ((1 << m) - 1)
        if e == 0:
            return math.ldexp(man, 1 - self.bias - m)
        return math.ldexp((1 << m) | man, e - self.bias - m)

    @property
    def inf_code(self):
        """Code of +inf (``"ieee"`` only), else None."""
        return (((1 << self.exponent_bits) - 1) << self.mantissa_bits) \
            if self.special == "ieee" else None

    @property
    def nan_code(self):
        """Canonical positive NaN code (None for ``"none"``)."""
        top = ((1 << self.exponent_bits) - 1) << self.mantissa_bits
        if self.special == "ieee":
            return top | (1 << (self.mantissa_bits - 1))
        if self.special == "fn":
            return top | ((1 << self.mantissa_bits) - 1)
        return None

    @property
    def nan_inf_policy(self) -> str:
        h = self._hex
        sign = self.nar_code
        if self.special == "ieee":
            return (f"inf {h(self.inf_code)}/{h(self.inf_code | sign)}, NaN e.g. "
                    f"{h(self.nan_code)}; overflow -> inf")
        if self.special == "fn":
            return (f"NaN {h(self.nan_code)}/{h(self.nan_code | sign)}; no inf; "
                    "overflow -> NaN")
        return f"no NaN/inf; saturates at max; NaN -> {h(self.nar_code)}"

    def _decode_arith(self, codes):
        m, e_bits = self.mantissa_bits, self.exponent_bits
        c = codes.astype(np.int64)
        sign = (c >> (self.bits - 1)) & 1
        e = (c >> m) & ((1 << e_bits) - 1)
        man = c & ((1 << m) - 1)
        significand = np.where(e == 0, man, man | (1 << m)).astype(np.float64)
        value = np.ldexp(significand, (np.maximum(e, 1) - self.bias - m).astype(np.int32))
        value = np.where(sign == 1, -value, value)
        top = (1 << e_bits) - 1
        if self.special == "ieee":
            value = np.where((e == top) & (man == 0), np.where(sign == 1, -np.inf, np.inf),
                             value)
            value = np.where((e == top) & (man != 0), np.nan, value)
        elif self.special == "fn":
            value = np.where((e == top) & (man == (1 << m) - 1), np.nan, value)
        return value

    # -- encoding -----------------------------------------------------------------------
    def _round_reference(self, x: np.ndarray) -> np.ndarray:
        """Exact single RNE of float64 values by search over the value grid (slow path).

        Builds the encode table; also the path for ``via_float32=True`` is this applied
        after a float32 cast.
        """
        max_code = self._max_code
        grid = np.array([self._value_unbounded(c) for c in range(max_code + 2)])
        # grid[-1] is the value the next code would have: reaching it means overflow.
        a = np.abs(x)
        nan = np.isnan(x)
        a = np.where(nan, 0.0, a)
        idx = np.searchsorted(grid, a, side="right") - 1            # grid[idx] <= a
        below = np.minimum(idx, max_code)
        lo, hi = grid[below], grid[below + 1]
        mid = (lo + hi) / 2                                          # exact
        rounded = np.where(a < mid, below, below + 1)
        tie = a == mid
        rounded = np.where(tie, np.where(below % 2 == 0, below, below + 1), rounded)
        rounded = np.where(idx > max_code, max_code + 1, rounded)   # at/above the next step
        overflow = rounded > max_code
        if self.special == "ieee":
            rounded = np.where(overflow, self.inf_code, rounded)
        elif self.special == "fn":
            rounded = np.where(overflow, self.nan_code, rounded)
        else:
            rounded = np.minimum(rounded, max_code)
        codes = rounded.astype(np.int64) | np.where(np.signbit(x), self.nar_code, 0)
        if self.special == "none":
            codes = np.where(nan, self.nar_code, codes)
        else:
            codes = np.where(nan, self.nan_code | np.where(np.signbit(x), self.nar_code, 0),
                             codes)
        return codes.astype(self.code_dtype)

    # The fast path keys a table on the float64 bit pattern: sign, exponent, the mantissa
    # bits down to the round bit, and one sticky bit for everything below it. Every float64
    # in one key class rounds to the same code, so the table is exact.
    @property
    def _low_bits(self):
        return 52 - (self.mantissa_bits + 1)   # float64 mantissa bits below the round bit

    @property
    def _key_bits(self):
        return 64 - (self._low_bits - 1)       # sign, exponent, mantissa, round, sticky

    @functools.cached_property
    def _table_encode(self) -> np.ndarray:
        keys = np.arange(1 << self._key_bits, dtype=np.uint64)
        representative = (keys << np.uint64(self._low_bits - 1)).view(np.float64)
        return self._round_reference(representative)

    def encode(self, x, *, via_float32=False) -> np.ndarray:
        """float64 -> codes, round to nearest even (see the module docstring).

        Parameters
        ----------
        x : array_like of float64
        via_float32 : bool, optional
            Round to float32 first, as ml_dtypes' ``astype`` from float64 does (two
            roundings). Default False: one exact rounding of the float64 value.
        """
        x = _as_float64(x)
        if via_float32:
            with np.errstate(over="ignore", invalid="ignore"):
                x = x.astype(np.float32).astype(np.float64)
        if self._key_bits > _MAX_KEY_BITS:    # e.g. fp16: the table would be too big
            return self._round_reference(x)
        flat = np.ascontiguousarray(x).reshape(-1)
        words = flat.view(np.uint64)
        table = self._table_encode
        low_mask = np.uint64((1 << (self._low_bits - 1)) - 1)
        shift = np.uint64(self._low_bits - 1)
        out = np.empty(flat.shape, self.code_dtype)
        key = np.empty(min(_CHUNK, flat.size), np.uint64)
        index = key.view(np.int64)  # same buffer; keys < 2**22, so non-negative
        for start in range(0, flat.size, _CHUNK):
            w = words[start:start + _CHUNK]
            k = key[:w.size]
            # key = (w with bit low-1 ORed with the sticky of the bits below it) >> (low-1):
            # (w & m) + m reaches bit low-1 exactly when some bit under m is set.
            np.bitwise_and(w, low_mask, out=k)
            np.add(k, low_mask, out=k)
            np.bitwise_or(k, w, out=k)
            np.right_shift(k, shift, out=k)
            # intp indices: take() converts anything else first, and negative ones are slow;
            # the keys are always in range, so mode="clip" only skips the error path.
            np.take(table, index[:w.size], out=out[start:start + _CHUNK], mode="clip")
        return out.reshape(x.shape)

    def is_special(self, codes) -> np.ndarray:
        c = self._check_codes(codes)
        if self.special == "none":
            return np.zeros(c.shape, dtype=bool)
        top = ((1 << self.exponent_bits) - 1) << self.mantissa_bits
        mag = c & (self.nar_code - 1)
        if self.special == "ieee":
            return mag >= top
        return mag == self.nan_code

    def describe(self, code: int) -> str:
        code = self._check_code(code)
        head = f"{self.name} {self._hex(code)}"
        v = float(self.decode(code))
        sign = "-" if code & self.nar_code else "+"
        if math.isnan(v):
            return f"{head} ({sign}NaN)"
        if math.isinf(v):
            return f"{head} ({sign}inf)"
        mag = code & (self.nar_code - 1)
        sub = " subnormal" if 0 < mag < (1 << self.mantissa_bits) else ""
        return f"{head} ({sign}{abs(v)!r}{sub})"


# ------------------------------------------------------------------------------------
# Integers
# ------------------------------------------------------------------------------------
class Integer(Format):
    """A two's-complement integer of ``bits`` bits (2..32).

    ``max_value`` is ``2**(bits-1)`` — the magnitude of the most negative value.
    """

    kind = "int"

    def __init__(self, bits):
        bits = _check_int("bits", bits, 2, 32)
        super().__init__(name=f"int{bits}", bits=bits, has_nan=False, has_inf=False,
                         max_value=2.0 ** (bits - 1), min_value=1.0, min_exponent=0,
                         max_exponent=bits - 1)

    def _key(self):
        return (self.bits,)

    def __repr__(self):
        return f"Integer({self.bits})"

    @property
    def nan_inf_policy(self) -> str:
        return f"no NaN/inf; saturates; NaN -> {self._hex(self.nar_code)}"

    def _decode_arith(self, codes):
        c = codes.astype(np.int64)
        return np.where(c >= self.nar_code, c - (1 << self.bits), c).astype(np.float64)

    def encode(self, x) -> np.ndarray:
        """float64 -> codes: round half to even, saturate; NaN -> ``100…0``."""
        x = _as_float64(x)
        lo, hi = -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        with np.errstate(invalid="ignore"):
            v = np.clip(np.rint(x), lo, hi)
        v = np.where(np.isnan(x), lo, v).astype(np.int64)
        return (v & ((1 << self.bits) - 1)).astype(self.code_dtype)

    def is_special(self, codes) -> np.ndarray:
        return np.zeros(self._check_codes(codes).shape, dtype=bool)

    def describe(self, code: int) -> str:
        code = self._check_code(code)
        value = code - (1 << self.bits) if code >= self.nar_code else code
        return f"{self.name} {self._hex(code)} ({value:+d})"


# ------------------------------------------------------------------------------------
# Registry
# ------------------------------------------------------------------------------------
FORMATS: dict[str, Format] = {
    f.name: f for f in (
        Minifloat(name="fp4_e2m1", exponent_bits=2, mantissa_bits=1, bias=1, special="none"),
        Posit(4, 1),
        Posit(8, 0),
        Posit(16, 1),
        Posit(8, 2),
        Posit(16, 2),
        Minifloat(name="fp8_e4m3", exponent_bits=4, mantissa_bits=3, bias=7, special="fn"),
        Minifloat(name="fp8_e5m2", exponent_bits=5, mantissa_bits=2, bias=15, special="ieee"),
        Minifloat(name="bf16", exponent_bits=8, mantissa_bits=7, bias=127, special="ieee"),
        Integer(8),
        Integer(4),
    )
}

_POSIT_NAME = re.compile(r"posit(\d+)_(\d+)")


def fixed_to_float(value: int, lsb_exponent: int) -> float:
    """``value * 2**lsb_exponent`` (an exact fixed-point value, any size) as a float64,
    rounded to odd: a dropped nonzero bit sets the LSB (sticky). Encoding the result into
    a format of at most 51 fraction bits then rounds the exact value once (no double
    rounding)."""
    if value == 0:
        return 0.0
    mag = abs(value)
    n = mag.bit_length()
    if n > 53:
        shift = n - 53
        kept = mag >> shift
        if mag & ((1 << shift) - 1):
            kept |= 1
        mag, lsb_exponent = kept, lsb_exponent + shift
    return math.copysign(math.ldexp(float(mag), lsb_exponent), value)


def get_format(name) -> Format:
    """The format called ``name`` (a :data:`FORMATS` key or ``posit<n>_<es>``).

    A :class:`Format` is returned as is. An unknown name raises
    :class:`UnknownFormatError` listing the known names and the nearest one.
    """
    if isinstance(name, Format):
        return name
    if not isinstance(name, str):
        raise TypeError(f"a format is a name or a Format, not {type(name).__name__}")
    if name in FORMATS:
        return FORMATS[name]
    m = _POSIT_NAME.fullmatch(name)
    known = ", ".join(FORMATS) + ", or any posit<n>_<es> (2 <= n <= 32, 0 <= es <= 4)"
    if m:
        try:
            return Posit(int(m.group(1)), int(m.group(2)))
        except ValueError as err:
            raise UnknownFormatError(f"unknown format {name!r}: {err} (known: {known})") \
                from None
    near = difflib.get_close_matches(name, list(FORMATS), n=1, cutoff=0.5)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    raise UnknownFormatError(f"unknown format {name!r}{hint} (known: {known})")


def lanes(fmt, word_bits: int) -> int:
    """How many lanes of ``fmt`` a ``word_bits``-wide word holds (0 if it does not fit)."""
    fmt = get_format(fmt)
    word_bits = _check_int("word_bits", word_bits, 1, 1 << 16)
    return word_bits // fmt.bits


@dataclasses.dataclass(frozen=True)
class AccumulatorGeometry:
    """Fixed-point layout of an exact (quire / Kulisch) accumulator.

    Attributes
    ----------
    lsb_exponent : int
        Weight of the accumulator LSB is ``2**lsb_exponent`` (the smallest product's LSB).
    span_bits : int
        ``floor(log2(largest product)) - lsb_exponent``: bit positions from the LSB up to,
        not including, the top bit of the largest product (which is the first guard bit,
        as in the posit quire).
    guard_bits : int
        Carry bits above the span; at least ``2**(guard_bits - 1)`` largest products can
        be added without overflow.
    width : int
        ``span_bits + guard_bits + 1`` (sign).
    """

    lsb_exponent: int
    span_bits: int
    guard_bits: int
    width: int

    @property
    def msb_exponent(self) -> int:
        """Exponent of the most significant magnitude bit (``width - 2`` above the LSB)."""
        return self.lsb_exponent + self.width - 2


def accumulator_geometry(fmt_a, fmt_b=None, *, guard_bits=None) -> AccumulatorGeometry:
    """Exact accumulator for sums of products ``a*b`` (``fmt_b`` defaults to ``fmt_a``).

    For a posit ⟨n, es⟩ squared this is the standard quire,
    ``2**(es+2)*(n-2) + (n-1) + 1`` bits: 32 for posit8_0, 128 for posit16_1.
    ``guard_bits`` defaults to ``max(bits_a, bits_b) - 1`` (the quire's n-1 carry bits).
    """
    fmt_a = get_format(fmt_a)
    fmt_b = fmt_a if fmt_b is None else get_format(fmt_b)
    if guard_bits is None:
        guard_bits = max(fmt_a.bits, fmt_b.bits) - 1
    guard_bits = _check_int("guard_bits", guard_bits, 0, 1 << 16)
    lsb = fmt_a.min_exponent + fmt_b.min_exponent
    # floor(log2(max_a * max_b)) exactly, from the frexp exponents (no float rounding)
    ma, ea = math.frexp(fmt_a.max_value)
    mb, eb = math.frexp(fmt_b.max_value)
    top = ea + eb - 2 + (1 if ma * mb * 4 >= 2 else 0)
    span = top - lsb
    return AccumulatorGeometry(lsb_exponent=lsb, span_bits=span, guard_bits=guard_bits,
                               width=span + guard_bits + 1)


def formats_table(word_bits: int = 16) -> list[dict]:
    """One JSON-serialisable row per :data:`FORMATS` entry, for ``npegen formats``.

    Keys: ``name``, ``kind``, ``bits``, ``min_value``, ``max_value``,
    ``accumulator_bits`` (default-guard exact accumulator width), ``lanes`` (in a
    ``word_bits`` word; 0 if it does not fit) and ``nan_inf`` (policy summary).
    """
    return [dict(name=f.name, kind=f.kind, bits=f.bits, min_value=f.min_value,
                 max_value=f.max_value, accumulator_bits=accumulator_geometry(f).width,
                 lanes=lanes(f, word_bits), nan_inf=f.nan_inf_policy)
            for f in FORMATS.values()]


_TABLE_COLUMNS = (("name", "format"), ("kind", "kind"), ("bits", "bits"),
                  ("min_value", "min"), ("max_value", "max"),
                  ("accumulator_bits", "acc bits"), ("lanes", "lanes"),
                  ("nan_inf", "NaN / inf / overflow"))


def format_formats_table(rows) -> str:
    """Aligned plain-text table of :func:`formats_table` rows."""
    cells = [[title for _, title in _TABLE_COLUMNS]]
    for row in rows:
        cells.append([_show_value(row[key]) if key in ("min_value", "max_value")
                      else str(row[key]) for key, _ in _TABLE_COLUMNS])
    widths = [max(len(r[i]) for r in cells) for i in range(len(_TABLE_COLUMNS))]
    numeric = {"bits", "min_value", "max_value", "accumulator_bits", "lanes"}

    def line(r):
        return "  ".join(c.rjust(w) if key in numeric else c.ljust(w)
                         for c, w, (key, _) in zip(r, widths, _TABLE_COLUMNS)).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)
