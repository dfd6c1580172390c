"""The reconfigurable (sub-word parallel) significand multiplier.

One partial-product array serves every lane mode: a ``width``×``width`` unsigned
multiplier whose partial products are masked so that, with lanes of ``w`` bits, row ``j``
(bit ``a[j]``) only sees the bits of ``b`` in its own lane. The products of the lanes then
land side by side in the ``2·width``-bit result without overlapping: lane ``l``'s product
``a_l · b_l`` occupies bits ``[2·w·l, 2·w·(l+1))``. With one lane this is an ordinary
``width``×``width`` multiplier; with narrower lanes the off-diagonal partial products are
zero. This is the RMMEC idea of XR-NPE: the modes share the AND array and the adder tree,
instead of separate multipliers behind a mux.
"""

from __future__ import annotations

from amaranth.lib import enum

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["LaneMode", "lane_mode", "PartitionedMultiplier"]


class LaneMode(enum.Enum, shape=2):
    """Lane width of an operand word: 4, 8, 16 or 32-bit lanes."""

    L4 = 0
    L8 = 1
    L16 = 2
    L32 = 3

    @property
    def lane_bits(self) -> int:
        return 4 << self.value


def lane_mode(lane_bits: int) -> LaneMode:
    """The :class:`LaneMode` for lanes of ``lane_bits`` bits."""
    for mode in LaneMode:
        if mode.lane_bits == lane_bits:
            return mode
    raise ValueError(f"lane_bits must be 4, 8, 16 or 32, not {lane_bits}")


class PartitionedMultiplier(wiring.Component):
    """Unsigned ``width``×``width`` multiplier, partitioned into lanes at run time.

    Parameters
    ----------
    width : int
        Operand word width (8, 16 or 32).
    lane_bits : tuple of int
        The lane widths this instance supports (each a power of two from 4 to ``width``).

    Members
    -------
    a, b : In(width)
        Operand words; lane ``l`` holds its significand in bits ``[w·l, w·(l+1))``.
    mode : In(LaneMode)
        Lane width of this operation.
    product : Out(2·width)
        Lane ``l``'s product in bits ``[2·w·l, 2·w·(l+1))``.
    """

    def __init__(self, *, width: int, lane_bits=None):
        if width not in (8, 16, 32):
            raise ValueError(f"width must be 8, 16 or 32, not {width}")
        lane_bits = tuple(sorted(set(lane_bits))) if lane_bits is not None else \
            tuple(w for w in (4, 8, 16, 32) if w <= width)
        for w in lane_bits:
            lane_mode(w)
            if w > width:
                raise ValueError(f"lane width {w} is wider than the {width}-bit word")
        self._width = width
        self._lane_bits = lane_bits
        super().__init__({
            "a": In(width),
            "b": In(width),
            "mode": In(LaneMode),
            "product": Out(2 * width),
        })

    @property
    def width(self) -> int:
        return self._width

    @property
    def lane_bits(self) -> tuple:
        return self._lane_bits

    def elaborate(self, platform):
        m = Module()
        width = self._width

        # mask[j]: the bits of b that row j may see, for the current lane width.
        masks = []
        for j in range(width):
            mask = Signal(width, name=f"mask{j}")
            with m.Switch(self.mode):
                for w in self._lane_bits:
                    lane = j // w
                    with m.Case(lane_mode(w)):
                        m.d.comb += mask.eq(Const(((1 << w) - 1) << (w * lane), width))
            masks.append(mask)

        rows = []
        for j in range(width):
            row = Signal(2 * width, name=f"pp{j}")
            m.d.comb += row.eq(Mux(self.a[j], self.b & masks[j], 0) << j)
            rows.append(row)

        # A balanced adder tree over the partial-product rows.
        while len(rows) > 1:
            paired = []
            for i in range(0, len(rows) - 1, 2):
                s = Signal(2 * width, name=f"sum{len(rows)}_{i}")
                m.d.comb += s.eq(rows[i] + rows[i + 1])
                paired.append(s)
            if len(rows) % 2:
                paired.append(rows[-1])
            rows = paired
        m.d.comb += self.product.eq(rows[0])
        return m
