"""The co-processor's generated Verilog under cocotb on Verilator and Icarus, driven only
through cocotbext-axi (AxiLiteMaster for the registers, AxiRam as memory).

Each test builds a *plan* of jobs here (golden results from testbenches.golden), runs it in
one simulation (testbenches/cocotb/tb_coprocessor.py) and checks every result bit for bit,
plus status, interrupts and counters.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import require_simulator

from generators.formats import get_format
from generators.regmap import ERROR_CODES, FORMAT_IDS
from sw_driver.packing import row_bytes
from testbenches.coproc_runner import design, matmul_step, run_plan
from testbenches.matmul_model import expected_c, random_job, read_c

ERR = {name: code for name, (code, _) in ERROR_CODES.items()}

def check_ident(top, ident):
    rm = top.regmap
    assert ident["ID"] == 0x4E504547
    assert ident["CONFIG_HASH"] == top.config.config_hash & 0xFFFFFFFF
    caps = rm.unpack("CAPS_ARRAY", ident["CAPS_ARRAY"])
    assert (caps["ROWS"], caps["COLS"]) == (top.config.array.rows, top.config.array.cols)


def check_matmul(top, step, res):
    job = step["job"]
    assert res["waited"] >= 0, f"job M,N,K={job.m},{job.n},{job.k} did not finish"
    assert res["status"]["ERROR"] == 0, f"error {res['status']['ERROR']} for a good job"
    assert res["status"]["DONE"] == 1 and res["status"]["BUSY"] == 0
    assert res["irq_after_clear"] == 0
    want, flags = expected_c(job, word_bits=top.engine["word_bits"], formats=top.engine["formats"],
                             guard_bits=top.engine["guard_bits"])
    mem = bytearray(step["read"][0] + len(res["data"]))
    mem[step["read"][0]:] = res["data"]
    got = read_c(job, mem)
    bad = np.argwhere(got != want)
    assert bad.size == 0, (
        f"{job.fmt_a}×{job.fmt_b}->{job.out_fmt} M,N,K={job.m},{job.n},{job.k} bias="
        f"{job.fmt_bias} relu={job.relu}: {len(bad)} of {want.size} wrong; first at "
        f"{tuple(int(i) for i in bad[0])}: got {int(got[tuple(bad[0])]):#x}, "
        f"want {int(want[tuple(bad[0])]):#x}")
    # The padding of the last byte of a C row is written as 0.
    out_bits = get_format(job.out_fmt).bits
    if job.n * out_bits % 8:
        rb = row_bytes(job.n, out_bits)
        for r in range(job.m):
            assert res["data"][r * job.c_stride + rb - 1] >> 4 == 0
    c = res["counters"]
    assert c["MACS"] == job.m * job.n * job.k
    assert c["SATURATIONS"] == int(flags["saturated"].sum())
    assert c["COMPUTE_CYCLES"] <= c["BUSY_CYCLES"] <= c["CYCLES"]
    assert c["READ_STALL_CYCLES"] <= c["BUSY_CYCLES"]
    assert c["WRITE_STALL_CYCLES"] <= c["BUSY_CYCLES"]
    assert c["READ_BYTES"] > 0 and c["WRITE_BYTES"] >= job.m * row_bytes(job.n, out_bits) // 2
    assert sorted(res["write_bursts"]) == sorted(write_bursts(top, job))


def write_bursts(top, job):
    """The AXI write bursts ``(address, beats)`` of a job's results: each row of C in lines of
    ``axi.write_burst_beats`` beats (the last of a row the rest), each line one burst
    unless it crosses a 4 KiB boundary (or is longer than ``axi.max_burst_beats``)."""
    axi = top.config.axi
    db = axi.data_bits // 8
    row_beats = -(-row_bytes(job.n, get_format(job.out_fmt).bits) // db)
    out = []
    for r in range(job.m):
        for j in range(0, row_beats, axi.write_burst_beats):
            addr = job.c_addr + r * job.c_stride + j * db
            left = min(axi.write_burst_beats, row_beats - j)
            while left:
                beats = min(left, (4096 - addr % 4096) // db, axi.max_burst_beats)
                out.append((addr, beats))
                addr, left = addr + beats * db, left - beats
    return out


def random_jobs(top, rng, shapes, **kw):
    e = top.engine
    return [random_job(rng, e["formats"], m=m, n=n, k=k, output_formats=e["output_formats"], **kw)
            for m, n, k in shapes]


SHAPES = [(1, 1, 1), (2, 2, 16), (3, 5, 7), (7, 3, 13), (1, 9, 31), (5, 1, 2), (4, 6, 33),
          (2, 3, 64), (3, 2, 100)]


def test_jobs_every_format(simulator):
    """Random shapes (1×1×1, primes, non-multiples of the array and lanes) in every input
    format with several output formats, bias and ReLU; back to back, switching precision
    between jobs as a mixed-precision network does."""
    top, _ = design("tiny")
    rng = np.random.default_rng(1)
    jobs = []
    for fmt in top.engine["formats"]:
        outs = list(top.engine["output_formats"])
        for shape in SHAPES[: (9 if simulator == "verilator" else 4)]:
            out_fmt = outs[rng.integers(len(outs))]
            jobs.append(random_job(rng, top.engine["formats"], m=shape[0], n=shape[1],
                                   k=shape[2], fmt_a=fmt, out_fmt=out_fmt,
                                   output_formats=outs))
    steps = []
    base = 0x100
    for job in jobs:
        st = matmul_step(top, job, rng, base=base)
        base = st["end"]
        steps.append(st)
    top, out = run_plan(simulator, "tiny", steps, tag="formats")
    check_ident(top, out["ident"])
    for st, res in zip(steps, out["results"]):
        check_matmul(top, st, res)


@pytest.mark.parametrize("sim,pause,latency", [
    ("verilator", 0.3, 0), ("verilator", 0.0, 20), ("verilator", 0.5, 9),
    ("icarus", 0.3, 0), ("icarus", 0.0, 20)],      # the combined one: Verilator only (time)
    ids=["verilator-backpressure", "verilator-latency20", "verilator-both",
         "icarus-backpressure", "icarus-latency20"])
def test_backpressure_and_latency(sim, pause, latency):
    """Random idle/backpressure on all five AXI channels and on the register bus, and a
    memory with extra read latency."""
    simulator = require_simulator(sim)
    top, _ = design("tiny")
    rng = np.random.default_rng(2)
    jobs = random_jobs(top, rng, [(3, 5, 40), (5, 2, 9), (2, 4, 70)], special_rate=0.02)
    steps, base = [], 0x100
    for job in jobs:
        st = matmul_step(top, job, rng, base=base)
        base = st["end"]
        steps.append(st)
    top, out = run_plan(simulator, "tiny", steps, pause=pause, latency=latency,
                        tag=f"bp{pause}-{latency}")
    for st, res in zip(steps, out["results"]):
        check_matmul(top, st, res)


def _bad_cases(top, good_regs):
    """Each bad programming: (name, register overrides, expected error)."""
    db = top.data_bytes
    max_dim = top.config.limits.max_dim
    rm = top.regmap
    fmt = rm.unpack("FORMAT", good_regs["FORMAT"])
    missing = next(i for n, i in FORMAT_IDS.items() if n not in top.engine["formats"])
    other_width = next(FORMAT_IDS[f] for f in top.engine["formats"]
                       if get_format(f).bits != 4)
    return [
        ("M=0", {"M": 0}, "BAD_DIMS"),
        ("K=0", {"K": 0}, "BAD_DIMS"),
        ("N>max", {"N": max_dim + 1}, "BAD_DIMS"),
        ("format not built", {"FORMAT": rm.pack("FORMAT", **{**fmt, "A": missing})}, "BAD_FORMAT"),
        ("format id 0", {"FORMAT": rm.pack("FORMAT", **{**fmt, "OUT": 0})}, "BAD_FORMAT"),
        ("A/B widths differ", {"FORMAT": rm.pack("FORMAT", **{**fmt, "B": other_width})},
         "BAD_FORMAT"),
        ("bias width differs", {"FORMAT": rm.pack("FORMAT", **{**fmt, "BIAS": other_width}),
                                "FLAGS": rm.pack("FLAGS", BIAS=1)}, "BAD_FORMAT"),
        ("A misaligned", {"A_ADDR_LO": good_regs["A_ADDR_LO"] + 1}, "MISALIGNED"),
        ("C stride misaligned", {"C_STRIDE": good_regs["C_STRIDE"] + db // 2}, "MISALIGNED"),
        ("A stride too small", {"A_STRIDE": 0}, "BAD_STRIDE"),
        ("C beyond the address space", {"C_ADDR_LO": (1 << top.config.axi.addr_bits) - db},
         "BAD_ADDRESS"),
        ("B HI word", {"B_ADDR_HI": 1}, "BAD_ADDRESS"),
        # (M - 1) · stride alone reaches the end of a 32-bit address space, from the
        # stride's high half (the check multiplies the rows by each half of the stride)
        *([("A rows beyond the address space", {"A_STRIDE": 1 << 31}, "BAD_ADDRESS")]
          if top.config.axi.addr_bits == 32 else []),
    ]


def test_bad_programming_is_refused(simulator):
    """Every bad programming sets its error code and DONE, touches no memory, and the
    next good job runs."""
    top, _ = design("tiny")
    rng = np.random.default_rng(3)
    job = random_job(rng, top.engine["formats"], m=3, n=3, k=8, fmt_a="fp4_e2m1",
                     fmt_b="fp4_e2m1", output_formats=top.engine["output_formats"], bias=False)
    good = matmul_step(top, job, rng)
    cases = _bad_cases(top, good["regs"])
    steps = []
    for name, override, err in cases:
        steps.append({"kind": "bad", "regs": {**good["regs"], **override}, "end": good["end"],
                      "snapshot": True, "expect": err, "name": name})
    steps.insert(0, dict(good, kind="matmul"))      # memory image and a reference run
    steps.append(dict(good, kind="matmul"))
    top, out = run_plan(simulator, "tiny", steps, tag="bad")
    res = out["results"]
    check_matmul(top, steps[0], res[0])
    image = None
    for st, r in zip(steps[1:-1], res[1:-1]):
        assert r["status"]["ERROR"] == ERR[st["expect"]], \
            f"{st['name']}: error {r['status']['ERROR']}, expected {st['expect']}"
        assert r["status"]["DONE"] == 1 and r["status"]["BUSY"] == 0
        assert r["counters"]["READ_BYTES"] == r["counters"]["WRITE_BYTES"] == 0, st["name"]
        if image is not None:
            assert r["memory"] == image, f"{st['name']}: memory changed"
        image = r["memory"]
    check_matmul(top, steps[-1], res[-1])


def test_axi_errors_abort_cleanly(simulator):
    """SLVERR on a read and on a write (AxiRam answers SLVERR beyond its size): the job
    ends with AXI_READ / AXI_WRITE, nothing hangs, and the next job is right."""
    top, _ = design("tiny")
    rng = np.random.default_rng(4)
    jobs = random_jobs(top, rng, [(4, 4, 40)] * 3, bias=False)
    steps = [matmul_step(top, j, rng) for j in jobs]
    size = max(s["end"] for s in steps) + 0x1000
    far = (size + 0x10000) & ~0xFFF
    steps[0]["regs"]["B_ADDR_LO"] = far             # reads beyond the memory
    steps[0]["kind"] = "axi_error"
    steps[1]["regs"]["C_ADDR_LO"] = far             # writes beyond the memory
    steps[1]["kind"] = "axi_error"
    steps[1]["read"] = None
    steps[0]["read"] = None
    steps[0]["memory"] = steps[1]["memory"] = None
    for s in steps[:2]:
        s["job_kept"] = s.pop("job")
    top, out = run_plan(simulator, "tiny", steps, tag="axierr")
    r0, r1, r2 = out["results"]
    assert r0["waited"] >= 0 and r0["status"]["ERROR"] == ERR["AXI_READ"]
    assert r1["waited"] >= 0 and r1["status"]["ERROR"] == ERR["AXI_WRITE"]
    check_matmul(top, steps[2], r2)


def test_busy_start_and_soft_reset(simulator):
    """START while busy is refused with BUSY and the running job's results are right;
    SOFT_RESET mid-job returns to idle without DONE, and the next job is right."""
    top, _ = design("tiny")
    rng = np.random.default_rng(5)
    jobs = random_jobs(top, rng, [(6, 6, 90), (6, 6, 90), (3, 4, 20)], bias=True)
    steps = [matmul_step(top, j, rng) for j in jobs]
    steps[0]["kind"] = "busy_start"
    steps[1]["kind"] = "soft_reset"
    steps[1]["after"] = 300
    steps[1]["read"] = None
    top, out = run_plan(simulator, "tiny", steps, tag="busy")
    r0, r1, r2 = out["results"]
    assert r0["status_running"]["BUSY"] == 1 and r0["status_running"]["ERROR"] == ERR["BUSY"]
    r0 = dict(r0, status=dict(r0["status"], ERROR=0))   # the refused START's code stays
    check_matmul(top, steps[0], r0)
    assert out["results"][0]["status"]["ERROR"] == ERR["BUSY"]
    assert r1["busy_before"] == 1
    assert r1["status"]["BUSY"] == 0 and r1["status"]["ERROR"] == 0
    check_matmul(top, steps[2], r2)


def test_reference_formats(simulator):
    """Every format of the reference design (its engine, 64-bit AXI and k_tile on a 1×2
    array; the full 4×4 reference design runs in bench/bench_utilization.py), each with
    another output format, bias and ReLU at random."""
    top, _ = design("default_1x2")
    rng = np.random.default_rng(6)
    shapes = [(5, 9, 33), (8, 3, 64), (3, 7, 17), (4, 4, 40), (2, 5, 300), (6, 5, 11),
              (1, 1, 1)]
    if simulator == "icarus":       # two 537-bit bf16 quires run at ~300 cycles/s there
        shapes = [(3, 3, 9), (2, 3, 20), (3, 2, 7), (2, 2, 16), (1, 3, 5), (3, 1, 12),
                  (1, 1, 1)]
    steps, base = [], 0x100
    for fmt, shape in zip(top.engine["formats"], shapes):
        job = random_job(rng, top.engine["formats"], m=shape[0], n=shape[1], k=shape[2],
                         fmt_a=fmt, output_formats=top.engine["output_formats"],
                         special_rate=0.01)
        st = matmul_step(top, job, rng, base=base)
        base = st["end"]
        steps.append(st)
    top, out = run_plan(simulator, "default_1x2", steps, tag="ref")
    check_ident(top, out["ident"])
    for st, res in zip(steps, out["results"]):
        check_matmul(top, st, res)
