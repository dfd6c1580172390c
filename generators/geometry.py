"""Lane and accumulator geometry of the SIMD MAC engine (pure Python, no Amaranth).

The RTL, the golden-model tests and the driver's NumPy model all take the engine's
accumulator layout (and its latency and output FIFO depth) from here, so that they cannot
disagree.

Lane modes
    A ``word_bits`` operand word carries ``word_bits // w`` lanes of ``w`` bits, for each
    lane width ``w`` of the configured formats. Operands A and B of one operation must
    have formats of the same width (the same lane mode); they may differ otherwise
    (e.g. fp4_e2m1 × posit4_1).

Accumulator per mode
    One accumulator geometry per lane mode covers the exact products of every pair of
    formats of that width: its LSB is the smallest product LSB of the mode and its span
    reaches the largest product, plus ``guard_bits`` carry bits and a sign. (A single
    format's exact quire is contained in it: for ⟨8,0⟩ alone with 7 guard bits it is the
    standard 32-bit quire.) In SIMD mode each lane has such an accumulator; in dot-product
    mode all lanes add into one accumulator that has ``ceil(log2(lanes))`` more guard bits,
    because each step adds ``lanes`` products.

Physical accumulator register
    ``chunks`` × ``chunk_bits`` bits, ``chunks`` = the largest lane count. Lane ``l`` of a
    mode with ``L`` lanes owns chunks ``[l·chunks/L, (l+1)·chunks/L)``; the carry chain is
    broken at the borders of those partitions. Each partition is at least two bits wider
    than its saturating width, so the sum of an in-range accumulator and one step's addend
    never wraps before the saturation check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from generators.formats import AccumulatorGeometry, get_format

__all__ = ["ModeGeometry", "EngineGeometry", "engine_geometry", "engine_latency",
           "engine_output_fifo_depth"]


@dataclass(frozen=True)
class ModeGeometry:
    """Accumulator geometry of one lane mode.

    Attributes
    ----------
    lane_bits : int
    lanes : int
    formats : tuple of str
        The configured formats of this width.
    lsb_exponent : int
        Weight of the accumulator LSB is ``2**lsb_exponent``.
    span_bits : int
        Bit positions from the LSB to the most significant bit of the largest product.
    simd : AccumulatorGeometry
        One lane's accumulator in SIMD mode.
    dot : AccumulatorGeometry
        The single accumulator in dot-product mode.
    """

    lane_bits: int
    lanes: int
    formats: tuple
    lsb_exponent: int
    span_bits: int
    simd: AccumulatorGeometry
    dot: AccumulatorGeometry

    def geometry(self, dot: bool) -> AccumulatorGeometry:
        return self.dot if dot else self.simd


@dataclass(frozen=True)
class EngineGeometry:
    """Lane modes and the shared accumulator register of one engine."""

    word_bits: int
    guard_bits: int
    modes: tuple            # of ModeGeometry, by increasing lane width
    chunks: int
    chunk_bits: int

    @property
    def register_bits(self) -> int:
        return self.chunks * self.chunk_bits

    @property
    def lsb_min(self) -> int:
        """The smallest accumulator LSB exponent over all modes (the read-out alignment)."""
        return min(m.lsb_exponent for m in self.modes)

    @property
    def readout_bits(self) -> int:
        """Width of the read-out's value: the widest accumulator. Each is read out at its
        own LSB, :attr:`lsb_min` plus its mode's offset (:attr:`max_lsb_offset` at most)."""
        return max(max(m.dot.width, m.simd.width) for m in self.modes)

    @property
    def max_lsb_offset(self) -> int:
        """The largest of the modes' LSB exponents above :attr:`lsb_min`."""
        return max(m.lsb_exponent for m in self.modes) - self.lsb_min

    def mode(self, lane_bits: int) -> ModeGeometry:
        for m in self.modes:
            if m.lane_bits == lane_bits:
                return m
        raise ValueError(f"this engine has no {lane_bits}-bit lane mode; it has "
                         + ", ".join(f"{m.lane_bits}-bit" for m in self.modes))

    def mode_of(self, fmt) -> ModeGeometry:
        return self.mode(get_format(fmt).bits)

    def partition(self, lane_bits: int, lane: int, dot: bool = False) -> tuple[int, int]:
        """``(first_chunk, n_chunks)`` of a lane's accumulator partition."""
        m = self.mode(lane_bits)
        if dot:
            return 0, self.chunks
        per_lane = self.chunks // m.lanes
        return lane * per_lane, per_lane


