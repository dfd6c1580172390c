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

Datapath, in two parts so that an engine with several output formats pays for the wide
part once (:class:`FixedToFormats`):

* :class:`Normalizer` — a logarithmic leading-zero normalizer over the accumulator width
  (:func:`~generators.rtl.decode.leading_zeros_top`) of the value's one's complement, and
  a short increment that makes the normalized magnitude of it. It keeps only the leading
  ``keep`` bits of the normalized magnitude and ORs everything below them into one sticky
  bit: no format looks further than its hidden one, fraction and guard bit.
* :func:`round_normalized` — per format, from ``(negative, scale, top, sticky)``: the field
  construction and one guard/sticky rounding increment. Integers round the magnitude to
  nearest even (the rule is symmetric in the sign) and then saturate.
"""

from __future__ import annotations

import itertools

import numpy as np

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from generators.formats import get_format
from generators.rtl.decode import (_float_max_magnitude, _signed_bits, first_shift_decision,
                                    format_params, leading_zeros_top)
from generators.rtl.pipeline import pipeline_register

__all__ = ["FixedToFormat", "FixedToFormats", "Normalizer", "kept_bits", "round_normalized"]


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
        # One format is the single-format case of FixedToFormats (its normalizer keeps
        # exactly this format's bits); no isolation is needed with nothing to select.
        m = Module()
        m.submodules.rounding = enc = FixedToFormats(
            [self._fmt], acc_width=self._acc_width, lsb_exponent=self._lsb_exponent,
            isolate=False)
        m.d.comb += [
            enc.value.eq(self.value), enc.fmt.eq(0),
            enc.nan.eq(self.nan), enc.pos_inf.eq(self.pos_inf), enc.neg_inf.eq(self.neg_inf),
            self.code.eq(enc.code),
        ]
        return m


def kept_bits(fmt) -> int:
    """How many leading bits of the normalized magnitude rounding into ``fmt`` looks at
    (the leading one included); everything below them only matters as one sticky bit."""
    p = format_params(fmt)
    if p.kind == "posit":
        return max(p.bits - 1 - p.es, 1)        # leading one and the longest fraction
    if p.kind == "float":
        return p.mantissa_bits + 2              # hidden bit, mantissa, guard
    return p.bits + 1                           # integer bits, one of them beyond the range


def _check_normalizer_pipeline(name: str, pipeline, acc_width: int) -> None:
    """A :class:`Normalizer` of an ``acc_width``-bit value takes 0 to its shift stages + 1
    registers; checked where the parameter is given, so the message names it."""
    stages = (acc_width - 1).bit_length()
    if not isinstance(pipeline, int) or isinstance(pipeline, bool) or not 0 <= pipeline <= stages + 1:
        raise ValueError(f"{name} must be an integer from 0 to {stages + 1} for a "
                         f"{acc_width}-bit value, not {pipeline!r}")


class Normalizer(wiring.Component):
    """Sign, magnitude and leading-one position of a two's-complement value, with the
    magnitude's leading ``keep`` bits and a sticky bit for the rest.

    There is no absolute value over the whole width. The shifter normalizes the one's
    complement ``value ^ sign`` (an XOR that synthesis folds into its first stage),
    shifting in the sign: for a negative value that is the one's complement continued by
    ones below its LSB, ``F``, and the magnitude shifted alike is ``F + 1``. So the bits
    below the kept ones carry into them exactly when they are all ones (the sticky bit
    tests them against the sign), and the magnitude's leading bits are the kept bits plus
    that carry: one ``keep``-bit increment instead of an ``acc_width``-bit negation. When
    the increment overflows (the magnitude is a power of two whose one's complement is
    all ones below its leading bit), the leading one is one place higher. For the 128-bit
    read-out of ``xr_npe`` this measured about 170 LUTs less on xc7 than the carry-select
    absolute value it replaced, and the negation's carry chain is off the read-out's
    paths.

    Parameters
    ----------
    acc_width : int
        Width of ``value``.
    keep : int
        Bits of ``top``.
    pipeline : int
        Registers inside the normalizer (0 to the number of shift stages + 1), spread
        over the shift stages (see :func:`balanced_cuts`); with one more than there are
        stages, or with ``register_input``, the first is on the input. The outputs then
        follow ``value`` ``pipeline`` cycles with ``en`` set later.
    register_input : bool
        Put the first of the ``pipeline`` registers on the input, with the first shift
        stage's decision (are the top half's bits all sign?) computed before it: the
        first cycle after it is that stage's multiplexer, not the decision's wide
        comparison too. For a source with time left in its cycle (an engine's read-out).
        The register holds the value, not its one's complement: the complement's XOR is
        folded into the first stage's multiplexer after it and into the comparison
        before it (a register of the complement cost 110 LUTs on xc7).
    sign_extend : tuple of int, optional
        Widths ``w0 < w1 < … <= acc_width``: the value is ``value``'s low ``w0`` bits, and
        each range ``[w(j), w(j+1))`` of it the bits of ``value`` where ``wider[j]`` is
        set and copies of ``sign`` where it is not, and ``sign`` above the last width.
        For a source whose values have several widths (an engine's accumulator
        partitions): the sign extension is folded into the shifter's first stage instead
        of costing a multiplexer on each bit above ``w0`` before it.

    Members
    -------
    value : In(signed(acc_width))
        Unsigned with ``sign_extend``.
    sign : In(1)
        Only with ``sign_extend``: the value's sign.
    wider : In(len(sign_extend) - 1)
        Only with ``sign_extend`` of several widths: bit ``j`` set, the value is wider
        than ``w(j)``.
    en : In(1)
        Only with ``pipeline > 0``: load the pipeline registers.
    negative, zero : Out(1)
    count : Out(range)
        Leading zeros of ``abs(value)`` in ``acc_width`` bits: the leading one has weight
        ``2**(acc_width - 1 - count)`` in units of the LSB.
    shifter_count, carried : Out
        ``count`` is ``shifter_count - carried``: the shifter's count, and whether the
        increment carried out (the leading one is a place higher). For a user that
        computes from the count in parallel with the increment (``shifter_count`` comes
        from a register, ``carried`` at the end of the increment's carry chain).
    top : Out(keep)
        ``abs(value)`` shifted so that its leading one is ``top``'s MSB (zero-padded).
    sticky : Out(1)
        Some bit of ``abs(value)`` below ``top`` is set.
    """

    def __init__(self, *, acc_width: int, keep: int, pipeline: int = 0, sign_extend=None,
                 register_input: bool = False):
        if not isinstance(acc_width, int) or acc_width < 2:
            raise ValueError(f"acc_width must be an integer of at least 2, not {acc_width!r}")
        if not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep must be a positive integer, not {keep!r}")
        stages = (acc_width - 1).bit_length()
        _check_normalizer_pipeline("pipeline", pipeline, acc_width)
        if register_input and not pipeline:
            raise ValueError("register_input needs a pipeline of at least 1 register")
        sign_extend = _check_sign_extend("sign_extend", sign_extend, acc_width)
        self._acc_width, self._keep, self._pipeline = acc_width, keep, pipeline
        self._register_input = bool(register_input) or pipeline > stages
        self._sign_extend = sign_extend
        super().__init__({
            "value": In(acc_width if sign_extend else signed(acc_width)),
            **({"sign": In(1)} if sign_extend else {}),
            **({"wider": In(len(sign_extend) - 1)} if sign_extend and len(sign_extend) > 1 else {}),
            **({"en": In(1)} if pipeline else {}),
            "negative": Out(1),
            "zero": Out(1),
            "count": Out(max(stages, 1)),
            "shifter_count": Out(max(stages, 1)),
            "carried": Out(1),
            "top": Out(keep),
            "sticky": Out(1),
        })

    @property
    def pipeline(self) -> int:
        return self._pipeline

    def elaborate(self, platform):
        m = Module()
        width, keep, pipeline = self._acc_width, self._keep, self._pipeline
        stages = (width - 1).bit_length()
        en = self.en if pipeline else None

        value, negative = self.value.as_unsigned(), self.value[width - 1]
        widths = self._sign_extend
        if widths:
            negative = self.sign
        # The increment after the last stage counts as two levels in the cut placement
        # (without it, 128 bits with 4 registers put three stages and the increment in the
        # last cycle: the scale, the top and the zero flag were the latest ECP5 paths).
        cuts = balanced_cuts(stages, pipeline - self._register_input, tail=2)
        wider = (self.wider if widths and len(widths) > 1 else Const(0, 0))

        def ones_complement(value, negative, wider, name):
            """The one's complement when negative (with the sign extension)."""
            ones = Signal(width, name=name)
            if widths:          # a sign-extended bit's one's complement is 0
                m.d.comb += ones.eq(Cat(value[:widths[0]] ^ negative.replicate(widths[0]), *[
                    Mux(wider[j], value[lo:hi] ^ negative.replicate(hi - lo), 0)
                    for j, (lo, hi) in enumerate(zip(widths, widths[1:]))]))
            else:
                m.d.comb += ones.eq(value ^ negative.replicate(width))
            return ones

        first_decision = None
        if self._register_input:
            first_decision = pipeline_register(
                m, first_shift_decision(ones_complement(value, negative, wider, "ones_in")),
                name="first_decision_reg", en=en)
            value = pipeline_register(m, value, name="value_reg", en=en)
            negative = pipeline_register(m, negative, name="negative_reg", en=en)
            if len(wider):
                wider = pipeline_register(m, wider, name="wider_reg", en=en)
        ones = ones_complement(value, negative, wider, "ones")
        count, top, sticky = leading_zeros_top(m, ones, keep, name="norm", cut_after=cuts,
                                               en=en, fill=negative,
                                               first_decision=first_decision)
        for k in range(len(cuts)):
            negative = pipeline_register(m, negative, name=f"negative_r{k}", en=en)
        # The magnitude's leading bits: the kept bits plus the carry out of the bits below
        # them, which are all ones exactly when none differs from the fill.
        carry = Signal(name="carry")
        incremented = Signal(keep + 1, name="incremented")
        overflow = Signal(name="overflow")
        m.d.comb += [
            carry.eq(negative & ~sticky),
            incremented.eq(top + carry),
            overflow.eq(incremented[keep]),
        ]
        # On overflow the increment's low bits are 0 and the leading one is a place higher.
        magnitude_top = Signal(keep, name="magnitude_top")
        m.d.comb += magnitude_top.eq(Cat(incremented[:keep - 1], incremented[keep - 1] | overflow))
        m.d.comb += [
            self.negative.eq(negative),
            # top's MSB is the leading one of a nonzero magnitude
            self.zero.eq(~magnitude_top[keep - 1]),
            self.count.eq(count - overflow),
            self.shifter_count.eq(count),
            self.carried.eq(overflow),
            self.top.eq(magnitude_top),
            self.sticky.eq(sticky),
        ]
        return m


def _check_sign_extend(name: str, widths, acc_width: int):
    """``widths`` as a tuple (None if not given), checked: ascending, from 1 to
    ``acc_width``, at least one."""
    if widths is None:
        return None
    widths = tuple(widths)
    if (not widths or not all(isinstance(w, int) and not isinstance(w, bool) for w in widths)
            or list(widths) != sorted(set(widths)) or widths[0] < 1 or widths[-1] > acc_width):
        raise ValueError(f"{name} must be ascending widths from 1 to "
                         f"{acc_width}, not {widths!r}")
    return widths


def balanced_cuts(stages: int, n: int, *, tail: int = 0) -> tuple:
    """The ``n`` shift stages of a normalizer after which to register, chosen so that the
    deepest register-to-register segment is as shallow as possible.

    Stage ``s`` (0 shifts by the largest amount) costs a multiplexer level plus the OR
    tree that tests its ``2**(stages - 1 - s)`` top bits for zero (LUT4s: half a level
    per doubling), so the first stages are the deep ones; spreading the cuts evenly
    would leave the two deepest stages in one segment. ``tail`` is the depth of what
    follows the last stage in the same cycle (the :class:`Normalizer`'s increment).
    """
    if not 0 <= n <= stages:
        raise ValueError(f"cannot place {n} registers after {stages} shift stages")
    return min(itertools.combinations(range(stages), n),
               key=lambda cuts: (deepest_segment(stages, cuts, tail=tail), cuts))


def deepest_segment(stages: int, cuts, *, tail: int = 0) -> int:
    """The estimated logic depth of the deepest segment of a normalizer's ``stages`` shift
    stages registered after each of ``cuts``, with ``tail`` levels after the last stage
    (the cost model of :func:`balanced_cuts`)."""
    cost = [1 + (stages - s) // 2 for s in range(stages)]
    bounds = (-1, *cuts, stages - 1)
    depths = [sum(cost[a + 1:b + 1]) for a, b in zip(bounds, bounds[1:])]
    depths[-1] += tail
    return max(depths)


class FixedToFormats(wiring.Component):
    """Rounding of a fixed-point value into one of several formats, selected at run time,
    through one shared :class:`Normalizer`.

    The normalizer (the wide part) is built once; each format adds only its field
    construction and rounding increment on ``kept_bits(fmt)`` bits.

    Parameters
    ----------
    formats : sequence of str or Format
    acc_width, lsb_exponent : int
        As for :class:`FixedToFormat`.
    isolate : bool
        Drive the rounding logic of the formats not selected with constant zeros, so it
        does not toggle.
    registered : bool
        Register the normalizer's outputs (and ``fmt`` and the flags) when ``en`` is set.
    normalizer_pipeline : int
        Registers inside the normalizer (see :class:`Normalizer`).
    normalizer_register_input : bool
        The first of them on the normalizer's input (see :class:`Normalizer`).
    split_rounding : bool
        Register each format's rounding in the middle (see :func:`round_normalized`).
    split_fields : bool
        Register each format's rounding once more, earlier: after the field parameters
        that depend on the scale only (see :func:`round_normalized`). ``code`` follows the
        inputs :attr:`latency` = ``normalizer_pipeline + registered + split_rounding +
        split_fields`` enabled cycles later.
    max_lsb_offset : int
        With a value above 0, the input ``lsb_offset`` (0 to ``max_lsb_offset``) raises
        the LSB exponent at run time: ``value`` means
        ``value * 2**(lsb_exponent + lsb_offset)``. For a source whose values have
        different LSBs (an engine's lane modes): each is rounded from where it is, instead
        of being shifted to a common LSB first (a multiplexer as wide as ``value``). The
        offset travels beside the normalizer and only moves the leading one's exponent.
    sign_extend : tuple of int, optional
        The value's sign extension is the normalizer's (see :class:`Normalizer`).
    fold_constant_offset : bool
        Reset the leading one's exponent registers (beside a pipelined normalizer, with
        ``max_lsb_offset``) to their value at offset 0, so that synthesis turns the bits no
        offset changes into constants instead of flip-flops that load them (see
        :func:`generators.synth.constant_register_bits`). For the PEs of an array, where
        Yosys would merge each such flip-flop of all the PEs into one. Alone, those
        flip-flops cost nothing, and the constants changed Yosys's ECP5 mapping of the
        scale's subtractions (xr_npe's engine: ten-placement median 142.3 MHz against
        146.9).

    Members
    -------
    value, nan, pos_inf, neg_inf : In
        As for :class:`FixedToFormat` (``value`` unsigned with ``sign_extend``).
    sign, wider : In
        Only with ``sign_extend``: as for :class:`Normalizer`.
    fmt : In(range(len(formats)))
    lsb_offset : In(range(max_lsb_offset + 1))
        Only with ``max_lsb_offset`` above 0.
    en : In(1)
        Only with a :attr:`latency` above 0: load the pipeline registers.
    code : Out(max code width)
        The code, zero-extended.
    """

    def __init__(self, formats, *, acc_width, lsb_exponent, isolate=True, registered=False,
                 normalizer_pipeline=0, normalizer_register_input=False,
                 split_rounding=False, split_fields=False, max_lsb_offset=0, sign_extend=None,
                 fold_constant_offset=False):
        formats = tuple(get_format(f) for f in formats)
        if not formats:
            raise ValueError("formats must not be empty")
        if not isinstance(acc_width, int) or isinstance(acc_width, bool) or acc_width < 2:
            raise ValueError(f"acc_width must be an integer of at least 2, not {acc_width!r}")
        if not isinstance(lsb_exponent, int) or isinstance(lsb_exponent, bool):
            raise TypeError(f"lsb_exponent must be an integer, not {lsb_exponent!r}")
        self._formats = formats
        self._acc_width, self._lsb_exponent = acc_width, lsb_exponent
        self._isolate = bool(isolate)
        self._registered = bool(registered)
        _check_normalizer_pipeline("normalizer_pipeline", normalizer_pipeline, acc_width)
        self._normalizer_pipeline = normalizer_pipeline
        if normalizer_register_input and not normalizer_pipeline:
            raise ValueError("normalizer_register_input needs a normalizer_pipeline of at "
                             "least 1 register")
        self._normalizer_register_input = bool(normalizer_register_input)
        self._split_rounding = bool(split_rounding)
        self._split_fields = bool(split_fields)
        if (not isinstance(max_lsb_offset, int) or isinstance(max_lsb_offset, bool)
                or max_lsb_offset < 0):
            raise ValueError(f"max_lsb_offset must be a non-negative integer, "
                             f"not {max_lsb_offset!r}")
        self._max_lsb_offset = max_lsb_offset
        self._sign_extend = _check_sign_extend("sign_extend", sign_extend, acc_width)
        self._fold_constant_offset = bool(fold_constant_offset)
        super().__init__({
            "value": In(acc_width if self._sign_extend else signed(acc_width)),
            **({"sign": In(1)} if self._sign_extend else {}),
            **({"wider": In(len(self._sign_extend) - 1)}
               if self._sign_extend and len(self._sign_extend) > 1 else {}),
            "nan": In(1),
            "pos_inf": In(1),
            "neg_inf": In(1),
            "fmt": In(range(len(formats))),
            **({"lsb_offset": In(range(max_lsb_offset + 1))} if max_lsb_offset else {}),
            **({"en": In(1)} if registered or normalizer_pipeline or split_rounding
               or split_fields else {}),
            "code": Out(max(f.bits for f in formats)),
        })

    @property
    def formats(self):
        return self._formats

    @property
    def latency(self) -> int:
        """Enabled cycles from the inputs to ``code``."""
        return (self._normalizer_pipeline + self._registered + self._split_rounding
                + self._split_fields)

    def elaborate(self, platform):
        m = Module()
        keep = max(kept_bits(f) for f in self._formats)
        norm = Normalizer(acc_width=self._acc_width, keep=keep, pipeline=self._normalizer_pipeline,
                          sign_extend=self._sign_extend,
                          register_input=self._normalizer_register_input)
        m.submodules.normalizer = norm
        m.d.comb += norm.value.eq(self.value)
        if self._sign_extend:
            m.d.comb += norm.sign.eq(self.sign)
            if len(self._sign_extend) > 1:
                m.d.comb += norm.wider.eq(self.wider)
        lsb, width, offset = self._lsb_exponent, self._acc_width, self._max_lsb_offset
        # The leading one's exponent is ``top_exp - count``; ``top_exp`` (that of the
        # value's MSB) is formed at the input and travels beside the normalizer, so the
        # scale is one subtraction as without an offset.
        top_exp = Signal(signed(_signed_bits(lsb + width - 1, lsb + width - 1 + offset)),
                         name="top_exp")
        m.d.comb += top_exp.eq((lsb + width - 1) + (self.lsb_offset if offset else 0))
        # With the offset travelling in registers beside the normalizer, the exponent one
        # above it travels too: the scale after the increment's carry-out is then a
        # subtraction beside the other, not an increment after it (``top_exp - count + 1``
        # from a register was two carry chains in series, 7.0 ns on ECP5, the engine's
        # latest path). Without those registers the two would be two three-operand sums.
        top_exp_up = None
        if offset and norm.pipeline:
            top_exp_up = Signal(signed(len(top_exp) + 1), name="top_exp_up")
            m.d.comb += top_exp_up.eq((lsb + width) + self.lsb_offset)
        fmt, flags = self.fmt, (self.nan, self.pos_inf, self.neg_inf)
        if norm.pipeline:
            m.d.comb += norm.en.eq(self.en)
            for k in range(norm.pipeline):      # the side inputs travel beside the normalizer
                fmt = pipeline_register(m, fmt, name=f"fmt_n{k}", en=self.en)
                flags = pipeline_register(m, Cat(*flags), name=f"flags_n{k}", en=self.en)
                if offset:
                    fold = self._fold_constant_offset   # (see the parameter)
                    top_exp = pipeline_register(m, top_exp, name=f"top_exp_n{k}", en=self.en,
                                                init=lsb + width - 1 if fold else None)
                    top_exp_up = pipeline_register(m, top_exp_up, name=f"top_exp_up_n{k}",
                                                   en=self.en, init=lsb + width if fold else None)
            nan, pos_inf, neg_inf = Signal(), Signal(), Signal()
            m.d.comb += Cat(nan, pos_inf, neg_inf).eq(flags)
            flags = (nan, pos_inf, neg_inf)
        scale = Signal(signed(_signed_bits(lsb - width, lsb + width + offset)), name="scale")
        # Both scales are formed from the shifter's count while the normalizer's increment
        # runs, and its carry-out only selects one (see Normalizer.shifter_count): after
        # the corrected count, the subtraction was an 11.6 ns path on ECP5.
        scale_up = Signal.like(scale, name="scale_carried")
        scale_plain = Signal.like(scale, name="scale_plain")
        m.d.comb += [scale_plain.eq(top_exp - norm.shifter_count),
                     scale_up.eq(top_exp - norm.shifter_count + 1 if top_exp_up is None
                                 else top_exp_up - norm.shifter_count),
                     scale.eq(Mux(norm.carried, scale_up, scale_plain))]
        n = {"negative": norm.negative, "zero": norm.zero, "scale": scale, "top": norm.top,
             "sticky": norm.sticky, "fmt": fmt, "nan": flags[0],
             "pos_inf": flags[1], "neg_inf": flags[2]}
        # Each output format's select, one-hot. Registered, the decode of the format
        # happens before the register: decoded after it, it was a LUT level and a routing
        # hop in front of the isolation gates and the fields' carry chains (on ECP5 the
        # format register to FP4's subnormal shift, 6.8 ns, ended a placement).
        # (one format: its select is a constant, never a register that loads 1 for good)
        one_format = len(self._formats) == 1
        sels = []
        for idx, fmt in enumerate(self._formats):
            sel = Signal(name=f"sel_{fmt.name}")
            m.d.comb += sel.eq(1 if one_format else n["fmt"] == idx)
            if self._registered and not one_format:
                sel = pipeline_register(m, sel, name=f"sel_{fmt.name}_reg", en=self.en)
            sels.append(sel)
        del n["fmt"]
        if self._registered:
            n = {key: pipeline_register(m, v, name=f"{key}_reg", en=self.en)
                 for key, v in n.items()}
        for fmt, sel in zip(self._formats, sels):
            k = kept_bits(fmt)
            ins = {"negative": n["negative"], "zero": n["zero"], "scale": n["scale"],
                   "top": n["top"][keep - k:],
                   "sticky": n["sticky"] | (n["top"][:keep - k].any() if keep > k else 0),
                   "nan": n["nan"], "pos_inf": n["pos_inf"], "neg_inf": n["neg_inf"]}
            gated = {}
            for key, v in ins.items():
                g = Signal.like(v, name=f"{fmt.name}_{key}") if isinstance(v, Signal) \
                    else Signal(len(v), name=f"{fmt.name}_{key}")
                m.d.comb += g.eq(Mux(sel, v, 0) if self._isolate else v)
                gated[key] = g
            code = round_normalized(m, fmt, **gated,
                                    stage=self._stage(m) if self._split_rounding else None,
                                    field_stage=self._stage(m) if self._split_fields else None)
            if self._split_fields:
                sel = self._stage(m)(sel, f"sel_{fmt.name}_f")
            if self._split_rounding:
                sel = self._stage(m)(sel, f"sel_{fmt.name}_r")
            with m.If(sel):
                m.d.comb += self.code.eq(code)
        return m


    def _stage(self, m):
        def stage(value, name):
            return pipeline_register(m, value, name=name, en=self.en)
        return stage


def round_normalized(m, fmt, *, negative, zero, scale, top, sticky, nan, pos_inf, neg_inf,
                     stage=None, field_stage=None):
    """The code of ``fmt`` for a normalized value (see :class:`Normalizer`): adds the
    combinational logic to ``m`` and returns the code signal.

    ``top`` holds ``kept_bits(fmt)`` bits whose MSB is the leading one, of weight
    ``2**scale``; ``sticky`` says a lower bit is set; the flags take precedence as in
    :class:`FixedToFormat`.

    ``stage``, if given, is a function ``stage(value, name) -> Signal`` that registers a
    value: the rounding is then cut in two, after the field construction (the shift by
    the regime or the subnormal shift) and before the rounding increment.
    ``field_stage``, the same kind of function, cuts it once more, before that shift:
    after the field parameters that depend on the scale only (a posit's regime run, a
    float's subnormal shift and exponent field, an integer's overflow).
    """
    fmt = get_format(fmt)
    p = format_params(fmt)
    def passed_on(value, name):
        return value
    stage = stage or passed_on
    field_stage = field_stage or passed_on
    if len(top) != kept_bits(fmt):
        raise ValueError(f"top must have {kept_bits(fmt)} bits for {fmt.name}, not {len(top)}")
    prefix = fmt.name
    norm = Cat(sticky, top)                 # the sticky bit stands for everything below
    if p.kind == "posit":
        rounded = _round_posit(m, p, negative, scale, norm, prefix, stage, field_stage)
    elif p.kind == "float":
        rounded = _round_float(m, fmt, p, negative, scale, norm, prefix, stage, field_stage)
    else:
        rounded = _round_int(m, p, negative, scale, norm, prefix, stage, field_stage)
    nan, pos_inf, neg_inf, zero = (stage(field_stage(v, f"{prefix}_{k}_f"), f"{prefix}_{k}_r")
                                   for v, k in ((nan, "nan"), (pos_inf, "pos_inf"),
                                                (neg_inf, "neg_inf"), (zero, "zero")))
    code = Signal(fmt.bits, name=f"{prefix}_code")
    with m.If(nan | (pos_inf & neg_inf)):
        m.d.comb += code.eq(_encode_one(fmt, float("nan")))
    with m.Elif(pos_inf):
        m.d.comb += code.eq(_encode_one(fmt, float("inf")))
    with m.Elif(neg_inf):
        m.d.comb += code.eq(_encode_one(fmt, float("-inf")))
    with m.Elif(zero):
        m.d.comb += code.eq(_encode_one(fmt, 0.0))
    with m.Else():
        m.d.comb += code.eq(rounded)
    return code


def _round_int(m, p, negative, scale, norm, prefix, stage, field_stage):
    """Integer: round the magnitude to nearest even, saturate, apply the sign.

    ``norm``'s MSB (index ``w - 1``) has weight ``2**scale``, so the units bit is at index
    ``j = w - 1 - scale``: the integer part is ``norm >> j``, the guard ``norm[j - 1]``.
    ``j < 1`` (scale beyond the format) saturates; ``j > w`` (below one half) gives 0.
    """
    bits, w = p.bits, len(norm)
    integer = Signal(w, name=f"{prefix}_integer")
    guard = Signal(name=f"{prefix}_guard")
    sticky = Signal(name=f"{prefix}_sticky")
    too_big = Signal(name=f"{prefix}_too_big")
    m.d.comb += too_big.eq(scale > w - 2)
    scale, too_big, norm, negative = (
        field_stage(v, f"{prefix}_{k}_f") for v, k in ((scale, "scale"), (too_big, "too_big"),
                                                       (norm, "norm"), (negative, "negative")))
    with m.Switch(scale):
        for s in range(-1, w - 1):
            j = w - 1 - s
            with m.Case(s):
                m.d.comb += [integer.eq(norm[j:]), guard.eq(norm[j - 1]),
                             sticky.eq(norm[:j - 1].any() if j > 1 else 0)]
    integer, guard, sticky, too_big, negative = (
        stage(v, f"{prefix}_{k}_r") for v, k in ((integer, "integer"), (guard, "guard"),
                                                 (sticky, "sticky"), (too_big, "too_big"),
                                                 (negative, "negative")))
    q = Signal(w + 1, name=f"{prefix}_magnitude")
    m.d.comb += q.eq(integer + (guard & (sticky | integer[0])))
    hi = (1 << (bits - 1)) - 1
    out = Signal(bits, name=f"{prefix}_int_code")
    with m.If(negative):
        m.d.comb += out.eq(Mux(too_big | (q > hi + 1), hi + 1, -q))   # hi + 1 is -2**(bits-1)
    with m.Else():
        m.d.comb += out.eq(Mux(too_big | (q > hi), hi, q))
    return out


def _round_posit(m, p, negative, scale, norm, prefix, stage, field_stage):
    """Posit: build the magnitude pattern with guard and sticky, round it (RNE)."""
    n, es = p.bits, p.es
    width = len(norm)

    # Regime k and exponent e of the leading one: scale = k * 2**es + e.
    k = Signal(signed(max(len(scale) - es, 1) + 1), name=f"{prefix}_regime_k")
    m.d.comb += k.eq(scale.as_signed() >> es)
    kc = Signal(range(-(n - 1), n - 1), name=f"{prefix}_regime_k_clamped")
    m.d.comb += kc.eq(Mux(k < -(n - 1), -(n - 1), Mux(k > n - 2, n - 2, k)))
    e = scale[:es]
    r = Signal(name=f"{prefix}_regime_bit")                        # 1 for k >= 0: a run of ones
    m.d.comb += r.eq(kc >= 0)
    run_shift = Signal(range(n - 1), name=f"{prefix}_regime_shift")  # k, or -k - 1 for k < 0
    m.d.comb += run_shift.eq(Mux(r, kc, ~kc))
    r, run_shift, norm, negative = (
        field_stage(v, f"{prefix}_{k}_f") for v, k in ((r, "regime_bit"), (run_shift, "run_shift"),
                                                       (norm, "norm"), (negative, "negative")))
    if es:
        e = field_stage(e, f"{prefix}_e_f")

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
    shifted = Signal(total, name=f"{prefix}_posit_shifted")
    m.d.comb += shifted.eq(head.as_signed() >> run_shift)
    pattern = shifted[total - (n - 1):]
    guard = shifted[total - n]
    sticky = shifted[:total - n].any() | sticky_low if total > n else sticky_low
    # The pattern is 0 exactly when the run is the longest run of zeros (r = 0 and the
    # shift n - 2, a value below minpos's range): then the run's terminating one is the
    # guard bit. Read off the shift's inputs beside it, not off the pattern after it (a
    # test of n - 1 bits in front of the rounding's carry chain and the code's select).
    pattern_zero = Signal(name=f"{prefix}_pattern_zero")
    m.d.comb += pattern_zero.eq(~r & (run_shift == n - 2))
    pattern, guard, sticky, negative, pattern_zero = (
        stage(v, f"{prefix}_{k}_r") for v, k in ((pattern, "pattern"), (guard, "guard"),
                                                 (sticky, "sticky"), (negative, "negative"),
                                                 (pattern_zero, "pattern_zero")))

    # The code is ±(pattern + round_up), never 0 (minpos instead). It never rounds past
    # maxpos: an all-ones pattern is the longest regime run (k = n - 2), and its guard
    # bit is the run's terminating zero. The zero case is read off pattern and round_up
    # beside the adder, and the sign is applied in the same adder, -(p + r) = ~p + ~r in
    # n bits: one carry chain after the register instead of an increment, a test for
    # zero and a negation in series.
    round_up = Signal(name=f"{prefix}_round_up")
    m.d.comb += round_up.eq(guard & (sticky | pattern[0]))
    to_zero = Signal(name=f"{prefix}_to_zero")
    # (pattern 0: its guard is the run's terminator, so it rounds up exactly with sticky)
    m.d.comb += to_zero.eq(pattern_zero & ~sticky)
    signed_sum = Signal(n, name=f"{prefix}_posit_signed_sum")
    m.d.comb += signed_sum.eq((Cat(pattern, Const(0, 1)) ^ negative.replicate(n))
                              + (round_up ^ negative))
    out = Signal(n, name=f"{prefix}_posit_code")
    m.d.comb += out.eq(Mux(to_zero, Mux(negative, (1 << n) - 1, 1), signed_sum))
    return out

def _round_float(m, fmt, p, negative, scale, norm, prefix, stage, field_stage):
    """Minifloat: normal/subnormal significand with guard and sticky, RNE, overflow."""
    ebits, mbits, bias = p.exponent_bits, p.mantissa_bits, p.bias
    width = len(norm)
    max_mag = _float_max_magnitude(p)                  # largest finite magnitude code
    top_exp = max_mag >> mbits                          # its exponent field
    huge = 2.0 ** (top_exp - bias + 2)
    overflow_pos = _encode_one(fmt, huge)
    overflow_neg = _encode_one(fmt, -huge)

    # ``biased`` = scale + bias, the biased exponent of the leading one.
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

    # Every field below is one comparison or one addition on ``scale`` (biased's bounds
    # moved to the constant side), not a second carry chain after ``biased``'s adder: this
    # was an Fmax path.
    normal = Signal(name=f"{prefix}_normal")                        # biased >= 1
    m.d.comb += normal.eq(scale >= 1 - bias)
    denorm = Signal(range(keep_bits + 1), name=f"{prefix}_denorm_shift")
    m.d.comb += denorm.eq(Mux(normal, 0,
                              Mux(scale <= -(mbits + 1) - bias, keep_bits, (1 - bias) - scale)))
    exp_field = Signal(ebits, name=f"{prefix}_exp_field")          # biased - 1 for a normal
    m.d.comb += exp_field.eq(Mux(normal, scale + (bias - 1), 0))
    exp_overflow = Signal(name=f"{prefix}_exp_overflow")
    m.d.comb += exp_overflow.eq(scale > top_exp - bias)
    denorm, exp_field, exp_overflow, top, sticky_low, negative = (
        field_stage(v, f"{prefix}_{k}_f") for v, k in (
            (denorm, "denorm"), (exp_field, "exp_field"), (exp_overflow, "exp_overflow"),
            (top, "top"), (sticky_low, "sticky_low"), (negative, "negative")))
    shifted = Signal(keep_bits, name=f"{prefix}_float_shifted")
    m.d.comb += shifted.eq(top >> denorm)
    sticky_shift = Signal(name=f"{prefix}_sticky_shift")
    with m.Switch(denorm):
        for j in range(keep_bits + 1):
            with m.Case(j):
                m.d.comb += sticky_shift.eq(top[:j].any() if j else 0)
    keep = shifted[1:]
    guard = shifted[0]
    sticky = sticky_low | sticky_shift
    keep, guard, sticky, exp_field, exp_overflow, negative = (
        stage(v, f"{prefix}_{k}_r") for v, k in ((keep, "keep"), (guard, "guard"),
                                                 (sticky, "sticky"), (exp_field, "exp_field"),
                                                 (exp_overflow, "exp_overflow"),
                                                 (negative, "negative")))
    mag = Signal(ebits + mbits + 1, name=f"{prefix}_float_magnitude")
    m.d.comb += mag.eq(Cat(Const(0, mbits), exp_field) + keep
                       + (guard & (sticky | keep[0])))
    overflow = Signal(name=f"{prefix}_overflow")
    m.d.comb += overflow.eq(exp_overflow | (mag > max_mag))
    out = Signal(p.bits, name=f"{prefix}_float_code")
    m.d.comb += out.eq(Mux(overflow, Mux(negative, overflow_neg, overflow_pos),
                           Cat(mag[:ebits + mbits], negative)))
    return out
