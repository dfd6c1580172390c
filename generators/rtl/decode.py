"""Per-lane format decoders: a format code to (flags, sign, exponent, integer significand).

Every number format of :mod:`generators.formats` is decoded into one common payload,
:func:`decoded_layout`, so the multiplier and the aligner downstream never need to know
which format an operand came in. A finite nonzero code decodes to

    value = (-1)**sign * sig * 2**exp

with ``sig`` an unsigned integer significand *including* the hidden bit, and ``exp`` the
exponent of the significand's least significant bit. The significand keeps exactly the
fraction bits that the code holds (for a posit, the fraction bits left after its regime
and exponent fields), so ``sig`` is right-aligned: ``exp`` never falls below
``fmt.min_exponent`` and products of decoded operands never have bits below the exact
accumulator's LSB.

Flag conventions (all formats):

* zero: ``zero = 1``, ``sig = 0``, ``exp = 0``, ``sign`` = the code's sign bit (a minifloat
  ``-0`` has ``sign = 1``; posit and integer zero have ``sign = 0``);
* NaN / NaR: ``special = 1``, ``sig = 0``, ``exp = 0``, ``sign = 0``;
* infinity: ``inf = 1``, ``sig = 0``, ``exp = 0``, ``sign`` = the sign of the infinity;
* integers: ``sig = |value|`` (int8 ``-128`` gives ``sig = 128``) and ``exp = 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from generators.formats import get_format
from generators.rtl.pipeline import pipeline_register

__all__ = [
    "decoded_layout",
    "decoded_widths",
    "common_widths",
    "format_params",
    "FormatParams",
    "leading_zeros",
    "leading_zeros_top",
    "FormatDecoder",
    "PartitionedPositDecoder",
    "TableDecoder",
    "decoded_fields",
]


# --------------------------------------------------------------------------------------
# Format parameters, as the RTL needs them


@dataclass(frozen=True)
class FormatParams:
    """The structural parameters of a format that the RTL generators use.

    Attributes
    ----------
    kind : str
        ``"posit"``, ``"float"`` or ``"int"``.
    bits : int
        Code width.
    es : int
        Posit exponent size (0 for other kinds).
    exponent_bits, mantissa_bits, bias : int
        Minifloat fields (0 for other kinds).
    special : str
        Minifloat special-value rule: ``"ieee"`` (Inf and NaN in the all-ones exponent),
        ``"fn"`` (no Inf; only all-ones exponent and mantissa is NaN) or ``"none"``;
        ``""`` for other kinds.
    """

    kind: str
    bits: int
    es: int = 0
    exponent_bits: int = 0
    mantissa_bits: int = 0
    bias: int = 0
    special: str = ""


def format_params(fmt) -> FormatParams:
    """The :class:`FormatParams` of a format (a name or a ``Format``)."""
    fmt = get_format(fmt)
    kind = fmt.kind
    if kind == "posit":
        return FormatParams(kind, fmt.bits, es=fmt.es)
    if kind == "float":
        return FormatParams(kind, fmt.bits, exponent_bits=fmt.exponent_bits,
                            mantissa_bits=fmt.mantissa_bits, bias=fmt.bias,
                            special=fmt.special)
    if kind == "int":
        return FormatParams(kind, fmt.bits)
    raise ValueError(f"format kind must be 'posit', 'float' or 'int', not {kind!r} "
                     f"(format {fmt.name})")


# --------------------------------------------------------------------------------------
# Widths


def _signed_bits(lo: int, hi: int) -> int:
    """The smallest signed width holding every integer of ``[lo, hi]``."""
    width = 1
    while not (-(1 << (width - 1)) <= lo and hi <= (1 << (width - 1)) - 1):
        width += 1
    return width


def _exp_range(p: FormatParams):
    """``(lowest, highest)`` decoded ``exp`` of a finite nonzero code."""
    if p.kind == "posit":
        scale = (p.bits - 2) << p.es
        return -scale, scale                    # minpos: 2**-scale, maxpos: 2**scale, sig 1
    if p.kind == "float":
        m = p.mantissa_bits
        top = _float_max_magnitude(p) >> m
        return 1 - p.bias - m, max(top, 1) - p.bias - m
    return 0, 0


def _float_max_magnitude(p: FormatParams) -> int:
    """The magnitude code (code without sign) of a minifloat's largest finite value."""
    m, ones = p.mantissa_bits, (1 << p.mantissa_bits) - 1
    top = (1 << p.exponent_bits) - 1
    if p.special == "ieee" or (p.special == "fn" and m == 0):
        return ((top - 1) << m) | ones          # the all-ones exponent is not finite
    if p.special == "fn":
        return (top << m) | (ones - 1)          # all-ones exponent and mantissa is NaN
    return (top << m) | ones


def _frac_bits(p: FormatParams) -> int:
    """The most fraction bits a code holds (posits: with the shortest regime)."""
    if p.kind == "posit":
        return max(p.bits - 3 - p.es, 0)
    if p.kind == "float":
        return p.mantissa_bits
    return p.bits - 1


