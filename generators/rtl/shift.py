"""Shifters partitioned into lanes at run time, as the multiplier is."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PartitionedShift", "PartitionedShifter"]


class PartitionedShift:
    """The logic of a :class:`PartitionedShifter`, to build into any module.

    A parent that builds it into its own module (:meth:`build`) lets synthesis see through
    it when the hierarchy is kept: which input bits are copies of one another, say (the
    MAC engine's products are sign-extended; behind a module port the shifter cannot know,
    and multiplexes the copies as different bits). The parameters are those of
    :class:`PartitionedShifter`.
    """

    def __init__(self, *, width: int, amount_bits, partitionings):
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer, not {width!r}")
        parts = []
        for k, starts in enumerate(partitionings):
            starts = tuple(starts)
            if not starts or starts[0] != 0:
                raise ValueError(f"partitioning {k} must start a region at bit 0, not {starts}")
            if any(b <= a for a, b in zip(starts, starts[1:])) or starts[-1] >= width:
                raise ValueError(f"partitioning {k}: region starts must increase within the "
                                 f"{width} bits, not {starts}")
            parts.append(starts)
        if not parts:
            raise ValueError("partitionings must not be empty")
        per_part = ([amount_bits] * len(parts) if isinstance(amount_bits, int)
                    and not isinstance(amount_bits, bool) else list(amount_bits))
        if len(per_part) != len(parts) or any(
                isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in per_part):
            raise ValueError(f"amount_bits must be a positive integer or one per partitioning, "
                             f"not {amount_bits!r}")
        self.width = width
        self.partitionings = tuple(parts)
        self.partitioning_amount_bits = tuple(per_part)
        self.amount_bits = max(per_part)
        bounds = sorted({s for starts in parts for s in starts})
        self.slots = tuple(zip(bounds, bounds[1:] + [width]))

    def slot_of(self, bit: int) -> int:
        """The index of the slot that holds ``bit``."""
        return next(j for j, (lo, hi) in enumerate(self.slots) if lo <= bit < hi)

    def build(self, m, *, partitioning, value, amount):
        """The shifter's logic in ``m``; returns the shifted word. The arguments are as
        :class:`PartitionedShifter`'s members of the same names."""
        # Whether each slot border (a slot's first bit, but bit 0) starts a region now.
        starts = {lo: Signal(name=f"starts_{lo}") for lo, _ in self.slots[1:]}
        with m.Switch(partitioning):
            for k, part in enumerate(self.partitionings):
                with m.Case(k):
                    m.d.comb += [flag.eq(lo in part) for lo, flag in starts.items()]
        level = value
        for k in range(self.amount_bits):
            step = 1 << k
            # Borders at which this stage can move a bit across a region start: those of
            # the partitionings whose amounts have this bit.
            borders = {lo for part, bits in zip(self.partitionings, self.partitioning_amount_bits)
                       if bits > k for lo in part[1:]}
            bits = []
            for i in range(self.width):
                src = i - step
                if src < 0:
                    moved = Const(0, 1)
                else:
                    crossed = [flag for lo, flag in starts.items() if src < lo <= i and lo in borders]
                    moved = level[src]
                    if crossed:
                        moved = moved & ~Cat(*crossed).any()
                bits.append(Mux(amount[self.slot_of(i)][k], moved, level[i]))
            nxt = Signal(self.width, name=f"shift_level{k + 1}")
            m.d.comb += nxt.eq(Cat(*bits))
            level = nxt
        return level


class PartitionedShifter(wiring.Component):
    """Left shift of packed two's-complement regions, each by its own amount, with the
    regions chosen at run time.

    One logarithmic shifter serves every partitioning: the MAC engine's 16-bit lane shifts
    one product by up to 15 places, its 8-bit lanes two products and its 4-bit lanes four,
    each by up to 7, side by side in one word (as the shared multiplier computes their
    products in one array). A stage's multiplexer of bit ``i`` moves bit ``i - 2**k`` up
    unless that crosses the start of a region, where a zero enters instead.

    The word is cut into *slots* at every region start of every partitioning; each slot
    has its own shift amount, which the caller sets to the amount of the region the slot
    lies in. (So a bit's select does not depend on the partitioning, and the multiplexer
    of the amounts by partitioning is on a few bits, where the caller can register it.)

    Parameters
    ----------
    width : int
        Bits of the word.
    amount_bits : int or sequence of int
        Bits of the shift amounts (shifts of 0 to ``2**amount_bits - 1`` places); or one
        such width per partitioning, whose amounts' higher bits the caller keeps 0 (a
        stage no partitioning with a border there uses needs no zero at the border).
    partitionings : sequence of sequences of int
        For each partitioning, the bit positions where its regions start, the first 0.

    Members
    -------
    partitioning : In(range(len(partitionings)))
    value : In(width)
        Each region's value, sign-extended over its region.
    amount : In(ArrayLayout(max(amount_bits), len(slots)))
        Each slot's shift amount: that of the region the slot lies in.
    shifted : Out(width)
        Each region's value shifted left by its amount, zeros in at its bottom, the bits
        shifted past its top dropped (the caller makes the region wide enough for the
        shifted value, which then stays sign-extended over it).
    """

    def __init__(self, *, width: int, amount_bits, partitionings):
        self._shift = PartitionedShift(width=width, amount_bits=amount_bits,
                                       partitionings=partitionings)
        super().__init__({
            "partitioning": In(range(len(self._shift.partitionings))),
            "value": In(width),
            "amount": In(data.ArrayLayout(self._shift.amount_bits, len(self._shift.slots))),
            "shifted": Out(width),
        })

    @property
    def partitionings(self):
        return self._shift.partitionings

    @property
    def slots(self):
        """The slots as ``(first bit, end bit)``, from bit 0 up."""
        return self._shift.slots

    def slot_of(self, bit: int) -> int:
        """The index of the slot that holds ``bit``."""
        return self._shift.slot_of(bit)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.shifted.eq(self._shift.build(m, partitioning=self.partitioning,
                                                      value=self.value, amount=self.amount))
        return m
