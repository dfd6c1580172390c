"""PartitionedAccumulator against a Python model of sticky-saturating partitions."""

import random

import pytest
from amaranth.sim import Simulator

from generators.rtl.accumulator import PartitionedAccumulator

CHUNK, CHUNKS = 10, 4
PARTITIONINGS = [
    [(0, 4, 30)],                       # one wide accumulator
    [(0, 2, 14), (2, 2, 12)],           # two lanes
    [(0, 1, 8), (1, 1, 8), (2, 1, 6), (3, 1, 8)],  # four lanes
    [(0, 1, 8), (1, 2, 18), (3, 1, 8)],  # a partition across the middle border
]


def to_signed(v, bits):
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def model_step(state, sticky, partitioning, addends, clear):
    """One step: from the first overflow on, a partition holds the bound (sticky)."""
    out, sat = [], []
    for p, (first, count, width) in enumerate(partitioning):
        acc = 0 if clear else state[p]
        was = False if clear else sticky[p]
        lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
        if not was:
            acc += addends[p]
            if acc < lo or acc > hi:
                acc, was = min(max(acc, lo), hi), True
        out.append(acc)
        sat.append(was)
    return out, sat


# a single chunk has its chain split in the middle of the chunk
ONE_CHUNK = (23, 1, [[(0, 1, 19)], [(0, 1, 12)]])


@pytest.mark.parametrize("split_chain", [False, True])
@pytest.mark.parametrize("CHUNK, CHUNKS, PARTITIONINGS", [(CHUNK, CHUNKS, PARTITIONINGS), ONE_CHUNK],
                         ids=["4_chunks", "1_chunk"])
def test_saturating_partitions(split_chain, CHUNK, CHUNKS, PARTITIONINGS):
    dut = PartitionedAccumulator(chunk_bits=CHUNK, chunks=CHUNKS, partitionings=PARTITIONINGS,
                                 split_chain=split_chain)
    rng = random.Random(1)

    async def testbench(ctx):
        for k, partitioning in enumerate(PARTITIONINGS):
            state = [0] * len(partitioning)
            sticky = [0] * len(partitioning)
            for step in range(400):
                if rng.random() < 0.2:
                    # a stalled cycle (en=0, other inputs anything) holds the register,
                    # including a carry still deferred at the split
                    before = ctx.get(dut.value), ctx.get(dut.saturated)
                    ctx.set(dut.en, 0)
                    ctx.set(dut.clear, rng.random() < 0.5)
                    ctx.set(dut.addend, rng.getrandbits(CHUNK * CHUNKS))
                    await ctx.tick()
                    assert (ctx.get(dut.value), ctx.get(dut.saturated)) == before
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
                state, sticky = model_step(state, sticky, partitioning, addends, clear)
                value = ctx.get(dut.value)
                sat = ctx.get(dut.saturated)
                for p, (first, count, width) in enumerate(partitioning):
                    got = to_signed(value >> (first * CHUNK), count * CHUNK)
                    assert got == state[p], f"partitioning {k} step {step} partition {p}: {got} != {state[p]}"
                    assert (sat >> p) & 1 == sticky[p], f"sticky bit of partition {p} at step {step}"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def test_partition_checks():
    with pytest.raises(ValueError, match="cannot saturate at 19 bits"):
        PartitionedAccumulator(chunk_bits=10, chunks=2, partitionings=[[(0, 2, 19)]])
    with pytest.raises(ValueError, match="covers 1 chunks, not 2"):
        PartitionedAccumulator(chunk_bits=10, chunks=2, partitionings=[[(0, 1, 8)]])
