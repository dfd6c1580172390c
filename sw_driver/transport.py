"""How the driver reaches a co-processor: 32-bit registers and a DMA-able memory.

A :class:`Transport` is the only thing that differs between the NumPy model
(:class:`sw_driver.model.ModelTransport`), the RTL in simulation
(:class:`sw_driver.sim.SimTransport`) and a board (:class:`sw_driver.mmio.MmioTransport`);
:class:`sw_driver.device.Device` runs the same code on all of them.
"""

from __future__ import annotations

import abc
import time

__all__ = ["Transport", "TransportError", "BumpAllocator"]


class TransportError(RuntimeError):
    """A transport could not do what was asked (out of memory, bad address, timeout)."""


class BumpAllocator:
    """A simple allocator over ``[base, base + size)``: aligned bump allocation, freed all
    at once with :meth:`reset` (a job's buffers live exactly as long as the job)."""

    def __init__(self, base: int, size: int):
        self.base, self.size = base, size
        self._next = base

    def alloc(self, nbytes: int, align: int = 64) -> int:
        if nbytes < 0:
            raise ValueError(f"nbytes must be at least 0, not {nbytes}")
        addr = -(-self._next // align) * align
        if addr + nbytes > self.base + self.size:
            raise TransportError(f"out of device memory: {nbytes} bytes requested, "
                                 f"{self.base + self.size - addr} left of {self.size}")
        self._next = addr + max(nbytes, 1)
        return addr

    def reset(self):
        self._next = self.base


class Transport(abc.ABC):
    """Register and memory access to one co-processor."""

    #: Name shown in reports ("model", "verilator", "icarus", "mmio").
    name = "transport"

    @abc.abstractmethod
    def read32(self, offset: int) -> int:
        """Read the 32-bit register at byte ``offset`` of the register window."""

    @abc.abstractmethod
    def write32(self, offset: int, value: int) -> None:
        """Write the 32-bit register at byte ``offset``."""

    @abc.abstractmethod
    def alloc(self, nbytes: int, align: int = 64) -> int:
        """Reserve ``nbytes`` of device-visible memory; returns its bus address."""

    @abc.abstractmethod
    def free_all(self) -> None:
        """Release every allocation."""

    @abc.abstractmethod
    def write_mem(self, addr: int, data: bytes) -> None:
        """Copy ``data`` to device memory at bus address ``addr``."""

    @abc.abstractmethod
    def read_mem(self, addr: int, nbytes: int) -> bytes:
        """Copy ``nbytes`` from device memory at bus address ``addr``."""

    def wait_until(self, predicate, *, timeout: float, poll: float = 0.0) -> bool:
        """Call ``predicate()`` until it is true or ``timeout`` seconds pass."""
        end = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            if time.monotonic() > end:
                return False
            if poll:
                time.sleep(poll)

    def close(self) -> None:
        """Release the transport's resources."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
