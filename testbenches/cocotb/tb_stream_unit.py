"""cocotb test bench for a unit with one input and one output ``amaranth.lib.stream``.

The pytest side (``testbenches.stream_runner``) packs the input payloads, runs this bench
and compares the collected output payloads with a golden model. The bench only moves
words: each cycle it may offer the next input (with probability ``NPEGEN_VALID_PROB``)
and may accept an output (probability ``NPEGEN_READY_PROB``), sampling the handshake in
the read-only phase after the inputs settled, so that combinational ready/valid paths are
seen the same way on Verilator and Icarus.

Environment: ``NPEGEN_IN`` (hex payload per line), ``NPEGEN_OUT`` (written: hex payload
per line), ``NPEGEN_EXPECTED`` (output beats to wait for), ``NPEGEN_SEED``,
``NPEGEN_VALID_PROB``, ``NPEGEN_READY_PROB``, ``NPEGEN_TOGGLES`` (optional: comma-separated
signal paths whose toggles to count; written to ``NPEGEN_OUT`` + ``.toggles``).
"""

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge


def _resolve(dut, path):
    handle = dut
    for part in path.split("."):
        handle = getattr(handle, part)
    return handle


@cocotb.test()
async def stream_unit(dut):
    words = [int(line, 16) for line in open(os.environ["NPEGEN_IN"]) if line.strip()]
    expected = int(os.environ["NPEGEN_EXPECTED"])
    rng = random.Random(int(os.environ.get("NPEGEN_SEED", "1")))
    p_valid = float(os.environ.get("NPEGEN_VALID_PROB", "1"))
    p_ready = float(os.environ.get("NPEGEN_READY_PROB", "1"))
    toggle_paths = [p for p in os.environ.get("NPEGEN_TOGGLES", "").split(",") if p]
    toggles = {p: 0 for p in toggle_paths}
    handles = {p: _resolve(dut, p) for p in toggle_paths}
    last_values = {}

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0

    out = []
    sent = 0
    idle_limit = 10_000 + 50 * len(words)
    cycles = 0
    while len(out) < expected or sent < len(words):
        await FallingEdge(dut.clk)
        offer = sent < len(words) and rng.random() < p_valid
        dut.i__valid.value = int(offer)
        if offer:
            dut.i__payload.value = words[sent]
        dut.o__ready.value = int(rng.random() < p_ready)
        await ReadOnly()
        if offer and dut.i__ready.value:
            sent += 1
        if dut.o__valid.value and dut.o__ready.value:
            out.append(int(dut.o__payload.value))
        for p, h in handles.items():
            v = int(h.value)
            if p in last_values:
                toggles[p] += bin(v ^ last_values[p]).count("1")
            last_values[p] = v
        cycles += 1
        assert cycles < idle_limit, (
            f"no progress: sent {sent} of {len(words)} inputs, got {len(out)} of {expected} "
            f"outputs after {cycles} cycles")
        if len(out) > expected:
            break
    # A few more cycles: any extra output beat is a bug (duplicates).
    for _ in range(8):
        await FallingEdge(dut.clk)
        dut.i__valid.value = 0
        dut.o__ready.value = 1
        await ReadOnly()
        if dut.o__valid.value:
            out.append(int(dut.o__payload.value))
    with open(os.environ["NPEGEN_OUT"], "w") as f:
        f.write("".join(f"{w:x}\n" for w in out))
        f.write(f"# cycles {cycles}\n")
    if toggle_paths:
        with open(os.environ["NPEGEN_OUT"] + ".toggles", "w") as f:
            for p, n in toggles.items():
                f.write(f"{p} {n}\n")
