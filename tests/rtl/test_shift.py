"""PartitionedShifter against a Python model of its regions (Amaranth simulator)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from generators.rtl.shift import PartitionedShift, PartitionedShifter


def expected_shift(value: int, starts, amounts, width: int) -> int:
    """Each region of ``value`` shifted left by its amount within the region."""
    out = 0
    for lo, hi, amount in zip(starts, list(starts[1:]) + [width], amounts):
        mask = (1 << (hi - lo)) - 1
        out |= (((value >> lo) & mask) << amount & mask) << lo
    return out


def region_amounts(dut, k, rng, max_bits):
    """Random amounts for partitioning ``k``'s regions (below ``2**max_bits``), and the
    slot amounts the caller gives for them."""
    starts = dut.partitionings[k]
    amounts = [int(a) for a in rng.integers(0, 1 << max_bits, size=len(starts))]
    per_slot = [amounts[max(r for r, s in enumerate(starts) if s <= lo)] for lo, _ in dut.slots]
    return amounts, per_slot


def check(dut, vectors):
    """Each (partitioning, value, slot amounts) against :func:`expected_shift`."""
    got = []

    async def testbench(ctx):
        for k, value, per_slot in vectors:
            ctx.set(dut.partitioning, k)
            ctx.set(dut.value, value)
            for j, amount in enumerate(per_slot):
                ctx.set(dut.amount[j], amount)
            got.append(ctx.get(dut.shifted))

    sim = Simulator(dut)
    sim.add_testbench(testbench)
    sim.run()
    return got


# xr_npe's shared fine shift (48 bits: 1 x 16-bit lane by up to 15, 2 x 8-bit and
# 4 x 4-bit lanes by up to 7), and shapes with unequal regions and a single one.
SHAPES = [
    (48, (4, 3, 3), [[0], [0, 24], [0, 12, 24, 36]]),
    (48, 4, [[0], [0, 24], [0, 12, 24, 36]]),
    (23, 3, [[0, 5, 17], [0, 9], [0]]),
    (9, 2, [[0]]),
]


@pytest.mark.parametrize("width,amount_bits,partitionings", SHAPES)
def test_regions_shift_independently(width, amount_bits, partitionings):
    rng = np.random.default_rng(width)
    dut = PartitionedShifter(width=width, amount_bits=amount_bits, partitionings=partitionings)
    bits = ([amount_bits] * len(partitionings) if isinstance(amount_bits, int)
            else list(amount_bits))
    vectors, want = [], []
    for k, starts in enumerate(dut.partitionings):
        ones = (1 << width) - 1
        # every value has each region's top bit set somewhere: bits cross every border
        values = [0, ones, 1, 1 << (width - 1)] + [
            int(v) & ones for v in rng.integers(0, 1 << 62, size=400, dtype=np.uint64)]
        for i, value in enumerate(values):
            amounts, per_slot = region_amounts(dut, k, rng, bits[k])
            if i < 4:       # every region by the largest amount
                amounts = [(1 << bits[k]) - 1] * len(starts)
                per_slot = [(1 << bits[k]) - 1] * len(dut.slots)
            vectors.append((k, value, per_slot))
            want.append(expected_shift(value, starts, amounts, width))
    got = check(dut, vectors)
    for (k, value, per_slot), g, w in zip(vectors, got, want):
        assert g == w, f"partitioning {k}, value {value:#x}, slot amounts {per_slot}: " \
                       f"{g:#x}, want {w:#x}"


def test_every_amount_at_every_border():
    """Partitioning of four regions: each amount of each region, with ones everywhere
    (what crosses a border shows as a one where a zero must enter)."""
    width, starts = 48, [0, 12, 24, 36]
    dut = PartitionedShifter(width=width, amount_bits=3, partitionings=[[0], starts])
    ones = (1 << width) - 1
    vectors, want = [], []
    for region in range(4):
        for amount in range(8):
            amounts = [amount if r == region else 0 for r in range(4)]
            vectors.append((1, ones, amounts))
            want.append(expected_shift(ones, starts, amounts, width))
    assert check(dut, vectors) == want


def test_slots():
    shift = PartitionedShift(width=48, amount_bits=3, partitionings=[[0], [0, 24], [0, 12, 24, 36]])
    assert shift.slots == ((0, 12), (12, 24), (24, 36), (36, 48))
    assert [shift.slot_of(b) for b in (0, 11, 12, 47)] == [0, 0, 1, 3]
    assert PartitionedShift(width=9, amount_bits=2, partitionings=[[0]]).slots == ((0, 9),)


def test_argument_checks():
    with pytest.raises(ValueError, match="width must be a positive integer, not 0"):
        PartitionedShifter(width=0, amount_bits=2, partitionings=[[0]])
    with pytest.raises(ValueError, match="amount_bits must be a positive integer or one per "
                                         "partitioning, not 0"):
        PartitionedShifter(width=8, amount_bits=0, partitionings=[[0]])
    with pytest.raises(ValueError, match=r"one per partitioning, not \(2, 3\)"):
        PartitionedShifter(width=8, amount_bits=(2, 3), partitionings=[[0]])
    with pytest.raises(ValueError, match=r"partitioning 1 must start a region at bit 0, not \(2,\)"):
        PartitionedShifter(width=8, amount_bits=2, partitionings=[[0], [2]])
    with pytest.raises(ValueError, match=r"partitioning 0: region starts must increase within "
                                         r"the 8 bits, not \(0, 4, 4\)"):
        PartitionedShifter(width=8, amount_bits=2, partitionings=[[0, 4, 4]])
    with pytest.raises(ValueError, match=r"not \(0, 8\)"):
        PartitionedShifter(width=8, amount_bits=2, partitionings=[[0, 8]])
    with pytest.raises(ValueError, match="partitionings must not be empty"):
        PartitionedShifter(width=8, amount_bits=2, partitionings=[])
