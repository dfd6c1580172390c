"""The driver on a Linux board: memory-mapped registers and a physically contiguous buffer.

Two ways to reach the hardware:

* **UIO** (recommended): a device-tree node bound to ``uio_pdrv_genirq`` with two maps —
  map 0 the register window, map 1 a reserved-memory region the co-processor can DMA to
  (e.g. a ``reserved-memory`` node, or CMA exported with ``udmabuf``).
  ``MmioTransport.from_uio("/dev/uio0")`` reads the maps' sizes and the buffer's physical
  address from ``/sys/class/uio/uio0/maps/``.
* **/dev/mem**: ``MmioTransport(regs=("/dev/mem", REGS_PHYS), buffer=("/dev/mem",
  BUF_PHYS, BUF_SIZE))`` with addresses from your block design (needs root, and a
  buffer the kernel does not use).

The bus address the co-processor sees for the buffer is its physical address (no IOMMU).
Register accesses are single 32-bit loads and stores (``memoryview.cast("I")``), which is
what an AXI4-Lite slave expects.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

from sw_driver.transport import BumpAllocator, Transport, TransportError

__all__ = ["MmioTransport"]


def _map(path, offset, size, *, writable=True):
    fd = os.open(path, os.O_RDWR | os.O_SYNC if writable else os.O_RDONLY)
    try:
        return mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                         offset=offset)
    except (OSError, ValueError) as exc:
        raise TransportError(f"cannot map {size:#x} bytes of {path} at offset {offset:#x}: "
                             f"{exc}") from None
    finally:
        os.close(fd)


class MmioTransport(Transport):
    """Registers and DMA buffer of a co-processor on this machine's physical bus.

    Parameters
    ----------
    regs : (path, offset)
        File to map for the 4 KiB register window and its offset in that file.
    buffer : (path, offset, size)
        File and offset of the DMA buffer.
    buffer_phys : int
        Physical (bus) address of the buffer's first byte.
    regmap : RegisterMap, optional
        Kept for :class:`~sw_driver.device.Device` (``Device(transport, regmap)`` also works).
    """

    name = "mmio"

    def __init__(self, *, regs, buffer, buffer_phys: int, regmap=None, regs_size: int = 4096):
        self.regmap = regmap
        self._regs_map = _map(regs[0], regs[1], regs_size)
        self._regs = memoryview(self._regs_map).cast("I")
        path, offset, size = buffer
        self._buf_map = _map(path, offset, size)
        self._buf = memoryview(self._buf_map)
        self.buffer_phys, self.buffer_size = buffer_phys, size
        self.allocator = BumpAllocator(buffer_phys, size)

    @classmethod
    def from_uio(cls, device: str = "/dev/uio0", *, regmap=None) -> "MmioTransport":
        name = Path(device).name
        maps = Path("/sys/class/uio") / name / "maps"
        try:
            regs_size = int((maps / "map0" / "size").read_text(), 0)
            buf_addr = int((maps / "map1" / "addr").read_text(), 0)
            buf_size = int((maps / "map1" / "size").read_text(), 0)
        except OSError as exc:
            raise TransportError(f"{device}: needs two UIO maps (registers, DMA buffer): "
                                 f"{exc}") from None
        page = mmap.PAGESIZE
        return cls(regs=(device, 0), regs_size=max(regs_size, 4096),
                   buffer=(device, 1 * page, buf_size), buffer_phys=buf_addr, regmap=regmap)

    def read32(self, offset):
        if offset % 4 or not 0 <= offset < len(self._regs) * 4:
            raise TransportError(f"register offset {offset:#x} is not a word in the window")
        return int(self._regs[offset // 4])

    def write32(self, offset, value):
        if offset % 4 or not 0 <= offset < len(self._regs) * 4:
            raise TransportError(f"register offset {offset:#x} is not a word in the window")
        self._regs[offset // 4] = value & 0xFFFFFFFF

    def alloc(self, nbytes, align=64):
        return self.allocator.alloc(nbytes, align)

    def free_all(self):
        self.allocator.reset()

    def _range(self, addr, n):
        lo = addr - self.buffer_phys
        if lo < 0 or lo + n > self.buffer_size:
            raise TransportError(f"{n} bytes at {addr:#x} are outside the DMA buffer "
                                 f"[{self.buffer_phys:#x}, {self.buffer_phys + self.buffer_size:#x})")
        return lo

    def write_mem(self, addr, data):
        lo = self._range(addr, len(data))
        self._buf[lo:lo + len(data)] = data

    def read_mem(self, addr, nbytes):
        lo = self._range(addr, nbytes)
        return bytes(self._buf[lo:lo + nbytes])

    def close(self):
        for view in (getattr(self, "_regs", None), getattr(self, "_buf", None)):
            if view is not None:
                view.release()
        for mp in (getattr(self, "_regs_map", None), getattr(self, "_buf_map", None)):
            if mp is not None:
                mp.close()
