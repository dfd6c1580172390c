"""Driving a :class:`~generators.rtl.engine.MacEngine` in Amaranth's simulator."""

from __future__ import annotations

__all__ = ["set_op"]


def set_op(ctx, engine, ops: dict, i: int):
    """Put operation ``i`` of an operation stream (``testbenches.engine_vectors``) on the
    engine's input payload."""
    p = engine.i.payload
    ctx.set(p.a, int(ops["a"][i]))
    ctx.set(p.b, int(ops["b"][i]))
    ctx.set(p.fmt_a, engine.format_index(ops["fmt_a"][i]))
    ctx.set(p.fmt_b, engine.format_index(ops["fmt_b"][i]))
    ctx.set(p.out_fmt, engine.output_format_index(ops["out_fmt"][i]))
    ctx.set(p.dot, bool(ops["dot"][i]))
    ctx.set(p.first, bool(ops["first"][i]))
    ctx.set(p.last, bool(ops["last"][i]))
