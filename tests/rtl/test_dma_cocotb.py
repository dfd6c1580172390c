"""The AXI4 read/write DMA (generators.rtl.dma) under cocotb with cocotbext-axi's AxiRam,
on Verilator and on Icarus, through the memory-copy harness testbenches.dma_harness.

Three harness builds cover data widths 32/64/128, max_burst_beats 16/256/13 (not a power
of two) and max_outstanding 4/2/1; each is generated once per session and built once per
simulator (testbenches.sim caches builds by content). The cocotb tests are in
testbenches/cocotb/tb_dma.py.
"""

from __future__ import annotations

import pytest

from generators.build import write_unit
from generators.lint import lint_verilog
from generators.rtl.dma import AxiReadDma, AxiWriteDma
from testbenches.dma_harness import DmaCopyHarness
from testbenches.sim import BUILD_ROOT, build, run_cocotb

VARIANTS = {
    "d32_b16": dict(data_width=32, max_burst_beats=16, max_outstanding=4),
    "d64_b256": dict(data_width=64, max_burst_beats=256, max_outstanding=2),
    "d128_b13": dict(data_width=128, max_burst_beats=13, max_outstanding=1),
}
TESTS = ("copies", "errors", "abort", "throughput")
# The Python side (bench and AxiRam) dominates the run time, so Icarus is not slower here
# and runs the same amount; lower its share here if that changes.
SCALE = {"verilator": 1.0, "icarus": 1.0}
_generated: dict = {}


def harness_verilog(variant: str):
    if variant not in _generated:
        out = BUILD_ROOT.parent / "gen" / f"dma_{variant}"
        write_unit(DmaCopyHarness(addr_width=32, **VARIANTS[variant]), "dma_harness", out,
                   separator="_")
        _generated[variant] = out / "dma_harness.v"
    return _generated[variant]


@pytest.mark.rtl
@pytest.mark.parametrize("test", TESTS)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_dma(simulator, variant, test):
    params = VARIANTS[variant]
    built = build(simulator, [harness_verilog(variant)], "dma_harness")
    run_cocotb(built, "tb_dma", testcase=test, env={
        "NPEGEN_DMA_MAX_BURST": str(params["max_burst_beats"]),
        "NPEGEN_DMA_MAX_OUTSTANDING": str(params["max_outstanding"]),
        "NPEGEN_DMA_SEED": str(sum(map(ord, variant))),
        "NPEGEN_DMA_SCALE": str(SCALE[simulator]),
    })


def test_dma_verilog_has_only_waived_warnings(tmp_path):
    write_unit(DmaCopyHarness(addr_width=32, **VARIANTS["d64_b256"]), "dma_harness", tmp_path,
               separator="_")
    waived, other, raw = lint_verilog(tmp_path / "dma_harness.v", "dma_harness")
    assert not other, f"unwaived lint warnings {dict(other)}:\n{raw[-3000:]}"


@pytest.mark.parametrize("cls", [AxiReadDma, AxiWriteDma])
@pytest.mark.parametrize("kwargs,message", [
    (dict(data_width=48), "data_width must be 32, 64 or 128, not 48"),
    (dict(data_width=256), "data_width must be 32, 64 or 128, not 256"),
    (dict(addr_width=8), "addr_width must be an integer from 12 to 64, not 8"),
    (dict(id_width=0), "id_width must be an integer from 1 to 16, not 0"),
    (dict(max_burst_beats=0), "max_burst_beats must be an integer from 1 to 256, not 0"),
    (dict(max_burst_beats=257), "max_burst_beats must be an integer from 1 to 256, not 257"),
    (dict(max_outstanding=17), "max_outstanding must be an integer from 1 to 16, not 17"),
    (dict(max_outstanding=True), "max_outstanding must be an integer from 1 to 16, not True"),
    (dict(len_bits=0), "len_bits must be an integer from 1 to 32, not 0"),
])
def test_parameters_are_checked(cls, kwargs, message):
    args = dict(addr_width=32, data_width=32)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        cls(**args)


def test_public_members():
    rd = AxiReadDma(addr_width=40, data_width=64, id_width=4, max_burst_beats=100,
                    max_outstanding=3)
    wr = AxiWriteDma(addr_width=40, data_width=64, id_width=4)
    assert set(rd.signature.members) == {"cmd", "data", "bus", "abort", "error", "idle", "beat"}
    assert set(wr.signature.members) == set(rd.signature.members)
    assert rd.cmd.payload.shape().size == 40 + 24
    assert set(dict(wr.data.payload.shape())) == {"data", "strb"}
    assert set(dict(rd.data.payload.shape())) == {"data", "last"}
    assert rd.bus.signature.addr_width == 40 and rd.bus.signature.id_width == 4