def decoded_widths(fmt):
    """The narrowest ``(sig_bits, exp_bits)`` that hold every code of a format.

    Parameters
    ----------
    fmt : str or Format

    Returns
    -------
    sig_bits : int
        Unsigned width of the significand, hidden bit included.
    exp_bits : int
        Signed width of the exponent of the significand's LSB.
    """
    p = format_params(fmt)
    sig_bits = p.bits if p.kind == "int" else _frac_bits(p) + 1
    lo, hi = _exp_range(p)
    return sig_bits, _signed_bits(min(lo, 0), max(hi, 0))


def common_widths(formats):
    """The narrowest ``(sig_bits, exp_bits)`` that hold every code of every format given.

    Parameters
    ----------
    formats : iterable of str or Format
    """
    formats = list(formats)
    if not formats:
        raise ValueError("formats must name at least one format, not none")
    widths = [decoded_widths(f) for f in formats]
    return max(w[0] for w in widths), max(w[1] for w in widths)


def decoded_layout(*, sig_bits, exp_bits) -> data.StructLayout:
    """The layout of a decoded operand.

    Parameters
    ----------
    sig_bits : int
        Width of ``sig``, the unsigned integer significand (hidden bit included).
    exp_bits : int
        Width of ``exp``, the signed exponent of the significand's LSB.

    Returns
    -------
    data.StructLayout
        Fields ``special`` (NaN/NaR), ``inf``, ``zero``, ``sign`` (1 bit each),
        ``exp`` (``signed(exp_bits)``) and ``sig`` (``unsigned(sig_bits)``).
    """
    if not isinstance(sig_bits, int) or sig_bits < 1:
        raise TypeError(f"sig_bits must be a positive integer, not {sig_bits!r}")
    if not isinstance(exp_bits, int) or exp_bits < 1:
        raise TypeError(f"exp_bits must be a positive integer, not {exp_bits!r}")
    return data.StructLayout({
        "special": 1,
        "inf": 1,
        "zero": 1,
        "sign": 1,
        "exp": signed(exp_bits),
        "sig": unsigned(sig_bits),
    })


# --------------------------------------------------------------------------------------
# Shared building block


def leading_zeros(m: Module, value, *, name: str = "lz"):
    """Leading-zero count and left-normalized value of an unsigned value.

    A logarithmic normalizer: stage ``i`` (from the widest) shifts left by ``2**i`` when
    the top ``2**i`` bits are zero, and that decision is bit ``i`` of the count. It is a
    priority encoder and a barrel shifter in one, ``ceil(log2(width))`` levels deep.

    Parameters
    ----------
    m : Module
        The module to add the combinational logic to.
    value : Value
        Unsigned value of ``width`` bits.
    name : str
        Prefix of the signals created.

    Returns
    -------
    count : Signal
        The number of leading zeros (for ``value == 0``: some number ``>= width - 1``).
    normalized : Signal(width)
        ``value << count`` truncated to ``width`` bits: its top bit is set unless
        ``value == 0``.
    """
    count, normalized, _, _ = _shift_stages(m, value, len(value), name=name)
    return count, normalized


def leading_zeros_top(m: Module, value, keep: int, *, name: str = "lz", cut_after=(), en=None,
                      fill=None, first_decision=None):
    """Like :func:`leading_zeros`, but only the leading ``keep`` bits of the normalized
    value are produced, and the bits below them are ORed into a sticky bit.

    After the stage that shifts by ``2**i`` the later stages shift by at most
    ``2**i - 1``, so only the top ``keep + 2**i - 1`` bits can still reach the result;
    the bits below that window are folded into the sticky bit right there. The shifter
    narrows stage by stage (for a 128-bit value and ``keep = 14``: 218 multiplexed bits
    instead of 7 × 128).

    ``cut_after`` names shift stages (0 is the first, the one that shifts by the largest
    amount) after which the state is registered, loaded when ``en`` is set: a pipelined
    normalizer whose outputs follow ``value`` ``len(cut_after)`` enabled cycles later.

    ``fill`` (one bit, zero by default) is what the shifter shifts in below the value, and
    what pads ``top`` below a narrow value; the sticky bit is then set by a bit below
    ``top`` that differs from ``fill``. With the one's complement of a negative value and
    ``fill`` set, ``top`` and ``sticky`` describe the one's complement continued by ones
    below its LSB, from which :class:`~generators.rtl.encode.Normalizer` forms the
    magnitude by one short increment (see there).

    ``first_decision``, if given, is the first stage's decision, computed by the caller
    (:func:`first_shift_decision` of an earlier copy of ``value``, before a register):
    the first stage is then a multiplexer only.

    Returns
    -------
    count : Signal
        As for :func:`leading_zeros`.
    top : Signal(keep)
        ``(value << count)``'s leading ``keep`` bits (padded with ``fill`` below a narrow
        value).
    sticky : Signal(1)
        A bit of ``value << count`` below ``top`` that is not ``fill`` (with ``fill`` 0: a
        set bit).
    """
    width = len(value)
    stages = max((width - 1).bit_length(), 0)
    cut_after = tuple(cut_after)
    for c in cut_after:
        if c not in range(stages):
            raise ValueError(f"cut_after names stage {c}; a {width}-bit value has stages "
                             f"0 to {stages - 1}")
    if keep >= width:           # nothing to drop: the whole value, padded below
        count, norm, sticky, fill = _shift_stages(m, value, width, name=name,
                                                  cut_after=cut_after, en=en, fill=fill,
                                                  first_decision=first_decision)
        top = Signal(keep, name=f"{name}_top")
        m.d.comb += top.eq(Cat(fill.replicate(keep - width), norm))
        return count, top, sticky
    return _shift_stages(m, value, keep, name=name, cut_after=cut_after, en=en, fill=fill,
                         first_decision=first_decision)[:3]


