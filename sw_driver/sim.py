"""The driver against the RTL in a cocotb simulation (Verilator or Icarus).

The same synchronous driver code that runs on a board runs inside the simulation: cocotb's
``bridge`` runs it in a thread, and every register access is a ``resume``-wrapped call of
cocotbext-axi's AxiLiteMaster, which blocks the thread until the simulation has done it.
Memory is cocotbext-axi's AxiRam; the driver copies buffers into it directly while the
simulation waits.

:func:`run_in_simulation` builds the design (once, cached) and runs ``function(device)``
in it; ``function`` is named as ``"package.module:function"`` because it runs in the
simulator's Python process.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

from sw_driver.transport import BumpAllocator, Transport

__all__ = ["SimTransport", "run_in_simulation"]

MEM_BASE = 0x0010_0000


class SimTransport(Transport):
    """Registers through an AxiLiteMaster, memory in an AxiRam (inside a cocotb test)."""

    def __init__(self, dut, axil, ram, *, regmap, mem_base: int, mem_size: int, name: str):
        from cocotb.task import resume
        from cocotb.triggers import ClockCycles

        self.dut, self.ram, self.regmap, self.name = dut, ram, regmap, name
        self.allocator = BumpAllocator(mem_base, mem_size)
        self._read = resume(axil.read_dword)
        self._write = resume(axil.write_dword)

        async def cycles(n):
            await ClockCycles(dut.clk, n)

        self._cycles = resume(cycles)

    def read32(self, offset):
        return int(self._read(offset))

    def write32(self, offset, value):
        self._write(offset, value)

    def alloc(self, nbytes, align=64):
        return self.allocator.alloc(nbytes, align)

    def free_all(self):
        self.allocator.reset()

    def write_mem(self, addr, data):
        self.ram.write(addr, bytes(data))

    def read_mem(self, addr, nbytes):
        return bytes(self.ram.read(addr, nbytes))

    def wait_until(self, predicate, *, timeout, poll=0.0):
        # Simulated time is what passes here: poll every 64 cycles, and give up after
        # ``timeout`` seconds of wall-clock time.
        import time
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > end:
                return False
            self._cycles(64)
        return True


def run_in_simulation(config: str, function: str, *, simulator: str = "verilator",
                      args=None, tag: str = "driver"):
    """Run ``function(device, args)`` (``"module:function"``) against the RTL of
    ``config`` in ``simulator``; returns what the function returned (it must pickle)."""
    from testbenches.coproc_runner import design
    from testbenches.sim import build, run_cocotb

    top, out = design(config)
    built = build(simulator, [out / "npegen_top.v"], "npegen_top")
    work = built.build_dir / f"run-{tag}"
    work.mkdir(parents=True, exist_ok=True)
    fd, path = tempfile.mkstemp(suffix=".pkl", dir=work)
    os.close(fd)
    Path(path).write_bytes(pickle.dumps({"function": function, "args": args}))
    run_cocotb(built, "tb_driver", work_dir=work, env={
        "NPEGEN_DRIVER_CALL": path, "NPEGEN_REGMAP": str(out / "regmap.json"),
        "NPEGEN_SIMULATOR": simulator})
    result = pickle.loads(Path(path + ".out").read_bytes())
    Path(path).unlink(missing_ok=True)
    Path(path + ".out").unlink(missing_ok=True)
    if "error" in result:
        raise result["error"]
    return result["value"]


def matmul_job(device, args: dict):
    """Entry for :func:`run_in_simulation`: ``device.matmul(**args)`` and its stats."""
    codes = device.matmul(**args)
    return codes, device.last_stats
