"""MmioTransport against file-backed fakes of /dev/mem (no board here): the mapping,
word access, bounds checks and buffer addressing."""

import pytest

from sw_driver.mmio import MmioTransport
from sw_driver.transport import TransportError


def test_mmio_on_files(tmp_path):
    regs = tmp_path / "regs"
    regs.write_bytes(bytes(4096))
    buf = tmp_path / "mem"
    buf.write_bytes(bytes(3 * 4096))
    t = MmioTransport(regs=(str(regs), 0), buffer=(str(buf), 4096, 8192), buffer_phys=0x8000_0000)
    t.write32(0x30, 0x12345678)
    assert t.read32(0x30) == 0x12345678
    assert regs.read_bytes()[0x30:0x34] == bytes.fromhex("78563412")   # little-endian word
    addr = t.alloc(100, 64)
    assert addr == 0x8000_0000
    t.write_mem(addr + 8, b"abc")
    assert t.read_mem(addr + 8, 3) == b"abc"
    assert buf.read_bytes()[4096 + 8:4096 + 11] == b"abc"            # offset applied
    with pytest.raises(TransportError, match="outside the DMA buffer"):
        t.read_mem(0x8000_0000 + 8190, 4)
    with pytest.raises(TransportError, match="not a word"):
        t.read32(0x31)
    with pytest.raises(TransportError, match="out of device memory"):
        t.alloc(1 << 20)
    t.close()


def test_uio_without_maps_is_a_clear_error():
    with pytest.raises(TransportError, match="needs two UIO maps"):
        MmioTransport.from_uio("/dev/uio-does-not-exist")


@pytest.mark.parametrize("poll_interval", [0.0005, 0.05])
def test_device_over_mmio_served_by_the_model(tmp_path, poll_interval):
    """The whole driver over MmioTransport, with file-backed mappings served by the model
    (sw_driver.fake_board): identity check, a job, an error status. With the board slow
    to serve (50 ms between looks), a register write must still take effect before the
    driver's next read: the STATUS it cleared DONE in must not read back as DONE for the
    next job (a plain transport over these files fails here: the error goes unseen)."""
    import numpy as np

    from generators.config import load_config
    from sw_driver.device import Device, DeviceError
    from sw_driver.fake_board import FakeBoard
    from testbenches.matmul_model import random_codes

    board = FakeBoard(load_config("tiny"), tmp_path, poll_interval=poll_interval)
    try:
        with Device.open(board.transport(), regmap=board.regmap,
                         timeout=20) as dev:
            rng = np.random.default_rng(0)
            a = random_codes("posit8_0", (5, 9), rng)
            b = random_codes("posit8_0", (9, 4), rng)
            got = dev.matmul(a, b, fmt_a="posit8_0", out_fmt="posit16_1").codes
            want = Device.open("model", "tiny").matmul(a, b, fmt_a="posit8_0",
                                                       out_fmt="posit16_1").codes
            np.testing.assert_array_equal(got, want)
            assert dev.last_stats.macs == 5 * 9 * 4
            dev.transport.allocator.base = 0x1000       # buffers outside the board's memory
            dev.transport.allocator._next = 0x1000
            dev.transport._range = lambda addr, n: 0    # (the copies go to the file's start)
            with pytest.raises(DeviceError, match="AXI_READ"):
                dev.matmul(a, b, fmt_a="posit8_0", out_fmt="posit16_1")
    finally:
        board.close()
