"""The driver's Device over the NumPy model of the co-processor (no HDL involved)."""

import numpy as np
import pytest

from generators.config import load_config
from sw_driver.device import Device, DeviceError
from sw_driver.model import ModelTransport
from testbenches import golden
from testbenches.matmul_model import random_codes


@pytest.fixture(scope="module")
def tiny():
    return Device.open(ModelTransport(load_config("tiny")))


def test_open_checks_identity():
    default = ModelTransport(load_config("default"))
    tiny_map = ModelTransport(load_config("tiny")).regmap
    with pytest.raises(DeviceError, match="CONFIG_HASH reads .* different config"):
        Device.open(default, tiny_map)
    assert Device.open(default).formats == tuple(load_config("default").formats)


@pytest.mark.parametrize("fmt,out", [("fp4_e2m1", "posit16_1"), ("posit8_0", "fp4_e2m1"),
                                     ("posit16_1", "posit8_0")])
def test_matmul_matches_golden(tiny, fmt, out):
    rng = np.random.default_rng(0)
    m, n, k = 5, 7, 37
    a = random_codes(fmt, (m, k), rng)
    b = random_codes(fmt, (k, n), rng)
    bias = random_codes(fmt, (n,), rng)
    got = tiny.matmul(a, b, fmt_a=fmt, out_fmt=out, bias=bias, relu=True)
    geo = tiny.transport.geometry.mode_of(fmt)
    want, _ = golden.matmul(fmt, a, fmt, b, out, lanes=geo.lanes, geometry=geo.dot,
                            bias_fmt=fmt, bias=bias, relu=True)
    np.testing.assert_array_equal(got, want)
    s = tiny.last_stats
    assert s.macs == m * n * k and s.compute_cycles > 0 and s.read_bytes > 0


def test_floats_are_encoded(tiny):
    a = np.array([[1.0, 2.0], [0.5, -1.0]])
    b = np.array([[1.0, 0.0], [1.0, 1.0]])
    got = tiny.matmul(a, b, fmt_a="posit8_0", out_fmt="posit16_1")
    from generators.formats import get_format
    np.testing.assert_array_equal(get_format("posit16_1").decode(got), a @ b)


def test_bad_arguments_are_named(tiny):
    with pytest.raises(ValueError, match="int8.*not a format of this design"):
        tiny.matmul(np.zeros((2, 2), int), np.zeros((2, 2), int), fmt_a="int8", out_fmt="int8")
    with pytest.raises(ValueError, match="same width"):
        tiny.matmul(np.zeros((2, 2), int), np.zeros((2, 2), int), fmt_a="fp4_e2m1",
                    fmt_b="posit8_0", out_fmt="posit8_0")
    with pytest.raises(ValueError, match="inner dimensions differ"):
        tiny.matmul(np.zeros((2, 3), int), np.zeros((2, 2), int), fmt_a="posit8_0",
                    out_fmt="posit8_0")


def test_hardware_refusal_raises_named_error(tiny):
    dev = tiny
    dev.write("M", 0)
    dev.write("CTRL", START=1)
    status = dev.regmap.unpack("STATUS", dev.read("STATUS"))
    assert status["DONE"] == 1 and status["ERROR"] == dev.regmap.error_codes["BAD_DIMS"][0]
    dev.write("STATUS", DONE=1)
