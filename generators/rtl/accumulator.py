"""The partitioned, saturating exact accumulator."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PartitionedAccumulator"]


class PartitionedAccumulator(wiring.Component):
    """A ``chunks × chunk_bits`` two's-complement accumulator register, split into
    independent saturating partitions at run time.

    Each *partitioning* is a tuple of partitions ``(first_chunk, n_chunks, sat_width)``;
    the carry chain is broken at every partition border, and after each addition a
    partition whose value no longer fits in ``sat_width`` signed bits is clamped to the
    nearest of ``-2**(sat_width-1)`` and ``2**(sat_width-1) - 1`` and its sticky
    ``saturated`` bit is set. A partition must be at least ``sat_width + 2`` bits wide, and
    each step's addend must fit in ``sat_width + 1`` signed bits (the engine's geometry
    guarantees both): the sum of an in-range value and such an addend then fits in
    ``sat_width + 2`` bits, and the check only looks at its top three.

    Parameters
    ----------
    chunk_bits, chunks : int
    partitionings : sequence of sequences of (int, int, int)

    Members
    -------
    partitioning : In(range(len(partitionings)))
        Which partitioning this step uses.
    addend : In(chunks · chunk_bits)
        Each partition's addend, sign-extended over its partition.
    clear : In(1)
        Add to zero instead of the register (and clear the sticky bits): the first step
        of a new accumulation.
    en : In(1)
        Perform the step at the next clock edge.
    value : Out(chunks · chunk_bits)
        The accumulated value (the register's raw sum, clamped where a partition
        overflowed at the last step).
    saturated : Out(chunks)
        Sticky saturation bit of partition ``p`` at index ``p``.
    next_value, next_saturated : Out
        What ``value`` and ``saturated`` become at the next edge if ``en`` is set (lets a
        read-out capture the final sum in the same cycle as the last step).
    next_raw, next_overflow : Out
        The same step's sum before the clamp, and per chunk whether its partition
        overflowed: ``next_value`` is ``next_raw`` with each overflowed partition replaced
        by its clamp value, whose sign is bit ``sat_width + 1`` of the partition in
        ``next_raw``. A read-out that captures these instead of ``next_value`` keeps the
        clamp out of the accumulator's timing path.
    """

    def __init__(self, *, chunk_bits: int, chunks: int, partitionings):
        if chunk_bits < 2:
            raise ValueError(f"chunk_bits must be at least 2, not {chunk_bits}")
        if chunks < 1:
            raise ValueError(f"chunks must be at least 1, not {chunks}")
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
        self._chunk_bits = chunk_bits
        self._chunks = chunks
        self._partitionings = tuple(parts)
        width = chunks * chunk_bits
        super().__init__({
            "partitioning": In(range(len(parts))),
            "addend": In(width),
            "clear": In(1),
            "en": In(1),
            "value": Out(width),
            "saturated": Out(chunks),
            "next_value": Out(width),
            "next_saturated": Out(chunks),
            "next_raw": Out(width),
            "next_overflow": Out(chunks),
        })

    @property
    def partitionings(self):
        return self._partitionings

    def elaborate(self, platform):
        m = Module()
        cb, n = self._chunk_bits, self._chunks
        width = n * cb

        # The register holds the raw sum of the last step; a partition that overflowed
        # is clamped on the way out (``value``) and on the way back into the adder, from
        # a registered overflow bit and clamp pattern. This keeps the saturation check
        # and the clamp multiplexer out of the adder's loop: base → carry chain → register.
        raw_reg = Signal(width)
        ovf_reg = Signal(n)          # per chunk: its partition overflowed at the last step
        clamp_reg = Signal(width)    # the clamp value of each bit's partition
        for c in range(n):
            lo, hi = c * cb, (c + 1) * cb
            m.d.comb += self.value[lo:hi].eq(Mux(ovf_reg[c], clamp_reg[lo:hi], raw_reg[lo:hi]))

        base = Signal(width)
        m.d.comb += base.eq(Mux(self.clear, 0, self.value))

        # One carry chain over all chunks, with a spacer bit between neighbouring chunks:
        # the spacer is 1 + 0 (it passes the carry on) inside a partition and 0 + 0 (it
        # kills the carry) where a partition starts. Breaking the carry with a multiplexer
        # between per-chunk adders instead takes the carry out of the FPGA's carry chain
        # at every chunk border (on ECP5 that made the loop 2.5× slower).
        starts = Signal(n)
        with m.Switch(self.partitioning):
            for k, partitioning in enumerate(self._partitionings):
                with m.Case(k):
                    mask = sum(1 << first for first, _, _ in partitioning)
                    m.d.comb += starts.eq(mask)
        spaced_base, spaced_addend = [], []
        for c in range(n):
            if c:
                spaced_base.append(~starts[c])
                spaced_addend.append(Const(0, 1))
            spaced_base.append(base[c * cb:(c + 1) * cb])
            spaced_addend.append(self.addend[c * cb:(c + 1) * cb])
        spaced_sum = Signal(n * (cb + 1) - 1)
        m.d.comb += spaced_sum.eq(Cat(*spaced_base) + Cat(*spaced_addend))
        raw = Signal(width)
        m.d.comb += raw.eq(Cat(*[spaced_sum[c * (cb + 1):c * (cb + 1) + cb] for c in range(n)]))

        # Saturation check. An in-range value plus an addend of at most sat_width + 1
        # bits fits in sat_width + 2 bits, so the partition overflowed exactly when its
        # bits sat_width - 1, sat_width and sat_width + 1 differ, and bit sat_width + 1 is
        # the sum's sign. The clamp value of a bit is that sign XOR "below the saturating
        # MSB", a constant of the partitioning.
        chunk_ovf = Signal(n)
        clamp = Signal(width)
        overflow = Signal(n)
        with m.Switch(self.partitioning):
            for k, partitioning in enumerate(self._partitionings):
                with m.Case(k):
                    for p, (first, count, sat) in enumerate(partitioning):
                        lo = first * cb
                        top = raw[lo + sat - 1:lo + sat + 2]
                        ovf = (top != 0) & (top != 0b111)
                        neg = top[2]
                        m.d.comb += overflow[p].eq(ovf)
                        for c in range(first, first + count):
                            m.d.comb += chunk_ovf[c].eq(ovf)
                        below = (1 << (sat - 1)) - 1
                        bits = count * cb
                        m.d.comb += clamp[lo:lo + bits].eq(neg.replicate(bits) ^ below)

        for c in range(n):
            lo, hi = c * cb, (c + 1) * cb
            m.d.comb += self.next_value[lo:hi].eq(Mux(chunk_ovf[c], clamp[lo:hi], raw[lo:hi]))
        m.d.comb += [
            self.next_saturated.eq(Mux(self.clear, 0, self.saturated) | overflow),
            self.next_raw.eq(raw),
            self.next_overflow.eq(chunk_ovf),
        ]
        with m.If(self.en):
            m.d.sync += [
                raw_reg.eq(raw),
                ovf_reg.eq(chunk_ovf),
                clamp_reg.eq(clamp),
                self.saturated.eq(self.next_saturated),
            ]
        return m
