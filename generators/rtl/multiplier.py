"""The reconfigurable (sub-word parallel) significand multiplier.

One partial-product array serves every lane mode: an unsigned multiplier whose partial
products are masked so that, with lanes of ``f``-bit significand fields, row ``j`` (bit
``a[j]``) only sees the bits of ``b`` in its own lane. The products of the lanes then land
side by side in the result without overlapping: lane ``l``'s product ``a_l · b_l``
occupies bits ``[2·f·l, 2·f·(l+1))``. Lanes are packed at the stride of their significand
field, not of their code, so the array is as wide as the widest mode's significands
(e.g. 14 bits for posit⟨16,1⟩, 2×posit⟨8,0⟩ and 4×FP4, not 16). With one lane this is an ordinary
``width``×``width`` multiplier; with narrower lanes the off-diagonal partial products are
zero. This is the RMMEC idea of XR-NPE: the modes share the AND array and the adder tree,
instead of separate multipliers behind a mux.
"""

from __future__ import annotations

from amaranth.lib import enum

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from generators.rtl.pipeline import pipeline_register

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
    """Unsigned multiplier of packed lanes, partitioned into lanes at run time.

    Parameters
    ----------
    width : int
        Operand word width (8, 16 or 32): mode ``w`` has ``width // w`` lanes.
    lane_bits : tuple of int
        The lane widths this instance supports (each a power of two from 4 to ``width``).
    field_bits : dict, optional
        Bits of each lane's significand field per lane width (at most the lane width;
        default: the lane width). Lanes are packed at a stride of their field width, so
        the array is only as wide as the widest mode needs: ``max(lanes · field)`` bits
        (14 rather than 16 for 1×13-, 2×7- and 4×2-bit significands).
    pipelined : bool
        Register the adder tree halfway (its partial sums, loaded when ``en`` is set):
        ``product`` then follows ``a``, ``b`` and ``mode`` one enabled cycle later.
    register_rows : bool
        Register the masked partial-product rows before the adder tree (loaded when
        ``en`` is set): one more enabled cycle. The masks depend on ``mode``, which in a
        parent is often one register fanned out to the whole array; this keeps that
        fan-out and the AND array out of the adder tree's cycle.

    Members
    -------
    a, b : In(array_bits)
        Packed significands; lane ``l`` of mode ``w`` holds its field in bits
        ``[f·l, f·(l+1))`` with ``f = field_bits[w]``.
    mode : In(LaneMode)
        Lane width of this operation.
    en : In(1)
        Only when ``pipelined`` or ``register_rows``: load the pipeline registers.
    product : Out(2·array_bits)
        Lane ``l``'s product in bits ``[2·f·l, 2·f·(l+1))``.
    """

    def __init__(self, *, width: int, lane_bits=None, field_bits=None, pipelined=False,
                 register_rows=False):
        if width not in (8, 16, 32):
            raise ValueError(f"width must be 8, 16 or 32, not {width}")
        lane_bits = tuple(sorted(set(lane_bits))) if lane_bits is not None else \
            tuple(w for w in (4, 8, 16, 32) if w <= width)
        for w in lane_bits:
            lane_mode(w)
            if w > width:
                raise ValueError(f"lane width {w} is wider than the {width}-bit word")
        field_bits = dict(field_bits or {})
        for w, f in field_bits.items():
            if w not in lane_bits:
                raise ValueError(f"field_bits names lane width {w}, which is not one of "
                                 f"{', '.join(map(str, lane_bits))}")
            if not isinstance(f, int) or not 1 <= f <= w:
                raise ValueError(f"field_bits[{w}] must be an integer from 1 to {w}, not {f!r}")
        self._fields = {w: field_bits.get(w, w) for w in lane_bits}
        self._width = width
        self._lane_bits = lane_bits
        self._array_bits = max((width // w) * f for w, f in self._fields.items())
        self._pipelined = bool(pipelined)
        self._register_rows = bool(register_rows)
        super().__init__({
            "a": In(self._array_bits),
            "b": In(self._array_bits),
            "mode": In(LaneMode),
            **({"en": In(1)} if self.latency else {}),
            "product": Out(2 * self._array_bits),
        })

    @property
    def width(self) -> int:
        return self._width

    @property
    def lane_bits(self) -> tuple:
        return self._lane_bits

    @property
    def latency(self) -> int:
        """Enabled cycles from ``a``, ``b`` and ``mode`` to ``product``."""
        return int(self._pipelined) + int(self._register_rows)

    @property
    def array_bits(self) -> int:
        """Width of ``a`` and ``b``."""
        return self._array_bits

    def field_bits(self, lane_bits: int) -> int:
        """Significand field width of the lanes of ``lane_bits``-bit mode."""
        return self._fields[lane_bits]

    def elaborate(self, platform):
        m = Module()
        n = self._array_bits

        # mask[j]: the bits of b that row j (bit a[j]) may see in the current mode: its
        # own lane's field, or nothing past the last lane.
        masks = []
        for j in range(n):
            mask = Signal(n, name=f"mask{j}")
            with m.Switch(self.mode):
                for w in self._lane_bits:
                    f, lanes = self._fields[w], self._width // w
                    lane = j // f
                    bits = ((1 << f) - 1) << (f * lane) if lane < lanes else 0
                    with m.Case(lane_mode(w)):
                        m.d.comb += mask.eq(bits)
            masks.append(mask)

        # Partial-product rows as (offset, value): row j is (a[j] ? b & mask[j] : 0) << j.
        rows = []
        for j in range(n):
            row = Signal(n, name=f"pp{j}")
            m.d.comb += row.eq(Mux(self.a[j], self.b & masks[j], 0))
            if self._register_rows:
                row = pipeline_register(m, row, name=f"pp{j}_reg", en=self.en)
            rows.append((j, row))

        # A balanced adder tree; each sum only spans the bits its two rows can reach, the
        # low bits of the lower row pass through without an adder.
        levels = max(len(rows) - 1, 0).bit_length()     # of the balanced tree
        register_after = (levels + 1) // 2 if self._pipelined else None
        level = 0
        while len(rows) > 1 or level == register_after:
            if level == register_after:
                rows = [(lo, pipeline_register(m, row, name=f"{row.name}_reg", en=self.en))
                        for lo, row in rows]
                register_after = None
                continue
            paired = []
            for i in range(0, len(rows) - 1, 2):
                (lo0, r0), (lo1, r1) = rows[i], rows[i + 1]
                d = lo1 - lo0
                if d >= len(r0):                # no overlap: no adder
                    top, low = r1, Cat(r0, Const(0, d - len(r0)))
                else:
                    top = Signal(max(len(r0) - d, len(r1)) + 1, name=f"sum{level}_{i}_hi")
                    m.d.comb += top.eq(r0[d:] + r1)
                    low = r0[:d]
                s = Signal(min(d + len(top), 2 * n - lo0), name=f"sum{level}_{i}")
                m.d.comb += s.eq(Cat(low, top))
                paired.append((lo0, s))
            if len(rows) % 2:
                paired.append(rows[-1])
            rows = paired
            level += 1
        lo, total = rows[0]
        m.d.comb += self.product.eq(total << lo)
        return m