def first_shift_decision(value):
    """The first stage's decision of the shifter of :func:`leading_zeros_top` for
    ``value``: whether its top ``2**(stages - 1)`` bits are all zero (an expression)."""
    width = len(value)
    stages = max((width - 1).bit_length(), 0)
    if not stages:
        raise ValueError("a 1-bit value has no shift stage")
    return value[width - min(1 << (stages - 1), width):] == 0


def _shift_stages(m, value, keep, *, name, cut_after=(), en=None, fill=None,
                  first_decision=None):
    """The normalizing shifter of :func:`leading_zeros` (``keep == len(value)``: nothing
    dropped) and :func:`leading_zeros_top` (``keep < len(value)``); see there. Also
    returns ``fill`` as it is after the registers of ``cut_after``."""
    width = len(value)
    fill = Const(0, 1) if fill is None else fill
    stages = max((width - 1).bit_length(), 0)
    cur = Signal(width, name=f"{name}_in")     # the window still tracked, MSB-aligned
    m.d.comb += cur.eq(value)
    total = width                              # bit positions the value spans
    stickies = []
    decisions = []
    for i in reversed(range(stages)):
        shift = 1 << i
        check = min(shift, total)
        w = len(cur)
        zero_top = Signal(name=f"{name}_z{i}")
        shifted = Signal(w, name=f"{name}_s{i}")
        m.d.comb += [
            zero_top.eq(first_decision if first_decision is not None and i == stages - 1
                        else cur[w - check:] == 0),
            shifted.eq(Mux(zero_top, Cat(fill.replicate(shift), cur)[:w], cur)),
        ]
        decisions.append(zero_top)
        window = min(w, keep + shift - 1) if i else keep
        if window < w:
            dropped = Signal(w - window, name=f"{name}_drop{i}")
            m.d.comb += dropped.eq(shifted[:w - window])
            stickies.append((dropped ^ fill.replicate(len(dropped))).any())
        cur = Signal(window, name=f"{name}_n{i}")
        m.d.comb += cur.eq(shifted[w - window:])
        if stages - 1 - i in cut_after:
            state = [cur, *decisions, Cat(*stickies).any() if stickies else Const(0, 1)]
            regs = [pipeline_register(m, x, name=f"{name}_r{i}_{k}", en=en)
                    for k, x in enumerate(state)]
            cur, decisions, stickies = regs[0], regs[1:-1], [regs[-1]]
            if not isinstance(fill, Const):
                fill = pipeline_register(m, fill, name=f"{name}_r{i}_fill", en=en)
    count = Signal(max(stages, 1), name=f"{name}_count")
    m.d.comb += count.eq(Cat(*reversed(decisions)) if decisions else 0)
    sticky = Signal(name=f"{name}_sticky")
    m.d.comb += sticky.eq(Cat(*stickies).any() if stickies else 0)
    return count, cur, sticky, fill


# --------------------------------------------------------------------------------------
# A posit's regime and fields (FormatDecoder and PartitionedPositDecoder)


def _posit_run(m, body, *, es=0, prefix=""):
    """The regime's run length of a posit's ``body`` (its magnitude without the sign bit,
    MSB first): how many leading bits equal the first. (Every bit equal to the first, i.e.
    maxpos, is a run of ``len(body)`` with no terminator.) Also the ``es`` bits after the
    run's terminator, where the exponent bits are, from the normalizer's shifted value
    (beside the run's last bit, not a multiplexer on the run after it); bits the body
    does not hold read as the regime's first bit, the caller leaves them out (see
    :func:`_posit_fields`)."""
    width = len(body)
    flipped = Signal(width, name=f"{prefix}regime_flipped")
    m.d.comb += flipped.eq(body ^ body[-1].replicate(width))
    run, shifted = leading_zeros(m, flipped, name=f"{prefix}regime")
    run_len = Signal(range(width + 1), name=f"{prefix}run")
    m.d.comb += run_len.eq(Mux(flipped == 0, width, run))
    e_after = Signal(es, name=f"{prefix}e_after")
    if es:
        m.d.comb += e_after.eq(shifted[width - 1 - es:width - 1] ^ body[-1].replicate(es))
    return run_len, e_after


