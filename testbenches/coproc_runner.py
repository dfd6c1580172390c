"""Running co-processor jobs on the generated Verilog under cocotb (tests and benchmarks).

A *plan* is a list of steps (jobs, bad programming, soft resets ...) run in one simulation
by testbenches/cocotb/tb_coprocessor.py against cocotbext-axi's AxiRam and AxiLiteMaster;
:func:`run_plan` writes it, runs it and returns what the bench recorded.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np

from generators.build import write_unit
from generators.config import config_from_dict, config_to_dict, load_config
from generators.formats import get_format
from generators.regmap import FORMAT_IDS, write_regmap
from generators.rtl.coprocessor import Coprocessor
from sw_driver.packing import row_bytes
from testbenches.matmul_model import Job, layout_job, memory_image
from testbenches.sim import BUILD_ROOT, _locked, build, run_cocotb

__all__ = ["DESIGNS", "design", "job_regs", "c_region", "matmul_step", "run_plan"]

def _default_1x2():
    """The reference design's engine (all seven formats), AXI and buffers on a 1×2 array:
    the reference arithmetic at an eighth of the build and simulation cost."""
    data = config_to_dict(load_config("default"))
    data.update(name="default_1x2", array={"rows": 1, "cols": 2})
    return config_from_dict(data)


# tiny: the test design (2×2 PEs, 32-bit AXI, three formats); default_1x2: every format of
# the reference design; default: the reference design itself (16 PEs: benchmarks).
DESIGNS = {
    "tiny": lambda: Coprocessor(load_config("tiny")),
    "default_1x2": lambda: Coprocessor(_default_1x2()),
    "default": lambda: Coprocessor(load_config("default")),
    "xr_npe": lambda: Coprocessor(load_config("xr_npe")),
}
_generated: dict = {}


def _generator_digest(top) -> str:
    """Hash of everything the generated Verilog depends on: the generator sources, the
    Amaranth version and the design's configuration."""
    import hashlib
    import json
    from importlib import metadata

    from generators.config import config_to_dict
    root = Path(__file__).resolve().parents[1] / "generators"
    h = hashlib.sha256()
    for src in sorted(root.rglob("*.py")):
        h.update(str(src.relative_to(root)).encode() + b"\0" + src.read_bytes())
    h.update(metadata.version("amaranth").encode())
    h.update(json.dumps(config_to_dict(top.config), sort_keys=True).encode())
    h.update(json.dumps(top.engine, sort_keys=True, default=str).encode())
    return h.hexdigest()


def design(name):
    """``(Coprocessor, directory with npegen_top.v and regmap.json)`` of a test design.

    Generating the reference design takes minutes, so the output is kept in
    ``build/gen/coproc_<name>`` with the digest of its inputs, and reused while they are
    unchanged (also across processes: a simulation transport, a benchmark, the tests).
    """
    if name not in _generated:
        # A test design by name, else any config (a shipped name or a YAML path).
        top = DESIGNS[name]() if name in DESIGNS else Coprocessor(load_config(name))
        out = BUILD_ROOT.parent / "gen" / f"coproc_{top.config.name}"
        digest = _generator_digest(top)
        stamp = out / ".digest"
        if not (stamp.exists() and stamp.read_text() == digest
                and (out / "npegen_top.v").exists() and (out / "regmap.json").exists()):
            out.mkdir(parents=True, exist_ok=True)
            with _locked(out.parent / f".coproc_{name}.lock"):
                if not (stamp.exists() and stamp.read_text() == digest):
                    print(f"generating the {name} co-processor ...", file=sys.stderr, flush=True)
                    write_unit(top, "npegen_top", out, separator="_")
                    write_regmap(top.config, out)
                    stamp.write_text(digest)
        # Where the Verilog is reused, only the component's attributes (register map,
        # config) are read: it is never elaborated, and Amaranth's UnusedElaboratable
        # warning (at garbage collection) would be noise. (As MatmulCore does for its probe.)
        top._MustUse__silence = True
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


