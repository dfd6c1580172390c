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
    chain_parts : int
        Cut the carry chain into that many parts at chunk borders (2: at the border
        nearest the middle; a single chunk can be cut in two, in its middle): the carry
        out of each part but the last is registered (``state.carry``) and added into the
        part above at the next step, so the loop through the adder is that many times
        shorter. The register then holds the sum with those carries still to add at
        :attr:`cuts` (:meth:`resolve`). A partition that spans a cut and is not the
        topmost of its partitioning keeps its top two bits 0 (:attr:`dead_bits`: the
        register's side gated and the addend masked there, for that partitioning): they
        are above the bits it reads, and where the partition wraps (from -1 to 0, say)
        with a carry still deferred, the resolve's carry stops in them instead of
        reaching the partition above. So such a partition needs ``sat_width + 4`` bits.
    addend_terms : int
        ``addend`` is that many words, ORed: the engine's lane modes each give one, 0
        outside its mode. The OR is in the same LUT as the adder's XOR of each bit (with
        ``clear_ahead``, whose adder input is the register alone): a separate OR was a LUT
        on every bit.
    staged_check : bool
        Check a step's sum for overflow one step later: the register keeps the top three
        bits of each partition of the previous step's resolved sum (``state.pending``),
        and the sticky bits take them in at the next step. The check's path is then the
        deferred carries' resolve into a register, and the overflow test after it starts
        from a register (on ECP5 the two together were a 35-CCU2C chain and four LUT
        levels, an Fmax path). A partition whose check bits lie above two or more cuts
        (a long resolve) is checked a step later still: the register keeps, per segment
        between its cuts, whether the segment is all ones (or all ones but its lowest
        bit), the carries and the check bits as they are (``state.lookahead``), and at
        the next step the carry into the check bits follows from them in a few LUTs
        (``state.late``). A read-out sees all steps with :meth:`saturation`, or folds
        them into the sticky bits with :meth:`fold_pending`.
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
        The register: ``raw`` (the sum, with ``carry[j]`` not yet added at ``cuts[j]``),
        and per chunk whether its partition ``overflowed`` at an *earlier* step of this
        accumulation than the one ``raw`` holds, and whether towards the ``negative`` bound.
        With ``staged_check``, ``pending`` holds the check bits of the step before
        ``raw``'s (:attr:`check_positions` of its resolved sum), and ``overflowed`` and
        ``negative`` cover the steps before that one; for a partition checked late
        (:attr:`late_checks`), ``lookahead`` holds what its check needs of the step before
        ``raw``'s, ``late`` its check bits of the step before that, and the sticky bits
        cover the steps before those.
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

    def __init__(self, *, chunk_bits: int, chunks: int, partitionings, chain_parts: int = 1,
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
                if self.read_width(sat) > count * chunk_bits:
                    raise ValueError(f"partitioning {k}: a {count * chunk_bits}-bit partition "
                                     f"cannot saturate at {sat} bits (needs "
                                     f"{self.read_width(sat)} bits)")
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
        most_parts = max(chunks, 2)
        if (isinstance(chain_parts, bool) or not isinstance(chain_parts, int)
                or not 1 <= chain_parts <= most_parts):
            raise ValueError(f"chain_parts must be an integer from 1 to {most_parts}, "
                             f"not {chain_parts!r}")
        # at the chunk borders nearest equal parts, or in the middle of a single chunk
        self._cuts = (tuple(i * chunks // chain_parts * chunk_bits for i in range(1, chain_parts))
                      if chunks > 1 else (chunk_bits // 2,) * (chain_parts - 1))
        width = chunks * chunk_bits
        # A partition that spans a cut and is not the topmost keeps its top two bits 0
        dead = {}
        for k, partitioning in enumerate(parts):
            for first, count, sat in partitioning[:-1]:
                lo, top = first * chunk_bits, (first + count) * chunk_bits
                spanned = [cut for cut in self._cuts if lo < cut < top]
                if spanned and sat + 4 > top - lo:
                    raise ValueError(
                        f"partitioning {k}: the partition at chunk {first} spans the split "
                        f"chain's carry at bit {spanned[0]} and is not the topmost, so it "
                        f"needs {sat + 4} bits (two above the bits its check reads, which "
                        f"stop the resolve's carry), not {top - lo}")
                for bit in (top - 2, top - 1) if spanned else ():
                    dead.setdefault(bit, set()).add(k)
        self._dead = {bit: tuple(sorted(ks)) for bit, ks in sorted(dead.items())}
        self._staged_check = bool(staged_check)
        # The check of each partition reads its top three bits (from ``sat - 1`` up) of the
        # resolved sum; what they need resolved is the carries at the cuts inside the
        # partition below them. Two or more of those make a long resolve: checked late.
        late, short = {}, {}
        for partitioning in parts:
            for first, count, sat in partitioning:
                lo = first * chunk_bits
                check = lo + sat - 1
                cuts = tuple(cut for cut in self._cuts if lo < cut < check + 3)
                if self._staged_check and len(cuts) > 1:
                    late[lo, sat] = cuts
                else:
                    for i in range(3):
                        short.setdefault(check + i, set()).update(c for c in cuts if c <= check + i)
        self._late_checks = tuple((lo, sat, cuts) for (lo, sat), cuts in sorted(late.items()))
        # the check bits of the other partitions (by position, shared by partitionings), and
        # the cuts their resolve adds: any partitioning's are right for every partitioning,
        # since the carries of the partitions below a bit never leave them (dead bits)
        self._check_cuts = {pos: tuple(sorted(cuts)) for pos, cuts in sorted(short.items())}
        self._check_positions = tuple(self._check_cuts)
        lookahead = {}
        for i, (lo, sat, cuts) in enumerate(self._late_checks):
            check = lo + sat - 1
            below = [cut for cut in cuts if cut < check]
            lookahead[f"check_{i}"] = data.StructLayout({
                # per segment from each cut below the check bits up to the next (or them)
                "ones": len(below),
                # all ones but the lowest bit: a segment above another receives two carries
                "ones_but_lsb": max(len(below) - 1, 0),
                "carry": len(cuts),
                "top": 3,
            })
        self._state_layout = data.StructLayout({
            "raw": width,
            "carry": max(1, len(self._cuts)),
            "overflowed": chunks,
            "negative": chunks,
            **({"pending": len(self._check_positions)} if self._staged_check else {}),
            **({"lookahead": data.StructLayout(lookahead),
                "late": data.ArrayLayout(3, len(self._late_checks))} if lookahead else {}),
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

    @staticmethod
    def read_width(sat_width: int) -> int:
        """The low bits of a partition that saturates at ``sat_width`` bits which a step's
        sum and its overflow check occupy (the check reads the top three, from
        ``sat_width - 1`` up): an addend needs sign-extending only that far, since the bits
        above are never read."""
        return sat_width + 2

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
    def cuts(self):
        """Bit positions of the deferred carries (``state.carry[j]`` is added at
        ``cuts[j]``): empty with one chain part."""
        return self._cuts

    @property
    def dead_bits(self):
        """``{bit: partitioning indices}``: the bits those partitionings keep 0."""
        return dict(self._dead)

    @property
    def late_checks(self):
        """``(lo, sat_width, cuts)`` of each partition checked a step late (with
        ``staged_check``), in the order of ``state.lookahead`` and ``state.late``."""
        return self._late_checks

    @staticmethod
    def _add_carries(raw, carries):
        """``raw + Σ carry · 2**offset`` over ``(offset, carry)`` pairs at distinct offsets,
        as wide as ``raw``: one sum, the carries as one sparse operand, so one carry
        chain."""
        offsets = dict(carries)
        return (raw + Cat(*[offsets.get(b, Const(0, 1)) for b in range(max(offsets) + 1)])
                )[:len(raw)]

    def resolve(self, state, *, propagated: bool = False):
        """The sum held in ``state`` (a view of :attr:`state_layout`) with its deferred
        carries added: an expression as wide as the register, one carry chain from the
        lowest cut up. ``propagated``: ``state`` is :meth:`propagate`'s, so the chain
        starts at the middle cut."""
        if not self._cuts:
            return state.raw
        if not propagated:
            base = self._cuts[0]
            return Cat(state.raw[:base], self._add_carries(
                state.raw[base:], [(cut - base, state.carry[j])
                                   for j, cut in enumerate(self._cuts)]))
        h = len(self._cuts) // 2
        mid = self._cuts[h]
        # carry[0] (the lower half's carry out) and carry[h] both add at the middle cut
        at_mid = [(0, state.carry[0])] if h == 0 else [
            (0, state.carry[0] ^ state.carry[h]), (1, state.carry[0] & state.carry[h])]
        return Cat(state.raw[:mid], self._add_carries(
            state.raw[mid:], at_mid + [(cut - mid, state.carry[j])
                                       for j, cut in enumerate(self._cuts) if j > h]))

    def propagate(self, m, state):
        """A read-out's first step with a captured ``state``: a :attr:`state_layout` signal
        with the same sum, its carries below the middle cut (``cuts[len(cuts) // 2]``)
        added (one chain from the lowest cut to the middle one), and their carry out in
        ``carry[0]``, which now adds at the middle cut, so that :meth:`resolve` with
        ``propagated`` is one chain from the middle cut up (the resolve in two halves,
        with a register between them). The checks are as they were: :meth:`fold_pending`
        folds them. (Moving the late checks on a step here, so that the fold after it
        would be as short as ``pending``'s, cost 14 LUTs on xc7 for the sticky bits'
        multiplexers by partitioning.)"""
        out = Signal(self._state_layout, name="propagated")
        m.d.comb += out.eq(state)
        h = len(self._cuts) // 2
        if h:
            low, mid = self._cuts[0], self._cuts[h]
            lower = Signal(mid - low + 1, name="propagated_lower")
            m.d.comb += [
                lower.eq(state.raw[low:mid] + Cat(*[
                    state.carry[self._cuts.index(b + low)] if b + low in self._cuts[:h]
                    else Const(0, 1) for b in range(mid - low)])),
                out.raw[low:mid].eq(lower[:-1]),
                out.carry[:h].eq(lower[-1]),      # (zero-extended)
            ]
        return out

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

    def _late_index(self, first_chunk, sat_width):
        """The index in :attr:`late_checks` of a partition, or ``None``."""
        lo = first_chunk * self._chunk_bits
        for i, (late_lo, late_sat, _) in enumerate(self._late_checks):
            if (late_lo, late_sat) == (lo, sat_width):
                return i
        return None

    @staticmethod
    def _fold(earlier, negative, top):
        """The sticky pair ``(earlier, negative)`` with a later step's check bits ``top``
        taken in: the first overflow's side stays."""
        overflow = (top != 0) & (top != 0b111)
        return earlier | overflow, Mux(earlier, negative, top[2])

    def _lookahead(self, raw, carry, i):
        """What late check ``i`` keeps of a sum (``raw``, ``carry``): a
        ``lookahead.check_{i}`` value."""
        lo, sat, cuts = self._late_checks[i]
        check = lo + sat - 1
        below = [cut for cut in cuts if cut < check]
        ends = below[1:] + [check]
        segs = [raw[cut:end] for cut, end in zip(below, ends)]
        # whether the bits above a segment's lowest are all ones, as the carry out of
        # their increment: a carry chain with no LUTs on xc7 (an AND of 33 bits was 7)
        upper_ones = [(seg[1:] + 1)[-1] if len(seg) > 1 else Const(1, 1) for seg in segs]
        return Cat(Cat(*[ones & seg[0] for ones, seg in zip(upper_ones, segs)]),
                   Cat(*[ones & ~seg[0] for ones, seg in zip(upper_ones[1:], segs[1:])]),
                   Cat(*[carry[self._cuts.index(cut)] for cut in cuts]),
                   raw[check:check + 3])

    def _late_top(self, look, i):
        """The resolved check bits of late check ``i`` from its ``lookahead`` value: the
        carry into them runs through the segments (each receives its own deferred carry
        and the one from below; it passes one on if it was all ones and received one, or
        all ones but its lowest bit and received two), and the carries at the check bits
        themselves add there."""
        lo, sat, cuts = self._late_checks[i]
        check = lo + sat - 1
        n_below = sum(1 for cut in cuts if cut < check)
        into = Const(0, 1)
        for j in range(n_below):
            own = look.carry[j]
            passes = look.ones[j] & (own | into)
            if j:
                passes |= look.ones_but_lsb[j - 1] & own & into
            into = passes
        top = look.top + into
        for j, cut in enumerate(cuts):
            if cut >= check:
                top = top + (look.carry[j] << (cut - check))
        return top[:3]

    def _earlier(self, state, *, first_chunk: int, sat_width: int, lookahead: bool = True):
        """``(overflowed, negative)`` of a partition of ``state`` at the steps before the
        one ``raw`` holds: the sticky bits and, with ``staged_check``, ``pending`` (or for
        a late check ``late``, and with ``lookahead`` the step in ``lookahead`` too)."""
        earlier, negative = state.overflowed[first_chunk], state.negative[first_chunk]
        if not self._staged_check:
            return earlier, negative
        i = self._late_index(first_chunk, sat_width)
        if i is None:
            lo = first_chunk * self._chunk_bits + sat_width - 1
            top = Cat(*[state.pending[self._check_positions.index(lo + j)] for j in range(3)])
            return self._fold(earlier, negative, top)
        earlier, negative = self._fold(earlier, negative, state.late[i])
        if lookahead:
            earlier, negative = self._fold(earlier, negative,
                                           self._late_top(state.lookahead[f"check_{i}"], i))
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
                                                                sat_width=sat, lookahead=False)
                        for c in range(first, first + count):
                            m.d.comb += [overflowed_so_far[c].eq(saturated),
                                         negative_so_far[c].eq(negative)]

        # ---- the step: base + addend on one carry chain (or one per chain part) ----------
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
        addend = Signal(width, name="terms_or")
        m.d.comb += addend.eq(self.addend if self._addend_terms == 1 else functools.reduce(
            operator.or_, [self.addend[t] for t in range(self._addend_terms)]))
        if self._dead:
            # the dead bits of the step's partitioning: 0 on both sides of the adder, so
            # the lower one passes no carry on and the upper one stays 0
            dead = {}
            for bit, ks in self._dead.items():
                flag = Signal(name=f"dead_{bit}")
                m.d.comb += flag.eq(functools.reduce(operator.or_,
                                                     [self.partitioning == k for k in ks]))
                dead[bit] = flag
            base = Cat(*[base[b] & ~dead[b] if b in dead else base[b] for b in range(width)])
            addend = Cat(*[addend[b] & ~dead[b] if b in dead else addend[b]
                           for b in range(width)])

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
        if not self._cuts:
            m.d.comb += spaced_sum.eq(sum_without_carry_out(spaced_base, spaced_addend))
            carry_out = Const(0, 1)
        else:
            # Each part but the last ends with the spacer of its cut at a chunk border, so
            # its carry out is zero where a partition starts. A registered carry enters the
            # part above as an extra 1 + 1 LSB, so that it rides the same chain.
            # (a cut inside a single chunk has no spacer there: equal widths)
            bounds = [0] + [cut + cut // cb for cut in self._cuts] + [len(spaced_base)]
            pieces, carry_outs = [], []
            for j in range(len(bounds) - 1):
                lo, hi = bounds[j], bounds[j + 1]
                last = hi == len(spaced_base)
                # (the register's side of a part that ends at a spacer is one bit narrower)
                part_base = spaced_base[lo:hi if last else hi - (n > 1)]
                part_addend = spaced_addend[lo:hi]
                if j:
                    carry_in = Signal(name=f"carry_in_{j}")
                    m.d.comb += carry_in.eq(state.carry[j - 1] & ~clear_now)
                    part_base, part_addend = Cat(carry_in, part_base), Cat(carry_in, part_addend)
                part = Signal(len(part_addend) + 1, name=f"part_{j}")
                if last:
                    m.d.comb += part[:-1].eq(sum_without_carry_out(part_base, part_addend))
                else:
                    m.d.comb += part.eq(part_base + part_addend)
                    carry_outs.append(part[-1])
                pieces.append(part[1 if j else 0:-1])
            m.d.comb += spaced_sum.eq(Cat(*pieces))
            carry_out = Cat(*carry_outs)
        sums = [spaced_sum[c * (cb + 1):c * (cb + 1) + cb] for c in range(n)]

        m.d.comb += [
            self.next_state.raw.eq(Cat(*sums)),
            self.next_state.carry.eq(carry_out),
            self.next_state.overflowed.eq(Mux(clear_now, 0, overflowed_so_far)),
            self.next_state.negative.eq(Mux(clear_now, 0, negative_so_far)),
        ]
        if self._staged_check:
            # each check bit resolved from the cuts below it in its partition (a chain
            # per set of cuts, up to the highest bit that needs them)
            chains = {}
            for pos, cuts in self._check_cuts.items():
                if cuts:
                    chains[cuts] = max(chains.get(cuts, pos), pos)
            resolved_at = {}
            for cuts, top in chains.items():
                chain = Signal(top + 1 - cuts[0], name=f"check_resolve_{cuts[0]}")
                m.d.comb += chain.eq(self._add_carries(
                    state.raw[cuts[0]:top + 1],
                    [(cut - cuts[0], state.carry[self._cuts.index(cut)]) for cut in cuts]))
                resolved_at[cuts] = chain
            m.d.comb += self.next_state.pending.eq(Mux(clear_now, 0, Cat(*[
                resolved_at[cuts][pos - cuts[0]] if cuts else state.raw[pos]
                for pos, cuts in self._check_cuts.items()])))
            for i in range(len(self._late_checks)):
                m.d.comb += [
                    self.next_state.lookahead[f"check_{i}"].eq(
                        Mux(clear_now, 0, self._lookahead(state.raw, state.carry, i))),
                    self.next_state.late[i].eq(
                        Mux(clear_now, 0, self._late_top(state.lookahead[f"check_{i}"], i))),
                ]
        with m.If(self.en):
            m.d.sync += [state.eq(self.next_state), step_partitioning.eq(self.partitioning)]
        if self._clear_ahead:
            with m.If(self.clear[0]):
                m.d.sync += state.eq(0)
        return m
