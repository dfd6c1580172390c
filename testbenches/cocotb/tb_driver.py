"""cocotb entry of :func:`sw_driver.sim.run_in_simulation`: runs a driver function in a
thread (``bridge``) against the co-processor RTL, with cocotbext-axi on both buses."""

from __future__ import annotations

import importlib
import json
import logging
import os
import pickle

import cocotb
from cocotb.clock import Clock
from cocotb.task import bridge
from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from generators.regmap import RegisterMap
from sw_driver.device import Device
from sw_driver.sim import MEM_BASE, SimTransport

MEM_SIZE = 16 << 20


@cocotb.test()
async def run_driver(dut):
    call_file = os.environ["NPEGEN_DRIVER_CALL"]
    with open(call_file, "rb") as f:
        call = pickle.load(f)
    regmap = RegisterMap.from_json(json.loads(open(os.environ["NPEGEN_REGMAP"]).read()))
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst,
                         reset_active_level=True)
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, reset_active_level=True,
                 size=MEM_BASE + MEM_SIZE)
    for bus in (axil, ram):
        for part in (bus.write_if, bus.read_if):
            part.log.setLevel(logging.WARNING)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    transport = SimTransport(dut, axil, ram, regmap=regmap, mem_base=MEM_BASE,
                             mem_size=MEM_SIZE, name=os.environ.get("NPEGEN_SIMULATOR", "sim"))
    module, _, name = call["function"].partition(":")
    function = getattr(importlib.import_module(module), name)

    def body():
        device = Device.open(transport, regmap)
        return function(device, call["args"])

    try:
        result = {"value": await bridge(body)()}
    except Exception as exc:        # handed back to the caller, which re-raises it
        result = {"error": exc}
    with open(call_file + ".out", "wb") as f:
        pickle.dump(result, f)
