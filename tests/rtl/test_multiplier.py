"""PartitionedMultiplier against NumPy lane products (Amaranth simulator)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from generators.rtl.multiplier import LaneMode, PartitionedMultiplier, lane_mode
from testbenches.sim import read_pipelined


def expected_product(a: int, b: int, width: int, w: int) -> int:
    mask = (1 << w) - 1
    out = 0
    for lane in range(width // w):
        pa, pb = (a >> (w * lane)) & mask, (b >> (w * lane)) & mask
        out |= (pa * pb) << (2 * w * lane)
    return out


def check_products(dut, vectors, width, fields):
    """Each (lane width, a, b) gives the lane products of ``fields[w]``-bit fields. A
    pipelined multiplier is read ``dut.latency`` loading cycles later, with other inputs
    applied by then, and its enable is low (other inputs applied) a random quarter of the
    cycles."""
    pipelined = bool(dut.latency)
    rng = np.random.default_rng(len(vectors))
    got = []

    def apply(ctx, vector):
        w, a, b = vector
        ctx.set(dut.a, a)
        ctx.set(dut.b, b)
        ctx.set(dut.mode, lane_mode(w))

    def filler():
        return (dut.lane_bits[int(rng.integers(len(dut.lane_bits)))],
                int(rng.integers(1 << len(dut.a))), int(rng.integers(1 << len(dut.b))))

    async def testbench(ctx):
        got.extend(await read_pipelined(
            ctx, apply=apply, read=lambda ctx: ctx.get(dut.product), vectors=vectors,
            latency=dut.latency, filler=filler, enable=dut.en if pipelined else None,
            stall=(lambda: rng.random() < 0.25) if pipelined else None))

    sim = Simulator(dut)
    if pipelined:
        sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert len(got) == len(vectors)
    for (w, a, b), product in zip(vectors, got):
        f = fields[w]
        want = expected_product(a, b, (width // w) * f, f)
        assert product == want, f"{w}-bit lanes of {f}-bit fields: {a:#x} * {b:#x} -> " \
                                f"{product:#x}, want {want:#x}"


@pytest.mark.parametrize("width", [8, 16, 32])
def test_lane_products(width):
    rng = np.random.default_rng(width)
    dut = PartitionedMultiplier(width=width)
    vectors = []
    for w in dut.lane_bits:
        corners = [(0, 0), ((1 << width) - 1, (1 << width) - 1), (1, (1 << width) - 1)]
        rand = [(int(x), int(y)) for x, y in rng.integers(0, 1 << width, size=(300, 2), dtype=np.uint64)]
        vectors += [(w, a, b) for a, b in corners + rand]

    check_products(dut, vectors, width, {w: w for w in dut.lane_bits})


@pytest.mark.parametrize("width,fields", [
    (16, {4: 2, 8: 7, 16: 13}),         # xr_npe: posit16_1, posit8_0, fp4/posit4_1
    (16, {4: 3, 8: 8, 16: 16}),
    (32, {4: 1, 8: 5, 16: 11, 32: 24}),
    (8, {4: 4, 8: 5}),
])
@pytest.mark.parametrize("pipelined,register_rows", [(False, False), (True, False),
                                                    (False, True), (True, True)])
def test_packed_fields(width, fields, pipelined, register_rows):
    """Lanes packed at their significand width: a narrower array, the same lane products;
    pipelined, one cycle later per register."""
    rng = np.random.default_rng(sum(fields.values()))
    dut = PartitionedMultiplier(width=width, lane_bits=tuple(fields), field_bits=fields,
                                pipelined=pipelined, register_rows=register_rows)
    assert dut.latency == int(pipelined) + int(register_rows)
    assert dut.array_bits == max((width // w) * f for w, f in fields.items())
    vectors = []
    for w, f in fields.items():
        lanes = width // w
        full = (1 << (lanes * f)) - 1
        rand = [(int(x) & full, int(y) & full)
                for x, y in rng.integers(0, 1 << 62, size=(300, 2), dtype=np.uint64)]
        vectors += [(w, a, b) for a, b in [(0, 0), (full, full), (1, full), (full, 1)] + rand]

    check_products(dut, vectors, width, fields)


def test_argument_checks():
    with pytest.raises(ValueError, match="width must be 8, 16 or 32, not 12"):
        PartitionedMultiplier(width=12)
    with pytest.raises(ValueError, match="lane_bits must be 4, 8, 16 or 32, not 6"):
        PartitionedMultiplier(width=16, lane_bits=(6,))
    with pytest.raises(ValueError, match=r"field_bits\[8\] must be an integer from 1 to 8, not 9"):
        PartitionedMultiplier(width=16, lane_bits=(8, 16), field_bits={8: 9})
    with pytest.raises(ValueError, match="field_bits names lane width 4, which is not one of 8, 16"):
        PartitionedMultiplier(width=16, lane_bits=(8, 16), field_bits={4: 2})
    assert LaneMode.L16.lane_bits == 16