def _posit_fields(m, p, body, run_len, e_after=None, *, r0=None, prefix=""):
    """A posit's ``exp`` and ``sig`` (as :func:`decoded_layout`'s) from its ``body`` and
    regime ``run_len``; ``r0``, the regime's first bit, is ``body``'s top bit unless given.
    With one exponent bit, ``e_after`` (if given) is the bit after the run's terminator
    (:func:`_posit_run`), registered beside the run; else the exponent bit is selected
    from the body by the run here. Both are 0 for a zero body (the codes of zero and NaR),
    as the decoded layout has them for every code that is not finite."""
    n, es = p.bits, p.es
    r0 = body[n - 2] if r0 is None else r0
    # Past the regime, everything is a small function of the run length: how many
    # bits follow the terminator (avail), how many of them are fraction (fbits), the
    # regime value k. One case per run length gives them as constants and the
    # exponent and fraction bits as fixed slices of the body, so the second half is
    # multiplexers on the run length, not a chain of narrow adders (an Fmax path).
    # A run of all n - 1 bits of zeros is the zero body: its case gives 0, so that no
    # multiplexer on "finite" follows (a LUT level on the exponent's ECP5 path).
    lo, hi = _exp_range(p)
    exp = Signal(range(lo, hi + 1), name=f"{prefix}exp")
    exp_base = Signal(signed(len(exp) + 1), name=f"{prefix}exp_base")   # k * 2**es - fbits
    e = Signal(es, name=f"{prefix}e")         # the exponent bits, zero-padded when cut
    sig = Signal(_frac_bits(p) + 1, name=f"{prefix}sig")

    def base(run, r):
        """exp_base in the case of ``run`` and regime bit ``r`` (0 for the zero body)."""
        fbits = max((0 if run >= n - 1 else n - 2 - run) - es, 0)
        return 0 if (run, r) == (n - 1, 0) else ((run - 1 if r else -run) << es) - fbits

    with m.Switch(run_len):
        for run in range(n):
            avail = 0 if run >= n - 1 else n - 2 - run
            fbits = max(avail - es, 0)
            with m.Case(run):
                m.d.comb += [
                    exp_base.eq(Mux(r0, base(run, 1), base(run, 0))),
                    sig.eq(Cat(body[:fbits], r0 if run == n - 1 else Const(1, 1))),
                ]
                if es > 1 or es == 1 and e_after is None:
                    m.d.comb += e.eq(Cat(*(body[j + avail - es] if j + avail >= es
                                           else Const(0, 1) for j in range(es))))
    if es == 1:
        # With one exponent bit the sum is one of two constants per case: one table of
        # (run, r0, e), where an adder after the case select was a carry chain in series
        # with it (the posit<16,1> decoder's exponent, 6.8 to 7.3 ns on ECP5). With
        # ``e_after`` (pipelined decoders) the bit is not selected by the run here: a
        # register holds it beside the run (without the register, the select on the run
        # is the smaller: 7 xc7 LUTs a decoder in default's engine).
        with m.Switch(Cat(e if e_after is None else e_after, r0, run_len)):
            for run in range(n):
                held = run < n - 2              # the bit after the terminator is in the body
                for r in (0, 1):
                    for e_value in (0, 1):
                        with m.Case(e_value | r << 1 | run << 2):
                            m.d.comb += exp.eq(base(run, r) + (e_value if held else 0))
    else:
        m.d.comb += exp.eq(exp_base + e)
    return exp, sig


# --------------------------------------------------------------------------------------
# The decoder


