"""The lane-reconfigurable SIMD MAC engine.

Data path (one operation per cycle, a pipeline that never stalls)::

    i ─► per-lane decoders ─► [reg] ─► shared partitioned multiplier ─► alignment ─► [reg]
        (runtime format)                 (1×16, 2×8 or 4×4 products)    (per mode)
      ─► partitioned saturating accumulator ─► read-out snapshot ─► normalizer ─► rounding ─► o
                                                                       (shared)   (per format)

* An operation carries two ``word_bits`` operand words, the format of each (a runtime
  index into ``formats``; both of the same width, which selects the lane mode), ``dot``
  (all lanes add into one accumulator) or SIMD (one accumulator per lane), ``first``
  (start a new accumulation) and ``last`` (read the accumulators out afterwards, rounded
  into ``out_fmt``).
* A read-out emits one beat per accumulator (1 in dot mode, ``lanes`` in SIMD mode) through
  a single rounding unit into an output FIFO.
* Flow control by admission, not by stalling: no stage ever waits, so no enable fans out
  from ``o.ready`` into the data path (at 18 stages that fan-out, ``o.ready`` → every
  register's enable, was the critical path of the engine and of the co-processor around
  it). ``i.ready`` is a flip-flop: it admits an operation only while the output FIFO has
  room for every beat already under way plus a whole read-out, and a read-out only when
  the previous one's beats have left the snapshot by the time it arrives there (SIMD
  read-outs take ``lanes`` cycles; dot read-outs follow each other every cycle).
  Backpressure on ``o`` fills the FIFO and then holds ``i.ready`` low; nothing is ever
  dropped or duplicated.
* Operand isolation: the decoders of formats not selected (or, pipelined, their first
  registers), the alignment units of lane modes not in use and the output encoders not
  selected see constant zeros, and the per-mode pipeline registers are clock-enabled (or
  cleared) only in their own mode, so the lanes a mode does not use do not toggle.
* Decoders: a posit lane and the two lanes of half its width it splits into (xr_npe's
  posit⟨16,1⟩ lane and posit⟨8,0⟩ lanes) share one
  :class:`~generators.rtl.decode.PartitionedPositDecoder`, as they share the multiplier.
  The 4-bit lanes are decoded by tables; other formats have a decoder each.
* Area: the read-out has one wide normalizer (a leading-zero shift of the one's
  complement over the read-out width, and a short increment) for all output formats; a format adds only its rounding on a dozen
  bits (:class:`~generators.rtl.encode.FixedToFormats`).

The arithmetic is exactly that of :mod:`testbenches.golden`, with the accumulator
geometry of :mod:`generators.geometry`.
"""

from __future__ import annotations

import functools
import math
import operator
from collections import Counter

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from generators.formats import fixed_to_float, get_format
from generators.geometry import engine_geometry, engine_latency, engine_output_fifo_depth
from generators.rtl.accumulator import PartitionedAccumulator
from generators.rtl.decode import (FormatDecoder, PartitionedPositDecoder, TableDecoder,
                                   common_widths)
from generators.rtl.encode import FixedToFormats
from generators.rtl.multiplier import PartitionedMultiplier, lane_mode
from generators.rtl.pipeline import pipeline_register
from generators.rtl.shift import PartitionedShift

__all__ = ["MacEngine", "engine_params", "mac_op_layout", "mac_result_layout"]


#: What each pipeline stage beyond the first adds, in the order they are added (stage
#: ``n`` adds entry ``n - 2``; see :class:`MacEngine`'s ``pipeline_stages``). With one
#: stage, decode, multiply and alignment share the cycle before the accumulator.
PIPELINE_REGISTERS = (
    "decode",       # 2: after the decoders' lane fields, before the multiplier
    "align",        # 3: after alignment (the accumulator's addend)
    "multiply",     # 4: after the multiplier
    "output",       # 5: on the read-out's output (the rounded result)
    "round",        # 6: in the read-out, between the normalizer and the rounding
    "select",       # 7: after the read-out's accumulator select
    "normalize",    # 8: in the normalizer, in its shift stages
    "normalize",    # 9: in the normalizer, in its shift stages
    "split_round",  # 10: in each format's rounding, before the increment
    "shift",        # 11: after the aligners' shifters, before the dot-product sum
    "normalize",    # 12: in the normalizer's shift stages
    "normalize",    # 13: in the normalizer's shift stages
    "mul_tree",     # 14: halfway through the multiplier's adder tree
    "dec_split",    # 15: between the decoders and the lanes' exponent sums and flags
    "dec_pipe",     # 16: inside the decoders (a posit's after its regime run length)
    "carry",        # 17: the accumulator's carry chain cut in two, the carry added in the read-out
    "align_split",  # 18: in the aligners' shifters, between the fine and the coarse shift
    "dec_abs",      # 19: inside the decoders (a posit's after its two's complement)
    "fields",       # 20: in each format's rounding, after the field parameters of the scale
    "mul_rows",     # 21: in the multiplier, after the masked partial-product rows
    "negate",       # 22: between the products' negation and the aligners' shifters
    "check",        # 23: the accumulator's overflow check one step behind (after the carry's
                    #     resolve); beside the read-out's path (geometry.STAGES_BESIDE_READOUT)
    "resolve",      # 24: in the read-out, after the deferred carry's resolve
    "normalize",    # 25: in the normalizer's shift stages
    "capture",      # 26: the read-out takes the accumulator's register a cycle after the last
                    #     step, not the adder's sum (the clear then acts in its step)
    "carries",      # 27: the accumulator's carry chain cut at every chunk border, a carry
                    #     deferred at each; a partition above two cuts checked a step later
                    #     (beside the read-out's path); the read-out resolves the carries in
                    #     two steps, the first on its way into ``held``
)
#: The deepest pipeline :class:`MacEngine` builds.
MAX_PIPELINE_STAGES = len(PIPELINE_REGISTERS) + 1


def _index_bits(n: int) -> int:
    return max(1, (n - 1).bit_length())


def mac_op_layout(*, word_bits: int, n_formats: int, n_out_formats: int) -> data.StructLayout:
    """Payload of one MAC operation."""
    return data.StructLayout({
        "a": word_bits,
        "b": word_bits,
        "fmt_a": _index_bits(n_formats),
        "fmt_b": _index_bits(n_formats),
        "out_fmt": _index_bits(n_out_formats),
        "dot": 1,
        "first": 1,
        "last": 1,
    })


def mac_result_layout(*, code_bits: int, max_lanes: int) -> data.StructLayout:
    """Payload of one read-out beat: one accumulator, rounded."""
    return data.StructLayout({
        "code": code_bits,
        "lane": _index_bits(max_lanes),
        "last": 1,          # the final beat of this read-out
        "nan": 1,           # a NaN/NaR operand, inf·0 or +inf + -inf was seen
        "inf": 1,           # an infinity was seen (and no NaN)
        "saturated": 1,     # the accumulator saturated
    })


