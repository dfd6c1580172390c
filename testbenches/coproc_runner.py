"""Running co-processor jobs on the generated Verilog under cocotb (tests and benchmarks).

A *plan* is a list of steps (jobs, bad programming, soft resets ...) run in one simulation
by testbenches/cocotb/tb_coprocessor.py against cocotbext-axi's AxiRam and AxiLiteMaster;
:func:`run_plan` writes it, runs it and returns what the bench recorded.
"""

from __future__ import annotations

import pickle

import numpy as np

from generators.build import write_unit
from generators.config import load_config
from generators.formats import get_format
from generators.regmap import FORMAT_IDS, write_regmap
from generators.rtl.coprocessor import Coprocessor
from sw_driver.packing import row_bytes
from testbenches.matmul_model import Job, layout_job, memory_image
from testbenches.sim import BUILD_ROOT, build, run_cocotb

__all__ = ["DESIGNS", "design", "job_regs", "c_region", "matmul_step", "run_plan"]

# tiny: the test design (2×2 PEs, 32-bit AXI, three formats); default: the reference.
DESIGNS = {
    "tiny": lambda: Coprocessor(load_config("tiny")),
    "default": lambda: Coprocessor(load_config("default")),
}
_generated: dict = {}


def design(name):
    if name not in _generated:
        top = DESIGNS[name]()
        out = BUILD_ROOT.parent / "gen" / f"coproc_{name}"
        write_unit(top, "npegen_top", out, separator="_")
        write_regmap(top.config, out)
        _generated[name] = (top, out)
    return _generated[name]


def job_regs(top, job: Job) -> dict:
    rm = top.regmap
    regs = {"M": job.m, "N": job.n, "K": job.k}
    for name in ("a", "b", "c", "bias"):
        addr = getattr(job, f"{name}_addr")
        regs[f"{name.upper()}_ADDR_LO"] = addr & 0xFFFFFFFF
        regs[f"{name.upper()}_ADDR_HI"] = addr >> 32
    for name in ("a", "b", "c"):
        regs[f"{name.upper()}_STRIDE"] = getattr(job, f"{name}_stride")
    regs["FORMAT"] = rm.pack("FORMAT", A=FORMAT_IDS[job.fmt_a], B=FORMAT_IDS[job.fmt_b],
                             OUT=FORMAT_IDS[job.out_fmt],
                             BIAS=FORMAT_IDS[job.fmt_bias] if job.bias is not None else 0)
    regs["FLAGS"] = rm.pack("FLAGS", BIAS=int(job.bias is not None), RELU=int(job.relu))
    return regs


def c_region(job):
    return job.c_addr, (job.m - 1) * job.c_stride + row_bytes(job.n, get_format(job.out_fmt).bits)


def matmul_step(top, job, rng, base=0x100):
    end = layout_job(job, data_bytes=top.data_bytes, base=base, rng=rng)
    return {"kind": "matmul", "job": job, "regs": job_regs(top, job), "end": end,
            "read": c_region(job)}


def run_plan(simulator, name, steps, *, pause=0.0, latency=0, tag="plan", seed=0):
    top, out = design(name)
    mem_size = max(s.get("end", 0) for s in steps) + 0x1000
    rng = np.random.default_rng(seed)
    for s in steps:
        if s["kind"] in ("matmul", "busy_start", "soft_reset") and "job" in s:
            s["memory"] = bytes(memory_image(s["job"], mem_size, fill_rng=rng))
    built = build(simulator, [out / "npegen_top.v"], "npegen_top")
    work = built.build_dir / f"run-{tag}"
    work.mkdir(parents=True, exist_ok=True)
    plan_file = work / "plan.pkl"
    plain = [{k: v for k, v in s.items() if k != "job"} for s in steps]
    plan_file.write_bytes(pickle.dumps({"mem_size": mem_size, "steps": plain}))
    run_cocotb(built, "tb_coprocessor", work_dir=work, env={
        "NPEGEN_PLAN": str(plan_file), "NPEGEN_REGMAP": str(out / "regmap.json"),
        "NPEGEN_PAUSE": str(pause), "NPEGEN_LATENCY": str(latency)})
    out_data = pickle.loads((work / "plan.pkl.out").read_bytes())
    return top, out_data