class FormatDecoder(wiring.Component):
    """Combinational decoder of one format's codes into :func:`decoded_layout`.

    Posits ⟨n, es⟩ (any ``n >= 2``, any ``es``), minifloats (normal, subnormal and their
    special-value rule) and two's-complement integers are supported.

    Parameters
    ----------
    fmt : str or Format
        The format of ``code``.
    sig_bits : int or None
        Width of the ``sig`` field; at least ``decoded_widths(fmt)[0]``. ``None`` means
        that minimum (pass :func:`common_widths` to share one layout between formats).
    exp_bits : int or None
        Width of the ``exp`` field; at least ``decoded_widths(fmt)[1]``.
    pipeline : int
        Registers inside the decoder, 0, 1 or 2: with 1, a posit's after its regime's run
        length; with 2, also one after its two's complement (the other formats register
        the code instead). ``decoded`` then follows ``code`` ``pipeline`` cycles with
        ``en`` set later.

    Attributes
    ----------
    code : In(fmt.bits)
        The code to decode.
    en : In(1)
        Only with ``pipeline``: the pipeline advances (its registers load).
    valid : In(1, init=1)
        Only with ``pipeline``: ``code`` is one to decode. A register that would take an
        invalid code holds its value instead (operand isolation: a decoder whose format
        is not in use does not toggle); a valid tag travels beside the registers.
    decoded : Out(decoded_layout(sig_bits=..., exp_bits=...))
        See the module documentation for the meaning of the fields.
    code_seen : Signal(fmt.bits)
        Not a port: the code as the decoder's logic sees it, a probe of operand
        isolation. Where the decoder :attr:`isolates_itself`, its first register.
    """

    def __init__(self, fmt, *, sig_bits=None, exp_bits=None, pipeline=0):
        if pipeline not in (0, 1, 2) or isinstance(pipeline, bool):
            raise ValueError(f"pipeline must be 0, 1 or 2, not {pipeline!r}")
        fmt = get_format(fmt)
        params = format_params(fmt)
        min_sig, min_exp = decoded_widths(fmt)
        for arg, value, least in (("sig_bits", sig_bits, min_sig), ("exp_bits", exp_bits, min_exp)):
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{arg} must be an integer or None, not {value!r}")
            if value < least:
                raise ValueError(f"{arg} must be at least {least} for {fmt.name}, not {value}")
        self._fmt = fmt
        self._params = params
        self._sig_bits = min_sig if sig_bits is None else sig_bits
        self._exp_bits = min_exp if exp_bits is None else exp_bits
        self._pipeline = pipeline
        super().__init__({
            "code": In(fmt.bits),
            **({"en": In(1), "valid": In(1, init=1)} if pipeline else {}),
            "decoded": Out(decoded_layout(sig_bits=self._sig_bits, exp_bits=self._exp_bits)),
        })
        self.code_seen = Signal(fmt.bits, name="code_seen")

    @property
    def format(self):
        """The format decoded."""
        return self._fmt

    @property
    def isolates_itself(self) -> bool:
        """The code goes into a register that loads only while ``valid`` is set, before
        any logic (a pipelined float or integer decoder): its user need not gate it.
        (A posit's two's complement comes before its first register; gating the code
        outside measured cheaper than gating it inside with ``valid``.)"""
        return bool(self._pipeline) and self._params.kind != "posit"

    @property
    def pipeline(self) -> int:
        return self._pipeline

    def _stage(self, m, *values, valid):
        """``values`` and their ``valid`` tag through a pipeline register."""
        regs = [pipeline_register(m, v, name=f"{getattr(v, 'name', 'v')}_reg", en=self.en & valid)
                for v in values]
        valid_reg = pipeline_register(m, valid, name=f"valid_r{len(self._valid_tags)}", en=self.en)
        self._valid_tags.append(valid_reg)
        return (*regs, valid_reg)

    def elaborate(self, platform):
        m = Module()
        p = self._params
        self._valid_tags = []
        if p.kind == "posit":
            self._elaborate_posit(m, p)
        elif p.kind == "float":
            self._elaborate_float(m, p)
        else:
            self._elaborate_int(m, p)
        return m

    # Each elaborate_* drives: special, inf, zero, sign, exp, sig (sig/exp zero unless finite
    # nonzero).
    def _drive(self, m, *, special, inf, zero, sign, exp, sig, fields_gated=False):
        """``fields_gated``: ``exp`` and ``sig`` are already 0 unless finite."""
        out = self.decoded
        finite = ~(special | inf | zero)
        m.d.comb += [
            out.special.eq(special),
            out.inf.eq(inf),
            out.zero.eq(zero),
            out.sign.eq(sign),
            out.exp.eq(exp if fields_gated else Mux(finite, exp, 0)),
            out.sig.eq(sig if fields_gated else Mux(finite, sig, 0)),
        ]

    def _elaborate_posit(self, m, p):
        n, es = p.bits, p.es
        # (logic before the first register: a user that isolates gates ``code``)
        m.d.comb += self.code_seen.eq(self.code)
        code = self.code
        sign = code[n - 1]
        is_zero = code == 0
        is_nar = code == (1 << (n - 1))

        # Magnitude pattern (two's complement of the whole code for a negative posit).
        magnitude = Signal(n, name="magnitude")
        m.d.comb += magnitude.eq(Mux(sign, -code, code))
        valid = self.valid if self._pipeline else None
        if self._pipeline == 2:
            magnitude, sign, is_zero, is_nar, valid = self._stage(
                m, magnitude, sign, is_zero, is_nar, valid=valid)
        body = magnitude[:n - 1]                   # regime, exponent, fraction
        r0 = body[n - 2]
        # (the bit after the terminator only where a register holds it beside the run,
        # and only for one exponent bit: see _posit_fields)
        e_after_bits = 1 if self._pipeline and es == 1 else 0
        run_len, e_after = _posit_run(m, body, es=e_after_bits)
        if self._pipeline:
            # (r0 registered apart from the body, as before the regime logic was shared
            # with PartitionedPositDecoder: Yosys maps the decoder a LUT smaller so; the
            # separate units are 3666 LUT with it, 3672 without)
            body, r0, run_len, e_after, sign, is_zero, is_nar, _ = self._stage(
                m, body, r0, run_len, e_after, sign, is_zero, is_nar, valid=valid)
        exp, sig = _posit_fields(m, p, body, run_len, e_after if e_after_bits else None,
                                 r0=r0)

        self._drive(m, special=is_nar, inf=Const(0), zero=is_zero,
                    sign=sign & ~is_nar, exp=exp, sig=sig, fields_gated=True)

    def _registered_code(self, m):
        """The code through the pipeline's registers (a float's or an integer's decoder
        registers the code itself); the first of them is what its logic sees."""
        code, valid = self.code, self.valid if self._pipeline else None
        for k in range(self._pipeline):
            code, valid = self._stage(m, code, valid=valid)
            if k == 0:
                m.d.comb += self.code_seen.eq(code)
        if not self._pipeline:
            m.d.comb += self.code_seen.eq(code)
        return code

    def _elaborate_float(self, m, p):
        ebits, mbits, bias = p.exponent_bits, p.mantissa_bits, p.bias
        code = self._registered_code(m)
        sign = code[p.bits - 1]
        mant = code[:mbits]
        expf = code[mbits:mbits + ebits]
        subnormal = expf == 0
        exp_all_ones = expf == (1 << ebits) - 1
        if p.special == "ieee":
            nan = exp_all_ones & (mant != 0)
            inf = exp_all_ones & (mant == 0)
        elif p.special == "fn":
            nan = exp_all_ones & (mant == (1 << mbits) - 1)
            inf = Const(0)
        else:
            nan = Const(0)
            inf = Const(0)
        zero = subnormal & (mant == 0)

        lo, hi = _exp_range(p)
        exp = Signal(range(min(lo, 0), max(hi, 0) + 1), name="exp")
        m.d.comb += exp.eq(Mux(subnormal, 1 - bias - mbits, expf - (bias + mbits)))
        sig = Signal(mbits + 1, name="sig")
        m.d.comb += sig.eq(Cat(mant, ~subnormal))

        self._drive(m, special=nan, inf=inf, zero=zero, sign=sign & ~nan, exp=exp, sig=sig)

    def _elaborate_int(self, m, p):
        code = self._registered_code(m)
        sign = code[p.bits - 1]
        magnitude = Signal(p.bits, name="magnitude")
        m.d.comb += magnitude.eq(Mux(sign, -code, code))
        self._drive(m, special=Const(0), inf=Const(0), zero=code == 0, sign=sign,
                    exp=Const(0), sig=magnitude)


