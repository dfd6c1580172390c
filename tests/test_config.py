"""Tests of generators.config: shipped configs, derived values, every error kind, hashing."""

import copy as copy_module
import dataclasses
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import generators.config as config_module
from generators.config import (
    CONFIG_DIR,
    AxiConfig,
    Config,
    ConfigError,
    EngineConfig,
    config_from_dict,
    config_to_dict,
    format_config,
    load_config,
    shipped_configs,
)
from generators.formats import accumulator_geometry, get_format

BAD_CONFIGS = Path(__file__).parent / "data" / "bad_configs"


def minimal(**engine):
    return {"engine": {"formats": ["int8"], **engine}}


def errors_of(data, **kwargs):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, **kwargs)
    return info.value.errors


# --- shipped configs -------------------------------------------------------------------------

def test_shipped_configs_are_listed():
    assert shipped_configs() == ["default", "tiny", "xr_npe"]


@pytest.mark.parametrize("name", ["default", "tiny", "xr_npe"])
def test_shipped_config_loads(name):
    config = load_config(name)
    assert config.name == name
    assert config.description
    assert config.source == str(CONFIG_DIR / f"{name}.yaml")
    # Derived values are consistent with the formats module, for every format.
    for fmt in config.formats:
        bits = get_format(fmt).bits
        assert config.lanes[fmt] == config.engine.word_bits // bits
        assert config.accumulator_bits[fmt] == accumulator_geometry(
            get_format(fmt), guard_bits=config.engine.guard_bits).width
    assert config.dot_accumulator_bits == max(
        config.accumulator_bits[f] + (config.lanes[f] - 1).bit_length() for f in config.formats)


def test_default_config():
    config = load_config("default")
    assert config.formats == ("fp4_e2m1", "posit4_1", "posit8_0", "posit16_1",
                              "fp8_e4m3", "bf16", "int8")
    assert config.engine.output_formats == config.formats     # null resolves to formats
    assert (config.engine.word_bits, config.engine.guard_bits) == (16, 15)
    assert (config.array.rows, config.array.cols) == (4, 4)
    assert (config.axi.data_bits, config.buffers.k_tile) == (64, 256)
    assert dict(config.lanes) == {"fp4_e2m1": 4, "posit4_1": 4, "posit8_0": 2, "posit16_1": 1,
                                  "fp8_e4m3": 2, "bf16": 1, "int8": 2}
    assert config.modes == (4, 8, 16)
    assert dict(config.lanes_per_mode) == {4: 4, 8: 2, 16: 1}
    # 4 x 4 PEs x lanes.
    assert config.peak_macs_per_cycle["fp4_e2m1"] == 64
    assert config.peak_macs_per_cycle["posit8_0"] == 32
    assert config.peak_macs_per_cycle["bf16"] == 16
    # Quire of <n, es>: 2**(es+2) * (n-2) fraction bits + 15 guard bits + 1 sign bit.
    assert config.accumulator_bits["posit4_1"] == 8 * 2 + 15 + 1 == 32
    assert config.accumulator_bits["posit8_0"] == 4 * 6 + 15 + 1 == 40
    assert config.accumulator_bits["posit16_1"] == 8 * 14 + 15 + 1 == 128
    # Kulisch: fp4 products span 2**-2 (0.5 * 1.5) .. 2**5 (6 * 6 = 36), 7 bits past the LSB.
    assert config.accumulator_bits["fp4_e2m1"] == 7 + 15 + 1 == 23
    # int8 products span 2**0 .. 2**14 ((-128) * (-128)).
    assert config.accumulator_bits["int8"] == 14 + 15 + 1 == 30


def test_xr_npe_config():
    config = load_config("xr_npe")
    assert config.formats == ("fp4_e2m1", "posit4_1", "posit8_0", "posit16_1")
    assert config.modes == (4, 8, 16)
    assert dict(config.peak_macs_per_cycle) == {"fp4_e2m1": 64, "posit4_1": 64,
                                                "posit8_0": 32, "posit16_1": 16}
    # The 128-bit posit16_1 quire (1 lane, no extra dot-product bits) dominates.
    assert config.dot_accumulator_bits == 128


