"""Pipeline registers: the one definition of "this value, one cycle later"."""

from __future__ import annotations

from amaranth.hdl import Signal, Value, ValueCastable

__all__ = ["pipeline_register"]


def pipeline_register(m, value, *, name: str, en=None):
    """``value`` registered in ``m``'s ``sync`` domain, loaded every cycle or only while
    ``en``; returns the register.

    The register has ``value``'s shape: a signed value stays signed (a staged signed scale
    read as unsigned once gave wrong codes near ±½) and a :class:`~amaranth.lib.data.View`
    stays a view of its layout. It resets to zero.
    """
    shape = value.shape() if isinstance(value, ValueCastable) else Value.cast(value).shape()
    reg = Signal(shape, name=name)
    if en is None:
        m.d.sync += reg.eq(value)
    else:
        with m.If(en):
            m.d.sync += reg.eq(value)
    return reg
