"""cocotb side of :class:`sw_driver.sim.SimTransport`: serves register and memory requests
from the host's driver, with cocotbext-axi on both buses.

A thread started with ``bridge`` receives requests over the connection; register accesses
and waits are ``resume``-wrapped coroutines, so the simulation runs exactly as long as the
driver's accesses need. Environment: NPEGEN_SERVER (host:port), NPEGEN_SERVER_KEY (hex),
NPEGEN_REGMAP (the design's regmap.json, for the memory size of the bench only).
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from multiprocessing.connection import Client

import cocotb
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from sw_driver.sim import MEM_BASE, MEM_SIZE


@cocotb.test()
async def serve(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst,
                         reset_active_level=True)
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, reset_active_level=True,
                 size=MEM_BASE + MEM_SIZE)
    for bus in (axil, ram):
        for part in (bus.write_if, bus.read_if):
            part.log.setLevel(logging.WARNING)

    # Bus accesses past the memory answer SLVERR (AxiRam's sparse memory would not).
    async def bus_read(address, length):
        if address + length > MEM_BASE + MEM_SIZE:
            raise IOError(f"read beyond the memory at {address:#x}")
        return ram.read(address, length)

    async def bus_write(address, data):
        if address + len(data) > MEM_BASE + MEM_SIZE:
            raise IOError(f"write beyond the memory at {address:#x}")
        ram.write(address, data)

    ram.read_if._read = bus_read
    ram.write_if._write = bus_write
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)

    host, port = os.environ["NPEGEN_SERVER"].rsplit(":", 1)
    conn = Client((host, int(port)), authkey=bytes.fromhex(os.environ["NPEGEN_SERVER_KEY"]))

    async def wait_irq(timeout):
        end = time.monotonic() + timeout
        while not int(dut.irq.value):
            if time.monotonic() > end:
                return False
            await ClockCycles(dut.clk, 16)
        return True

    def check_range(addr, n):
        if addr < MEM_BASE or addr + n > MEM_BASE + MEM_SIZE:
            raise ValueError(f"{n} bytes at {addr:#x} are outside the simulated memory "
                             f"[{MEM_BASE:#x}, {MEM_BASE + MEM_SIZE:#x})")

    def write_mem(addr, data):
        check_range(addr, len(data))
        ram.write(addr, data)

    def read_mem(addr, n):
        check_range(addr, n)
        return bytes(ram.read(addr, n))

    handlers = {
        "read32": resume(axil.read_dword),
        "write32": resume(axil.write_dword),
        "write_mem": write_mem,
        "read_mem": read_mem,
        "wait_irq": resume(wait_irq),
    }

    def serve_loop():
        while True:
            try:
                op, args = conn.recv()
            except EOFError:
                return
            if op == "close":
                return
            try:
                value = handlers[op](*args)
                conn.send(("ok", int(value) if op == "read32" else value))
            except Exception:
                conn.send(("error", traceback.format_exc(limit=3)))

    await bridge(serve_loop)()
    conn.close()
