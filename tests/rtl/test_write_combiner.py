"""The write combiner (generators.rtl.write_combiner) in Amaranth's simulator: rows of
beats interleaved at random, random stalls on the commands and the data; every beat
written once, at its address, with its data and strobes; each command one row's
consecutive beats, of ``burst_beats`` beats unless the row ends first."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.lib import stream
from amaranth.sim import Simulator

from generators.rtl.dma import AxiWriteDma, dma_cmd_layout
from generators.rtl.write_combiner import WriteCombiner

D = 32
DB = D // 8


def make_rows(rng, rows, max_beats):
    """Per row a run of beats: (addr, data, strb, last), consecutive addresses."""
    runs = []
    for r in range(rows):
        n = int(rng.integers(1, max_beats + 1))
        base = int(rng.integers(0, 1 << 12)) * DB
        runs.append([(base + b * DB, int(rng.integers(0, 1 << D)), int(rng.integers(1, 1 << DB)),
                      b == n - 1) for b in range(n)])
    return runs


def interleave(rng, runs):
    """The rows' beats in one stream, each row in order (a random merge)."""
    left = [list(run) for run in runs]
    out = []
    while any(left):
        r = int(rng.choice([k for k, run in enumerate(left) if run]))
        out.append((r, *left[r].pop(0)))
    return out


def run(dut, beats, *, seed, valid_prob, cmd_ready_prob, data_ready_prob, max_cycles=50_000):
    rng = np.random.default_rng(seed)
    cmds, data, idle_trace = [], [], []
    rows = dut._rows

    async def testbench(ctx):
        sent = 0
        offering = False
        total = len(beats)
        for cycle in range(max_cycles):
            if sent == total and ctx.get(dut.idle):
                return
            if not offering and sent < total and rng.random() < valid_prob:
                offering = True
            if sent < total:
                r, addr, d, strb, last = beats[sent]
                ctx.set(dut.i.payload, {"row": r, "addr": addr, "data": d, "strb": strb,
                                        "last": last})
                # i.ready must not depend on i.valid (stream rules: no combinational loop
                # through a producer that waits for ready)
                ctx.set(dut.i.valid, 0)
                ready_without = ctx.get(dut.i.ready)
                ctx.set(dut.i.valid, 1)
                assert ctx.get(dut.i.ready) == ready_without
            ctx.set(dut.i.valid, offering)
            cmd_ready = bool(rng.random() < cmd_ready_prob)
            data_ready = bool(rng.random() < data_ready_prob)
            ctx.set(dut.cmd.ready, cmd_ready)
            ctx.set(dut.data.ready, data_ready)
            if ctx.get(dut.cmd.valid) and cmd_ready:
                p = ctx.get(dut.cmd.payload)
                cmds.append((p.addr, p.beats))
            if ctx.get(dut.data.valid) and data_ready:
                p = ctx.get(dut.data.payload)
                data.append((p.data, p.strb))
            holding = sent > 0 and (len(data) < sent)
            idle_trace.append((bool(ctx.get(dut.idle)), holding))
            if offering and ctx.get(dut.i.ready):
                offering = False
                sent += 1
            await ctx.tick()
        raise AssertionError(f"stuck after {sent} of {len(beats)} beats, {len(data)} out")

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return cmds, data, idle_trace


STALLS = [(1.0, 1.0, 1.0), (0.5, 0.5, 0.5), (1.0, 0.1, 1.0), (1.0, 1.0, 0.2), (0.3, 1.0, 1.0)]


@pytest.mark.parametrize("rows,burst", [(1, 1), (2, 4), (4, 16), (3, 5)])
@pytest.mark.parametrize("valid_prob,cmd_ready_prob,data_ready_prob", STALLS)
def test_every_beat_written_once_in_maximal_bursts(rows, burst, valid_prob, cmd_ready_prob,
                                                   data_ready_prob):
    rng = np.random.default_rng(rows * 100 + burst)
    runs = [make_rows(rng, rows, 3 * burst + 2) for _ in range(3)]   # three strips
    beats = [b for strip in runs for b in interleave(rng, strip)]
    dut = WriteCombiner(rows=rows, addr_width=16, data_width=D, burst_beats=burst)
    cmds, data, idle_trace = run(dut, beats, seed=7, valid_prob=valid_prob,
                                 cmd_ready_prob=cmd_ready_prob, data_ready_prob=data_ready_prob)
    assert sum(n for _, n in cmds) == len(data) == len(beats)
    # What the bursts write, beat by beat, in command order.
    written = []
    it = iter(data)
    for addr, n in cmds:
        assert 1 <= n <= burst
        written += [(addr + k * DB, *next(it)) for k in range(n)]
    # Each strip's rows: every beat once, and the row cut into bursts of `burst` beats
    # (the last one the rest), in the order the rows' lines filled.
    want_bursts = []
    for strip in runs:
        for run_ in strip:
            for k in range(0, len(run_), burst):
                chunk = run_[k:k + burst]
                want_bursts.append((chunk[0][0], len(chunk), [(a, d, s) for a, d, s, _ in chunk]))
    got_bursts = []
    pos = 0
    for addr, n in cmds:
        got_bursts.append((addr, n, written[pos:pos + n]))
        pos += n
    assert sorted(got_bursts) == sorted(want_bursts)
    # idle only when nothing is held; and at the end
    assert not any(idle and holding for idle, holding in idle_trace)


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="burst_beats must be an integer from 1 to 256, not 0"):
        WriteCombiner(rows=2, addr_width=16, data_width=32, burst_beats=0)
    with pytest.raises(ValueError, match="rows must be an integer of at least 1, not 0"):
        WriteCombiner(rows=0, addr_width=16, data_width=32, burst_beats=4)
    with pytest.raises(ValueError, match="data_width must be a multiple of 8, not 12"):
        WriteCombiner(rows=1, addr_width=16, data_width=12, burst_beats=4)
    with pytest.raises(ValueError, match=r"len_bits must be an integer of at least 5 "
                                         r"\(a count of 16 beats\), not 4"):
        WriteCombiner(rows=1, addr_width=16, data_width=32, burst_beats=16, len_bits=4)


def test_command_is_the_dma_command():
    """The combiner's commands have the DMA's own payload, so that a core joins them with
    ``wiring.connect``."""
    combiner = WriteCombiner(rows=2, addr_width=20, data_width=32, burst_beats=4, len_bits=9)
    dma = AxiWriteDma(addr_width=20, data_width=32, len_bits=9)
    assert combiner.cmd.signature == stream.Signature(dma_cmd_layout(addr_width=20, len_bits=9))
    assert combiner.cmd.signature.flip() == dma.cmd.signature
