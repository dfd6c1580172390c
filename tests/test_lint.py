"""Generated Verilog is lint-clean under verilator --lint-only -Wall, up to the explained waivers.

The co-processor tops are linted as committed under ``hw/<config>/`` (every shipped config;
``tests/test_hw_outputs.py`` proves them equal to what the generator writes today), so the
slow conversion of ``default`` is not repeated here.
"""

from pathlib import Path

import pytest

from generators.build import read_verilog, write_unit
from generators.config import load_config, shipped_configs
from generators.lint import WAIVERS, lint_verilog
from generators.rtl.engine import MacEngine

HW = Path(__file__).resolve().parent.parent / "hw"


def test_engine_verilog_has_only_waived_warnings(tmp_path):
    write_unit(MacEngine.from_config(load_config("xr_npe")), "npe_mac", tmp_path)
    waived, other, raw = lint_verilog(tmp_path / "npe_mac.v", "npe_mac")
    assert not other, f"unwaived lint warnings {dict(other)}:\n{raw[-3000:]}"
    assert all(len(reason) > 40 for reason in WAIVERS.values()), "every waiver needs its reason"


@pytest.mark.slow
@pytest.mark.parametrize("config", shipped_configs())
def test_coprocessor_verilog_has_only_waived_warnings(tmp_path, config):
    top = f"npegen_{config}"
    committed = [p for p in (HW / config).glob(f"{top}.v*")]
    assert len(committed) == 1, f"hw/{config}/ should hold one {top}.v(.gz): {committed}"
    vfile = tmp_path / f"{top}.v"
    vfile.write_text(read_verilog(committed[0]))
    waived, other, raw = lint_verilog(vfile, top)
    assert waived, "expected Amaranth's usual (waived) warnings: is -Wall still passed?"
    assert not other, f"unwaived lint warnings in {top} {dict(other)}:\n{raw[-3000:]}"


def test_lint_catches_a_real_problem(tmp_path):
    # a multiply-driven net is not among the waivers: the checker must report it
    v = tmp_path / "bad.v"
    v.write_text("module bad(input a, output y); assign y = a; assign y = ~a; endmodule\n")
    _, other, _ = lint_verilog(v, "bad")
    assert other