def test_tiny_config():
    config = load_config("tiny")
    assert config.formats == ("fp4_e2m1", "posit8_0", "posit16_1")
    assert (config.array.rows, config.array.cols) == (2, 2)
    assert (config.axi.data_bits, config.axi.max_outstanding_reads) == (32, 2)
    assert config.buffers.k_tile == 16
    assert dict(config.lanes) == {"fp4_e2m1": 4, "posit8_0": 2, "posit16_1": 1}
    assert dict(config.lanes_per_mode) == {4: 4, 8: 2, 16: 1}
    assert dict(config.peak_macs_per_cycle) == {"fp4_e2m1": 16, "posit8_0": 8, "posit16_1": 4}
    assert config.accumulator_bits["posit8_0"] == 40
    assert config.dot_accumulator_bits == 128


def test_defaults_fill_missing_keys_and_sections():
    config = config_from_dict({"engine": {"formats": ["posit8_0"]}, "axi": None})
    assert config.name == "custom"
    assert config.description == ""
    assert config.engine == EngineConfig(formats=("posit8_0",))
    assert (config.engine.word_bits, config.engine.guard_bits,
            config.engine.pipeline_stages) == (16, 15, 3)
    assert config.engine.share_multiplier and config.engine.operand_isolation
    assert (config.array.rows, config.array.cols, config.array.dataflow) == \
        (4, 4, "output_stationary")
    assert config.axi == AxiConfig()
    assert (config.axi.data_bits, config.axi.addr_bits, config.axi.id_bits,
            config.axi.max_burst_beats, config.axi.max_outstanding_reads) == (64, 32, 4, 256, 4)
    assert config.axi.write_burst_beats == 16
    assert (config.buffers.k_tile, config.buffers.slots) == (256, 3)
    assert config.limits.max_dim == 65535


def test_dot_accumulator_adds_lane_carry_bits():
    # int8 only, in 32-bit words: 4 lanes sum into one accumulator, 2 more carry bits.
    config = config_from_dict(minimal(word_bits=32))
    assert config.lanes["int8"] == 4
    assert config.dot_accumulator_bits == config.accumulator_bits["int8"] + 2


def test_guard_bits_reach_the_accumulator():
    narrow = config_from_dict({"engine": {"formats": ["posit8_0"], "guard_bits": 0}})
    wide = config_from_dict({"engine": {"formats": ["posit8_0"], "guard_bits": 64}})
    assert narrow.accumulator_bits["posit8_0"] == 24 + 0 + 1
    assert wide.accumulator_bits["posit8_0"] == 24 + 64 + 1


# --- load by name or path --------------------------------------------------------------------

def test_load_by_name_and_by_path_agree():
    by_name = load_config("tiny")
    by_path = load_config(CONFIG_DIR / "tiny.yaml")
    by_str = load_config(str(CONFIG_DIR / "tiny.yaml"))
    assert by_name == by_path == by_str
    assert by_name.source == by_path.source == by_str.source


def test_name_defaults_to_file_stem(tmp_path):
    text = (CONFIG_DIR / "tiny.yaml").read_text()
    path = tmp_path / "my_design.yaml"
    path.write_text(re.sub(r"(?m)^name:.*\n", "", text))
    config = load_config(path)
    assert config.name == "my_design"
    assert config == dataclasses.replace(load_config("tiny"), name="my_design")


def test_name_from_bad_file_stem(tmp_path):
    path = tmp_path / "My-Design.yaml"
    path.write_text("engine: {formats: [int8]}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.errors == (
        "name: 'My-Design' (taken from the file name) is not accepted; must be lowercase "
        "letters, digits and underscores ([a-z0-9_]+); add a 'name:' key",)
    path.write_text("name: my_design\nengine: {formats: [int8]}\n")
    assert load_config(path).name == "my_design"


def test_unknown_shipped_name_suggests():
    with pytest.raises(ConfigError, match=r"'tiyn' is not a shipped config; did you mean "
                                          r"'tiny'\? \(shipped: default, tiny, xr_npe;"):
        load_config("tiyn")


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="nope.yaml: no such file") as info:
        load_config(path)
    assert info.value.source == str(path)


# --- every error kind: one file each in tests/data/bad_configs -------------------------------

def _expectations(path):
    text = path.read_text()
    expected = re.findall(r"(?m)^# expect: (.*)$", text)
    count = int(re.search(r"(?m)^# errors: (\d+)$", text)[1])
    return expected, count


