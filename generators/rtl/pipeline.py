"""Pipeline registers: the one definition of "this value, one cycle later"."""

from __future__ import annotations

from amaranth.hdl import Signal, Value, ValueCastable

__all__ = ["pipeline_register"]


def pipeline_register(m, value, *, name: str, en=None, init=None):
    """``value`` registered in ``m``'s ``sync`` domain, loaded every cycle or only while
    ``en``; returns the register.

    The register has ``value``'s shape: a signed value stays signed (a staged signed scale
    read as unsigned once gave wrong codes near ±½) and a :class:`~amaranth.lib.data.View`
    stays a view of its layout. It resets to ``init`` (default zero). Where some bits of
    ``value`` are constant, an ``init`` with those bits lets synthesis drop their
    flip-flops: a flip-flop that resets to 0 and then loads 1 for good is alike in every
    copy of a design, and Yosys merges those of all the PEs of an array into one.
    """
    shape = value.shape() if isinstance(value, ValueCastable) else Value.cast(value).shape()
    reg = Signal(shape, name=name, init=init)
    if en is None:
        m.d.sync += reg.eq(value)
    else:
        with m.If(en):
            m.d.sync += reg.eq(value)
    return reg
