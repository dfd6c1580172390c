"""Output encoders: an exact fixed-point accumulator value rounded once into a format.

:class:`FixedToFormat` is the read-out stage of the MAC engine. It takes the
two's-complement accumulator (an integer multiple of ``2**lsb_exponent``) and the sticky
NaN / ±infinity flags kept beside it, and produces the code that
:func:`testbenches.golden.round_to_format` produces, bit for bit:

* flags first: NaN wins, then +inf together with -inf is NaN, then a single infinity
  (each encoded as ``fmt.encode`` encodes ``nan``/``±inf``: a posit gives NaR, fp8_e4m3 a
  NaN, fp4 and the integers saturate);
* a zero accumulator gives the format's +0;
* anything else is rounded once, to nearest with ties to even, by the format's own rules:

  - posits: round on the bit pattern (regime, exponent, fraction, then guard and
    sticky); a nonzero value never becomes 0 or NaR (it saturates at ±minpos/±maxpos);
  - minifloats: normals and subnormals; a negative value that rounds to zero gives -0;
    overflow gives ±inf (``ieee``), NaN with the value's sign (``fn``) or ±max (``none``),
    as ``fmt.encode`` does;
  - integers: round to nearest even, then saturate.

Datapath: absolute value, a logarithmic leading-zero normalizer over the accumulator width
(:func:`~generators.rtl.decode.leading_zeros`), then the per-format field construction and
one guard/sticky rounding increment. (Integers round the two's-complement value directly.)
"""

from __future__ import annotations

import numpy as np

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from generators.formats import get_format
from generators.rtl.decode import (_float_max_magnitude, _signed_bits, format_params,
                                    leading_zeros)

__all__ = ["FixedToFormat"]


def _encode_one(fmt, x: float) -> int:
    return int(np.asarray(fmt.encode(np.array([x], dtype=np.float64))).reshape(-1)[0])