class PartitionedPositDecoder(wiring.Component):
    """Decoder of one wide posit or two narrow ones in the same code word, chosen at run
    time: the decoders of a wide lane and of the two narrow lanes it splits into, in one.

    The narrow codes are the word's halves (lane 0 the low one), as the MAC engine's lanes
    are. The two decodes share what they have in common: the two's complement is one
    carry chain broken at the halves' border when ``split`` is set, the regime's run of the
    high half is the wide body's top, and the registers hold one magnitude instead of
    three. It gives what a :class:`FormatDecoder` of each format gives, field for field.

    Parameters
    ----------
    wide : str or Format
        A posit format of ``2 * narrow.bits`` bits, decoded while ``split`` is clear.
    narrow : str or Format
        A posit format of half ``wide``'s bits, decoded in each half while ``split`` is set.
    wide_widths, narrow_widths : (int, int) or None
        ``(sig_bits, exp_bits)`` of the ``wide`` and the ``narrow`` fields, as for
        :class:`FormatDecoder` (``None``: the format's :func:`decoded_widths`).
    pipeline : int
        Registers inside, 0, 1 or 2, as for a posit's :class:`FormatDecoder`.

    Attributes
    ----------
    code : In(wide.bits)
        One wide code, or two narrow ones.
    split : In(1)
        ``code`` holds two narrow codes.
    en : In(1)
        Only with ``pipeline``: the pipeline advances.
    valid : In(1, init=1)
        Only with ``pipeline``: ``code`` is one to decode (else the registers hold).
    wide : Out(decoded_layout(...))
        ``code`` decoded as one ``wide`` posit (meaningful when ``split`` was clear).
    narrow : Out(ArrayLayout(decoded_layout(...), 2))
        Each half of ``code`` decoded as a ``narrow`` posit (meaningful when ``split``
        was set).
    code_seen : Signal(wide.bits)
        Not a port: the code as the decoder's logic sees it, a probe of operand isolation
        (its user gates ``code``, as a posit :class:`FormatDecoder`'s).
    """

    def __init__(self, wide, narrow, *, wide_widths=None, narrow_widths=None, pipeline=0):
        wide, narrow = get_format(wide), get_format(narrow)
        for arg, fmt in (("wide", wide), ("narrow", narrow)):
            if fmt.kind != "posit":
                raise ValueError(f"{arg} must be a posit format, not {fmt.name}")
        if wide.bits != 2 * narrow.bits:
            raise ValueError(f"wide must have twice narrow's bits, not {wide.name} "
                             f"({wide.bits} bits) and {narrow.name} ({narrow.bits} bits)")
        if pipeline not in (0, 1, 2) or isinstance(pipeline, bool):
            raise ValueError(f"pipeline must be 0, 1 or 2, not {pipeline!r}")
        layouts = []
        for arg, fmt, widths in (("wide_widths", wide, wide_widths),
                                 ("narrow_widths", narrow, narrow_widths)):
            least = decoded_widths(fmt)
            widths = least if widths is None else tuple(widths)
            if len(widths) != 2 or widths[0] < least[0] or widths[1] < least[1]:
                raise ValueError(f"{arg} must be (sig_bits, exp_bits) of at least {least} "
                                 f"for {fmt.name}, not {widths}")
            layouts.append(decoded_layout(sig_bits=widths[0], exp_bits=widths[1]))
        self._wide, self._narrow = wide, narrow
        self._pipeline = pipeline
        super().__init__({
            "code": In(wide.bits),
            "split": In(1),
            **({"en": In(1), "valid": In(1, init=1)} if pipeline else {}),
            "wide": Out(layouts[0]),
            "narrow": Out(data.ArrayLayout(layouts[1], 2)),
        })
        self.code_seen = Signal(wide.bits, name="code_seen")

    @property
    def formats(self):
        """``(wide, narrow)``."""
        return self._wide, self._narrow

    @property
    def pipeline(self) -> int:
        return self._pipeline

    def elaborate(self, platform):
        m = Module()
        n, h = self._wide.bits, self._narrow.bits
        code, split = self.code, self.split
        m.d.comb += self.code_seen.eq(code)
        # The sign bits: the wide code's (also the high half's) and the low half's.
        sign_hi, sign_lo = code[n - 1], code[h - 1]
        # Zero and NaR from the halves: each is a sign bit over zeros.
        body_lo_zero, body_hi_zero = code[:h - 1] == 0, code[h:n - 1] == 0
        flags = Cat(body_lo_zero, body_hi_zero, sign_lo, sign_hi)

        # The magnitudes, ``(code ^ s) + s`` per lane in one carry chain: a spacer bit at
        # the border passes the low half's carry on (1 + 0) when whole and puts the high
        # half's sign in (s + s) when split.
        neg_lo = Signal(name="neg_lo")
        m.d.comb += neg_lo.eq(Mux(split, sign_lo, sign_hi))
        spaced = Signal(n + 1, name="magnitude_spaced")
        m.d.comb += spaced.eq(Cat(code[:h] ^ neg_lo.replicate(h), ~split | sign_hi,
                                  code[h:] ^ sign_hi.replicate(n - h))
                              + Cat(neg_lo, Const(0, h - 1), split & sign_hi, Const(0, n - h)))
        magnitude = Signal(n, name="magnitude")
        m.d.comb += magnitude.eq(Cat(spaced[:h], spaced[h + 1:]))

        valid = self.valid if self._pipeline else None

        def stage(index, *values):
            """``values`` through register ``index``, loaded with ``valid`` (as it is at
            that register), and the valid tag beside them."""
            regs = [pipeline_register(m, v, name=f"{v.name}_reg", en=self.en & valid)
                    for v in values]
            return regs, pipeline_register(m, valid, name=f"valid_r{index}", en=self.en)

        if self._pipeline == 2:
            (magnitude, flags), valid = stage(0, magnitude, _named(m, flags, "flags"))
        # The bodies (magnitudes without sign bits) and their regimes' runs. The high
        # half's body is the wide one's top.
        bodies = {"wide": magnitude[:n - 1], "lo": magnitude[:h - 1], "hi": magnitude[h:n - 1]}
        wide_p, narrow_p = format_params(self._wide), format_params(self._narrow)
        # (the bit after the terminator only where a register holds it beside the run,
        # and only for one exponent bit: see _posit_fields)
        es = {key: 1 if self._pipeline and p.es == 1 else 0
              for key, p in (("wide", wide_p), ("lo", narrow_p), ("hi", narrow_p))}
        runs = {key: _posit_run(m, body, es=es[key], prefix=f"{key}_")
                for key, body in bodies.items()}
        if self._pipeline:
            (body, *run_regs, flags), valid = stage(
                self._pipeline - 1, _named(m, magnitude[:n - 1], "body"),
                *[v for run in runs.values() for v in run], _named(m, flags, "flags"))
            runs = dict(zip(runs, zip(run_regs[::2], run_regs[1::2])))
            bodies = {"wide": body, "lo": body[:h - 1], "hi": body[h:n - 1]}
        body_lo_zero, body_hi_zero, sign_lo, sign_hi = flags[0], flags[1], flags[2], flags[3]

        def drive(out, p, body, run, *, zero, nar, sign, prefix):
            run_len, e_after = run                                      # (0 unless finite:)
            exp, sig = _posit_fields(m, p, body, run_len, e_after if len(e_after) else None,
                                     prefix=prefix)
            m.d.comb += [out.special.eq(nar), out.inf.eq(0), out.zero.eq(zero),
                         out.sign.eq(sign & ~nar), out.exp.eq(exp), out.sig.eq(sig)]

        low_zero = body_lo_zero & ~sign_lo          # the whole low half is zero
        drive(self.wide, wide_p, bodies["wide"], runs["wide"], prefix="wide_",
              zero=low_zero & body_hi_zero & ~sign_hi, nar=low_zero & body_hi_zero & sign_hi,
              sign=sign_hi)
        drive(self.narrow[0], narrow_p, bodies["lo"], runs["lo"], prefix="lo_",
              zero=body_lo_zero & ~sign_lo, nar=body_lo_zero & sign_lo, sign=sign_lo)
        drive(self.narrow[1], narrow_p, bodies["hi"], runs["hi"], prefix="hi_",
              zero=body_hi_zero & ~sign_hi, nar=body_hi_zero & sign_hi, sign=sign_hi)
        return m


