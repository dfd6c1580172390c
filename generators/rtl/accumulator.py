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
    ``saturated`` bit is set. A partition must be at least ``sat_width + 2`` bits wide, so
    that the sum of an in-range value and an addend of at most ``sat_width + 1`` bits
    cannot wrap before the check.

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
        The register.
    saturated : Out(chunks)
        Sticky saturation bit of partition ``p`` at index ``p``.
    next_value, next_saturated : Out
        What ``value`` and ``saturated`` become at the next edge if ``en`` is set (lets a
        read-out capture the final sum in the same cycle as the last step).
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
        })

    @property
    def partitionings(self):
        return self._partitionings

    def elaborate(self, platform):
        m = Module()
        cb, n = self._chunk_bits, self._chunks

        base = Signal.like(self.value)
        m.d.comb += base.eq(Mux(self.clear, 0, self.value))

        # Chunk adders with the carry broken where a partition starts.
        starts = Signal(n)
        with m.Switch(self.partitioning):
            for k, partitioning in enumerate(self._partitionings):
                with m.Case(k):
                    mask = sum(1 << first for first, _, _ in partitioning)
                    m.d.comb += starts.eq(mask)
        carry = Const(0, 1)
        raw_chunks = []
        for c in range(n):
            s = Signal(cb + 1, name=f"chunk_sum{c}")
            cin = Mux(starts[c], 0, carry)
            m.d.comb += s.eq(base[c * cb:(c + 1) * cb] + self.addend[c * cb:(c + 1) * cb] + cin)
            raw_chunks.append(s[:cb])
            carry = s[cb]
        raw = Signal.like(self.value)
        m.d.comb += raw.eq(Cat(*raw_chunks))

        # Saturation check and clamp. The overflow test and the sign are per partition,
        # so they are selected per *chunk* (partitions are whole chunks); the clamp value
        # of a bit is its partition's sign XOR "below the saturating MSB", a constant of
        # the partitioning. Every result bit is then one small function of
        # (raw bit, chunk overflow, chunk sign, partitioning) instead of a multiplexer
        # over every partitioning's clamped value.
        chunk_ovf = Signal(n)
        chunk_neg = Signal(n)
        below = Signal.like(self.value)
        overflow = Signal(n)
        with m.Switch(self.partitioning):
            for k, partitioning in enumerate(self._partitionings):
                with m.Case(k):
                    mask = 0
                    for p, (first, count, sat) in enumerate(partitioning):
                        bits = count * cb
                        part = raw[first * cb:first * cb + bits]
                        top = part[sat - 1:]
                        ovf = ~((top == 0) | (top == (1 << (bits - sat + 1)) - 1))
                        m.d.comb += overflow[p].eq(ovf)
                        for c in range(first, first + count):
                            m.d.comb += [chunk_ovf[c].eq(ovf), chunk_neg[c].eq(part[bits - 1])]
                        mask |= ((1 << (sat - 1)) - 1) << (first * cb)
                    m.d.comb += below.eq(mask)
        result = Signal.like(self.value)
        for c in range(n):
            lo, hi = c * cb, (c + 1) * cb
            m.d.comb += result[lo:hi].eq(Mux(chunk_ovf[c], below[lo:hi] ^ chunk_neg[c].replicate(cb),
                                             raw[lo:hi]))

        m.d.comb += [
            self.next_value.eq(result),
            self.next_saturated.eq(Mux(self.clear, 0, self.saturated) | overflow),
        ]
        with m.If(self.en):
            m.d.sync += [
                self.value.eq(self.next_value),
                self.saturated.eq(self.next_saturated),
            ]
        return m