class FixedToFormat(wiring.Component):
    """Combinational rounding of a fixed-point value (plus NaN/inf flags) into a format.

    Parameters
    ----------
    fmt : str or Format
        The output format.
    acc_width : int
        Width of ``value`` (at least 2).
    lsb_exponent : int
        ``value`` means ``value * 2**lsb_exponent``.

    Attributes
    ----------
    value : In(signed(acc_width))
        The exact accumulator contents, in two's complement.
    nan : In(1)
        Sticky NaN/NaR flag: the result is the format's NaN (or what ``fmt.encode(nan)``
        gives for a format without one).
    pos_inf, neg_inf : In(1)
        Sticky infinity flags; both together mean NaN.
    code : Out(fmt.bits)
        The rounded code.
    """

    def __init__(self, fmt, *, acc_width, lsb_exponent):
        fmt = get_format(fmt)
        if not isinstance(acc_width, int) or isinstance(acc_width, bool):
            raise TypeError(f"acc_width must be an integer, not {acc_width!r}")
        if acc_width < 2:
            raise ValueError(f"acc_width must be at least 2 for {fmt.name}, not {acc_width}")
        if not isinstance(lsb_exponent, int) or isinstance(lsb_exponent, bool):
            raise TypeError(f"lsb_exponent must be an integer, not {lsb_exponent!r}")
        self._fmt = fmt
        self._params = format_params(fmt)
        self._acc_width = acc_width
        self._lsb_exponent = lsb_exponent
        super().__init__({
            "value": In(signed(acc_width)),
            "nan": In(1),
            "pos_inf": In(1),
            "neg_inf": In(1),
            "code": Out(fmt.bits),
        })

    @property
    def format(self):
        """The output format."""
        return self._fmt

    @property
    def acc_width(self):
        return self._acc_width

    @property
    def lsb_exponent(self):
        return self._lsb_exponent

    def elaborate(self, platform):
        m = Module()
        fmt, p = self._fmt, self._params
        width, lsb = self._acc_width, self._lsb_exponent

        value = self.value
        is_zero = value == 0
        negative = value[width - 1]

        if p.kind == "int":
            rounded = self._round_int(m, p)
        else:
            # Absolute value (the most negative value's magnitude still fits in width bits).
            magnitude = Signal(width, name="magnitude")
            m.d.comb += magnitude.eq(Mux(negative, -value, value))
            lz, norm = leading_zeros(m, magnitude, name="norm")
            # Exponent (weight) of the leading one.
            scale = Signal(signed(_signed_bits(lsb, lsb + width - 1)), name="scale")
            m.d.comb += scale.eq((lsb + width - 1) - lz)
            if p.kind == "posit":
                rounded = self._round_posit(m, p, negative, scale, norm)
            else:
                rounded = self._round_float(m, p, negative, scale, norm)

        nan_code = _encode_one(fmt, float("nan"))
        pos_inf_code = _encode_one(fmt, float("inf"))
        neg_inf_code = _encode_one(fmt, float("-inf"))
        zero_code = _encode_one(fmt, 0.0)
        with m.If(self.nan | (self.pos_inf & self.neg_inf)):
            m.d.comb += self.code.eq(nan_code)
        with m.Elif(self.pos_inf):
            m.d.comb += self.code.eq(pos_inf_code)
        with m.Elif(self.neg_inf):
            m.d.comb += self.code.eq(neg_inf_code)
        with m.Elif(is_zero):
            m.d.comb += self.code.eq(zero_code)
        with m.Else():
            m.d.comb += self.code.eq(rounded)
        return m

    # ----------------------------------------------------------------------------------

    def _round_int(self, m, p):
        """Round the two's-complement value to an integer (RNE), then saturate."""
        value, width, lsb, bits = self.value, self._acc_width, self._lsb_exponent, p.bits
        if lsb >= 0:
            q = Signal(signed(width + lsb), name="int_value")
            m.d.comb += q.eq(value << lsb)
        else:
            shift = -lsb
            wide = Signal(signed(max(width, shift + 2)), name="int_wide")
            m.d.comb += wide.eq(value)
            floor = wide >> shift                              # arithmetic: floor division
            guard = wide[shift - 1]
            sticky = wide[:shift - 1].any() if shift > 1 else Const(0)
            q = Signal(signed(len(floor) + 1), name="int_value")
            m.d.comb += q.eq(floor + (guard & (sticky | floor[0])))
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        out = Signal(bits, name="int_code")
        m.d.comb += out.eq(Mux(q > hi, hi, Mux(q < lo, lo, q)))
        return out

    def _round_posit(self, m, p, negative, scale, norm):
        """Posit: build the magnitude pattern with guard and sticky, round it (RNE)."""
        n, es = p.bits, p.es
        width = len(norm)

        # Regime k and exponent e of the leading one: scale = k * 2**es + e.
        k = Signal(signed(max(len(scale) - es, 1) + 1), name="regime_k")
        m.d.comb += k.eq(scale.as_signed() >> es)
        kc = Signal(range(-(n - 1), n - 1), name="regime_k_clamped")
        m.d.comb += kc.eq(Mux(k < -(n - 1), -(n - 1), Mux(k > n - 2, n - 2, k)))
        e = scale[:es]
        r = Signal(name="regime_bit")                        # 1 for k >= 0: a run of ones
        m.d.comb += r.eq(kc >= 0)
        run_shift = Signal(range(n - 1), name="regime_shift")  # k, or -k - 1 for k < 0
        m.d.comb += run_shift.eq(Mux(r, kc, ~kc))

        # Fraction bits that can reach the pattern or the guard; the rest are sticky.
        frac_bits = n - 2 - es
        if frac_bits > 0:
            if width - 1 >= frac_bits:
                frac = norm[width - 1 - frac_bits:width - 1]
                rest = norm[:width - 1 - frac_bits]
            else:
                frac = Cat(Const(0, frac_bits - (width - 1)), norm[:width - 1])
                rest = Const(0, 0)
        else:
            frac = Const(0, 0)
            rest = norm[:width - 1]
        sticky_low = rest.any() if len(rest) else Const(0)

        # [r, ~r, e, frac] shifted right arithmetically by the run: k + 1 ones and a zero,
        # or -k zeros and a one, then the exponent and fraction bits.
        head = Cat(Const(0, n - 2), frac, e, ~r, r)
        total = len(head)
        shifted = Signal(total, name="posit_shifted")
        m.d.comb += shifted.eq(head.as_signed() >> run_shift)
        pattern = shifted[total - (n - 1):]
        guard = shifted[total - n]
        sticky = shifted[:total - n].any() | sticky_low if total > n else sticky_low

        incremented = Signal(n, name="posit_rounded")
        m.d.comb += incremented.eq(pattern + (guard & (sticky | pattern[0])))
        maxpos = (1 << (n - 1)) - 1
        mag = Signal(n - 1, name="posit_magnitude")
        m.d.comb += mag.eq(Mux(incremented[n - 1], maxpos, Mux(incremented == 0, 1, incremented)))
        out = Signal(n, name="posit_code")
        m.d.comb += out.eq(Mux(negative, -mag, mag))
        return out

    def _round_float(self, m, p, negative, scale, norm):
        """Minifloat: normal/subnormal significand with guard and sticky, RNE, overflow."""
        fmt = self._fmt
        ebits, mbits, bias = p.exponent_bits, p.mantissa_bits, p.bias
        width = len(norm)
        max_mag = _float_max_magnitude(p)                  # largest finite magnitude code
        top_exp = max_mag >> mbits                          # its exponent field
        huge = 2.0 ** (top_exp - bias + 2)
        overflow_pos = _encode_one(fmt, huge)
        overflow_neg = _encode_one(fmt, -huge)

        # Biased exponent of the leading one.
        biased = Signal(signed(len(scale) + max(abs(bias), 1).bit_length() + 1), name="biased")
        m.d.comb += biased.eq(scale + bias)

        # Kept bits (hidden bit + mantissa) and the guard: the top mbits + 2 bits of the
        # normalized value, shifted right by 1 - biased for a subnormal result.
        keep_bits = mbits + 2
        if width >= keep_bits:
            top = norm[width - keep_bits:]
            rest = norm[:width - keep_bits]
        else:
            top = Cat(Const(0, keep_bits - width), norm)
            rest = Const(0, 0)
        sticky_low = rest.any() if len(rest) else Const(0)

        denorm = Signal(range(keep_bits + 1), name="denorm_shift")
        m.d.comb += denorm.eq(Mux(biased >= 1, 0,
                                  Mux(biased <= -(mbits + 1), keep_bits, 1 - biased)))
        shifted = Signal(keep_bits, name="float_shifted")
        m.d.comb += shifted.eq(top >> denorm)
        sticky_shift = Signal(name="sticky_shift")
        with m.Switch(denorm):
            for j in range(keep_bits + 1):
                with m.Case(j):
                    m.d.comb += sticky_shift.eq(top[:j].any() if j else 0)
        keep = shifted[1:]
        guard = shifted[0]
        sticky = sticky_low | sticky_shift

        exp_field = Signal(ebits, name="exp_field")          # biased - 1 for a normal
        m.d.comb += exp_field.eq(Mux(biased >= 1, biased - 1, 0))
        mag = Signal(ebits + mbits + 1, name="float_magnitude")
        m.d.comb += mag.eq(Cat(Const(0, mbits), exp_field) + keep
                           + (guard & (sticky | keep[0])))
        overflow = Signal(name="overflow")
        m.d.comb += overflow.eq((biased > top_exp) | (mag > max_mag))
        out = Signal(p.bits, name="float_code")
        m.d.comb += out.eq(Mux(overflow, Mux(negative, overflow_neg, overflow_pos),
                               Cat(mag[:ebits + mbits], negative)))
        return out