def _named(m, value, name):
    """``value`` as a signal named ``name`` (so that a register of it is named after it)."""
    sig = Signal(len(value), name=name)
    m.d.comb += sig.eq(value)
    return sig


# --------------------------------------------------------------------------------------
# Narrow formats: one table


def decoded_fields(fmt, code: int) -> dict:
    """What :class:`FormatDecoder` gives for ``code``, computed in Python: a dict of
    ``special``, ``inf``, ``zero``, ``sign``, ``exp`` and ``sig`` (see the module
    documentation; ``sig`` holds exactly the fraction bits the code holds)."""
    fmt = get_format(fmt)
    p = format_params(fmt)
    n = p.bits
    code = int(code) & ((1 << n) - 1)
    sign_bit = code >> (n - 1)
    fields = dict(special=0, inf=0, zero=0, sign=0, exp=0, sig=0)
    value = float(fmt.decode(code))
    if math.isnan(value):
        return dict(fields, special=1)
    if math.isinf(value):
        return dict(fields, inf=1, sign=int(value < 0))
    if value == 0:
        return dict(fields, zero=1, sign=sign_bit if p.kind == "float" else 0)
    if p.kind == "int":
        return dict(fields, sign=sign_bit, sig=abs(int(value)))
    if p.kind == "float":
        mbits = p.mantissa_bits
        expf = (code >> mbits) & ((1 << p.exponent_bits) - 1)
        mant = code & ((1 << mbits) - 1)
        if expf == 0:
            return dict(fields, sign=sign_bit, exp=1 - p.bias - mbits, sig=mant)
        return dict(fields, sign=sign_bit, exp=expf - p.bias - mbits,
                    sig=mant | (1 << mbits))
    # a posit: the fraction bits left after the regime run and the exponent field
    magnitude = ((-code) if sign_bit else code) & ((1 << n) - 1)
    body = [(magnitude >> (n - 2 - j)) & 1 for j in range(n - 1)]    # MSB first
    run = next((j for j, b in enumerate(body) if b != body[0]), n - 1)
    avail = 0 if run >= n - 1 else n - 2 - run
    fbits = max(avail - p.es, 0)
    exp = math.floor(math.log2(abs(value))) - fbits
    sig = abs(value) / 2.0 ** exp
    assert sig == int(sig) and int(sig) >> fbits == 1, (fmt.name, code)
    return dict(fields, sign=sign_bit, exp=exp, sig=int(sig))


