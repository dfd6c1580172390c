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
    with pytest.raises(DeviceError, match=r"CONFIG_HASH reads .* holds a design .*4x4 PEs.*"
                                          r"expected 'tiny'"):
        Device.open(default, regmap=tiny_map)
    assert Device.open(default).formats == tuple(load_config("default").formats)


@pytest.mark.parametrize("fmt,out", [("fp4_e2m1", "posit16_1"), ("posit8_0", "fp4_e2m1"),
                                     ("posit16_1", "posit8_0")])
def test_matmul_matches_golden(tiny, fmt, out):
    rng = np.random.default_rng(0)
    m, n, k = 5, 7, 37
    a = random_codes(fmt, (m, k), rng)
    b = random_codes(fmt, (k, n), rng)
    bias = random_codes(fmt, (n,), rng)
    got = tiny.matmul(a, b, fmt_a=fmt, out_fmt=out, bias=bias, relu=True).codes
    geo = tiny.transport.geometry.mode_of(fmt)
    want, _ = golden.matmul(fmt, a, fmt, b, out, lanes=geo.lanes, geometry=geo.dot,
                            bias_fmt=fmt, bias=bias, relu=True)
    np.testing.assert_array_equal(got, want)
    s = tiny.last_stats
    assert s.macs == m * n * k and s.compute_cycles > 0 and s.read_bytes > 0


def test_floats_are_encoded(tiny):
    a = np.array([[1.0, 2.0], [0.5, -1.0]])
    b = np.array([[1.0, 0.0], [1.0, 1.0]])
    res = tiny.matmul(a, b, fmt_a="posit8_0", out_fmt="posit16_1")
    np.testing.assert_array_equal(res.values, a @ b)


def test_large_shapes_split_into_jobs():
    dev = Device.open("model", "tiny")
    dev.max_dim = 8                 # pretend a small hardware limit: M, N split, K refused
    rng = np.random.default_rng(1)
    a = random_codes("posit8_0", (19, 5), rng)
    b = random_codes("posit8_0", (5, 11), rng)
    res = dev.matmul(a, b, fmt_a="posit8_0", out_fmt="posit16_1", bias=np.ones(11))
    assert res.jobs == 3 * 2
    whole = Device.open("model", "tiny").matmul(a, b, fmt_a="posit8_0", out_fmt="posit16_1",
                                                bias=np.ones(11))
    np.testing.assert_array_equal(res.codes, whole.codes)
    assert res.stats.macs == 19 * 5 * 11
    with pytest.raises(ValueError, match="K = 9 is more than .* second rounding"):
        dev.matmul(np.zeros((2, 9), int), np.zeros((9, 2), int), fmt_a="posit8_0",
                   out_fmt="posit8_0")


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


@pytest.mark.parametrize("fmt", ["fp4_e2m1", "posit4_1", "posit8_0", "fp8_e4m3", "int8",
                                 "posit16_1", "bf16"])
def test_fast_matmul_equals_golden(fmt):
    """The model's fast path (exact float64 BLAS on integer grids) against the golden model,
    with bias, ReLU and every output format; special codes take the golden path."""
    from generators.geometry import engine_geometry
    from sw_driver.model import fast_matmul
    cfg = load_config("default")
    geo = engine_geometry(word_bits=16, formats=cfg.formats, guard_bits=15).mode_of(fmt)
    rng = np.random.default_rng(7)
    for special in (0.0, 0.02):
        a = random_codes(fmt, (9, 70), rng, special_rate=special)
        bt = random_codes(fmt, (11, 70), rng, special_rate=special)
        bias = random_codes(fmt, (11,), rng)
        for out in cfg.formats:
            got, _ = fast_matmul(fmt, a, fmt, bt, out, geometry=geo.dot, lanes=geo.lanes,
                                 bias_fmt=fmt, bias=bias, relu=out == "posit8_0")
            want, _ = golden.matmul(fmt, a, fmt, bt.T, out, lanes=geo.lanes, geometry=geo.dot,
                                    bias_fmt=fmt, bias=bias, relu=out == "posit8_0")
            np.testing.assert_array_equal(got, want, err_msg=f"{fmt} -> {out}")


