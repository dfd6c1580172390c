"""PartitionedMultiplier against NumPy lane products (Amaranth simulator)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from generators.rtl.multiplier import LaneMode, PartitionedMultiplier, lane_mode


def expected_product(a: int, b: int, width: int, w: int) -> int:
    mask = (1 << w) - 1
    out = 0
    for lane in range(width // w):
        pa, pb = (a >> (w * lane)) & mask, (b >> (w * lane)) & mask
        out |= (pa * pb) << (2 * w * lane)
    return out


@pytest.mark.parametrize("width", [8, 16, 32])
def test_lane_products(width):
    rng = np.random.default_rng(width)
    dut = PartitionedMultiplier(width=width)
    vectors = []
    for w in dut.lane_bits:
        corners = [(0, 0), ((1 << width) - 1, (1 << width) - 1), (1, (1 << width) - 1)]
        rand = [(int(x), int(y)) for x, y in rng.integers(0, 1 << width, size=(300, 2), dtype=np.uint64)]
        vectors += [(w, a, b) for a, b in corners + rand]

    async def testbench(ctx):
        for w, a, b in vectors:
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            ctx.set(dut.mode, lane_mode(w))
            got = ctx.get(dut.product)
            want = expected_product(a, b, width, w)
            assert got == want, f"{w}-bit lanes: {a:#x} * {b:#x} -> {got:#x}, want {want:#x}"

    sim = Simulator(dut)
    sim.add_testbench(testbench)
    sim.run()


def test_argument_checks():
    with pytest.raises(ValueError, match="width must be 8, 16 or 32, not 12"):
        PartitionedMultiplier(width=12)
    with pytest.raises(ValueError, match="lane_bits must be 4, 8, 16 or 32, not 6"):
        PartitionedMultiplier(width=16, lane_bits=(6,))
    assert LaneMode.L16.lane_bits == 16
