"""cocotb bench of the co-processor top level, driven only through cocotbext-axi.

The pytest side (tests/rtl/test_coprocessor_cocotb.py) writes a *plan* (a pickle of job
descriptions, memory images included) and reads back a pickle of what happened; the
comparison against the golden model is done there. Environment:

NPEGEN_PLAN       the plan file; results go to ``<plan>.out``
NPEGEN_REGMAP     the design's regmap.json (the bench programs registers by name)
NPEGEN_PAUSE      probability that each AXI channel of the memory and of the register
                  master pauses in a cycle (idle/backpressure on all channels)
NPEGEN_LATENCY    extra cycles of read latency added by the memory (0 = AxiRam as is)
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from generators.regmap import RegisterMap

COUNTERS = ("CYCLES", "BUSY_CYCLES", "COMPUTE_CYCLES", "READ_STALL_CYCLES",
            "WRITE_STALL_CYCLES", "MACS", "SATURATIONS", "READ_BYTES", "WRITE_BYTES")


class TB:
    def __init__(self, dut, mem_size: int):
        self.dut = dut
        self.regmap = RegisterMap.from_json(json.loads(open(os.environ["NPEGEN_REGMAP"]).read()))
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst,
                                  reset_active_level=True)
        self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst,
                          reset_active_level=True, size=mem_size)
        # cocotbext-axi logs every burst at INFO: that costs more time than the simulation.
        for bus in (self.axil, self.ram):
            for part in (bus.write_if, bus.read_if):
                part.log.setLevel(logging.WARNING)
        self._errors_beyond(mem_size)
        latency = int(os.environ.get("NPEGEN_LATENCY", "0"))
        if latency:
            self._add_read_latency(latency)
        pause = float(os.environ.get("NPEGEN_PAUSE", "0"))
        if pause:
            self.set_pause(pause)
        self.write_bursts = []          # (AWADDR, beats) of every AW handshake
        cocotb.start_soon(self._watch_aw())

    async def _watch_aw(self):
        dut = self.dut
        while True:
            await RisingEdge(dut.clk)
            if int(dut.m_axi_awvalid.value) and int(dut.m_axi_awready.value):
                self.write_bursts.append((int(dut.m_axi_awaddr.value),
                                          int(dut.m_axi_awlen.value) + 1))

    def _errors_beyond(self, size: int):
        """Accesses past the end of the memory answer SLVERR (AxiRam's sparse memory
        would silently return zeros), for error injection."""
        ram = self.ram

        async def read(address, length):
            if address + length > size:
                raise IOError(f"read beyond the memory at {address:#x}")
            return ram.read(address, length)

        async def write(address, data):
            if address + len(data) > size:
                raise IOError(f"write beyond the memory at {address:#x}")
            ram.write(address, data)

        ram.read_if._read = read
        ram.write_if._write = write

    def _add_read_latency(self, cycles: int):
        """A memory with a pipelined read latency: each read burst's data starts no
        earlier than ``cycles`` cycles after its AR handshake, while later bursts keep
        streaming (AxiRam alone answers after about 2 cycles)."""
        dut = self.dut
        arrivals = []
        clock = {"now": 0}

        async def monitor():
            while True:
                await RisingEdge(dut.clk)
                clock["now"] += 1
                if int(dut.m_axi_arvalid.value) and int(dut.m_axi_arready.value):
                    arrivals.append(clock["now"])

        cocotb.start_soon(monitor())
        channel = self.ram.read_if.ar_channel
        original = channel.recv

        async def recv():
            ar = await original()
            due = arrivals.pop(0) + cycles if arrivals else 0
            if clock["now"] < due:
                await ClockCycles(dut.clk, due - clock["now"])
            return ar

        channel.recv = recv

    def set_pause(self, prob: float, seed: int = 1):
        rng = random.Random(seed)

        def gen():
            while True:
                yield rng.random() < prob

        ifs = [self.ram.write_if.aw_channel, self.ram.write_if.w_channel,
               self.ram.write_if.b_channel, self.ram.read_if.ar_channel,
               self.ram.read_if.r_channel, self.axil.write_if.aw_channel,
               self.axil.write_if.w_channel, self.axil.write_if.b_channel,
               self.axil.read_if.ar_channel, self.axil.read_if.r_channel]
        for ch in ifs:
            ch.set_pause_generator(gen())

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 4)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)

    async def write(self, name: str, value: int = 0, **fields):
        if fields:
            value = self.regmap.pack(name, **fields)
        await self.axil.write_dword(self.regmap.offset(name), value)

    async def read(self, name: str) -> int:
        return await self.axil.read_dword(self.regmap.offset(name))

    async def counters(self) -> dict:
        out = {}
        for name in COUNTERS:
            lo = await self.read(name + "_LO")
            hi = await self.read(name + "_HI")
            out[name] = (hi << 32) | lo
        return out

    async def wait_done(self, max_cycles: int) -> int:
        """Wait for irq (IRQ_EN is set); returns the cycles waited, -1 on timeout."""
        waited = 0
        while not int(self.dut.irq.value):
            if waited >= max_cycles:
                return -1
            await ClockCycles(self.dut.clk, 16)
            waited += 16
        return waited


async def program(tb: TB, regs: dict):
    for name, value in regs.items():
        await tb.write(name, value)


@cocotb.test()
async def run_plan(dut):
    plan_file = os.environ["NPEGEN_PLAN"]
    with open(plan_file, "rb") as f:
        plan = pickle.load(f)
    tb = TB(dut, plan["mem_size"])
    await tb.reset()
    results = []
    ident = {name: await tb.read(name) for name in ("ID", "VERSION", "CONFIG_HASH",
                                                     "CAPS_FORMATS", "CAPS_ARRAY",
                                                     "CAPS_BUFFER", "MAX_DIM")}
    await tb.write("CTRL", IRQ_EN=1)
    for step in plan["steps"]:
        kind = step["kind"]
        res = {"kind": kind}
        if step.get("memory") is not None:
            tb.ram.write(0, step["memory"])
        before = await tb.counters()
        bursts_before = len(tb.write_bursts)
        await program(tb, step["regs"])
        if kind == "soft_reset":
            await tb.write("CTRL", START=1, IRQ_EN=1)
            await ClockCycles(dut.clk, step["after"])
            res["busy_before"] = (await tb.read("STATUS")) & 1
            await tb.write("CTRL", SOFT_RESET=1, IRQ_EN=1)
            waited = 0
            while (await tb.read("STATUS")) & 1:
                waited += 1
                assert waited < 10_000, "soft reset did not return to idle"
            res["status"] = tb.regmap.unpack("STATUS", await tb.read("STATUS"))
        else:
            await tb.write("CTRL", START=1, IRQ_EN=1)
            if kind == "busy_start":
                await ClockCycles(dut.clk, step.get("after", 5))
                await tb.write("CTRL", START=1, IRQ_EN=1)
                res["status_running"] = tb.regmap.unpack("STATUS", await tb.read("STATUS"))
            res["waited"] = await tb.wait_done(step.get("max_cycles", 2_000_000))
            res["status"] = tb.regmap.unpack("STATUS", await tb.read("STATUS"))
            await tb.write("STATUS", DONE=1)        # write 1 to clear
            res["irq_after_clear"] = int(dut.irq.value)
        after = await tb.counters()
        res["counters"] = {k: after[k] - before[k] for k in COUNTERS}
        res["write_bursts"] = tb.write_bursts[bursts_before:]
        if step.get("read") is not None:
            addr, size = step["read"]
            res["data"] = tb.ram.read(addr, size)
        if step.get("snapshot"):
            res["memory"] = tb.ram.read(0, plan["mem_size"])
        results.append(res)
    with open(plan_file + ".out", "wb") as f:
        pickle.dump({"ident": ident, "results": results}, f)