class TableDecoder(wiring.Component):
    """Decoder of one or more narrow formats of the same code width, selected at run time,
    by one table: every output bit is a function of the code and the format index, one
    LUT where those fit one (a 4-bit lane with two formats: five inputs). It replaces a
    :class:`FormatDecoder` per format and the multiplexer that selects among them.

    Parameters
    ----------
    formats : sequence of str or Format
        Formats of one code width; ``fmt`` indexes them.
    sig_bits, exp_bits : int or None
        As for :class:`FormatDecoder` (``None``: :func:`common_widths` of ``formats``).
    pipeline : int
        Registers on the code (and the format index) before the table, 0, 1 or 2, with
        ``en`` and ``valid`` as for :class:`FormatDecoder`: ``decoded`` follows ``code``
        ``pipeline`` cycles with ``en`` set later.

    Attributes
    ----------
    code : In(bits)
    fmt : In(range(len(formats)))
        Only with more than one format.
    en, valid : In(1)
        Only with ``pipeline``.
    decoded : Out(decoded_layout(sig_bits=..., exp_bits=...))
    code_seen : Signal(bits)
        Not a port: the code as the table sees it (with ``pipeline``: registered while
        ``valid`` is set, so an idle decoder does not toggle). A probe of operand
        isolation.
    """

    def __init__(self, formats, *, sig_bits=None, exp_bits=None, pipeline=0):
        formats = tuple(get_format(f) for f in formats)
        if not formats:
            raise ValueError("formats must name at least one format, not none")
        widths = sorted({f.bits for f in formats})
        if len(widths) > 1:
            raise ValueError("formats must have one code width, not "
                             + ", ".join(f"{f.name} ({f.bits} bits)" for f in formats))
        if pipeline not in (0, 1, 2) or isinstance(pipeline, bool):
            raise ValueError(f"pipeline must be 0, 1 or 2, not {pipeline!r}")
        min_sig, min_exp = common_widths(formats)
        self._formats = formats
        self._sig_bits = min_sig if sig_bits is None else sig_bits
        self._exp_bits = min_exp if exp_bits is None else exp_bits
        if self._sig_bits < min_sig or self._exp_bits < min_exp:
            raise ValueError(f"sig_bits and exp_bits must be at least {min_sig} and {min_exp} "
                             f"for {', '.join(f.name for f in formats)}, not "
                             f"{self._sig_bits} and {self._exp_bits}")
        self._pipeline = pipeline
        super().__init__({
            "code": In(widths[0]),
            **({"fmt": In(range(len(formats)))} if len(formats) > 1 else {}),
            **({"en": In(1), "valid": In(1, init=1)} if pipeline else {}),
            "decoded": Out(decoded_layout(sig_bits=self._sig_bits, exp_bits=self._exp_bits)),
        })
        self.code_seen = Signal(widths[0], name="code_seen")

    @property
    def formats(self):
        return self._formats

    @property
    def pipeline(self) -> int:
        return self._pipeline

    @property
    def isolates_itself(self) -> bool:
        """With ``pipeline``, the code goes into a register that loads only while
        ``valid`` is set, before the table: its user need not gate it."""
        return bool(self._pipeline)

    def elaborate(self, platform):
        m = Module()
        bits = self._formats[0].bits
        key = Cat(self.code, self.fmt) if len(self._formats) > 1 else self.code
        if self._pipeline:
            valid = self.valid
            for k in range(self._pipeline):
                key = pipeline_register(m, key, name=f"key_r{k}", en=self.en & valid)
                valid = pipeline_register(m, valid, name=f"valid_r{k}", en=self.en)
                if k == 0:
                    m.d.comb += self.code_seen.eq(key[:bits])
        else:
            m.d.comb += self.code_seen.eq(self.code)
        out = self.decoded
        with m.Switch(key):
            for idx, fmt in enumerate(self._formats):
                for code in range(1 << bits):
                    f = decoded_fields(fmt, code)
                    with m.Case(code | (idx << bits)):
                        m.d.comb += [out.special.eq(f["special"]), out.inf.eq(f["inf"]),
                                     out.zero.eq(f["zero"]), out.sign.eq(f["sign"]),
                                     out.exp.eq(f["exp"]), out.sig.eq(f["sig"])]
        return m
