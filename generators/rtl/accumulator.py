"""The partitioned, saturating exact accumulator."""

from __future__ import annotations

import functools
import operator

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PartitionedAccumulator"]


class PartitionedAccumulator(wiring.Component):
    """A ``chunks × chunk_bits`` two's-complement accumulator register, split into
    independent saturating partitions at run time.

    Each *partitioning* is a tuple of partitions ``(first_chunk, n_chunks, sat_width)``;
    the carry chain is broken at every partition border. A partition saturates at
    ``sat_width`` signed bits, and saturation is **sticky**: from the first step whose sum
    leaves ``[-2**(sat_width-1), 2**(sat_width-1) - 1]``, the partition's result is the
    bound on that side and its ``saturated`` bit is set, whatever later steps add, until
    the next ``clear``. (Clamping after every step and continuing from the bound would
    put the overflow check and the clamp inside the adder's loop; sticky saturation lets
    the register hold the plain sum and the check run beside it, one step behind. A
    saturated sum has lost its exact value either way; the bound says in which
    direction.)

    A partition must be at least ``sat_width + 2`` bits wide, and each step's addend must
    fit in ``sat_width + 1`` signed bits (the engine's geometry guarantees both): the sum
    of an in-range value and such an addend then fits in ``sat_width + 2`` bits, and the
    check only looks at its top three. The partitioning may change only with ``clear``.

    Parameters
    ----------
    chunk_bits, chunks : int
    partitionings : sequence of sequences of (int, int, int)
    split_chain : bool
        Cut the carry chain at the chunk border nearest the middle (in the middle of a
        single chunk): the carry out of the lower half is registered (``state.carry``)
        and added into the upper half at the next step, so the loop through the adder is
        half as long. The register then holds the sum with that carry still to add at
        :attr:`split_bit` (:meth:`resolve`). A partition that spans the split must be
        the topmost of its partitioning: :meth:`resolve` adds the carry without the
        partition borders, and where the partition wraps (from -1 to 0, say) the carry
        would leave it at its top.
    addend_terms : int
        ``addend`` is that many words, ORed: the engine's lane modes each give one, 0
        outside its mode. The OR is in the same LUT as the adder's XOR of each bit (with
        ``clear_ahead``, whose adder input is the register alone): a separate OR was a LUT
        on every bit.
    staged_check : bool
        Check a step's sum for overflow one step later: the register keeps the top three
        bits of each partition of the previous step's resolved sum (``state.pending``),
        and the sticky bits take them in at the next step. The check's path is then the
        deferred carry's resolve into a register, and the overflow test after it starts
        from a register (on ECP5 the two together were a 35-CCU2C chain and four LUT
        levels, an Fmax path). A read-out sees all steps with :meth:`saturation`, or folds
        ``pending`` into the sticky bits with :meth:`fold_pending`.
    clear_ahead : bool
        ``clear`` acts a cycle ahead: it resets the register at the next edge (whether
        or not ``en`` steps; ``next_state`` is still the step's result, for a read-out),
        so that the step after it adds to zero. Then the adder's input is the register,
        not a multiplexer of it and 0: on FPGAs the reset is the flip-flops' own, and the
        carry chain's generate input is the register's output, not a LUT's.
    clear_copies : int
        ``clear`` comes as that many copies of one bit, each gating the register's input
        for its share of the chunks (without ``clear_ahead``, where the clear is a gate on
        every bit of the adder's register input): one flip-flop on all of them was an Fmax
        path of its own (on ECP5, 2 ns of routing for 136 loads). All copies must be equal.

    Members
    -------
    partitioning : In(range(len(partitionings)))
        Which partitioning this step uses.
    addend : In(chunks · chunk_bits), or In(ArrayLayout(chunks · chunk_bits, addend_terms))
        Each partition's addend, sign-extended over its partition (the OR of the terms).
    clear : In(clear_copies)
        Add to zero instead of the register (and clear the sticky bits): the first step
        of a new accumulation (every copy set). With ``clear_ahead``: reset the register
        (and the sticky bits) at the next edge, for the next step to start a new
        accumulation.
    en : In(1)
        Perform the step at the next clock edge.
    state : Out(state_layout)
        The register: ``raw`` (the sum, with ``carry`` not yet added at ``split_bit``),
        and per chunk whether its partition ``overflowed`` at an *earlier* step of this
        accumulation than the one ``raw`` holds, and whether towards the ``negative`` bound.
        With ``staged_check``, ``pending`` holds the check bits of the step before
        ``raw``'s (:attr:`check_positions` of its resolved sum), and ``overflowed`` and
        ``negative`` cover the steps before that one.
    next_state : Out(state_layout)
        What ``state`` becomes at the next edge if ``en`` is set: a read-out captures it
        in the same cycle as the last step and reads it with :meth:`resolve` and
        :meth:`read_partition`.
    value : Out(chunks · chunk_bits)
        Each partition of ``state`` resolved and saturated (sign-extended over its
        partition).
    saturated : Out(n)
        Sticky saturation bit of partition ``p`` of ``state`` at index ``p``; ``n`` is the
        most partitions of any partitioning (a bit no partitioning has would be a
        constant, which Verilog emits as an ``always @*`` that never runs).
    """

    def __init__(self, *, chunk_bits: int, chunks: int, partitionings, split_chain: bool = False,
                 addend_terms: int = 1, clear_ahead: bool = False, staged_check: bool = False,
                 clear_copies: int = 1):
        if isinstance(addend_terms, bool) or not isinstance(addend_terms, int) or addend_terms < 1:
            raise ValueError(f"addend_terms must be a positive integer, not {addend_terms!r}")
        if chunk_bits < 2:
            raise ValueError(f"chunk_bits must be at least 2, not {chunk_bits}")
        if chunks < 1:
            raise ValueError(f"chunks must be at least 1, not {chunks}")
        if (isinstance(clear_copies, bool) or not isinstance(clear_copies, int)
                or not 1 <= clear_copies <= chunks):
            raise ValueError(f"clear_copies must be an integer from 1 to chunks ({chunks}), "
                             f"not {clear_copies!r}")
        parts = []
        for k, partitioning in enumerate(partitionings):
            partitioning = tuple(tuple(p) for p in partitioning)
            covered = 0
            for first, count, sat in partitioning:
                if first != covered or count < 1:
                    raise ValueError(f"partitioning {k} must cover the chunks in order without "
                                     f"gaps; partition at chunk {first} after {covered} chunks")
                if sat + 2 > count * chunk_bits:
                    raise ValueError(f"partitioning {k}: a {count * chunk_bits}-bit partition "
                                     f"cannot saturate at {sat} bits (needs {sat + 2} bits)")
                covered += count
            if covered != chunks:
                raise ValueError(f"partitioning {k} covers {covered} chunks, not {chunks}")
            parts.append(partitioning)
        if not parts:
            raise ValueError("partitionings must not be empty")
        self._addend_terms = addend_terms
        self._clear_copies = clear_copies
        self._clear_ahead = bool(clear_ahead)
        self._chunk_bits = chunk_bits
        self._chunks = chunks
        self._partitionings = tuple(parts)
        # at the chunk border nearest the middle, or in the middle of a single chunk
        self._split_bit = (None if not split_chain else
                           (chunks // 2) * chunk_bits if chunks > 1 else chunk_bits // 2)
        width = chunks * chunk_bits
        for k, partitioning in enumerate(parts if self._split_bit is not None else ()):
            for first, count, _ in partitioning[:-1]:
                if first * chunk_bits < self._split_bit < (first + count) * chunk_bits:
                    raise ValueError(
                        f"partitioning {k}: the partition at chunk {first} spans the split "
                        f"chain's carry at bit {self._split_bit} and is not the topmost; "
                        f"its deferred carry would reach the partition above")
        self._staged_check = bool(staged_check)
        # the top three bits of every partition of every partitioning, which the check reads
        self._check_positions = tuple(sorted({
            first * chunk_bits + sat - 1 + i
            for partitioning in parts for first, _, sat in partitioning for i in range(3)}))
        self._state_layout = data.StructLayout({
            "raw": width,
            "carry": 1,
            "overflowed": chunks,
            "negative": chunks,
            **({"pending": len(self._check_positions)} if self._staged_check else {}),
        })
        super().__init__({
            "partitioning": In(range(len(parts))),
            "addend": In(width if addend_terms == 1 else data.ArrayLayout(width, addend_terms)),
            "clear": In(clear_copies),
            "en": In(1),
            "state": Out(self._state_layout),
            "next_state": Out(self._state_layout),
            "value": Out(width),
            "saturated": Out(max(len(p) for p in parts)),
        })

    @property
    def partitionings(self):
        return self._partitionings

    @property
    def state_layout(self) -> data.StructLayout:
        return self._state_layout

    @property
    def check_positions(self):
        """Bit positions of the resolved sum that the overflow check reads (the top three
        of each partition): with ``staged_check``, ``state.pending`` holds them in order."""
        return self._check_positions

    @property
    def split_bit(self):
        """Bit position of the deferred carry, or ``None`` without ``split_chain``."""
        return self._split_bit

    def resolve(self, state):
        """The sum held in ``state`` (a view of :attr:`state_layout`) with its deferred
        carry added: an expression as wide as the register."""
        if self._split_bit is None:
            return state.raw
        s = self._split_bit
        return Cat(state.raw[:s], (state.raw[s:] + state.carry)[:len(state.raw) - s])

    def read_partition(self, resolved, state, *, first_chunk: int, sat_width: int):
        """Partition ``first_chunk`` of a captured ``state`` as ``(value, saturated)``:
        ``value`` is ``sat_width`` bits, the sum or the bound it saturated at.
        ``resolved`` is :meth:`resolve` of ``state`` (computed once by the caller)."""
        lo = first_chunk * self._chunk_bits
        saturated, negative = self.saturation(resolved, state, first_chunk=first_chunk,
                                              sat_width=sat_width)
        bound = Mux(negative, Const(1 << (sat_width - 1), sat_width),
                    Const((1 << (sat_width - 1)) - 1, sat_width))
        return Mux(saturated, bound, resolved[lo:lo + sat_width]), saturated

    def saturation(self, resolved, state, *, first_chunk: int, sat_width: int):
        """``(saturated, negative)`` of partition ``first_chunk`` of a captured ``state``:
        whether it reads as a bound (it overflowed now or earlier), and which one."""
        lo = first_chunk * self._chunk_bits
        top = resolved[lo + sat_width - 1:lo + sat_width + 2]
        overflow_now = (top != 0) & (top != 0b111)
        earlier, negative = self._earlier(state, first_chunk=first_chunk, sat_width=sat_width)
        return earlier | overflow_now, Mux(earlier, negative, top[2])

    def _earlier(self, state, *, first_chunk: int, sat_width: int):
        """``(overflowed, negative)`` of a partition of ``state`` at the steps before the
        one ``raw`` holds: the sticky bits and, with ``staged_check``, ``pending``."""
        earlier, negative = state.overflowed[first_chunk], state.negative[first_chunk]
        if self._staged_check:
            lo = first_chunk * self._chunk_bits + sat_width - 1
            top = Cat(*[state.pending[self._check_positions.index(lo + i)] for i in range(3)])
            pending = (top != 0) & (top != 0b111)
            earlier, negative = earlier | pending, Mux(earlier, negative, top[2])
        return earlier, negative

    def fold_pending(self, m, state, partitioning):
        """``(overflowed, negative)`` per chunk of a captured ``state`` with ``pending``
        taken in (the state of a read-out that moves its chunks; ``pending`` is by bit
        position). ``partitioning``: the state's partitioning. Without ``staged_check``
        the state's own bits."""
        if not self._staged_check:
            return state.overflowed, state.negative
        overflowed = Signal(self._chunks, name="folded_overflowed")
        negative = Signal(self._chunks, name="folded_negative")
        with m.Switch(partitioning):
            for k, parts in enumerate(self._partitionings):
                with m.Case(k):
                    for first, count, sat in parts:
                        ovf, neg = self._earlier(state, first_chunk=first, sat_width=sat)
                        m.d.comb += [overflowed[first:first + count].eq(ovf.replicate(count)),
                                     negative[first:first + count].eq(neg.replicate(count))]
        return overflowed, negative

    def elaborate(self, platform):
        m = Module()
        cb, n = self._chunk_bits, self._chunks
        width = n * cb
        state = self.state
        step_partitioning = Signal.like(self.partitioning)   # the partitioning of ``state``

        # ---- the sticky overflow check of the registered sum (beside the adder loop) -------
        resolved = Signal(width)
        m.d.comb += resolved.eq(self.resolve(state))
        # per chunk, including the step in ``state`` (with ``staged_check``: up to the one
        # before it, whose check bits are in ``pending``)
        overflowed_so_far = Signal(n)
        negative_so_far = Signal(n)
        with m.Switch(step_partitioning):
            for k, partitioning in enumerate(self._partitionings):
                with m.Case(k):
                    for p, (first, count, sat) in enumerate(partitioning):
                        value, saturated = self.read_partition(resolved, state,
                                                               first_chunk=first, sat_width=sat)
                        lo = first * cb
                        negative = value[-1]
                        m.d.comb += [
                            self.value[lo:lo + count * cb].eq(value.as_signed()),
                            self.saturated[p].eq(saturated),
                        ]
                        if self._staged_check:
                            saturated, negative = self._earlier(state, first_chunk=first,
                                                                sat_width=sat)
                        for c in range(first, first + count):
                            m.d.comb += [overflowed_so_far[c].eq(saturated),
                                         negative_so_far[c].eq(negative)]

        # ---- the step: base + addend on one carry chain (or two, with split_chain) ---------
        # A spacer bit sits between neighbouring chunks: 0 + 1 (passes the carry on)
        # inside a partition, 0 + 0 (kills it) where a partition starts. Breaking the carry
        # with a multiplexer between per-chunk adders instead takes it out of the FPGA's
        # carry chain at every chunk border (on ECP5 that made the loop 2.5× slower).
        starts = Signal(n)
        with m.Switch(self.partitioning):
            for k, partitioning in enumerate(self._partitionings):
                with m.Case(k):
                    m.d.comb += starts.eq(sum(1 << first for first, _, _ in partitioning))
        # (clear_ahead: the register was reset instead; the step adds to it as it is)
        clear_now = Const(0, 1) if self._clear_ahead else self.clear[0]
        base = Signal(width)
        if self._clear_ahead:
            m.d.comb += base.eq(Mux(clear_now, 0, state.raw))
        else:
            copies = self._clear_copies
            m.d.comb += base.eq(Cat(*[
                Mux(self.clear[c * copies // n], 0, state.raw[c * cb:(c + 1) * cb])
                for c in range(n)]))
        carry_in = Signal()
        m.d.comb += carry_in.eq(state.carry & ~clear_now)
        addend = Signal(width, name="terms_or")
        m.d.comb += addend.eq(self.addend if self._addend_terms == 1 else functools.reduce(
            operator.or_, [self.addend[t] for t in range(self._addend_terms)]))

        # (the spacers' 0 on the register's side, their pass flag on the addend's)
        spaced_base, spaced_addend = [], []
        for c in range(n):
            if c:
                spaced_base.append(Const(0, 1))
                spaced_addend.append(~starts[c])
            spaced_base.append(base[c * cb:(c + 1) * cb])
            spaced_addend.append(addend[c * cb:(c + 1) * cb])
        spaced_base, spaced_addend = Cat(*spaced_base), Cat(*spaced_addend)
        spaced_sum = Signal(len(spaced_base))

        def sum_without_carry_out(base, other):
            """``base + other`` truncated to their width, with ``base`` the narrower
            operand: its top bit is XORed into ``other``'s (adding at the top bit is an
            XOR there), before the chain, in the LUT that forms ``other``'s bit. (After
            the chain, the XOR was a LUT level on the loop's longest path: on ECP5 a LUT
            and two routings, 1.7 ns.)"""
            width = len(base)
            return (base[:-1] + Cat(other[:width - 1], other[width - 1] ^ base[-1]))[:width]

        # The register is the operand that is one bit narrower in each sum: Yosys makes the
        # operand that compares lower (narrower, then fewer pieces, then a hash of the
        # wires) the carry chain's generate input (xc7 CARRY4 DI), and that must be the
        # register's flip-flops for the OR of the addend's terms to fold into each bit's
        # XOR LUT; the OR as DI costs a LUT on each bit (xr_npe: 69 of 139 were, by the
        # hash, before). Where a carry out is not needed, the register's top bit is
        # XORed into the other operand's (``sum_without_carry_out``); the low part of a
        # split chain ends with a spacer, 0 on the register's side.
        if self._split_bit is None:
            m.d.comb += spaced_sum.eq(sum_without_carry_out(spaced_base, spaced_addend))
            carry_out = Const(0, 1)
        else:
            # The lower part ends with the spacer of a split at a chunk border, so its
            # carry out is zero where a partition starts. The registered carry enters the
            # upper part as an extra 1 + 1 LSB, so that it rides the same chain.
            cut = self._split_bit + self._split_bit // cb
            low = Signal(cut + 1)
            high = Signal(len(spaced_base) - cut + 1)
            m.d.comb += [
                # (a split inside a single chunk has no spacer there: equal widths)
                low.eq(spaced_base[:cut - (n > 1)] + spaced_addend[:cut]),
                high.eq(sum_without_carry_out(Cat(carry_in, spaced_base[cut:]),
                                              Cat(carry_in, spaced_addend[cut:]))),
                spaced_sum.eq(Cat(low[:cut], high[1:])),
            ]
            carry_out = low[cut]
        sums = [spaced_sum[c * (cb + 1):c * (cb + 1) + cb] for c in range(n)]

        m.d.comb += [
            self.next_state.raw.eq(Cat(*sums)),
            self.next_state.carry.eq(carry_out),
            self.next_state.overflowed.eq(Mux(clear_now, 0, overflowed_so_far)),
            self.next_state.negative.eq(Mux(clear_now, 0, negative_so_far)),
        ]
        if self._staged_check:
            m.d.comb += self.next_state.pending.eq(
                Mux(clear_now, 0, Cat(*[resolved[i] for i in self._check_positions])))
        with m.If(self.en):
            m.d.sync += [state.eq(self.next_state), step_partitioning.eq(self.partitioning)]
        if self._clear_ahead:
            with m.If(self.clear[0]):
                m.d.sync += state.eq(0)
        return m