@pytest.mark.parametrize("path", sorted(BAD_CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_bad_config(path):
    expected, count = _expectations(path)
    assert expected, f"{path.name} has no '# expect:' line"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    error = info.value
    assert error.source == str(path)
    assert str(error) == "\n".join(error.errors)
    for message in expected:
        assert any(message in line for line in error.errors), \
            f"{message!r} not among:\n{error}"
    assert len(error.errors) == count, str(error)


def test_bad_config_files_cover_each_error_kind():
    # A guard so that the table above does not silently shrink.
    assert len(list(BAD_CONFIGS.glob("*.yaml"))) >= 25


def test_all_errors_collected_in_order():
    errors = errors_of({
        "engine": {"word_bits": 12, "formats": ["int8"], "guard_bits": "many"},
        "array": {"rwos": 4},
        "axi": {"data_bits": 256},
    })
    assert errors == (
        "engine.word_bits: 12 is not accepted; must be 8, 16 or 32",
        "engine.guard_bits: expected an integer, got str 'many'",
        "array.rwos: unknown key; did you mean 'rows'? (accepted: rows, cols, dataflow)",
        "axi.data_bits: 256 is not accepted; must be 32, 64 or 128",
    )


def test_unknown_key_without_close_match():
    assert errors_of({**minimal(), "array": {"shape": [4, 4]}}) == (
        "array.shape: unknown key (accepted: rows, cols, dataflow)",)


def test_unknown_format_lists_known_names():
    (error,) = errors_of({"engine": {"formats": ["fp4_e2m1", "posit4_1", "posit8_1x"]}})
    assert error.startswith("engine.formats[2]: unknown format 'posit8_1x'; "
                            "did you mean 'posit8_0'? (known: ")
    for known in ("fp4_e2m1", "posit4_1", "posit8_0", "posit16_1", "fp8_e4m3", "fp8_e5m2",
                  "bf16", "int8", "int4"):
        assert known in error


def test_burst_longer_than_4kib():
    # With today's ranges (<= 256 beats of <= 16 bytes) a burst never exceeds 4 KiB; widen the
    # accepted data widths to show that the check is there for when that changes.
    accept = {f.name: f for f in dataclasses.fields(AxiConfig)}["data_bits"].metadata["accept"]
    original = accept.values
    accept.values = (*original, 256)
    try:
        errors = errors_of({**minimal(), "axi": {"data_bits": 256, "max_burst_beats": 256}})
    finally:
        accept.values = original
    assert errors == (
        "axi.max_burst_beats: 256 beats of axi.data_bits = 256 bits is 8192 bytes, but a "
        "burst cannot cross a 4096-byte boundary; must be at most 128",)


def test_output_format_wider_than_32_bits(monkeypatch):
    # Every format generators.formats knows is at most 32 bits today; lower the limit to show
    # that the check is there.
    monkeypatch.setattr(config_module, "MAX_OUTPUT_BITS", 8)
    assert errors_of({"engine": {"formats": ["int8"], "output_formats": ["int8", "bf16"]}}) == (
        "engine.output_formats[1]: bf16 is 16 bits wide; output formats must be at most 8 bits",)


def test_config_from_dict_of_non_mapping():
    assert errors_of([1, 2]) == (
        "config: expected a mapping of config keys (name, description, engine, array, axi, "
        "buffers, limits), got list [1, 2]",)


def test_direct_construction_is_validated():
    config = load_config("default")
    with pytest.raises(ConfigError, match=r"array: rows \* cols = 64 \* 64 = 4096 PEs"):
        dataclasses.replace(config, array=dataclasses.replace(config.array, rows=64, cols=64))
    with pytest.raises(ConfigError, match="does not fit in a word of engine.word_bits = 8"):
        dataclasses.replace(config, engine=dataclasses.replace(config.engine, word_bits=8))
    with pytest.raises(TypeError, match="Config.axi must be an instance of AxiConfig"):
        dataclasses.replace(config, axi={"data_bits": 64})


def test_config_error_pickles():
    with pytest.raises(ConfigError) as info:
        load_config(BAD_CONFIGS / "many_errors.yaml")
    copy = pickle.loads(pickle.dumps(info.value))
    assert copy.errors == info.value.errors and copy.source == info.value.source
    assert isinstance(copy, ValueError)


# --- typed, frozen, round trip ---------------------------------------------------------------

def test_config_is_frozen_and_hashable():
    config = load_config("tiny")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.name = "other"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.engine.word_bits = 8
    with pytest.raises(TypeError):
        config.lanes["int8"] = 2
    assert isinstance(config.formats, tuple)
    assert {config: 1}[load_config("tiny")] == 1


def test_config_pickles_and_copies():
    config = load_config("tiny")
    config.lanes, config.config_hash        # fill the caches first
    for copy in (pickle.loads(pickle.dumps(config)), copy_module.deepcopy(config)):
        assert copy == config and copy.source == config.source
        assert copy.lanes == config.lanes and copy.config_hash == config.config_hash


def test_lists_become_tuples():
    engine = EngineConfig(formats=["int8", "posit8_0"], output_formats=["bf16"])
    assert engine.formats == ("int8", "posit8_0")
    assert engine.output_formats == ("bf16",)


@pytest.mark.parametrize("name", ["default", "tiny", "xr_npe"])
def test_round_trip(name):
    config = load_config(name)
    data = config_to_dict(config)
    assert config_from_dict(data) == config
    assert json.loads(json.dumps(data)) == data
    derived = config_to_dict(config, derived=True)["derived"]
    assert json.loads(json.dumps(derived)) == derived
    assert derived["config_hash"] == config.config_hash
    assert derived["peak_macs_per_cycle"] == dict(config.peak_macs_per_cycle)


@pytest.mark.parametrize("name", ["default", "tiny", "xr_npe"])
def test_format_config_is_readable_and_loads_back(name):
    config = load_config(name)
    text = format_config(config)
    assert f"0x{config.config_hash:08x}" in text
    assert re.search(r"(?m)^#\s+fp4_e2m1\s+4\s+4\s+\d+\s+\d+$", text)
    assert config_from_dict(yaml.safe_load(text)) == config


# --- config hash -----------------------------------------------------------------------------

def test_hash_is_32_bits_and_differs_between_designs():
    hashes = {name: load_config(name).config_hash for name in shipped_configs()}
    assert all(0 <= h < 2**32 for h in hashes.values())
    assert len(set(hashes.values())) == len(hashes)


def test_hash_ignores_key_order_whitespace_and_names(tmp_path):
    reordered = tmp_path / "reordered.yaml"
    reordered.write_text(
        "limits: {max_dim: 65535}\n"
        "buffers:   {slots: 3,   k_tile: 16}\n"
        "axi:\n"
        "    max_outstanding_reads:   2\n"
        "    write_burst_beats: 4\n"
        "    data_bits: 32\n"
        "array: {cols: 2, rows: 2}\n"
        "engine:\n"
        "    formats:\n"
        "      - fp4_e2m1\n"
        "      - posit8_0\n"
        "      - posit16_1\n"
        "    output_formats: [fp4_e2m1, posit8_0, posit16_1]   # explicit = null\n"
        "    word_bits: 16\n"
        f"    pipeline_stages: {load_config('tiny').engine.pipeline_stages}\n"
        "description: something else entirely\n")
    tiny = load_config("tiny")
    other = load_config(reordered)
    assert other.name == "reordered" and other != tiny
    assert other.config_hash == tiny.config_hash


@pytest.mark.parametrize("section, key, value", [
    ("engine", "guard_bits", 16),
    ("engine", "share_multiplier", False),
    ("engine", "output_formats", ["posit16_1"]),
    ("engine", "formats", ["posit8_0", "fp4_e2m1", "posit16_1"]),    # order = mode encoding
    ("array", "rows", 3),
    ("axi", "id_bits", 5),
    ("buffers", "slots", 2),
    ("limits", "max_dim", 65536),
])
def test_hash_changes_with_hardware(section, key, value):
    tiny = load_config("tiny")
    data = config_to_dict(tiny)
    data[section][key] = value
    assert config_from_dict(data).config_hash != tiny.config_hash


def test_hash_is_stable():
    # The hash is in the hardware and the driver checks it, so it must not depend on the
    # Python process (no hash(), no set order): recompute it in a fresh interpreter.
    code = "from generators.config import load_config; print(load_config('tiny').config_hash)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONHASHSEED": "123"})
    assert int(out.stdout) == load_config("tiny").config_hash


def test_config_imports_no_amaranth():
    code = "import sys, generators.config; print('amaranth' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_pipeline_depth_limit_matches_the_engine():
    from generators.config import MAX_PIPELINE_STAGES as config_max
    from generators.rtl.engine import MAX_PIPELINE_STAGES as engine_max

    assert config_max == engine_max


def test_stages_beside_readout_are_the_engines_check_stages():
    """geometry (no Amaranth) repeats where the engine's registers beside the read-out
    sit ("check", "carries"); the driver's cycle model and engine_latency read them from
    there."""
    from generators.geometry import STAGES_BESIDE_READOUT
    from generators.rtl.engine import PIPELINE_REGISTERS

    check = tuple(n + 2 for n, name in enumerate(PIPELINE_REGISTERS)
                  if name in ("check", "carries"))
    assert STAGES_BESIDE_READOUT == check
