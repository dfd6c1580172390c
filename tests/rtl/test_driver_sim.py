"""The same driver code against the RTL in simulation (cocotb bridge/resume) and against
the NumPy model: identical output bits and counters, and the model's cycle estimate
equal to the RTL's busy cycles for every job, small ones included."""

import numpy as np
import pytest

from sw_driver.device import Device, DeviceError
from testbenches.matmul_model import random_codes

CASES = [  # (format, out format, M, N, K, bias, relu)
    ("posit8_0", "fp4_e2m1", 5, 3, 19, True, True),
    ("fp4_e2m1", "posit16_1", 6, 7, 130, False, False),
    ("posit16_1", "posit8_0", 4, 5, 40, True, False),
    # Small K, where fixed costs dominate: the loader's command cycles set the pace ...
    ("posit8_0", "posit8_0", 16, 16, 2, False, False),
    ("posit16_1", "posit16_1", 9, 10, 3, False, False),
    # ... or the collector's (one N tile: every tile starts a new row strip, INIT + R·C takes).
    ("fp4_e2m1", "fp4_e2m1", 100, 2, 5, True, False),
    # Nothing but the start, one tile through the engines' latency and the last write.
    ("posit16_1", "posit8_0", 1, 1, 1, False, False),
]


@pytest.fixture(scope="module")
def model():
    return Device.open("model", "tiny")


def test_rtl_matches_model(simulator, model):
    rng = np.random.default_rng(3)
    with Device.open(simulator, "tiny") as rtl:
        for fmt, out, m, n, k, bias, relu in CASES:
            args = dict(a=random_codes(fmt, (m, k), rng), b=random_codes(fmt, (k, n), rng),
                        fmt_a=fmt, out_fmt=out, relu=relu,
                        bias=random_codes(fmt, (n,), rng) if bias else None)
            got, want = rtl.matmul(**args), model.matmul(**args)
            np.testing.assert_array_equal(got.codes, want.codes)
            for name in ("macs", "saturations", "read_bytes", "write_bytes", "compute_cycles"):
                assert getattr(got.stats, name) == getattr(want.stats, name), name
            assert got.stats.compute_cycles <= got.stats.busy_cycles <= got.stats.cycles
            # The estimate models the RTL's units and fixed delays, start and end included,
            # with AxiRam as the memory: on this design it is exact, so that a change of
            # one cycle in the RTL's schedule (or the model's) shows here.
            assert want.stats.busy_cycles == got.stats.busy_cycles, \
                (fmt, m, n, k, want.stats.busy_cycles, got.stats.busy_cycles)


def test_rtl_errors(verilator):
    """Error paths of the driver (the same code for every backend; one simulator)."""
    with Device.open(verilator, "tiny") as rtl:
        with pytest.raises(ValueError, match="not a format of this design"):
            rtl.matmul(np.zeros((2, 2), int), np.zeros((2, 2), int), fmt_a="int8",
                       out_fmt="int8")
        # A refused job: the hardware's own error code, named.
        rtl.write("M", 0)
        rtl.write("CTRL", START=1, IRQ_EN=1)
        assert rtl.wait_done(timeout=60)
        status = rtl.regmap.unpack("STATUS", rtl.read("STATUS"))
        assert status["ERROR"] == rtl.regmap.error_codes["BAD_DIMS"][0]
        rtl.write("STATUS", DONE=1)
        # An AXI error: C placed beyond the simulated memory (A and B inside it).
        from sw_driver.sim import MEM_BASE, MEM_SIZE
        places = iter([MEM_BASE, MEM_BASE + 4096, MEM_BASE + MEM_SIZE + 4096])
        rtl.transport.alloc = lambda n, align=64: next(places)
        with pytest.raises(DeviceError, match="AXI_WRITE"):
            rtl.matmul(np.zeros((2, 2), int), np.zeros((2, 2), int), fmt_a="posit8_0",
                       out_fmt="posit8_0")
        del rtl.transport.alloc
        # ... and the device works on.
        res = rtl.matmul(np.ones((2, 2)), np.ones((2, 2)), fmt_a="posit8_0", out_fmt="posit8_0")
        np.testing.assert_array_equal(res.values, np.full((2, 2), 2.0))


def test_wrong_design_is_refused(verilator):
    """Identity checks (driver code; one simulator)."""
    from generators.config import load_config
    from generators.regmap import build_regmap
    with pytest.raises(DeviceError, match="expected 'default'"):
        Device.open(verilator, "tiny", regmap=build_regmap(load_config("default")))
