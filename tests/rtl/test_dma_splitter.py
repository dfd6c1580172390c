"""The DMA's burst splitter (generators.rtl.dma._BurstSplitter) in Amaranth's simulator
against a plain Python model of the split.

The splitter is registered in three stages for Fmax (command skid buffer, the command
being split with its beats to the next 4 KiB boundary kept in a register and stepped per
burst, the burst register); these tests pin down that the bursts are still exactly the
model's — at most ``max_burst_beats``, never across 4 KiB, ``last`` on a command's final
burst — under random stalls on both sides, that the throughput is one burst per cycle
across commands, and that ``stop`` drops everything taken, including a command that only
sits in the skid buffer.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from generators.rtl.dma import _BurstSplitter

PAGE = 4096


def model_bursts(addr, beats, *, data_bytes, max_burst):
    """(addr, beats, last) of each burst of one command."""
    out = []
    while beats:
        n = min(beats, (PAGE - addr % PAGE) // data_bytes, max_burst)
        beats -= n
        out.append((addr, n, beats == 0))
        addr += n * data_bytes
    return out


def random_cmds(rng, count, *, data_bytes, max_burst):
    """Commands that start near 4 KiB boundaries (and anywhere), of 0 .. a few pages."""
    cmds = []
    for _ in range(count):
        page = int(rng.integers(0, 1 << 12)) * PAGE
        if rng.random() < 0.5:      # a few beats before a boundary
            addr = page + PAGE - data_bytes * int(rng.integers(1, 3 * max_burst + 2))
            addr = max(addr, page)
        else:
            addr = page + data_bytes * int(rng.integers(0, PAGE // data_bytes))
        beats = int(rng.choice([0, 1, 2, max_burst - 1, max_burst, max_burst + 1,
                                int(rng.integers(1, 3 * PAGE // data_bytes))]))
        cmds.append((addr, max(beats, 0)))
    return cmds


def make(data_bytes, max_burst):
    return _BurstSplitter(addr_width=32, data_bytes=data_bytes, max_burst_beats=max_burst,
                          len_bits=24)


def run(split, script, *, seed=0, cmd_prob=1.0, ready_prob=1.0, max_cycles=100_000):
    """Drive ``split`` with the commands of ``script``: (addr, beats), or ("stop", k) for
    a one-cycle stop pulse once the previous commands have been taken and k bursts have
    come out. Returns the bursts taken as (cycle, addr, beats, last) and the busy trace."""
    rng = np.random.default_rng(seed)
    got, busy = [], []

    async def testbench(ctx):
        items = list(script)
        offering = None
        held = None
        cycle = 0
        idle_after = 0
        while items or offering is not None or idle_after < 4:
            cycle += 1
            assert cycle < max_cycles, "the splitter hangs"
            stop = (offering is None and bool(items) and items[0][0] == "stop"
                    and len(got) >= items[0][1])
            if stop:
                items.pop(0)
                held = None
            ctx.set(split.stop, stop)
            if offering is None and items and items[0][0] != "stop" and rng.random() < cmd_prob:
                offering = items.pop(0)
            ctx.set(split.cmd.valid, offering is not None)
            if offering is not None:
                ctx.set(split.cmd.payload.addr, offering[0])
                ctx.set(split.cmd.payload.beats, offering[1])
            ready = bool(rng.random() < ready_prob)
            ctx.set(split.burst.ready, ready)
            if ctx.get(split.burst.valid):
                b = (ctx.get(split.burst.payload.addr), ctx.get(split.burst.payload.beats),
                     bool(ctx.get(split.burst.payload.last)))
                if held is not None:
                    assert b == held, f"burst changed while offered: {held} -> {b}"
                if ready:
                    got.append((cycle, *b))
                    held = None
                else:
                    held = b
            else:
                assert held is None or stop, "burst withdrawn without stop"
            if offering is not None and ctx.get(split.cmd.ready):
                offering = None
            busy.append(bool(ctx.get(split.busy)))
            idle_after = 0 if (items or offering is not None or busy[-1]) else idle_after + 1
            await ctx.tick()

    sim = Simulator(split)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return got, busy


PARAMS = [(4, 16), (8, 256), (16, 13), (8, 1)]


@pytest.mark.parametrize("data_bytes,max_burst", PARAMS)
@pytest.mark.parametrize("cmd_prob,ready_prob", [(1.0, 1.0), (0.4, 0.5), (1.0, 0.2)])
def test_bursts_match_model(data_bytes, max_burst, cmd_prob, ready_prob):
    rng = np.random.default_rng(data_bytes * 1000 + max_burst)
    cmds = random_cmds(rng, 40, data_bytes=data_bytes, max_burst=max_burst)
    got, busy = run(make(data_bytes, max_burst), cmds, seed=max_burst, cmd_prob=cmd_prob,
                    ready_prob=ready_prob)
    want = [b for a, n in cmds for b in model_bursts(a, n, data_bytes=data_bytes,
                                                      max_burst=max_burst)]
    assert [g[1:] for g in got] == want
    for _, addr, beats, _ in got:      # the AXI rules themselves
        assert 1 <= beats <= max_burst
        assert addr // PAGE == (addr + beats * data_bytes - 1) // PAGE
    assert not busy[-1]


@pytest.mark.parametrize("data_bytes,max_burst", PARAMS)
def test_one_burst_per_cycle_across_commands(data_bytes, max_burst):
    """With commands always offered and bursts always taken, the bursts of back-to-back
    commands leave the splitter in consecutive cycles (the registers cost latency only)."""
    rng = np.random.default_rng(7)
    cmds = [c for c in random_cmds(rng, 30, data_bytes=data_bytes, max_burst=max_burst)
            if c[1]]
    got, _ = run(make(data_bytes, max_burst), cmds)
    cycles = [g[0] for g in got]
    assert cycles == list(range(cycles[0], cycles[0] + len(cycles)))
    assert cycles[0] <= 4      # command taken in cycle 1: skid, split, burst register


@pytest.mark.parametrize("data_bytes,max_burst", [(8, 16), (4, 13)])
def test_stop_drops_taken_commands(data_bytes, max_burst):
    """``stop`` drops the command being split and one waiting in the skid buffer; the
    next command after it is split from scratch, and busy falls at once."""
    split = make(data_bytes, max_burst)
    long = (0x1000 - 5 * data_bytes, 50 * max_burst)
    waiting = (0x20000, 3 * max_burst)
    after = (0x3000 - 2 * data_bytes, 2 * max_burst + 3)
    got, busy = run(split, [long, waiting, ("stop", 5), after], ready_prob=0.3, seed=3)
    want_after = model_bursts(*after, data_bytes=data_bytes, max_burst=max_burst)
    bursts = [g[1:] for g in got]
    assert bursts[-len(want_after):] == want_after
    head = bursts[:-len(want_after)]
    want_long = model_bursts(*long, data_bytes=data_bytes, max_burst=max_burst)
    assert 0 < len(head) < len(want_long) and head == want_long[:len(head)]
    assert all(b[0] < 0x20000 or b[0] >= 0x3000 - 2 * data_bytes for b in bursts)
    assert not busy[-1]