def test_fast_matmul_limbs_bf16_narrow_range():
    """bf16 with values spanning ~2^-20..2^8 takes the multi-limb path; equal to golden."""
    from generators.formats import get_format
    from generators.geometry import engine_geometry
    from sw_driver.model import fast_matmul
    cfg = load_config("default")
    geo = engine_geometry(word_bits=16, formats=cfg.formats, guard_bits=15).mode_of("bf16")
    rng = np.random.default_rng(9)
    bf = get_format("bf16")
    a = bf.encode(rng.normal(size=(7, 40)) * 2.0 ** rng.integers(-20, 8, size=(7, 40)))
    bt = bf.encode(rng.normal(size=(5, 40)) * 2.0 ** rng.integers(-20, 8, size=(5, 40)))
    bias = bf.encode(rng.normal(size=5))
    for out in ("bf16", "posit8_0", "fp4_e2m1"):
        got, _ = fast_matmul("bf16", a, "bf16", bt, out, geometry=geo.dot, lanes=1,
                             bias_fmt="bf16", bias=bias)
        want, _ = golden.matmul("bf16", a, "bf16", bt.T, out, lanes=1, geometry=geo.dot,
                                bias_fmt="bf16", bias=bias)
        np.testing.assert_array_equal(got, want, err_msg=out)


def test_cycle_estimate_models_slots_and_latency():
    """The estimate follows the buffer slots and the read latency: with two slots 20 cycles
    of latency are exposed once per step, a third slot hides them (the RTL measured 79.5 %
    at 256³ in 4-bit mode with two slots and 20 cycles; this shape has the same steps).
    Without extra latency a third slot still helps when a tile loads about as long as a
    step computes: it also hides the DMA's own delay from command to data (the RTL of
    ``tiny`` with two slots is as much slower as the model says, to the cycle)."""
    import dataclasses
    cfg = load_config("default")
    rng = np.random.default_rng(2)
    m, n, k = 16, 256, 256
    a = random_codes("fp4_e2m1", (m, k), rng)
    b = random_codes("fp4_e2m1", (k, n), rng)
    bias = random_codes("fp4_e2m1", (n,), rng)
    util = {}
    for slots in (1, 2, 3):
        design = dataclasses.replace(cfg, buffers=dataclasses.replace(cfg.buffers, slots=slots))
        for latency in (0, 20):
            dev = Device.open(ModelTransport(design, read_latency=latency))
            s = dev.matmul(a, b, fmt_a="fp4_e2m1", out_fmt="fp4_e2m1", bias=bias).stats
            util[slots, latency] = s.compute_cycles / s.busy_cycles
    assert util[1, 0] < 0.6 * util[2, 0]                  # no overlap at all
    assert util[3, 0] > util[2, 0] > 0.85                 # the DMA's own delay hidden
    assert util[2, 20] < util[2, 0] - 0.08                # exposed once per step
    assert abs(util[2, 20] - 0.795) < 0.01                # as the RTL measured
    assert util[3, 20] > util[3, 0] - 0.01                # hidden
    with pytest.raises(ValueError, match="read_latency must be a non-negative integer"):
        ModelTransport(cfg, read_latency=-1)


def test_a_job_that_never_finishes_times_out():
    """A device that never sets DONE: the wait times out, the driver soft-resets it and
    raises, naming the job."""
    from sw_driver.model import ModelTransport

    class Stuck(ModelTransport):
        def _start(self):           # START is accepted and nothing ever happens
            pass

    dev = Device.open(Stuck(load_config("tiny")), timeout=0.2)
    with pytest.raises(DeviceError, match=r"job M,N,K=2,2,3 did not finish in 0.2 s; the "
                                          r"co-processor was soft-reset"):
        dev.matmul(np.zeros((2, 3), int), np.zeros((3, 2), int), fmt_a="posit8_0",
                   out_fmt="posit8_0")
