"""MatmulCore in Amaranth's simulator with a Python model of the DMA streams.

Small designs and shapes only; the AXI-level runs of the whole co-processor on Verilator
and Icarus are in test_coprocessor_cocotb.py.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from generators.formats import get_format
from generators.rtl.matmul import MatmulCore, _is_nan_code
from testbenches.matmul_model import (expected_c, layout_job, memory_image, random_job,
                                      read_c)

TINY = dict(word_bits=16, formats=("fp4_e2m1", "posit8_0", "posit16_1"), guard_bits=15,
            pipeline_stages=2)


def make_core(*, rows=2, cols=2, data_bits=32, k_tile=16, slots=3, write_burst_beats=16,
              **engine):
    params = dict(TINY)
    params.update(engine)
    return MatmulCore(rows=rows, cols=cols, engine=params, data_bits=data_bits, addr_bits=20,
                      k_tile=k_tile, slots=slots, write_burst_beats=write_burst_beats)


def run_jobs(core, jobs, *, seed=0, ready_prob=1.0, data_prob=1.0, latency=0):
    """Run ``jobs`` back to back; returns the memory after each and the event totals."""
    rng = np.random.default_rng(seed)
    D = core.data_bits // 8
    results = []

    async def testbench(ctx):
        for job in jobs:
            end = layout_job(job, data_bytes=D, rng=rng)
            mem = memory_image(job, end + 64, fill_rng=rng)
            j = core.job
            ctx.set(j.m, job.m)
            ctx.set(j.n, job.n)
            ctx.set(j.k, job.k)
            for name in ("a_addr", "b_addr", "c_addr", "bias_addr", "a_stride", "b_stride",
                         "c_stride"):
                ctx.set(getattr(j, name), getattr(job, name))
            ctx.set(j.fmt_a, core.formats.index(job.fmt_a))
            ctx.set(j.fmt_b, core.formats.index(job.fmt_b))
            ctx.set(j.fmt_bias, core.formats.index(job.fmt_bias) if job.bias is not None else 0)
            ctx.set(j.out_fmt, core.output_formats.index(job.out_fmt))
            ctx.set(j.bias, job.bias is not None)
            ctx.set(j.relu, job.relu)
            ctx.set(core.start, 1)
            await ctx.tick()
            ctx.set(core.start, 0)
            pending = []            # [ready_cycle, addr, beats_left, last]
            beats = []
            wr_cmds, wr_beats = [], []
            counts = dict(macs=0, compute=0, saturation=0, write_bursts=[])
            cycle = 0
            while ctx.get(core.busy) or pending or beats:
                cycle += 1
                assert cycle < 200_000, "job did not finish"
                # read command
                ctx.set(core.rd_cmd.ready, 1)
                if ctx.get(core.rd_cmd.valid):
                    addr = ctx.get(core.rd_cmd.payload.addr)
                    n = ctx.get(core.rd_cmd.payload.beats)
                    assert addr % D == 0 and n >= 1
                    for i in range(n):
                        beats.append((cycle + latency, addr + i * D, i == n - 1))
                # read data
                offer = bool(beats) and beats[0][0] <= cycle and rng.random() < data_prob
                ctx.set(core.rd_data.valid, offer)
                if offer:
                    _, addr, last = beats[0]
                    ctx.set(core.rd_data.payload.data, int.from_bytes(mem[addr:addr + D], "little"))
                    ctx.set(core.rd_data.payload.last, last)
                    if ctx.get(core.rd_data.ready):
                        beats.pop(0)
                # writes
                r1 = rng.random() < ready_prob
                r2 = rng.random() < ready_prob
                ctx.set(core.wr_cmd.ready, r1)
                ctx.set(core.wr_data.ready, r2)
                if r1 and ctx.get(core.wr_cmd.valid):
                    n = ctx.get(core.wr_cmd.payload.beats)
                    assert 1 <= n <= core.write_burst_beats
                    counts["write_bursts"].append(n)
                    wr_cmds += [ctx.get(core.wr_cmd.payload.addr) + i * D for i in range(n)]
                if r2 and ctx.get(core.wr_data.valid):
                    wr_beats.append((ctx.get(core.wr_data.payload.data),
                                     ctx.get(core.wr_data.payload.strb)))
                while wr_cmds and wr_beats:
                    addr = wr_cmds.pop(0)
                    data, strb = wr_beats.pop(0)
                    for b in range(D):
                        if strb >> b & 1:
                            mem[addr + b] = (data >> (8 * b)) & 0xFF
                counts["macs"] += ctx.get(core.ev_macs)
                counts["compute"] += ctx.get(core.ev_compute)
                counts["cycles"] = cycle
                counts["saturation"] += ctx.get(core.ev_saturation)
                await ctx.tick()
            assert not wr_cmds and not wr_beats
            results.append((job, mem, counts))

    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return results


def check(core, results):
    for job, mem, counts in results:
        want, flags = expected_c(job, word_bits=core.word_bits, formats=core.formats,
                                 guard_bits=core.pe_params["guard_bits"])
        got = read_c(job, mem)
        bad = np.argwhere(got != want)
        assert bad.size == 0, (
            f"{job.fmt_a}×{job.fmt_b}->{job.out_fmt} M,N,K={job.m},{job.n},{job.k} "
            f"bias={job.bias is not None} relu={job.relu}: {len(bad)} wrong, first at "
            f"{tuple(bad[0])}: got {got[tuple(bad[0])]:#x} want {want[tuple(bad[0])]:#x}")
        assert counts["macs"] == job.m * job.n * job.k
        assert counts["saturation"] == int(flags["saturated"].sum())
        # Each row of C in bursts of write_burst_beats beats, the last one the rest.
        row_beats = -(-job.n * get_format(job.out_fmt).bits // core.data_bits)
        L = core.write_burst_beats
        want_bursts = [L] * (row_beats // L) + ([row_beats % L] if row_beats % L else [])
        assert sorted(counts["write_bursts"]) == sorted(want_bursts * job.m)


@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 2, 8), (3, 5, 7), (5, 3, 40), (4, 4, 33)])
def test_shapes(shape):
    core = make_core()
    rng = np.random.default_rng(sum(shape))
    m, n, k = shape
    jobs = [random_job(rng, core.formats, m=m, n=n, k=k, output_formats=core.output_formats)
            for _ in range(3)]
    check(core, run_jobs(core, jobs, seed=1))


@pytest.mark.parametrize("slots", [1, 2, 3])
@pytest.mark.parametrize("variant", [
    dict(rows=3, cols=2, k_tile=4),                         # many K segments, odd array
    dict(rows=1, cols=3, k_tile=2),
    dict(rows=2, cols=2, data_bits=64, k_tile=8),
])
def test_tiling_variants(variant, slots):
    core = make_core(**variant, slots=slots)
    rng = np.random.default_rng(7)
    jobs = [random_job(rng, core.formats, m=int(rng.integers(1, 7)), n=int(rng.integers(1, 7)),
                       k=int(rng.integers(1, 50)), output_formats=core.output_formats)
            for _ in range(4)]
    check(core, run_jobs(core, jobs, seed=2))


@pytest.mark.parametrize("slots", [1, 2, 3])
def test_backpressure_latency_and_specials(slots):
    core = make_core(k_tile=4, slots=slots)
    rng = np.random.default_rng(11)
    jobs = [random_job(rng, core.formats, m=3, n=5, k=int(k), output_formats=core.output_formats,
                       special_rate=0.05) for k in (9, 30, 2)]
    check(core, run_jobs(core, jobs, seed=3, ready_prob=0.4, data_prob=0.5, latency=7))


@pytest.mark.parametrize("ready_prob", [0.1, 0.15, 0.5])
def test_write_fifo_full_with_a_beat_per_code(ready_prob):
    """N = 1 on one PE column: every code ends its row, so every code the collector takes
    becomes a write beat, one per cycle. With the write side slow the write FIFO fills,
    and the collector must stop taking codes while the codes already taken (in its
    register slices) still fit: a beat written into a full FIFO is lost. (K = 1 keeps
    the tiles' results back to back: the FIFO then fills at a beat per cycle.)"""
    core = make_core(rows=4, cols=1, k_tile=4)
    rng = np.random.default_rng(17)
    jobs = [random_job(rng, core.formats, m=m, n=1, k=k, output_formats=core.output_formats)
            for m, k in ((23, 1), (9, 5), (16, 1), (31, 1))]
    check(core, run_jobs(core, jobs, seed=5, ready_prob=ready_prob))


@pytest.mark.parametrize("cols", [2, 4])
def test_one_pe_row_new_strip_while_a_code_is_in_the_slices(cols):
    """One PE row: every output row is a row strip of its own, and with the write side
    fast the collector sets up the next strip (INIT: the packer emptied, the row address
    set) in the cycle in which the previous strip's last code is in the second register
    slice, writing the same packer and row address. The set-up must win; with padded C
    strides the address the finished row would step to is not the next row's."""
    core = make_core(rows=1, cols=cols, k_tile=4)
    rng = np.random.default_rng(2)
    jobs = [random_job(rng, core.formats, m=m, n=n, k=k, output_formats=core.output_formats)
            for m, n, k in ((7, cols, 1), (5, 2 * cols + 1, 3), (6, cols, 2))]
    check(core, run_jobs(core, jobs, seed=2))


@pytest.mark.parametrize("burst,ready_prob", [(1, 1.0), (2, 0.3), (4, 1.0), (4, 0.5)])
def test_long_rows_in_bursts(burst, ready_prob):
    """Rows of C longer than a burst: each row's beats gathered into bursts of ``burst``
    beats while the other rows' beats come between them (``check`` counts the bursts),
    with the write side slow too (both lines of a row busy: the combiner holds the write
    FIFO, which holds the collector)."""
    core = make_core(rows=3, cols=2, k_tile=4, write_burst_beats=burst)
    rng = np.random.default_rng(23)
    jobs = [random_job(rng, core.formats, m=m, n=n, k=k, output_formats=core.output_formats)
            for m, n, k in ((4, 23, 3), (3, 9, 1), (5, 16, 6))]
    check(core, run_jobs(core, jobs, seed=9, ready_prob=ready_prob))


def test_write_burst_beats_is_checked():
    with pytest.raises(ValueError, match="write_burst_beats must be an integer from 1 to 256, "
                                         "not 0"):
        make_core(write_burst_beats=0)


def test_relu_keeps_overflow_nan():
    """fp8_e4m3 has no infinity: a sum past 448 rounds to a NaN code (0xff when negative),
    which ReLU must keep (a found bug: the engine's NaN-operand flag was tested instead)."""
    core = make_core(formats=("fp8_e4m3", "posit8_0"), word_bits=16)
    fp8 = __import__("generators.formats", fromlist=["get_format"]).get_format("fp8_e4m3")
    rng = np.random.default_rng(5)
    big = fp8.encode(np.array([448.0, -448.0, 240.0, -0.5]))
    jobs = []
    for relu in (True, False):
        a = rng.choice(big, size=(3, 8))
        job = random_job(rng, core.formats, m=3, n=2, k=8, fmt_a="fp8_e4m3", fmt_b="fp8_e4m3",
                         out_fmt="fp8_e4m3", output_formats=core.output_formats, bias=False,
                         relu=relu)
        job.a = a
        job.bt = rng.choice(big, size=(2, 8))
        jobs.append(job)
    results = run_jobs(core, jobs, seed=4)
    check(core, results)
    codes = read_c(jobs[0], results[0][1])
    assert np.any(codes == 0xFF), "the test needs a negative overflow"


def test_third_slot_hides_read_latency():
    """With two slots a step's reads cannot be issued before the step two before it has
    released its slot, so latency and load time must fit into one step's compute; with
    three the loader runs two steps ahead, they get two steps' compute, and only the job's
    first load waits for the latency.

    One K segment (K = 128 fp4 codes = 32 words = k_tile) and 12 N tiles: every step
    reloads B (2 rows of 16 beats, 34 cycles with the commands) and computes 32
    operations, so load time ≈ compute time. Cycle counts are deterministic; measured:
    2 slots 78.4 % → 64.2 % with 20 cycles of latency, 3 slots 80.8 % → 77.9 %.
    """
    def utilization(slots, latency):
        core = make_core(k_tile=32, slots=slots)
        rng = np.random.default_rng(13)
        job = random_job(rng, core.formats, m=2, n=24, k=128, fmt_a="fp4_e2m1",
                         fmt_b="fp4_e2m1", out_fmt="fp4_e2m1",
                         output_formats=core.output_formats, bias=False, relu=False)
        results = run_jobs(core, [job], latency=latency)
        check(core, results)
        counts = results[0][2]
        return counts["compute"] / counts["cycles"]

    two = {lat: utilization(2, lat) for lat in (0, 20)}
    three = {lat: utilization(3, lat) for lat in (0, 20)}
    assert two[20] < two[0] - 0.10, (two, three)            # the latency is exposed ...
    assert three[20] > two[20] + 0.10, (two, three)         # ... and the third slot hides it
    assert three[20] > three[0] - 0.05, (two, three)        # (all but the first load's wait)


@pytest.mark.parametrize("slots", [0, 4, True, 2.0])
def test_slots_are_checked(slots):
    with pytest.raises(ValueError, match=f"slots must be 1, 2 or 3, not {slots!r}"):
        make_core(slots=slots)


@pytest.mark.parametrize("name", ["posit8_0", "posit16_1", "fp8_e4m3", "fp8_e5m2", "bf16",
                                  "fp4_e2m1", "int8"])
def test_is_nan_code(name):
    """The collector's NaN test (ReLU keeps NaNs) against the format's decoder: every code
    of an 8-bit format; for 16 bits every code near the NaN ranges' ends and a stride."""
    from amaranth.hdl import Module, Signal

    fmt = get_format(name)
    bits = fmt.bits
    codes = np.arange(1 << bits)
    if bits > 8:
        nans = np.flatnonzero(np.isnan(fmt.decode(codes)))
        ends = np.concatenate([nans[:1], nans[-1:], [0, 1 << (bits - 1)]])
        near = (ends[:, None] + np.arange(-3, 4)[None, :]).ravel()
        codes = np.unique(np.concatenate([codes[::97], near % (1 << bits),
                                          [(1 << bits) - 1, (1 << (bits - 1)) - 1]]))
    m = Module()
    code = Signal(bits)
    out = Signal()
    m.d.comb += out.eq(_is_nan_code(name, code))
    got = []

    async def testbench(ctx):
        for c in codes:
            ctx.set(code, int(c))
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    want = np.isnan(fmt.decode(codes))
    assert want.any() or name in ("fp4_e2m1", "int8")
    bad = [fmt.describe(int(c)) for c, g, w in zip(codes, got, want) if g != w]
    assert not bad, bad[:10]


@pytest.mark.parametrize("rows,cols", [(4, 1), (1, 4), (2, 2)])
def test_stalled_pes_take_every_operation_once(rows, cols):
    """Many one-operation tiles with the write side slow: the collector falls behind, the
    PEs' output FIFOs fill up to their admission limit and the PEs stall. The collector
    takes the PEs' results one after another, so they become ready again a cycle or more
    apart: across rows (each row's register slice must take every operation together with
    the other rows' slices) and within a row (each PE takes the row slice's operation when
    it is ready; the slice moves on when all have). An operation taken twice, or skipped,
    shows in the results."""
    core = make_core(rows=rows, cols=cols, k_tile=4)
    rng = np.random.default_rng(23)
    jobs = [random_job(rng, core.formats, m=rows * 40, n=cols, k=k,
                       output_formats=core.output_formats)
            for k in (1, 3)]
    check(core, run_jobs(core, jobs, seed=9, ready_prob=0.15))


def test_no_pe_register_loads_a_constant():
    """The core feeds its PEs constants (every operation a dot product); no flip-flop may
    load one. Such a bit resets to the other value, survives synthesis and is alike in
    every PE, so Yosys merged those of xr_npe's 16 PEs into single flip-flops, each a net
    across the chip (18.9 ns of routing on the 85F). The PEs are dot-only engines, which
    carry no dot flag. (Seen failing with the dot flag in the PEs' control registers.)"""
    from generators.build import to_verilog
    from generators.rtl.engine import MAX_PIPELINE_STAGES
    from generators.synth import constant_register_bits

    core = make_core(rows=1, cols=2, pipeline_stages=MAX_PIPELINE_STAGES)
    assert core.pe_params["dot_only"]
    assert constant_register_bits(to_verilog(core, "core"), "core") == []