def _mode_geometry(lane_bits: int, word_bits: int, formats: tuple, guard_bits: int) -> ModeGeometry:
    fmts = [get_format(f) for f in formats]
    lsb = 2 * min(f.min_exponent for f in fmts)
    top = max(math.floor(math.log2(fa.max_value * fb.max_value)) for fa in fmts for fb in fmts)
    span = top - lsb
    lanes = word_bits // lane_bits
    extra = math.ceil(math.log2(lanes)) if lanes > 1 else 0
    simd = AccumulatorGeometry(lsb_exponent=lsb, span_bits=span, guard_bits=guard_bits,
                               width=span + guard_bits + 1)
    dot = AccumulatorGeometry(lsb_exponent=lsb, span_bits=span, guard_bits=guard_bits + extra,
                              width=span + guard_bits + extra + 1)
    return ModeGeometry(lane_bits, lanes, tuple(formats), lsb, span, simd, dot)


def engine_geometry(*, word_bits: int, formats: Iterable[str], guard_bits: int) -> EngineGeometry:
    """Compute the lane modes and accumulator register for a set of formats."""
    formats = tuple(formats)
    if not formats:
        raise ValueError("formats must not be empty")
    if guard_bits < 0:
        raise ValueError(f"guard_bits must be at least 0, not {guard_bits}")
    by_width: dict[int, list[str]] = {}
    for name in formats:
        fmt = get_format(name)
        if word_bits % fmt.bits:
            raise ValueError(f"{fmt.name} ({fmt.bits} bits) does not tile a {word_bits}-bit word")
        by_width.setdefault(fmt.bits, []).append(fmt.name)
    modes = tuple(_mode_geometry(w, word_bits, tuple(by_width[w]), guard_bits)
                  for w in sorted(by_width))
    chunks = max(m.lanes for m in modes)
    chunk_bits = 0
    for m in modes:
        per_lane = chunks // m.lanes
        chunk_bits = max(chunk_bits, -(-(m.simd.width + 2) // per_lane),
                         -(-(m.dot.width + 2) // chunks))
    return EngineGeometry(word_bits, guard_bits, modes, chunks, chunk_bits)


#: Stages of the engine's ``PIPELINE_REGISTERS`` whose register is not on the read-out's
#: path: stage 23 ("check") delays the accumulator's overflow check, beside the sum, and
#: stage 27 ("carries") cuts its carry chain further and delays some checks a step more.
STAGES_BESIDE_READOUT = (23, 27)


def engine_latency(pipeline_stages: int) -> int:
    """Cycles from an operation's acceptance by a MacEngine to its result beat at ``o``.

    Every register of the engine's ``PIPELINE_REGISTERS`` but those of
    :data:`STAGES_BESIDE_READOUT` is on the read-out's path, and the output FIFO
    (SyncFIFOBuffered) adds two cycles.
    """
    return pipeline_stages + 2 - sum(1 for s in STAGES_BESIDE_READOUT if s <= pipeline_stages)


def engine_output_fifo_depth(pipeline_stages: int, max_lanes: int) -> int:
    """Entries of a MacEngine's output FIFO: room for the beats of one read-out per cycle
    in flight, plus a whole read-out, so that dot products of any length run at one
    operation per cycle."""
    return 1 << (engine_latency(pipeline_stages) + max_lanes).bit_length()
