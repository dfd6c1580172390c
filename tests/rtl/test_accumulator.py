"""PartitionedAccumulator against a Python model of saturating partitions."""

import random

import pytest
from amaranth.sim import Simulator

from generators.rtl.accumulator import PartitionedAccumulator

CHUNK, CHUNKS = 10, 4
PARTITIONINGS = [
    [(0, 4, 30)],                       # one wide accumulator
    [(0, 2, 14), (2, 2, 12)],           # two lanes
    [(0, 1, 8), (1, 1, 8), (2, 1, 6), (3, 1, 8)],  # four lanes
]


def to_signed(v, bits):
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def model_step(state, sticky, k, addends, clear):
    out, sat = [], []
    for p, (first, count, width) in enumerate(PARTITIONINGS[k]):
        acc = 0 if clear else state[p]
        acc += addends[p]
        lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
        s = acc < lo or acc > hi
        out.append(min(max(acc, lo), hi))
        sat.append((0 if clear else sticky[p]) | s)
    return out, sat


def test_saturating_partitions():
    dut = PartitionedAccumulator(chunk_bits=CHUNK, chunks=CHUNKS, partitionings=PARTITIONINGS)
    rng = random.Random(1)

    async def testbench(ctx):
        for k, partitioning in enumerate(PARTITIONINGS):
            state = [0] * len(partitioning)
            sticky = [0] * len(partitioning)
            for step in range(400):
                clear = step == 0 or rng.random() < 0.05
                addends, word = [], 0
                for first, count, width in partitioning:
                    bits = count * CHUNK
                    # addends of up to width+1 bits, biased to hit saturation often
                    a = rng.randint(-(1 << width), (1 << width) - 1) if rng.random() < 0.3 \
                        else rng.randint(-(1 << (width - 3)), 1 << (width - 3))
                    addends.append(a)
                    word |= (a & ((1 << bits) - 1)) << (first * CHUNK)
                ctx.set(dut.partitioning, k)
                ctx.set(dut.addend, word)
                ctx.set(dut.clear, clear)
                ctx.set(dut.en, 1)
                await ctx.tick()
                state, sticky = model_step(state, sticky, k, addends, clear)
                value = ctx.get(dut.value)
                sat = ctx.get(dut.saturated)
                for p, (first, count, width) in enumerate(partitioning):
                    got = to_signed(value >> (first * CHUNK), count * CHUNK)
                    assert got == state[p], f"partitioning {k} step {step} partition {p}: {got} != {state[p]}"
                    assert (sat >> p) & 1 == sticky[p], f"sticky bit of partition {p} at step {step}"
            # en=0 holds the register
            ctx.set(dut.en, 0)
            before = ctx.get(dut.value)
            await ctx.tick()
            assert ctx.get(dut.value) == before

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def test_partition_checks():
    with pytest.raises(ValueError, match="cannot saturate at 19 bits"):
        PartitionedAccumulator(chunk_bits=10, chunks=2, partitionings=[[(0, 2, 19)]])
    with pytest.raises(ValueError, match="covers 1 chunks, not 2"):
        PartitionedAccumulator(chunk_bits=10, chunks=2, partitionings=[[(0, 1, 8)]])
