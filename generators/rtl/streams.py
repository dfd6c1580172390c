"""Stream helpers of the co-processor: a register slice and a fork to consumers that each
take when they are ready.

Both follow ``amaranth.lib.stream``'s rules: a transmitter does not wait for ``ready``
before it asserts ``valid``, and here no ``ready`` depends on a ``valid``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["EagerFork", "SkidBuffer"]


class SkidBuffer(wiring.Component):
    """A two-entry stream register slice: full throughput, ``i.ready`` and ``o.valid``
    come from registers. ``flush`` empties it (``o.valid`` may then drop without a
    transfer).

    Parameters
    ----------
    layout : ShapeLike
        The payload.
    flush : bool
        Whether it has the ``flush`` input (without it, no constant-0 flush is left in the
        Verilog for the linter to see as overlapping cases).
    """

    def __init__(self, layout, *, flush: bool = True):
        if not isinstance(flush, bool):
            raise TypeError(f"flush must be a bool, not {flush!r}")
        members = {"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))}
        if flush:
            members["flush"] = In(1)
        super().__init__(members)
        self._layout = layout
        self._flush = flush

    def elaborate(self, platform):
        m = Module()
        skid_valid = Signal()
        held = Signal(self._layout)     # the skid register
        m.d.comb += self.i.ready.eq(~skid_valid)

        def move():
            with m.If(~self.o.valid | self.o.ready):
                # the output register is free: refill it from the skid register, else the
                # input
                with m.If(skid_valid):
                    m.d.sync += [self.o.payload.eq(held), self.o.valid.eq(1),
                                 skid_valid.eq(0)]
                with m.Else():
                    m.d.sync += self.o.valid.eq(self.i.valid)
                    with m.If(self.i.valid):
                        m.d.sync += self.o.payload.eq(self.i.payload)
            with m.Elif(self.i.valid & self.i.ready):
                m.d.sync += [held.eq(self.i.payload), skid_valid.eq(1)]

        if self._flush:
            with m.If(self.flush):
                m.d.sync += [self.o.valid.eq(0), skid_valid.eq(0)]
            with m.Else():
                move()
        else:
            move()
        return m


class EagerFork(wiring.Component):
    """Hands each transfer of ``i`` to ``count`` consumers, each when it is ready.

    A flag per consumer remembers that it has taken the current payload; ``i`` is taken
    when every consumer has taken it or takes it now. A consumer's ``valid`` is ``i.valid``
    and its own flag, so no consumer's handshake depends on another's ``ready``: only
    ``i.ready`` is an AND of them. (A lockstep fork, which offers the payload only when
    all are ready, makes every consumer's ``valid`` that AND: across a row of PEs on an
    FPGA, and back into each PE's admission logic, a long path.) Each consumer sees every
    payload exactly once, in order.

    Parameters
    ----------
    layout : ShapeLike
        The payload; every output carries all of it.
    count : int
        Consumers, at least 1.
    """

    def __init__(self, layout, *, count: int):
        if isinstance(count, bool) or not isinstance(count, int):
            raise TypeError(f"count must be an integer, not {count!r}")
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        self._count = count
        super().__init__({"i": In(stream.Signature(layout)),
                          "o": Out(stream.Signature(layout)).array(count)})

    def elaborate(self, platform):
        m = Module()
        taken = [Signal(name=f"taken{k}") for k in range(self._count)]
        m.d.comb += self.i.ready.eq(Cat(*[taken[k] | o.ready
                                          for k, o in enumerate(self.o)]).all())
        for k, o in enumerate(self.o):
            m.d.comb += [o.valid.eq(self.i.valid & ~taken[k]), o.payload.eq(self.i.payload)]
            with m.If(self.i.valid):
                with m.If(self.i.ready):
                    m.d.sync += taken[k].eq(0)
                with m.Elif(o.ready):
                    m.d.sync += taken[k].eq(1)
        return m
