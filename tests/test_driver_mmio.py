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
