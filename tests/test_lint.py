"""Generated Verilog is lint-clean under verilator --lint-only -Wall, up to the explained waivers.

The co-processor tops of ``tiny`` and ``xr_npe`` are linted here. The ``default`` top is
linted only by ``npegen lint`` (``make lint``): generating it takes minutes and linting it
more than a minute, too slow for the suite.
"""

import pytest

from generators.build import to_verilog, write_unit
from generators.config import load_config
from generators.lint import WAIVERS, lint_verilog
from generators.rtl.coprocessor import Coprocessor
from generators.rtl.engine import MacEngine


def test_engine_verilog_has_only_waived_warnings(tmp_path):
    write_unit(MacEngine.from_config(load_config("xr_npe")), "npe_mac", tmp_path)
    waived, other, raw = lint_verilog(tmp_path / "npe_mac.v", "npe_mac")
    assert not other, f"unwaived lint warnings {dict(other)}:\n{raw[-3000:]}"
    assert all(len(reason) > 40 for reason in WAIVERS.values()), "every waiver needs its reason"


@pytest.mark.slow
@pytest.mark.parametrize("config", ["tiny", "xr_npe"])
def test_coprocessor_verilog_has_only_waived_warnings(tmp_path, config):
    top = f"npegen_{config}"
    vfile = tmp_path / f"{top}.v"
    vfile.write_text(to_verilog(Coprocessor(load_config(config)), top, separator="_"))
    waived, other, raw = lint_verilog(vfile, top)
    assert waived, "expected Amaranth's usual (waived) warnings: is -Wall still passed?"
    assert not other, f"unwaived lint warnings in {top} {dict(other)}:\n{raw[-3000:]}"


def test_lint_catches_a_real_problem(tmp_path):
    # a multiply-driven net is not among the waivers: the checker must report it
    v = tmp_path / "bad.v"
    v.write_text("module bad(input a, output y); assign y = a; assign y = ~a; endmodule\n")
    _, other, _ = lint_verilog(v, "bad")
    assert other
