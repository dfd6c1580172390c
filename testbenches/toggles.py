"""Toggle counts of the MAC engine's per-mode datapaths (Amaranth simulator).

Operand isolation promises that the lanes a mode does not use do not toggle: the decoders,
decode registers, products and aligners of the other lane modes keep their values while
a stream of one mode runs. :func:`toggles_per_operation` runs a stream through a
:class:`~generators.rtl.engine.MacEngine` and counts, every cycle, the bits that changed in
each mode's datapath (``MacEngine.mode_probes``, filled in when the engine is elaborated)
and in each datapath that several modes share (``MacEngine.shared_probes``: a decoder of
one wide posit or two narrow ones), which must be still in every other mode.
"""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from testbenches.engine_sim import set_op

__all__ = ["toggles_per_operation", "mode_stream", "datapath_modes", "datapath_label"]


def datapath_modes(key) -> tuple:
    """The lane widths of the modes that use the datapath ``key`` of
    :func:`toggles_per_operation`'s result (a lane width, or a tuple of them)."""
    return tuple(key) if isinstance(key, tuple) else (key,)


def datapath_label(key) -> str:
    """``"8"`` for a mode's own datapath, ``"8+16"`` for one the 8- and 16-bit modes share."""
    return "+".join(str(b) for b in datapath_modes(key))


def mode_stream(engine, lane_bits: int, *, n_ops: int, seed: int = 0) -> dict:
    """Random accumulation groups that use only the formats of one lane width."""
    from generators.formats import get_format
    from testbenches.engine_vectors import random_groups

    formats = [f for f in engine.formats if get_format(f).bits == lane_bits]
    if not formats:
        raise ValueError(f"the engine has no {lane_bits}-bit format "
                         f"(formats: {', '.join(engine.formats)})")
    return random_groups(engine.geometry, formats, list(engine.output_formats),
                         np.random.default_rng(seed), n_ops=n_ops)


def toggles_per_operation(engine, ops: dict) -> dict:
    """Bit toggles per operation of each lane mode's datapath while ``ops`` run.

    Returns ``{datapath: toggles per operation}``, counted from reset until the last result
    is out, over every mode's own datapath (keyed by its lane width; the mode that ``ops``
    use included) and every shared one (keyed by the tuple of the lane widths that share
    it; see :func:`datapath_modes`).
    """
    n = len(ops["a"])
    sim = Simulator(engine)             # elaborates: the engine's probes are filled in now
    probes = {bits: list(sigs) for bits, sigs in engine.mode_probes.items()}
    probes.update({modes: list(sigs) for modes, sigs in engine.shared_probes.items()})
    counts = {bits: 0 for bits in probes}

    async def testbench(ctx):
        prev = {bits: [ctx.get(s) for s in sigs] for bits, sigs in probes.items()}

        def sample():
            for bits, sigs in probes.items():
                now = [ctx.get(s) for s in sigs]
                for s, a, b in zip(sigs, prev[bits], now):
                    if a != b:
                        mask = (1 << len(s)) - 1
                        counts[bits] += bin((a ^ b) & mask).count("1")
                prev[bits] = now

        sent = idle = 0
        ctx.set(engine.o.ready, 1)
        while sent < n or idle < 12:
            ctx.set(engine.i.valid, sent < n)
            if sent < n:
                set_op(ctx, engine, ops, sent)
                if ctx.get(engine.i.ready):
                    sent += 1
            else:
                idle += 1
            sample()
            await ctx.tick()
            sample()

    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return {bits: c / n for bits, c in counts.items()}