class MacEngine(wiring.Component):
    """Mixed-precision SIMD MAC engine with a shared, partitioned significand multiplier.

    Parameters
    ----------
    word_bits : int
        Operand word width (8, 16 or 32).
    formats : sequence of str
        Operand formats the engine is built for; an operation selects two of them by index.
    output_formats : sequence of str
        Formats a read-out can round into (by index); default ``formats``.
    guard_bits : int
        Carry bits of each accumulator (see :mod:`generators.geometry`).
    share_multiplier : bool
        ``False`` builds the area baseline: separate units per lane mode with the same
        per-mode throughput — for each lane width its own lanes of decoders, multipliers
        (one per lane), aligners, accumulators and rounding unit, as if independent MACs
        for each format width sat side by side — instead of one engine whose multiplier,
        accumulator register and read-out every mode shares. Same results, same
        interface; read-outs leave in the order of their operations.
    operand_isolation : bool
        Gate unused decoders, aligners and encoders and clock-enable per-mode registers.
    pipeline_stages : int
        1 to :data:`MAX_PIPELINE_STAGES`; stage ``n`` adds the register
        ``PIPELINE_REGISTERS[n - 2]`` (that tuple lists where each one sits). Throughput is
        one operation per cycle at every depth; depth costs latency and flip-flops (ECP5
        Fmax by depth: README, "Fmax").
    pair_invalid_input : bool
        Add the input ``pair_invalid``: for a parent that routes operations whose operand
        formats have different widths to this engine (the separate-units baseline does),
        so that their lanes become NaN as in the shared engine.
    dot_only : bool
        Every operation is a dot product (``i.payload.dot`` is ignored): the engine of a
        co-processor's PE. The SIMD read-out (one beat per lane) and the per-lane
        partitionings are left out, no register carries the dot flag, and no flip-flop
        loads a constant (the rounding unit's ``fold_constant_offset``). (Such registers,
        reset to 0 and then 1 for good, were alike in every PE of an array: Yosys merged
        each into one flip-flop that drove all the PEs, a net across the chip.)

    Members
    -------
    i : In(stream.Signature(mac_op_layout(...)))
    o : Out(stream.Signature(mac_result_layout(...)))
    pair_invalid : In(1)
        Only with ``pair_invalid_input``: this operation's operand widths differ (sampled
        with ``i.payload``).
    """

    def __init__(self, *, word_bits: int, formats, output_formats=None, guard_bits: int = 15,
                 share_multiplier: bool = True, operand_isolation: bool = True,
                 pipeline_stages: int = 2, pair_invalid_input: bool = False,
                 dot_only: bool = False):
        if word_bits not in (8, 16, 32):
            raise ValueError(f"word_bits must be 8, 16 or 32, not {word_bits}")
        if pipeline_stages not in range(1, MAX_PIPELINE_STAGES + 1):
            raise ValueError(f"pipeline_stages must be 1 to {MAX_PIPELINE_STAGES}, "
                             f"not {pipeline_stages}")
        formats = tuple(get_format(f).name for f in formats)
        if len(set(formats)) != len(formats):
            raise ValueError(f"formats must not repeat a format: {', '.join(formats)}")
        output_formats = formats if output_formats is None else \
            tuple(get_format(f).name for f in output_formats)
        self.formats = formats
        self.output_formats = output_formats
        self.geometry = engine_geometry(word_bits=word_bits, formats=formats, guard_bits=guard_bits)
        self.word_bits = word_bits
        self.share_multiplier = bool(share_multiplier)
        self.operand_isolation = bool(operand_isolation)
        self.pipeline_stages = pipeline_stages
        self._registers = Counter(PIPELINE_REGISTERS[:pipeline_stages - 1])
        # The read-out folds the staged check's pending bits only where the carry is
        # deferred too (its branch without the carry register has no fold): stages are
        # added in order and "carry" comes first, which this keeps true.
        assert not self._registers["check"] or self._registers["carry"], \
            "the staged overflow check needs the deferred carry"
        self.max_lanes = self.geometry.chunks
        # (In generators.geometry, pure Python: the driver's model uses them too.)
        self.latency = engine_latency(pipeline_stages)
        self.output_fifo_depth = engine_output_fifo_depth(pipeline_stages, self.max_lanes)
        self.code_bits = max(get_format(f).bits for f in output_formats)
        self._units = ()
        self._mode_probes = {}
        self._shared_probes = {}
        self._pair_invalid_input = bool(pair_invalid_input)
        self.dot_only = bool(dot_only)
        super().__init__({
            **({"pair_invalid": In(1)} if self._pair_invalid_input else {}),
            "i": In(stream.Signature(mac_op_layout(
                word_bits=word_bits, n_formats=len(formats), n_out_formats=len(output_formats)))),
            "o": Out(stream.Signature(mac_result_layout(
                code_bits=self.code_bits, max_lanes=self.max_lanes))),
        })

    @classmethod
    def from_config(cls, cfg, **overrides):
        """The engine of a :class:`generators.config.Config`."""
        return cls(**engine_params(cfg, **overrides))

    def format_index(self, name: str) -> int:
        return self.formats.index(get_format(name).name)

    def output_format_index(self, name: str) -> int:
        return self.output_formats.index(get_format(name).name)

    # The accumulator partitionings: for each mode, SIMD then dot (dot only in a dot-only
    # engine); :meth:`_partitioning` is an operation's index.
    def partitionings(self):
        g = self.geometry
        out = []
        for mode in g.modes:
            per = g.chunks // mode.lanes
            if not self.dot_only:
                out.append([(l * per, per, mode.simd.width) for l in range(mode.lanes)])
            out.append([(0, g.chunks, mode.dot.width)])
        return out

    def _kinds(self):
        """The operation kinds the engine computes: 0 SIMD, 1 dot."""
        return (1,) if self.dot_only else (0, 1)

    def _is_dot(self, flag):
        """An operation's dot flag as carried by ``flag``: a constant in a dot-only engine."""
        return Const(1, 1) if self.dot_only else flag

    def _partitioning(self, dot, mode):
        """The accumulator's partitioning index of an operation (see :meth:`partitionings`)."""
        return mode if self.dot_only else Cat(dot, mode)

    @property
    def mode_probes(self):
        """Each lane mode's own datapath signals, ``{lane_bits: [Signal, ...]}``, for
        toggle counting (:mod:`testbenches.toggles`); filled in by elaboration."""
        if self._units:
            return {bits: sigs for unit in self._units for bits, sigs in unit.mode_probes.items()}
        return self._mode_probes

    @property
    def shared_probes(self):
        """Datapath signals that several lane modes share (a decoder of one wide posit or
        two narrow ones), ``{(lane_bits, ...): [Signal, ...]}``: still in every other mode;
        filled in by elaboration."""
        return {} if self._units else self._shared_probes

    def _elaborate_separate_units(self):
        """The ``share_multiplier=False`` baseline: one single-mode engine per lane width,
        operations routed by their format's width, read-outs merged in order."""
        m = Module()
        g = self.geometry
        op = self.i.payload
        units = []
        for md in g.modes:
            unit = MacEngine(word_bits=self.word_bits, formats=md.formats,
                             output_formats=self.output_formats, guard_bits=g.guard_bits,
                             share_multiplier=False, operand_isolation=self.operand_isolation,
                             pipeline_stages=self.pipeline_stages, pair_invalid_input=True,
                             dot_only=self.dot_only)
            m.submodules[f"unit{md.lane_bits}"] = unit
            units.append(unit)
        self._units = tuple(units)
        mode_of = {f: k for k, md in enumerate(g.modes) for f in md.formats}

        # Route by the width of A's format; B's must be of the same width.
        target = Signal(range(len(units)))
        local_a, local_b = Signal.like(op.fmt_a), Signal.like(op.fmt_b)
        a_ok, b_mode, b_ok = Signal(), Signal(range(len(units))), Signal()
        with m.Switch(op.fmt_a):
            for idx, f in enumerate(self.formats):
                with m.Case(idx):
                    m.d.comb += [target.eq(mode_of[f]), a_ok.eq(1),
                                 local_a.eq(units[mode_of[f]].format_index(f))]
        with m.Switch(op.fmt_b):
            for idx, f in enumerate(self.formats):
                with m.Case(idx):
                    m.d.comb += [b_mode.eq(mode_of[f]), b_ok.eq(1),
                                 local_b.eq(units[mode_of[f]].format_index(f))]
        pair_ok = a_ok & b_ok & (b_mode == target)

        # The unit of every read-out, in operation order.
        order = fifo.SyncFIFO(width=len(target), depth=16)
        m.submodules.readout_order = order
        room = ~op.last | order.w_rdy
        for k, unit in enumerate(units):
            up = unit.i.payload
            m.d.comb += [
                unit.i.valid.eq(self.i.valid & (target == k) & room),
                up.a.eq(op.a), up.b.eq(op.b),
                up.fmt_a.eq(local_a), up.fmt_b.eq(Mux(pair_ok, local_b, 0)),
                up.out_fmt.eq(op.out_fmt), up.dot.eq(op.dot),
                up.first.eq(op.first), up.last.eq(op.last),
                unit.pair_invalid.eq(~pair_ok),
            ]
            with m.If(target == k):
                m.d.comb += self.i.ready.eq(unit.i.ready & room)
        m.d.comb += [
            order.w_en.eq(self.i.valid & self.i.ready & op.last),
            order.w_data.eq(target),
        ]
        head = order.r_data
        for k, unit in enumerate(units):
            with m.If(order.r_rdy & (head == k)):
                m.d.comb += [
                    self.o.valid.eq(unit.o.valid),
                    *[getattr(self.o.payload, f).eq(getattr(unit.o.payload, f))
                      for f in ("code", "lane", "last", "nan", "inf", "saturated")],
                    unit.o.ready.eq(self.o.ready),
                ]
        m.d.comb += order.r_en.eq(self.o.valid & self.o.ready & self.o.payload.last)
        return m

    def _table_decoder(self, m, mode, code, fmt_sel, *, name, pipeline, accepted):
        """A :class:`TableDecoder` of ``mode``'s formats for one lane's ``code`` of one
        operand; ``fmt_sel`` is the operand's engine format index. Returns its ``sig``,
        ``exp`` and flags (special, inf, sign, zero)."""
        sig_bits, exp_bits = common_widths(mode.formats)
        dec = TableDecoder(mode.formats, sig_bits=sig_bits, exp_bits=exp_bits, pipeline=pipeline)
        m.submodules[name] = dec
        in_mode = Signal(name=f"{name}_in_mode")
        m.d.comb += in_mode.eq(_or_all([fmt_sel == self.formats.index(f) for f in mode.formats]))
        # Isolation: a pipelined table's registers load only valid codes (no gate needed:
        # xr_npe 33 LUTs fewer); an unpipelined one's inputs are gated here.
        gate = self.operand_isolation and not dec.isolates_itself
        _connect_decoder(m, dec, code, in_mode, isolate=self.operand_isolation, gate=gate,
                         accepted=accepted)
        if len(mode.formats) > 1:
            local = Signal.like(dec.fmt, name=f"{name}_fmt")
            with m.Switch(fmt_sel):
                for j, f in enumerate(mode.formats):
                    with m.Case(self.formats.index(f)):
                        m.d.comb += local.eq(j)
            m.d.comb += dec.fmt.eq(Mux(in_mode, local, 0) if gate else local)
        self._mode_probes[mode.lane_bits].append(dec.code_seen)
        out = dec.decoded
        return out.sig, out.exp, Cat(out.special, out.inf, out.sign, out.zero)

    def elaborate(self, platform):
        if not self.share_multiplier and len(self.geometry.modes) > 1:
            return self._elaborate_separate_units()
        m = Module()
        g = self.geometry
        W = self.word_bits
        modes = g.modes
        iso = self.operand_isolation

        op = self.i.payload
        fmt_bits = {f: get_format(f).bits for f in self.formats}

        def pipeline_reg(sig, *, at, enable=None, name):
            """``sig`` registered (when ``enable``) if the engine has the register ``at``
            (one of PIPELINE_REGISTERS), else passed on."""
            if self._registers[at]:
                return pipeline_register(m, sig, name=name, en=enable)
            wire = Signal.like(sig, name=name)
            m.d.comb += wire.eq(sig)
            return wire

        def stage_control(ctl, *, at, suffix):
            """The signals travelling beside the lanes (valid, control, mode, …) at ``at``."""
            return {name: pipeline_reg(sig, at=at, name=f"{name}_{suffix}")
                    for name, sig in ctl.items()}

        def mode_flags(mode, suffix, *, valid=None):
            """One signal per lane mode, set while ``mode`` (and ``valid``) selects it."""
            flags = [Signal(name=f"mode{md.lane_bits}_{suffix}") for md in modes]
            for k, flag in enumerate(flags):
                m.d.comb += flag.eq((mode == k) if valid is None else ((mode == k) & valid))
            return flags

        def stage_lanes(lanes, *, at, suffix, flags, keys=None, clear=False, zero_when=None):
            """Per mode, per lane dicts of signals at the register ``at``, keeping ``keys``
            (all by default). Under operand isolation each mode's registers load only while
            its flag is set — or, with ``clear``, load zero while it is not (the flip-flops'
            synchronous reset) — and they join its toggle probes. ``zero_when`` maps keys
            to a condition under which that key's value is 0 (with ``clear``, folded into
            the synchronous reset)."""
            zero_when = zero_when or {}
            lanes = [[{key: lf[key] for key in (keys or lf) if key in lf} for lf in mode_lanes]
                     for mode_lanes in lanes]
            if not self._registers[at]:
                return [[{key: _zero_if(zero_when[key], sig) if key in zero_when else sig
                          for key, sig in lf.items()} for lf in mode_lanes]
                        for mode_lanes in lanes]

            def stage(sig, k, name, key):
                if iso and clear:
                    load = flags[k] & ~zero_when[key] if key in zero_when else flags[k]
                    return pipeline_reg(Mux(load, sig, 0).as_signed() if sig.shape().signed
                                        else Mux(load, sig, 0), at=at, name=name)
                if key in zero_when:
                    sig = _zero_if(zero_when[key], sig)
                return pipeline_reg(sig, at=at, enable=flags[k] if iso else None, name=name)

            staged = [[{key: stage(sig, k, f"{key}_m{modes[k].lane_bits}_l{li}_{suffix}", key)
                        for key, sig in lf.items()}
                       for li, lf in enumerate(mode_lanes)]
                      for k, mode_lanes in enumerate(lanes)]
            for k, md in enumerate(modes):
                probes[md.lane_bits].extend(sig for lf in staged[k] for sig in lf.values())
            return staged

        # ---- stage D: decode ----------------------------------------------------------
        mode_sel = Signal(range(len(modes)))     # index into modes
        width_ok = Signal()
        for k, mode in enumerate(modes):
            in_mode_a = Signal(name=f"a_in_mode{mode.lane_bits}")
            in_mode_b = Signal(name=f"b_in_mode{mode.lane_bits}")
            m.d.comb += in_mode_a.eq(0)
            m.d.comb += in_mode_b.eq(0)
            for idx, f in enumerate(self.formats):
                if fmt_bits[f] == mode.lane_bits:
                    with m.If(op.fmt_a == idx):
                        m.d.comb += in_mode_a.eq(1)
                    with m.If(op.fmt_b == idx):
                        m.d.comb += in_mode_b.eq(1)
            with m.If(in_mode_a):
                m.d.comb += mode_sel.eq(k)
                m.d.comb += width_ok.eq(in_mode_b)

        # ---- admission: i.ready, from registers only (see the module docstring) --------
        # ``reserved`` counts the beats admitted and not yet taken from ``o``: those still
        # in the pipeline and those in the output FIFO. An operation is admitted while a
        # whole read-out more would still fit, so the FIFO never overflows.
        depth = self.output_fifo_depth
        accepted_readout = Signal()
        beats_in = Signal(range(g.chunks + 1))      # beats of this operation's read-out
        with m.Switch(mode_sel):
            for k, md in enumerate(modes):
                with m.Case(k):
                    m.d.comb += beats_in.eq(Mux(self._is_dot(op.dot), 1, md.lanes))
        accepted = Signal()              # the operation enters the pipeline
        # The admission's own copy of ``i.ready``, kept inverted (``stall``) so that Yosys
        # does not merge it with ``admit``: ``admit`` drives ``accepted``, which fans out
        # to every decoder's and pipeline stage's load, and the admission's path from it
        # had two long routing hops (on ECP5, ``admit`` to ``reserved`` at 6.9 ns ended a
        # placement). The copy's loads are the admission's alone.
        stall = Signal(name="admission_stall")
        m.d.comb += [accepted.eq(self.i.valid & self.i.ready),
                     accepted_readout.eq(self.i.valid & ~stall & op.last)]
        reserved = Signal(range(depth + 1))
        limit = depth - g.chunks
        # ``gap``: cycles until the snapshot is free for the next read-out. The pipeline
        # never waits, so a read-out admitted now reaches the snapshot a fixed number of
        # cycles later, and the one before it, admitted ``gap`` cycles too early, would
        # still be emitting its beats there.
        gap = Signal(range(g.chunks))
        # Every value the registers can take next is formed from the registers alone, one
        # per number of beats this cycle can add (none, or a read-out's 1 or ``lanes``),
        # and with and without a beat taken from ``o``. The operation (its valid, format
        # and dot flag, from the input) and ``o.ready`` (in a co-processor, from the
        # collector across the chip) only select among them: no adder or comparator lies
        # between an input and the registers.
        admit = Signal(init=1)
        taken = Signal()
        m.d.comb += taken.eq(self.o.valid & self.o.ready)
        next_reserved, next_gap, next_admit = [], [], []      # one term per candidate
        for added in sorted({0, 1, *(md.lanes for md in modes)}):
            chosen = Signal(name=f"adds_{added}")
            m.d.comb += chosen.eq(Mux(accepted_readout, beats_in == added, added == 0))
            with_admitted = Signal.like(reserved, name=f"reserved_plus_{added}")
            with_admitted_taken = Signal.like(reserved, name=f"reserved_plus_{added}_taken")
            # at most depth: a read-out is admitted only at reserved <= depth - chunks
            m.d.comb += [with_admitted.eq(reserved + added),
                         with_admitted_taken.eq(reserved + added - 1)]
            gap_clear = (added == 1) if added else (gap <= 1)   # next gap == 0
            gap_after = Const(added - 1, len(gap)) if added else Mux(gap == 0, 0, gap - 1)
            # The candidates are exclusive: an AND-OR, not a priority chain of multiplexers.
            next_reserved.append(Mux(chosen, Mux(taken, with_admitted_taken, with_admitted), 0))
            next_gap.append(Mux(chosen, gap_after, 0))
            # (``reserved + added <= limit`` as a comparison of the register with a
            # constant: the addition in front of the comparator was an Fmax path)
            next_admit.append(chosen & gap_clear & Mux(taken, reserved <= limit + 1 - added,
                                                       reserved <= limit - added))
        m.d.sync += [reserved.eq(_or_all(next_reserved)), gap.eq(_or_all(next_gap)),
                     admit.eq(_or_all(next_admit)), stall.eq(~_or_all(next_admit))]
        m.d.comb += self.i.ready.eq(admit)

        # Each mode's own datapath signals (decoder inputs, decode registers, products,
        # aligned addends): what operand isolation keeps still in the other modes.
        # Read by testbenches.toggles; not part of the interface.
        probes = {md.lane_bits: [] for md in modes}
        self._mode_probes = probes
        self._shared_probes = shared_probes = {}

        # With "dec_pipe" (and "dec_abs") each decoder has registers inside; the format
        # selects after them and everything travelling beside them are delayed to match.
        # The sub-blocks (decoders, multiplier, rounding) keep their clock enables for use
        # in a pipeline that stalls; nothing in this one waits (flow control by
        # admission), so their ``en`` is tied to 1 and synthesis removes it.
        dec_pipeline = self._registers["dec_pipe"] + self._registers["dec_abs"]

        def stage_pipe(sig, name):
            return pipeline_reg(pipeline_reg(sig, at="dec_abs", name=f"{name}_abs"),
                                at="dec_pipe", name=name)

        # Lanes of at most 4 bits are decoded by one table over the code and the format (a
        # LUT per output bit): cheaper than a decoder per format and the select after them
        # (about 25 LUTs a lane and operand in xr_npe).
        def table_decoded(mode):
            return mode.lane_bits <= 4

        # The format indices beside the decoders' pipelines, for the selects after them:
        # only a mode of several formats that is not table-decoded has such a select.
        if any(len(md.formats) > 1 and not table_decoded(md) for md in modes):
            fmt_sel_out = {"a": stage_pipe(op.fmt_a, "fmt_a_pipe"),
                           "b": stage_pipe(op.fmt_b, "fmt_b_pipe")}
        # A posit lane and the two lanes of half its width it splits into share one
        # decoder (PartitionedPositDecoder) when both modes have a posit format: xr_npe's
        # posit<16,1> lane and posit<8,0> lanes. Only in the shared engine; the separate
        # units have a decoder each.
        split_decoders = {}     # (mode index, format) -> (side, lane) -> decoded fields
        for kw, wide_md in enumerate(modes if self.share_multiplier else ()):
            for kn, narrow_md in enumerate(modes):
                if narrow_md.lane_bits * 2 != wide_md.lane_bits or table_decoded(narrow_md):
                    continue
                fw = next((f for f in wide_md.formats if get_format(f).kind == "posit"), None)
                fn = next((f for f in narrow_md.formats if get_format(f).kind == "posit"), None)
                if fw is None or fn is None:
                    continue
                decs = {}
                for side, fmt_sel, word in (("a", op.fmt_a, op.a), ("b", op.fmt_b, op.b)):
                    for lane in range(wide_md.lanes):
                        dec = PartitionedPositDecoder(
                            fw, fn, wide_widths=common_widths(wide_md.formats),
                            narrow_widths=common_widths(narrow_md.formats), pipeline=dec_pipeline)
                        m.submodules[f"dec_{side}_m{wide_md.lane_bits}_l{lane}_{fw}_{fn}"] = dec
                        code = word[lane * wide_md.lane_bits:(lane + 1) * wide_md.lane_bits]
                        as_wide = fmt_sel == self.formats.index(fw)
                        as_narrow = fmt_sel == self.formats.index(fn)
                        selected = Signal(name=f"dec_{side}_m{wide_md.lane_bits}_l{lane}_sel")
                        m.d.comb += [selected.eq(as_wide | as_narrow), dec.split.eq(as_narrow)]
                        # Isolation: the code is gated unless one of its formats is in use.
                        _connect_decoder(m, dec, code, selected, isolate=iso, gate=iso,
                                         accepted=accepted)
                        shared_probes.setdefault((narrow_md.lane_bits, wide_md.lane_bits),
                                                 []).append(dec.code_seen)
                        decs[side, lane] = dec
                split_decoders[kw, fw] = lambda side, lane, decs=decs: decs[side, lane].wide
                split_decoders[kn, fn] = (lambda side, lane, decs=decs:
                                          decs[side, lane // 2].narrow[lane % 2])

        decoded = []         # per mode, per lane: {"a_sig", "a_exp", "a_flags", "b_…"}
        for k, mode in enumerate(modes):
            sig_bits, exp_bits = common_widths(mode.formats)
            table = table_decoded(mode)
            lanes = []
            for lane in range(mode.lanes):
                fields = {}
                for side, fmt_sel, word in (("a", op.fmt_a, op.a), ("b", op.fmt_b, op.b)):
                    code = word[lane * mode.lane_bits:(lane + 1) * mode.lane_bits]
                    if table:
                        dec_sig, dec_exp, dec_flags = self._table_decoder(
                            m, mode, code, fmt_sel, name=f"dec_{side}_m{mode.lane_bits}_l{lane}",
                            pipeline=dec_pipeline, accepted=accepted)
                        fields.update({f"{side}_sig": dec_sig, f"{side}_exp": dec_exp,
                                       f"{side}_flags": dec_flags})
                        continue
                    dec_sig = Signal(sig_bits, name=f"m{mode.lane_bits}_l{lane}_{side}_sig")
                    dec_exp = Signal(signed(exp_bits), name=f"m{mode.lane_bits}_l{lane}_{side}_exp")
                    dec_flags = Signal(4, name=f"m{mode.lane_bits}_l{lane}_{side}_flags")  # special, inf, sign, zero
                    for f in mode.formats:
                        idx = self.formats.index(f)
                        if (k, f) in split_decoders:
                            fields_out = split_decoders[k, f](side, lane)
                        else:
                            dec = FormatDecoder(get_format(f), sig_bits=sig_bits,
                                                exp_bits=exp_bits, pipeline=dec_pipeline)
                            m.submodules[f"dec_{side}_m{mode.lane_bits}_l{lane}_{f}"] = dec
                            selected = fmt_sel == idx
                            # Isolation: the code is gated here unless the decoder's first
                            # register (loaded while ``valid``) comes before any logic.
                            _connect_decoder(m, dec, code, selected, isolate=iso,
                                             gate=iso and not dec.isolates_itself,
                                             accepted=accepted)
                            probes[mode.lane_bits].append(dec.code_seen)
                            fields_out = dec.decoded
                        # A mode with one format needs no format select (an operation in
                        # the mode is in that format; outside it the lane is not read).
                        with m.If((fmt_sel_out[side] == idx) if len(mode.formats) > 1 else 1):
                            m.d.comb += [
                                dec_sig.eq(fields_out.sig),
                                dec_exp.eq(fields_out.exp),
                                dec_flags.eq(Cat(fields_out.special, fields_out.inf,
                                                 fields_out.sign, fields_out.zero)),
                            ]
                    fields.update({f"{side}_sig": dec_sig, f"{side}_exp": dec_exp,
                                   f"{side}_flags": dec_flags})
                lanes.append(fields)
            decoded.append(lanes)

        # ---- register between the decoders and the lane fields ("dec_split") ----------
        external = self.pair_invalid if self._pair_invalid_input else Const(0, 1)
        ctl = {
            "v": stage_pipe(accepted, "v_pipe"),
            # (a dot-only engine carries no dot flag: the bit is 0, a constant)
            "ctrl": stage_pipe(Cat(Const(0, 1) if self.dot_only else op.dot, op.first, op.last,
                                   op.out_fmt), "ctrl_pipe"),
            "pair_invalid": stage_pipe(~width_ok | external, "pair_invalid_pipe"),
            "mode": stage_pipe(mode_sel, "mode_pipe"),
        }
        decoded = stage_lanes(decoded, at="dec_split", suffix="split",
                              flags=mode_flags(ctl["mode"], "split", valid=ctl["v"]))
        ctl = stage_control(ctl, at="dec_split", suffix="split")

        # ---- the lanes' exponent sums and flags ---------------------------------------
        pair_invalid = ctl.pop("pair_invalid")
        lanes = []           # per mode, per lane: dict of the fields below
        for k, mode in enumerate(modes):
            sig_bits, exp_bits = common_widths(mode.formats)
            mode_lanes = []
            for lane, d in enumerate(decoded[k]):
                fa, fb = d["a_flags"], d["b_flags"]        # special, inf, sign, zero
                exp_sum = Signal(signed(exp_bits + 1), name=f"m{mode.lane_bits}_l{lane}_exp")
                sign = Signal(name=f"m{mode.lane_bits}_l{lane}_sign")
                nan = Signal(name=f"m{mode.lane_bits}_l{lane}_nan")
                inf = Signal(name=f"m{mode.lane_bits}_l{lane}_inf")
                m.d.comb += [
                    exp_sum.eq(d["a_exp"] + d["b_exp"]),
                    sign.eq(fa[2] ^ fb[2]),
                    # NaN: a NaN/NaR operand, inf·0, or operand formats of unequal width
                    nan.eq(fa[0] | fb[0] | (fa[1] & fb[3]) | (fb[1] & fa[3]) | pair_invalid),
                    inf.eq(fa[1] | fb[1]),
                ]
                mode_lanes.append(dict(sig_a=d["a_sig"], sig_b=d["b_sig"], exp=exp_sum,
                                       sign=sign, nan=nan, inf=inf))
            lanes.append(mode_lanes)

        # ---- register between decode and multiply ("decode") ---------------------------
        lanes = stage_lanes(lanes, at="decode", suffix="dec", flags=mode_flags(ctl["mode"], "active"))
        ctl = stage_control(ctl, at="decode", suffix="dec")

        # ---- stage M: the shared multiplier -----------------------------------------
        mul_flags = mode_flags(ctl["mode"], "mul")
        if self.share_multiplier:
            # Lanes packed at their significand width: the array is as narrow as the
            # widest mode's significands (see PartitionedMultiplier).
            fields = {md.lane_bits: common_widths(md.formats)[0] for md in modes}
            mul = PartitionedMultiplier(width=W, lane_bits=[md.lane_bits for md in modes],
                                        field_bits=fields,
                                        pipelined=bool(self._registers["mul_tree"]),
                                        register_rows=bool(self._registers["mul_rows"]))
            m.submodules.multiplier = mul
            if mul.latency:
                m.d.comb += mul.en.eq(1)
            word_a = Signal(mul.array_bits)
            word_b = Signal(mul.array_bits)
            for k, md in enumerate(modes):
                with m.If(mul_flags[k]):
                    m.d.comb += [word_a.eq(Cat(*[l["sig_a"] for l in lanes[k]])),
                                 word_b.eq(Cat(*[l["sig_b"] for l in lanes[k]])),
                                 mul.mode.eq(lane_mode(md.lane_bits))]
            m.d.comb += [mul.a.eq(word_a), mul.b.eq(word_b)]
        else:
            # Baseline: a separate multiplier per lane of every mode (same throughput).
            for k, md in enumerate(modes):
                for li, l in enumerate(lanes[k]):
                    p = Signal(len(l["sig_a"]) + len(l["sig_b"]), name=f"prod_m{md.lane_bits}_l{li}")
                    a = Mux(mul_flags[k], l["sig_a"], 0) if iso else l["sig_a"]
                    b = Mux(mul_flags[k], l["sig_b"], 0) if iso else l["sig_b"]
                    m.d.comb += p.eq(a * b)
                    l["product"] = p
                    probes[md.lane_bits].append(p)

        # ---- register after the multiplier's partial-product rows ("mul_rows") ---------
        # (in the baseline's separate multipliers: after them, for the same latency)
        if self._registers["mul_rows"]:
            lanes = stage_lanes(lanes, at="mul_rows", suffix="rows", flags=mul_flags,
                                keys=("exp", "sign", "nan", "inf")
                                + (() if self.share_multiplier else ("product",)))
            ctl = stage_control(ctl, at="mul_rows", suffix="rows")
            mul_flags = mode_flags(ctl["mode"], "mul_rows")

        # ---- register halfway through the multiplier ("mul_tree") --------------------
        # (in the baseline's separate multipliers: after them, for the same latency)
        lanes = stage_lanes(lanes, at="mul_tree", suffix="tree", flags=mul_flags,
                            keys=("exp", "sign", "nan", "inf")
                            + (() if self.share_multiplier else ("product",)))
        ctl = stage_control(ctl, at="mul_tree", suffix="tree")
        product_flags = mode_flags(ctl["mode"], "product")

        # ---- the aligners' front end, shared by the modes -----------------------------
        # Each aligner is two shifts: a fine shift of the narrow signed product by the
        # shift amount's low bits, then a coarse shift by its high bits (multiples of
        # 2**fine bits) into the accumulator's span. In that order the fine shift's several
        # levels are on the narrow value, and the coarse one is one level of few inputs per
        # bit: the other order (coarse first) costs the 16-bit lane about 160 LUTs more.
        # The products' negation and the fine shift are shared by the modes, as the
        # multiplier is: the products are placed in one word of ``regions`` (a mode's lane
        # per region), negated there by one carry chain broken at the regions' borders and
        # shifted by one PartitionedShift, and each lane's fine value is a slice of it.
        # (Per mode and lane they were xr_npe's largest block after the 16-bit coarse
        # shift: 59 LUTs of negation, 223 of fine shifts.) The coarse shifts stay per mode.
        # (the fine shift takes the larger half of the shift amount's bits)
        fine_bits = [(md.span_bits.bit_length() + 1) // 2 for md in modes]
        align_split = bool(self._registers["align_split"])
        if self.share_multiplier:
            product_word = mul.product
            product_bits = [2 * fields[md.lane_bits] for md in modes]
        else:
            # (a single mode: share_multiplier=False with several is the separate units)
            product_word = Cat(*[l["product"] for mode_lanes in lanes for l in mode_lanes])
            product_bits = [len(mode_lanes[0]["product"]) for mode_lanes in lanes]
        # lane li of mode k's product is at bits product_bits[k] * li
        # a lane's fine value: its signed product shifted by up to 2**fine_bits - 1 places
        fine_width = [product_bits[k] + (1 << fine_bits[k]) for k in range(len(modes))]
        max_lanes = max(md.lanes for md in modes)
        shared_bits = max(md.lanes * w for md, w in zip(modes, fine_width))
        shared_bits = -(-shared_bits // max_lanes) * max_lanes
        region = [shared_bits // md.lanes for md in modes]
        aligner = PartitionedShift(
            width=shared_bits, amount_bits=fine_bits,
            partitionings=[[li * region[k] for li in range(md.lanes)]
                           for k, md in enumerate(modes)])
        slots = aligner.slots

        def slot_lane(k, lo):
            """The lane of mode ``k`` whose region holds the slot starting at bit ``lo``."""
            return lo // region[k]

        # Each slot's sign (its lane's product sign), selected before the register.
        slot_sign = Signal(len(slots), name="slot_sign")
        with m.Switch(ctl["mode"]):
            for k, md in enumerate(modes):
                with m.Case(k):
                    m.d.comb += slot_sign.eq(Cat(*[lanes[k][slot_lane(k, lo)]["sign"]
                                                   for lo, _ in slots]))

        # The negation's carry-in bits below each slot (see below), from the slot's sign and
        # whether a region starts there in the mode, formed before the register: after it
        # they were two LUT levels, one of them on the mode register's 50 loads, in front
        # of the negation's carry chain (7.4 ns on ECP5).
        region_starts = Signal(len(slots), name="region_starts")
        with m.Switch(ctl["mode"]):
            for k, md in enumerate(modes):
                with m.Case(k):
                    m.d.comb += region_starts.eq(
                        Cat(*[lo in aligner.partitionings[k] for lo, _ in slots]))
        starts = Cat(Const(1, 1), region_starts[1:])
        spacer_a = Signal(len(slots), name="spacer_a")      # ~start | s
        spacer_b = Signal(len(slots), name="spacer_b")      # start & s
        m.d.comb += [spacer_a.eq(~starts | slot_sign), spacer_b.eq(starts & slot_sign)]

        # Copies of the mode register for the products' placement below, each selecting
        # a share of the word (the mode register on all the placement's LUTs, beside its
        # other loads, was 1.3 to 2.1 ns of routing on ECP5, in front of the negation's
        # carry chain). Yosys merges flip-flops with the same input unless their initial
        # or reset values differ, so the three copies differ in those, bit for bit, from
        # each other and from the mode register (init 0, reset); no valid operation reads
        # them before loading them.
        place_modes = []
        if self._registers["multiply"] and len(modes) > 1:
            place_modes = _register_copies(m, ctl["mode"], range(1, 4), name="mode_place")

        # ---- register after the multiplier ("multiply") ---------------------------------
        # (the product word and the slot signs loaded by valid operations only)
        product_word = pipeline_reg(product_word, at="multiply", enable=ctl["v"],
                                    name="product_mul")
        slot_sign = pipeline_reg(slot_sign, at="multiply", enable=ctl["v"], name="slot_sign_mul")
        spacer_a = pipeline_reg(spacer_a, at="multiply", enable=ctl["v"], name="spacer_a_mul")
        spacer_b = pipeline_reg(spacer_b, at="multiply", enable=ctl["v"], name="spacer_b_mul")
        lanes = stage_lanes(lanes, at="multiply", suffix="mul", flags=product_flags,
                            keys=("exp", "sign", "nan", "inf"))
        ctl = stage_control(ctl, at="multiply", suffix="mul")

        # The products in their regions, each negated if its sign is set: ``(p ^ s) + s``
        # over the region, one carry chain for the word. A spacer bit below each slot
        # passes the carry on (1 + 0) inside a region and puts the region's ``s`` in where
        # one starts (s + s). The mode's placement and the XOR are one LUT per bit.
        placed = Signal(shared_bits, name="product_placed")
        candidates = [Cat(*[Cat(product_word[product_bits[k] * li:][:product_bits[k]],
                                Const(0, region[k] - product_bits[k]))
                            for li in range(md.lanes)])
                      for k, md in enumerate(modes)]
        shares = place_modes or [ctl["mode"]]
        for q, mode_copy in enumerate(shares):
            lo, hi = q * shared_bits // len(shares), (q + 1) * shared_bits // len(shares)
            with m.Switch(mode_copy):
                for k in range(len(modes)):
                    with m.Case(k):
                        m.d.comb += placed[lo:hi].eq(candidates[k][lo:hi])
        spaced_a, spaced_b = [], []
        for j, (lo, hi) in enumerate(slots):
            s = slot_sign[j]
            spaced_a += [spacer_a[j], placed[lo:hi] ^ s.replicate(hi - lo)]
            spaced_b += [spacer_b[j], Const(0, hi - lo)]
        spaced_sum = Signal(shared_bits + len(slots), name="negated_spaced")
        m.d.comb += spaced_sum.eq(Cat(*spaced_a) + Cat(*spaced_b))
        chain = [spaced_sum[i + aligner.slot_of(i) + 1] for i in range(shared_bits)]
        # Above a region's product and sign bit, its bits are copies of the sign. Where the
        # copied bit is the same in every mode (always, with one mode), the copy is a wire,
        # so that the shifter's inputs there are known to be equal (as they were when each
        # lane had its own shifter: the separate units' 76 LUTs).
        negated = Signal(shared_bits, name="products_negated")
        sources = [{min(i, i // region[k] * region[k] + product_bits[k])
                    for k in range(len(modes))} for i in range(shared_bits)]
        m.d.comb += negated.eq(Cat(*[chain[min(src)] if len(src) == 1 else chain[i]
                                     for i, src in enumerate(sources)]))

        # Each slot's fine shift amount, and each lane's coarse one.
        slot_amount = Signal(data.ArrayLayout(max(fine_bits), len(slots)), name="slot_amount")
        shifts = []
        for k, md in enumerate(modes):
            mode_shifts = []
            for li, l in enumerate(lanes[k]):
                shift = Signal(range(md.span_bits + 1), name=f"shift_m{md.lane_bits}_l{li}")
                m.d.comb += shift.eq((l["exp"] - md.lsb_exponent).as_unsigned())
                l["coarse_shift"] = shift[fine_bits[k]:]
                mode_shifts.append(shift[:fine_bits[k]])
            shifts.append(mode_shifts)
        with m.Switch(ctl["mode"]):
            for k, md in enumerate(modes):
                with m.Case(k):
                    m.d.comb += slot_amount.eq(Cat(*[
                        Cat(shifts[k][slot_lane(k, lo)], Const(0, max(fine_bits) - fine_bits[k]))
                        for lo, _ in slots]))

        # ---- register between the negation and the shifters ("negate") ---------------
        # Loaded by valid operations only: the shift amount of the exponent registers' reset
        # value 0 is not 0, and would load once after reset in the mode with index 0.
        negate_flags = mode_flags(ctl["mode"], "negate", valid=ctl["v"])
        negated = pipeline_reg(negated, at="negate", enable=ctl["v"], name="products_neg")
        slot_amount = pipeline_reg(slot_amount, at="negate", enable=ctl["v"],
                                   name="slot_amount_neg")
        lanes = stage_lanes(lanes, at="negate", suffix="neg", flags=negate_flags,
                            keys=("coarse_shift", "sign", "nan", "inf"))
        ctl = stage_control(ctl, at="negate", suffix="neg")
        align_flags = mode_flags(ctl["mode"], "align")
        # (inlined: as a submodule, the hierarchy hid which input bits are sign copies)
        shifted = Signal(shared_bits, name="products_fine")
        m.d.comb += shifted.eq(aligner.build(m, partitioning=ctl["mode"], value=negated,
                                             amount=slot_amount))
        if len(modes) == 1:         # (shared by several modes, they are no one mode's)
            probes[modes[0].lane_bits].extend([product_word, negated, shifted])
        for k, md in enumerate(modes):
            for li, l in enumerate(lanes[k]):
                fine = Signal(signed(fine_width[k]), name=f"fine_m{md.lane_bits}_l{li}")
                sliced = shifted[li * region[k]:][:fine_width[k]]
                # Isolation: without the "align_split" registers (loaded in their mode only)
                # the coarse shifts would see the other modes' values.
                gated = iso and not align_split and len(modes) > 1
                m.d.comb += fine.eq(Mux(align_flags[k], sliced, 0) if gated else sliced)
                l["fine"] = fine
        if align_split:
            lanes = stage_lanes(lanes, at="align_split", suffix="fine", flags=align_flags,
                                keys=("fine", "coarse_shift", "sign", "nan", "inf"))
            ctl = stage_control(ctl, at="align_split", suffix="fine")
            align_flags = mode_flags(ctl["mode"], "coarse")
        for k, md in enumerate(modes):
            for li, l in enumerate(lanes[k]):
                # the total shift is at most span_bits, so span + 2 bits hold the result
                val = Signal(signed(md.span_bits + 2), name=f"addend_m{md.lane_bits}_l{li}")
                m.d.comb += val.eq(l["fine"] << Cat(Const(0, fine_bits[k]), l["coarse_shift"]))
                l["addend"] = val
                probes[md.lane_bits].append(val)

        # The dot product's sum is a tree over the lanes, and each lane's register holds
        # what the addend needs of it in the operation's kind: an even lane its addend
        # plus, in dot mode, its odd neighbour's; an odd lane its addend in SIMD mode and
        # 0 in dot mode. After the register the even lanes are summed (in SIMD mode only
        # lane 0 counts), which is lane 0's value in either kind. So no register holds a
        # value the operation does not use, and each mode's part of the addend is one
        # term, not a SIMD and a dot term chosen per bit.
        dot_pre = self._is_dot(ctl["ctrl"][0])
        for k, md in enumerate(modes):
            for li, l in enumerate(lanes[k]):
                a = l["addend"]
                if li % 2 == 0 and li + 1 < md.lanes:
                    held = Signal(signed(len(a) + 1), name=f"pairsum_m{md.lane_bits}_l{li}")
                    m.d.comb += held.eq(a + Mux(dot_pre, lanes[k][li + 1]["addend"], 0))
                    probes[md.lane_bits].append(held)
                    l["held"] = held
                elif li % 2:
                    l["simd_only"] = a      # (0 in dot mode, by the register below)
                else:
                    l["held"] = a

        # ---- register after the aligners' shifters ("shift") -------------------------
        # Under isolation these registers are zero outside their mode (cleared, not held),
        # so the addend below is an OR of the modes' values with no mode select per bit:
        # the select moves into the flip-flops' synchronous reset, which costs no LUT.
        lanes = stage_lanes(lanes, at="shift", suffix="shift", flags=align_flags,
                            keys=("held", "simd_only", "sign", "nan", "inf"), clear=True,
                            zero_when={"simd_only": dot_pre})
        for mode_lanes in lanes:
            for l in mode_lanes:
                if "simd_only" in l:
                    l["held"] = l.pop("simd_only")
        zeroed = iso and bool(self._registers["shift"])
        ctl = stage_control(ctl, at="shift", suffix="shift")

        # ---- each mode's part of the addend: its lanes, or their sum in dot mode ---------
        R = g.register_bits
        flags_nan = Signal(g.chunks)
        flags_pinf = Signal(g.chunks)
        flags_ninf = Signal(g.chunks)
        sum_flags = None if zeroed else mode_flags(ctl["mode"], "sum")   # (zeroed: unused)
        dot1 = self._is_dot(ctl["ctrl"][0])
        summed = [k for k, md in enumerate(modes) if md.lanes > 1]
        low = min((g.chunks // md.lanes * g.chunk_bits for k, md in enumerate(modes)
                   if k in summed), default=R)
        signs = []
        values = []         # per mode, per lane: the value that goes into its chunks
        terms = {"nan": [], "pinf": [], "ninf": []}
        for k, md in enumerate(modes):
            held = [l["held"] for l in lanes[k]]
            nan = Cat(*[l["nan"] for l in lanes[k]])
            pinf = Cat(*[l["inf"] & ~l["sign"] for l in lanes[k]])
            ninf = Cat(*[l["inf"] & l["sign"] for l in lanes[k]])
            # (zeroed: the other modes' values are 0, so the mode need not be selected)
            in_mode = 1 if zeroed else sum_flags[k]
            as_dot = Signal(name=f"dot_m{md.lane_bits}_sum")
            as_simd = Signal(name=f"simd_m{md.lane_bits}_sum")
            m.d.comb += [as_dot.eq(in_mode & dot1), as_simd.eq(in_mode & ~dot1)]
            first = held[0]
            if md.lanes > 2:
                first = Signal(signed(len(held[0]) + _clog2((md.lanes + 1) // 2)),
                               name=f"dotsum_m{md.lane_bits}")
                m.d.comb += first.eq(functools.reduce(
                    operator.add, [held[0]] + [Mux(dot1, h, 0) for h in held[2::2]]))
            assert len(first) <= g.chunks // md.lanes * g.chunk_bits
            mode_values = [first] + [_zero_if(dot1, h) if li % 2 == 0 else h
                                     for li, h in enumerate(held) if li]
            values.append([v if zeroed else _zero_if(~in_mode, v) for v in mode_values])
            if k in summed:
                dot_sign = Signal(name=f"dotsign_m{md.lane_bits}")
                m.d.comb += dot_sign.eq(as_dot & first[-1])
                signs.append(dot_sign)
            for key, flags in (("nan", nan), ("pinf", pinf), ("ninf", ninf)):
                terms[key].append(Mux(as_simd, flags, 0) | Mux(as_dot, flags.any(), 0))
        # In dot mode the sum's sign continues above its chunks: one signal for every bit
        # above the narrowest lane's chunks.
        dot_sign_any = Signal(name="dot_sign_any")
        m.d.comb += [
            dot_sign_any.eq(_or_all(signs) if signs else 0),
            flags_nan.eq(_or_all(terms["nan"])), flags_pinf.eq(_or_all(terms["pinf"])),
            flags_ninf.eq(_or_all(terms["ninf"])),
        ]

        # ---- register after alignment ("align") ----------------------------------------
        # It holds each mode's lane values and the dot sum's sign as they are, not the
        # addend: the accumulator ORs the modes' sign-extended words in the same LUT as
        # its adder's XOR (``addend_terms``), where an OR here was a LUT level of its own
        # on each of the 136 bits. The first step's clear then acts a cycle ahead, from
        # this register's input (``clear_ahead``), so that the adder's input is the
        # register itself, not a multiplexer of it and 0. (Not with "capture", whose
        # read-out needs the register to still hold the last step's sum a cycle later.)
        clear_ahead = bool(self._registers["align"]) and not self._registers["capture"]
        next_first = ctl["v"] & ctl["ctrl"][1]      # the operation that steps next is first
        # Without clear_ahead ("capture") the clear gates every bit of the adder's register
        # input: it comes from copies of the "align" register's first flag, each on a share
        # of the chunks (one flip-flop on all 136 bits was 2 ns of routing on ECP5). Yosys
        # merges flip-flops with the same input unless their initial or reset values differ,
        # so the copies differ in those (which no step reads: a step loads them first).
        clear_copies = []
        if self._registers["align"] and not clear_ahead:
            clear_copies = _register_copies(m, ctl["ctrl"][1], range(min(g.chunks, 4)),
                                            name="clear_copy")
        values = [[pipeline_reg(v, at="align", name=f"value_m{md.lane_bits}_l{li}_align")
                   for li, v in enumerate(mode_values)]
                  for md, mode_values in zip(modes, values)]
        dot_sign_any = pipeline_reg(dot_sign_any, at="align", name="dot_sign_align")
        ctl = stage_control(dict(ctl, nan=flags_nan, pinf=flags_pinf, ninf=flags_ninf),
                            at="align", suffix="align")
        # Each value is sign-extended only as far as its partition is read: its saturating
        # width and the two bits above that the overflow check reads (lane 0 carries the
        # dot sum too, read at the dot partition's width). The bits above are never read
        # (a partition's carry out of them is killed at the next partition's start, or by
        # its dead bits, see PartitionedAccumulator), so they take no sign: in dot mode the
        # sum's sign then drives a few bits above the narrowest lane's chunks, not all of
        # them (xr_npe: 2 bits, not 102; one flip-flop on all of them was 2 ns of routing
        # on ECP5, in front of the accumulator's chain).
        def extended(v, md, li):
            region = g.chunks // md.lanes * g.chunk_bits
            read = PartitionedAccumulator.read_width(
                max(md.simd.width, md.dot.width) if li == 0 else md.simd.width)
            return Cat(_sext(v, min(read, region)), Const(0, max(region - read, 0)))
        addend_terms = [Cat(*[extended(v, md, li) for li, v in enumerate(mode_values)])
                        for md, mode_values in zip(modes, values)]
        dot_read = min(max([PartitionedAccumulator.read_width(modes[k].dot.width)
                            for k in summed], default=low), R)
        if dot_read > low:
            addend_terms.append(Cat(Const(0, low), dot_sign_any.replicate(dot_read - low),
                                    Const(0, R - dot_read)))
        v2, ctrl2, mode2 = ctl["v"], ctl["ctrl"], ctl["mode"]
        nan2, pinf2, ninf2 = ctl["nan"], ctl["pinf"], ctl["ninf"]
        # (the flag as carried, 0 in a dot-only engine, is what the read-out's registers
        # keep; ``dot2`` is the operation's kind)
        dot2_carried, first2, last2 = ctrl2[0], ctrl2[1], ctrl2[2]
        dot2 = self._is_dot(dot2_carried)
        out_fmt2 = ctrl2[3:]

        # ---- stage A: the partitioned accumulator ------------------------------------
        acc = PartitionedAccumulator(chunk_bits=g.chunk_bits, chunks=g.chunks,
                                     partitionings=self.partitionings(),
                                     chain_parts=(g.chunks if self._registers["carries"] else
                                                  2 if self._registers["carry"] else 1),
                                     addend_terms=len(addend_terms), clear_ahead=clear_ahead,
                                     staged_check=bool(self._registers["check"]),
                                     clear_copies=len(clear_copies) or 1)
        m.submodules.accumulator = acc
        step = Signal()
        m.d.comb += [
            step.eq(v2),
            acc.partitioning.eq(self._partitioning(dot2, mode2)),
            acc.addend.eq(Cat(*addend_terms)),
            acc.clear.eq(next_first if clear_ahead else
                         Cat(*clear_copies) if clear_copies else first2),
            acc.en.eq(step),
        ]
        sticky_nan = Signal(g.chunks)
        sticky_pinf = Signal(g.chunks)
        sticky_ninf = Signal(g.chunks)
        next_nan = Signal(g.chunks)
        next_pinf = Signal(g.chunks)
        next_ninf = Signal(g.chunks)
        m.d.comb += [
            next_nan.eq(Mux(first2, 0, sticky_nan) | nan2),
            next_pinf.eq(Mux(first2, 0, sticky_pinf) | pinf2),
            next_ninf.eq(Mux(first2, 0, sticky_ninf) | ninf2),
        ]
        with m.If(step):
            m.d.sync += [sticky_nan.eq(next_nan), sticky_pinf.eq(next_pinf), sticky_ninf.eq(next_ninf)]

        # ---- read-out snapshot and the rounding unit ---------------------------------
        # What a read-out needs of the accumulation it reads, captured at its last step.
        snapshot_layout = data.StructLayout({
            "acc": acc.state_layout,     # the final sum and the earlier overflows
            "nan": g.chunks, "pinf": g.chunks, "ninf": g.chunks,
            "mode": len(mode2), "dot": 1, "fmt": len(out_fmt2),
        })
        captured = Signal(snapshot_layout)
        if self._registers["capture"]:
            # ("capture") The snapshot takes the accumulator's register and the sticky
            # flags a cycle after the last step, when they hold what ``next_state`` and
            # ``next_*`` held at it. The adder's sum then drives the register's flip-flops
            # alone, and nextpnr packs them into the carry chain's slices: it packs the
            # first flip-flop it finds on each sum bit, and where that was the snapshot's,
            # the accumulator's loop went out to the routing and back (about 1 ns on
            # ECP5). The price: the clear acts in its step (no ``clear_ahead``), a gate
            # on the adder's register input (a LUT per bit on xc7).
            capture = Signal(name="capture_late")
            side = Signal(len(mode2) + 1 + len(out_fmt2), name="capture_side")
            m.d.sync += [capture.eq(step & last2), side.eq(Cat(mode2, dot2_carried, out_fmt2))]
            m.d.comb += [
                captured.acc.eq(acc.state),
                captured.nan.eq(sticky_nan), captured.pinf.eq(sticky_pinf),
                captured.ninf.eq(sticky_ninf),
                Cat(captured.mode, captured.dot, captured.fmt).eq(side),
            ]
        else:
            capture = step & last2
            m.d.comb += [
                captured.acc.eq(acc.next_state),
                captured.nan.eq(next_nan), captured.pinf.eq(next_pinf),
                captured.ninf.eq(next_ninf),
                captured.mode.eq(mode2), captured.dot.eq(dot2_carried),
                captured.fmt.eq(out_fmt2),
            ]
        snap = Signal(snapshot_layout)   # the read-out's source while it is busy
        busy = Signal()
        lane_idx = Signal(range(max(2, g.chunks)))
        n_beats = Signal(range(g.chunks + 1))
        with m.Switch(snap.mode):
            for k, md in enumerate(modes):
                with m.Case(k):
                    m.d.comb += n_beats.eq(Mux(self._is_dot(snap.dot), 1, md.lanes))
        final_beat = Signal()
        m.d.comb += final_beat.eq(lane_idx == n_beats - 1)
        # A beat leaves the snapshot every cycle while it is busy (nothing downstream waits).
        with m.If(busy):
            m.d.sync += lane_idx.eq(lane_idx + 1)
            with m.If(final_beat):
                m.d.sync += [busy.eq(0), lane_idx.eq(0)]
        # Each beat but the last shifts the snapshot down by one lane's chunks (and its
        # per-lane flags by one), so the lane being read is always the lowest: the select
        # below depends only on the read-out's mode, fixed while it runs. (Selecting by
        # the lane index instead was an Fmax path, seven LUT levels.) Only the bits a later
        # beat reads move: of each lane's chunks but the last, its width and the two bits
        # above it that the saturation check reads. The others keep their value, so that
        # a bit no mode needs is not a multiplexer input (xr_npe: 33 LUTs).
        with m.If(busy & ~final_beat):
            with m.Switch(snap.mode):
                for k, md in enumerate(modes):
                    if md.lanes > 1:
                        per = g.chunks // md.lanes
                        lane_bits = per * g.chunk_bits
                        needed = min(lane_bits, md.simd.width + 2)
                        with m.Case(k):
                            m.d.sync += [
                                snap.acc.raw[j * lane_bits:j * lane_bits + needed].eq(
                                    snap.acc.raw[(j + 1) * lane_bits:(j + 1) * lane_bits + needed])
                                for j in range(md.lanes - 1)
                            ]
                            m.d.sync += [
                                snap.acc.overflowed.eq(snap.acc.overflowed >> per),
                                snap.acc.negative.eq(snap.acc.negative >> per),
                                snap.nan.eq(snap.nan >> 1), snap.pinf.eq(snap.pinf >> 1),
                                snap.ninf.eq(snap.ninf >> 1),
                            ]
        # The admission's ``gap`` guarantees that the snapshot is free (idle, or at its final
        # beat) whenever a read-out arrives (in ``held`` too, one cycle later); it loads
        # without looking.
        if self._registers["carry"]:
            # The accumulator defers a carry (split chain); a read-out waits one cycle in
            # ``held``, and the carry is added on its way into ``snap``, not between the
            # adder and the snapshot.
            # With the staged check its pending bits go into the sticky ones on the same
            # way (the snapshot moves its chunks; ``pending`` is by bit position).
            held = Signal(snapshot_layout)
            held_full = Signal()
            m.d.sync += held_full.eq(capture)
            folded = Signal(snapshot_layout)
            overflowed, negative = acc.fold_pending(m, held.acc,
                                                       self._partitioning(held.dot, held.mode))
            propagated = bool(self._registers["carries"])
            m.d.comb += [folded.eq(held),
                         folded.acc.raw.eq(acc.resolve(held.acc, propagated=propagated)),
                         folded.acc.carry.eq(0), folded.acc.overflowed.eq(overflowed),
                         folded.acc.negative.eq(negative)]
            # (folded into the sticky bits)
            m.d.comb += [getattr(folded.acc, name).eq(0) for name in ("pending", "lookahead", "late")
                         if name in acc.state_layout.members]
            if self._registers["resolve"]:
                # one more register between the resolve and the snapshot, whose input
                # is a multiplexer (load, shift, hold): the resolve's chain and that
                # multiplexer were an Fmax path together
                resolved_ready = Signal(snapshot_layout)
                ready_full = Signal()
                m.d.sync += ready_full.eq(held_full)
                with m.If(held_full):
                    m.d.sync += resolved_ready.eq(folded)
                load, loaded = ready_full, resolved_ready
            else:
                load, loaded = held_full, folded
            with m.If(load):
                m.d.sync += [snap.eq(loaded), busy.eq(1), lane_idx.eq(0)]
            with m.If(capture):
                m.d.sync += held.eq(captured)
            if propagated:
                # ("carries") The carries below the middle cut are added on the way into
                # ``held`` (from the accumulator's register: "capture" comes first), the
                # rest on the way out of it: the resolve in one piece was 50 CCU2C on
                # ECP5, an Fmax path.
                with m.If(capture):
                    m.d.sync += held.acc.eq(acc.propagate(m, captured.acc))
            resolved = snap.acc.raw
        else:
            with m.If(capture):
                m.d.sync += [snap.eq(captured), busy.eq(1), lane_idx.eq(0)]
            resolved = Signal(R)
            m.d.comb += resolved.eq(acc.resolve(snap.acc))

        # Select the accumulator being read out, at its own LSB: the rounding unit adds the
        # mode's LSB exponent (``lsb_offset``), so the value is only sign-extended here.
        # (Shifting every mode's value to the smallest LSB of all was a multiplexer of
        # several inputs on each of the read-out's bits, and an Fmax path.)
        E = g.readout_bits
        value = Signal(E, name="value_raw")     # the partition's sum, unsaturated
        lsb_offset = Signal(range(g.max_lsb_offset + 1), name="lsb_offset")
        # A saturated accumulator reads as a bound, ±2**(width - 1) (-1 for the positive
        # one) at the partition's LSB. Its rounding into the output format is a constant
        # of the mode, the dot flag and the format, looked up here and put in place of the
        # rounding unit's code at the end: not a multiplexer of the bound into every bit
        # of the value, whose select fanned out over all of them (an Fmax path).
        bound_pos_code = Signal(self.code_bits, name="bound_pos_code")
        bound_neg_code = Signal(self.code_bits, name="bound_neg_code")
        bound_code = Signal(self.code_bits, name="bound_code")
        lane_neg = Signal()
        lane_nan = Signal()
        lane_pinf = Signal()
        lane_ninf = Signal()
        lane_sat = Signal()
        # The sign extension: above the narrowest partition's width each bit is either the
        # sum's own bit or the partition's sign bit, chosen by one signal per range of bits
        # (``wider_than_<w>``: the partition is wider than w bits). The rounding unit's
        # normalizer does it (``sign_extend``), folded into its first shift stage: here it
        # was a multiplexer on each bit above the narrowest width (xr_npe: about 100 LUTs).
        widths = sorted({md.dot.width if dot else md.simd.width for md in modes
                         for dot in self._kinds()})
        ext_sign = Signal(name="ext_sign")
        wider = {w: Signal(name=f"wider_than_{w}") for w in widths[:-1]}
        with m.Switch(self._partitioning(snap.dot, snap.mode)):
            for k, md in enumerate(modes):
                for dot in self._kinds():
                    with m.Case(k if self.dot_only else k * 2 + dot):
                        width = md.dot.width if dot else md.simd.width
                        sat, neg = acc.saturation(resolved, snap.acc, first_chunk=0,
                                                  sat_width=width)
                        m.d.comb += [ext_sign.eq(resolved[width - 1])]
                        m.d.comb += [flag.eq(width > w) for w, flag in wider.items()]
                        m.d.comb += [
                            lsb_offset.eq(md.lsb_exponent - g.lsb_min),
                            lane_sat.eq(sat), lane_neg.eq(neg),
                        ]
                        with m.Switch(snap.fmt):
                            for idx, f in enumerate(self.output_formats):
                                with m.Case(idx):
                                    m.d.comb += [
                                        bound_pos_code.eq(_fixed_code(
                                            f, (1 << (width - 1)) - 1, md.lsb_exponent)),
                                        bound_neg_code.eq(_fixed_code(
                                            f, -(1 << (width - 1)), md.lsb_exponent)),
                                    ]
        m.d.comb += bound_code.eq(Mux(lane_neg, bound_neg_code, bound_pos_code))
        m.d.comb += value.eq(resolved[:E])
        m.d.comb += [
            lane_nan.eq(snap.nan[0]),           # (the snapshot shifts, see above)
            lane_pinf.eq(snap.pinf[0]),
            lane_ninf.eq(snap.ninf[0]),
        ]
        is_nan = lane_nan | (lane_pinf & lane_ninf)
        beat = Signal(self.o.payload.shape())
        beat_valid = Signal()
        m.d.comb += [
            beat_valid.eq(busy),
            beat.lane.eq(lane_idx),
            beat.last.eq(final_beat),
            beat.nan.eq(is_nan),
            beat.inf.eq((lane_pinf | lane_ninf) & ~is_nan),
            beat.saturated.eq(lane_sat),
        ]

        def ro_reg(sig, name):
            return pipeline_register(m, sig, name=name)

        enc_in = (value, snap.fmt, lane_nan, lane_pinf, lane_ninf, lsb_offset, ext_sign,
                  Cat(*wider.values()))
        # The register after the select ("select") is the normalizer's input register
        # (``register_input``): the normalizer's first shift decision, the widest
        # comparison of its one's complement, is made in the select's cycle, where the
        # value comes straight from the snapshot, and after the register the first stage
        # is a multiplexer. (A register of the selected value in front of the normalizer
        # left the comparison and the multiplexer in one cycle: 7.7 ns on ECP5.)
        # One rounding unit: the wide normalizer is shared by every output format, with
        # registers inside it (stages >= 8), between it and the rounding (stages >= 6) and
        # inside the rounding (stages >= 10).
        enc = FixedToFormats(self.output_formats, acc_width=E, lsb_exponent=g.lsb_min,
                             isolate=iso, registered=bool(self._registers["round"]),
                             normalizer_pipeline=(self._registers["normalize"]
                                                  + self._registers["select"]),
                             normalizer_register_input=bool(self._registers["select"]),
                             split_rounding=bool(self._registers["split_round"]),
                             split_fields=bool(self._registers["fields"]),
                             max_lsb_offset=g.max_lsb_offset, sign_extend=widths,
                             fold_constant_offset=self.dot_only)
        m.submodules.encoder = enc
        m.d.comb += [
            enc.value.eq(enc_in[0]), enc.fmt.eq(enc_in[1]),
            enc.sign.eq(enc_in[6]),
            enc.nan.eq(enc_in[2]), enc.pos_inf.eq(enc_in[3]), enc.neg_inf.eq(enc_in[4]),
        ]
        if len(widths) > 1:
            m.d.comb += enc.wider.eq(enc_in[7])
        if g.max_lsb_offset:
            m.d.comb += enc.lsb_offset.eq(enc_in[5])
        if enc.latency:
            m.d.comb += enc.en.eq(1)
        for k in range(enc.latency):
            beat, beat_valid = ro_reg(beat, f"beat_enc{k}"), ro_reg(beat_valid, f"beat_enc{k}_valid")
            if k == 0:
                # both bounds' codes and the side registered, selected after the register:
                # the side comes from the saturation check, the codes from a lookup on
                # the mode and the format, and the two and the select in one cycle were
                # an Fmax path
                lane_neg, bound_pos_code, bound_neg_code = (
                    ro_reg(lane_neg, "lane_neg_enc0"), ro_reg(bound_pos_code, "bound_pos_enc0"),
                    ro_reg(bound_neg_code, "bound_neg_enc0"))
                bound_code = Signal.like(bound_pos_code, name="bound_code_enc0")
                m.d.comb += bound_code.eq(Mux(lane_neg, bound_neg_code, bound_pos_code))
            else:
                bound_code = ro_reg(bound_code, f"bound_code_enc{k}")
        # NaN and infinity take precedence over saturation, as in the rounding unit.
        use_bound = Signal(name="use_bound")
        m.d.comb += use_bound.eq(beat.saturated & ~beat.nan & ~beat.inf)
        code = enc.code
        if self._registers["output"]:
            # The output register holds the rounded code and the bound beside it, and the
            # saturation's select follows it, on the way into the FIFO: before it, the select
            # was a LUT level after the rounding's carry chain and its format select (6.9 ns
            # on ECP5).
            beat, beat_valid = ro_reg(beat, "beat_out"), ro_reg(beat_valid, "beat_out_valid")
            code, bound_code = ro_reg(code, "code_out"), ro_reg(bound_code, "bound_code_out")
            use_bound = ro_reg(use_bound, "use_bound_out")
        rounded = Signal.like(beat, name="beat_rounded")
        m.d.comb += [rounded.eq(beat), rounded.code.eq(Mux(use_bound, bound_code, code))]
        out_fifo = fifo.SyncFIFOBuffered(width=len(rounded.as_value()), depth=self.output_fifo_depth)
        m.submodules.output_fifo = out_fifo
        m.d.comb += [
            out_fifo.w_en.eq(beat_valid),
            out_fifo.w_data.eq(rounded),
            self.o.valid.eq(out_fifo.r_rdy),
            self.o.payload.eq(out_fifo.r_data),
            out_fifo.r_en.eq(self.o.ready),
        ]
        return m


def engine_params(cfg, **overrides) -> dict:
    """:class:`MacEngine` keyword arguments of a config."""
    e = cfg.engine
    params = dict(word_bits=e.word_bits, formats=tuple(e.formats),
                  output_formats=tuple(e.output_formats or e.formats), guard_bits=e.guard_bits,
                  share_multiplier=e.share_multiplier, operand_isolation=e.operand_isolation,
                  pipeline_stages=e.pipeline_stages)
    params.update(overrides)
    return params


def _fixed_code(fmt, value: int, lsb_exponent: int) -> int:
    """The code of ``value * 2**lsb_exponent`` rounded once into ``fmt``."""
    return int(get_format(fmt).encode(np.array([fixed_to_float(value, lsb_exponent)]))[0])


def _clog2(n: int) -> int:
    return math.ceil(math.log2(n)) if n > 1 else 0


def _register_copies(m, value, variants, *, name):
    """Registers of ``value`` that Yosys keeps apart, one per variant in ``variants``
    (0 to 3), named ``{name}{variant}``: Yosys merges flip-flops with the same input
    unless their initial or reset values differ, so variant ``i`` has every bit's init
    ``i % 2`` and is reset-less from 2 on. Variant 0 is what a plain register of ``value``
    is (init 0, reset), and merges with one. For a load spread over several drivers; no
    step may read a copy before loading it."""
    bits = len(value)
    copies = []
    for i in variants:
        copy = Signal(bits, name=f"{name}{i}", init=((1 << bits) - 1) * (i % 2),
                      reset_less=bool(i // 2))
        m.d.sync += copy.eq(value)
        copies.append(copy)
    return copies


def _or_all(values):
    """The bitwise OR of ``values`` (for AND-OR selection among exclusive terms)."""
    return functools.reduce(operator.or_, values)


def _zero_if(cond, value):
    """``value``, or 0 while ``cond`` is set (of ``value``'s shape)."""
    zeroed = Mux(cond, 0, value)
    return zeroed.as_signed() if value.shape().signed else zeroed


def _connect_decoder(m, dec, code, selected, *, isolate, gate, accepted):
    """Drive a lane decoder's ``code`` and, if it is pipelined, its ``en`` and ``valid``.
    ``selected``: one of the decoder's formats is this operand's. ``gate``: isolation by
    gating the code to 0 unless selected; with ``isolate`` a pipelined decoder's registers
    also load only selected, accepted codes (``valid``), which isolates a decoder whose
    first register comes before any logic without the gate."""
    m.d.comb += dec.code.eq(Mux(selected, code, 0) if gate else code)
    if dec.pipeline:
        m.d.comb += dec.en.eq(1)
        if isolate:
            m.d.comb += dec.valid.eq(selected & accepted)


def _sext(value, width: int):
    """Sign-extend (or truncate) a signed value to ``width`` bits, as an unsigned bit vector."""
    v = value.as_signed()
    return Cat(v, *([v[-1]] * (width - len(v))))[:width] if width > len(v) else v[:width]
