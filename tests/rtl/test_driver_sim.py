"""The same driver code against the RTL in simulation (cocotb bridge/resume) and against
the NumPy model: identical results and counters."""

import numpy as np
import pytest

from generators.config import load_config
from sw_driver.device import Device, DeviceError
from sw_driver.model import ModelTransport
from sw_driver.sim import run_in_simulation
from testbenches.matmul_model import random_codes


def test_driver_in_simulation_matches_model(simulator):
    rng = np.random.default_rng(3)
    a = random_codes("posit8_0", (5, 19), rng)
    b = random_codes("posit8_0", (19, 3), rng)
    bias = random_codes("posit8_0", (3,), rng)
    args = dict(a=a, b=b, fmt_a="posit8_0", out_fmt="fp4_e2m1", bias=bias, relu=True)
    codes, stats = run_in_simulation("tiny", "sw_driver.sim:matmul_job", simulator=simulator,
                                     args=args, tag="driver-test")
    model = Device.open(ModelTransport(load_config("tiny")))
    np.testing.assert_array_equal(codes, model.matmul(**args))
    ms = model.last_stats
    for name in ("macs", "saturations", "read_bytes", "write_bytes", "compute_cycles"):
        assert getattr(stats, name) == getattr(ms, name), name
    assert stats.busy_cycles >= stats.compute_cycles


def test_driver_in_simulation_reports_errors(simulator):
    if simulator == "icarus":
        pytest.skip("error reporting is the same driver code; Verilator covers it")
    with pytest.raises(ValueError, match="not a format of this design"):
        run_in_simulation("tiny", "sw_driver.sim:matmul_job", simulator=simulator,
                          args=dict(a=np.zeros((2, 2), int), b=np.zeros((2, 2), int),
                                    fmt_a="int8", out_fmt="int8"), tag="driver-err")
