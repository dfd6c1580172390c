"""The register map: structure, pack/unpack, JSON, C header and Markdown (pure Python)."""

import json
import shutil
import subprocess
import sys

import pytest

from generators.config import config_from_dict, load_config, shipped_configs
from generators.formats import FORMATS, get_format
from generators.regmap import (
    ERROR_CODES,
    FORMAT_IDS,
    ID_VALUE,
    MEMORY_LAYOUT,
    REGMAP_VERSION,
    Counter,
    Field,
    Register,
    RegisterMap,
    build_regmap,
    write_regmap,
)

CONFIGS = shipped_configs()

#: Not shipped: every CAPS value different from the shipped configs' (rows != cols, etc.),
#: and output formats different from the input formats.
ASYMMETRIC = {
    "name": "asymmetric",
    "engine": {"word_bits": 32, "formats": ["int8", "bf16", "fp8_e5m2"],
               "output_formats": ["bf16", "posit16_2"], "guard_bits": 7},
    "array": {"rows": 2, "cols": 8},
    "axi": {"data_bits": 128, "addr_bits": 40},
    "buffers": {"k_tile": 128},
    "limits": {"max_dim": 1000},
}

COUNTERS = ("CYCLES", "BUSY_CYCLES", "COMPUTE_CYCLES", "READ_STALL_CYCLES",
            "WRITE_STALL_CYCLES", "MACS", "SATURATIONS", "READ_BYTES", "WRITE_BYTES")


@pytest.fixture(params=CONFIGS + ["asymmetric"])
def cfg(request):
    if request.param == "asymmetric":
        return config_from_dict(ASYMMETRIC)
    return load_config(request.param)


@pytest.fixture
def rm(cfg):
    return build_regmap(cfg)


def test_shipped_configs_are_covered():
    assert {"default", "tiny"} <= set(CONFIGS)


def test_format_ids_complete_and_unique():
    assert set(FORMAT_IDS) == set(FORMATS), "every format needs an id, and only formats"
    ids = list(FORMAT_IDS.values())
    assert len(set(ids)) == len(ids)
    assert 0 not in ids and max(ids) < 16    # CAPS_FORMATS.IN/OUT have 16 bits


def test_error_codes():
    codes = [code for code, _ in ERROR_CODES.values()]
    assert codes == list(range(len(codes))), "codes are 0, 1, 2, ... in order"
    assert ERROR_CODES["OK"][0] == 0
    assert all(doc for _, doc in ERROR_CODES.values())


def test_no_overlaps_and_layout(rm):
    offsets = [r.offset for r in rm.registers]
    assert len(set(offsets)) == len(offsets)
    assert offsets == sorted(offsets)
    assert all(o % 4 == 0 and o < 1 << rm.addr_bits for o in offsets)
    assert rm.addr_bits == 12 and rm.data_bits == 32
    for reg in rm.registers:
        used = 0
        for f in reg.fields:
            assert 0 <= f.lsb and f.lsb + f.width <= 32
            assert used & f.mask == 0, f"{reg.name}.{f.name} overlaps"
            used |= f.mask
            assert f.doc, f"{reg.name}.{f.name} has no doc"
            assert 0 <= f.reset < 1 << f.width
        assert reg.doc, f"{reg.name} has no doc"


def test_offsets_as_specified(rm):
    expected = {
        "ID": 0x000, "VERSION": 0x004, "CONFIG_HASH": 0x008, "CAPS_FORMATS": 0x00C,
        "CAPS_ARRAY": 0x010, "CAPS_BUFFER": 0x014, "MAX_DIM": 0x018, "CTRL": 0x020,
        "STATUS": 0x024, "M": 0x030, "N": 0x034, "K": 0x038,
        "A_ADDR_LO": 0x040, "A_ADDR_HI": 0x044, "B_ADDR_LO": 0x048, "B_ADDR_HI": 0x04C,
        "C_ADDR_LO": 0x050, "C_ADDR_HI": 0x054, "BIAS_ADDR_LO": 0x058, "BIAS_ADDR_HI": 0x05C,
        "A_STRIDE": 0x060, "B_STRIDE": 0x064, "C_STRIDE": 0x068, "FORMAT": 0x070,
        "FLAGS": 0x074,
    }
    for i, name in enumerate(COUNTERS):
        expected[name + "_LO"] = 0x080 + 8 * i
        expected[name + "_HI"] = 0x084 + 8 * i
    assert {r.name: r.offset for r in rm.registers} == expected
    assert [c.name for c in rm.counters] == list(COUNTERS)
    for c in rm.counters:
        assert rm.offset(c.name) == c.offset == rm.offset(c.lo)
        assert rm.offset(c.hi) == c.offset + 4
        assert rm.register(c.lo).kind == "counter_lo"
        assert rm.register(c.hi).kind == "counter_hi"


def test_field_access(rm):
    def acc(reg, field):
        return rm.field(reg, field).access
    assert [acc("CTRL", f) for f in ("START", "SOFT_RESET", "CLEAR_COUNTERS", "IRQ_EN")] == \
        ["w1p", "w1p", "w1p", "rw"]
    assert rm.field("CTRL", "IRQ_EN").lsb == 8
    assert [acc("STATUS", f) for f in ("BUSY", "DONE", "ERROR")] == ["ro", "w1c", "ro"]
    err = rm.field("STATUS", "ERROR")
    assert (err.lsb, err.width) == (8, 8)
    assert dict(err.values) == {name: code for name, (code, _) in ERROR_CODES.items()}
    for name in ("M", "N", "K", "A_ADDR_LO", "BIAS_ADDR_HI", "C_STRIDE"):
        assert rm.register(name).fields == (Field("VALUE", 0, 32, "rw",
                                                  doc=rm.field(name, "VALUE").doc),)
    assert [(f.name, f.lsb, f.width) for f in rm.register("FORMAT").fields] == \
        [("A", 0, 8), ("B", 8, 8), ("OUT", 16, 8), ("BIAS", 24, 8)]
    assert [(f.name, f.lsb, f.width) for f in rm.register("FLAGS").fields] == \
        [("BIAS", 0, 1), ("RELU", 1, 1)]


def test_caps_match_config(cfg, rm):
    def const(reg):
        r = rm.register(reg)
        assert all(f.access == "const" for f in r.fields)
        return rm.unpack(reg, r.reset)
    assert ID_VALUE == 0x4E504547
    assert const("ID") == {"VALUE": ID_VALUE}
    assert const("VERSION") == dict(zip(("MAJOR", "MINOR", "PATCH"), REGMAP_VERSION))
    assert const("CONFIG_HASH") == {"VALUE": cfg.config_hash & 0xFFFFFFFF}
    caps = const("CAPS_FORMATS")
    in_ids = {FORMAT_IDS[get_format(n).name] for n in cfg.engine.formats}
    out_ids = {FORMAT_IDS[get_format(n).name] for n in cfg.engine.output_formats}
    assert {i for i in range(16) if caps["IN"] >> i & 1} == in_ids
    assert {i for i in range(16) if caps["OUT"] >> i & 1} == out_ids
    assert const("CAPS_ARRAY") == {"ROWS": cfg.array.rows, "COLS": cfg.array.cols,
                                   "WORD_BITS": cfg.engine.word_bits,
                                   "DATA_BYTES": cfg.axi.data_bits // 8}
    assert const("CAPS_BUFFER") == {"K_TILE": cfg.buffers.k_tile,
                                    "GUARD_BITS": cfg.engine.guard_bits,
                                    "ADDR_BITS": cfg.axi.addr_bits}
    assert const("MAX_DIM") == {"VALUE": cfg.limits.max_dim}
    assert rm.config_name == cfg.name and rm.config_hash == cfg.config_hash


def test_pack_unpack_round_trip(rm):
    import random
    rnd = random.Random(1)
    for reg in rm.registers:
        for _ in range(20):
            values = {f.name: rnd.randrange(1 << f.width) for f in reg.fields}
            word = rm.pack(reg.name, **values)
            assert 0 <= word < 1 << 32
            assert rm.unpack(reg.name, word) == values
    assert rm.pack("VERSION", MAJOR=1, MINOR=2, PATCH=3) == 0x010203
    assert rm.pack("CTRL", START=1, IRQ_EN=1) == 0x101
    assert rm.pack("STATUS", ERROR="AXI_WRITE", DONE=True) == 0x0802
    assert rm.unpack("FORMAT", 0x04030201) == {"A": 1, "B": 2, "OUT": 3, "BIAS": 4}
    assert rm.pack("CTRL") == 0


def test_pack_errors(rm):
    with pytest.raises(ValueError, match=r"register CTRL has no field 'STRAT'; did you mean "
                                         r"'START'\? \(fields: START, SOFT_RESET, "
                                         r"CLEAR_COUNTERS, IRQ_EN\)"):
        rm.pack("CTRL", STRAT=1)
    with pytest.raises(ValueError, match=r"FORMAT\.A: value 256 \(0x100\) does not fit in the "
                                         r"field's 8 bits \(0\.\.255\)"):
        rm.pack("FORMAT", A=256)
    with pytest.raises(ValueError, match="does not fit"):
        rm.pack("CTRL", START=2)
    with pytest.raises(ValueError, match="does not fit"):
        rm.pack("M", VALUE=-1)
    with pytest.raises(ValueError, match="unknown value name 'NOPE'"):
        rm.pack("STATUS", ERROR="NOPE")
    with pytest.raises(ValueError, match="must be an integer"):
        rm.pack("M", VALUE=1.5)
    with pytest.raises(ValueError, match="no register 'CRTL'; did you mean 'CTRL'"):
        rm.pack("CRTL", START=1)
    with pytest.raises(ValueError, match="not a 32-bit register value"):
        rm.unpack("CTRL", 1 << 32)
    with pytest.raises(ValueError, match="register CTRL has no field 'GO'"):
        rm.field("CTRL", "GO")


def test_bad_maps_rejected():
    f = Field("VALUE", 0, 32, "rw", doc="x")
    with pytest.raises(ValueError, match="both at offset 0x004"):
        RegisterMap((Register("A", 4, (f,)), Register("B", 4, (f,))), "x", 0)
    with pytest.raises(ValueError, match="overlap"):
        Register("A", 0, (Field("X", 0, 4, "rw"), Field("Y", 3, 2, "rw")))
    with pytest.raises(ValueError, match="do not fit in a 32-bit register"):
        Field("X", 30, 4, "rw")
    with pytest.raises(ValueError, match="access must be one of"):
        Field("X", 0, 1, "wo")
    with pytest.raises(ValueError, match="outside the 4096-byte window"):
        RegisterMap((Register("A", 4096, (f,)),), "x", 0)
    lo, _ = Counter("C", 0x80).registers()
    with pytest.raises(ValueError, match="needs C_HI at 0x84"):
        RegisterMap((lo,), "x", 0)


def test_json_round_trip(rm):
    text = rm.json_text()
    data = json.loads(text)
    back = RegisterMap.from_json(data)
    assert back == rm
    assert back.json_text() == text
    assert back.counters == rm.counters
    # the pairing of counter halves is explicit in the JSON
    regs = {r["name"]: r for r in data["registers"]}
    for c in data["counters"]:
        assert regs[c["lo"]]["kind"] == "counter_lo" and regs[c["lo"]]["counter"] == c["name"]
        assert regs[c["hi"]]["kind"] == "counter_hi" and regs[c["hi"]]["counter"] == c["name"]
        assert regs[c["hi"]]["offset"] == regs[c["lo"]]["offset"] + 4 == c["hi_offset"]
    assert data["formats"] == dict(FORMAT_IDS)
    assert [e["name"] for e in data["errors"]] == list(ERROR_CODES)


def test_regmap_does_not_import_amaranth():
    code = ("import sys, generators.regmap as r, generators.config as c; "
            "r.build_regmap(c.load_config('default')); "
            "assert not any(m.split('.')[0] == 'amaranth' for m in sys.modules), "
            "sorted(m for m in sys.modules if m.startswith('amaranth'))")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_markdown(rm):
    md = rm.markdown()
    for reg in rm.registers:
        assert f"`0x{reg.offset:03X}` {reg.name}" in md
        for f in reg.fields:
            assert f.doc in md, f"{reg.name}.{f.name} doc missing"
    for name, (code, doc) in ERROR_CODES.items():
        assert f"| {code} | {name} | {doc} |" in md
    for name, ident in FORMAT_IDS.items():
        assert f"| {ident} | {name} |" in md
    assert MEMORY_LAYOUT in md
    assert "Programming sequence" in md and "CTRL.START" in md
    assert f"0x{rm.config_hash & 0xFFFFFFFF:08x}" in md and rm.config_name in md


def _c_compiler():
    for cc in ("gcc", "cc", "clang"):
        if shutil.which(cc):
            return cc
    return None


def test_c_header_compiles_and_agrees(rm, tmp_path):
    cc = _c_compiler()
    # A C/C++ compiler is a prerequisite of the project (Verilator needs it): missing is a failure.
    assert cc is not None, "no C compiler (gcc, cc or clang) on PATH: cannot compile regmap.h"
    header = rm.c_header()
    assert "generated by npegen — do not edit" in header
    assert rm.config_name in header and f"0x{rm.config_hash & 0xFFFFFFFF:08x}" in header
    (tmp_path / "regmap.h").write_text(header, encoding="utf-8")
    # Every value checked by the compiler against the map, not against the header text.
    checks = []
    for reg in rm.registers:
        p = f"NPEGEN_{reg.name}"
        checks.append((f"{p}_OFFSET", reg.offset))
        for f in reg.fields:
            checks += [(f"{p}_{f.name}_SHIFT", f.lsb), (f"{p}_{f.name}_WIDTH", f.width),
                       (f"{p}_{f.name}_MASK", ((1 << f.width) - 1) << f.lsb)]
            if f.access == "const":
                checks.append((f"{p}_{f.name}", f.reset))
    checks += [(f"NPEGEN_FORMAT_{n.upper()}", i) for n, i in FORMAT_IDS.items()]
    checks += [(f"NPEGEN_ERROR_{n}", c) for n, (c, _) in ERROR_CODES.items()]
    checks.append(("NPEGEN_ID_VALUE", 0x4E504547))
    src = ['#include "regmap.h"', '#include "regmap.h"  /* include guard */']
    src += [f'_Static_assert({m} == {v}u, "{m}");' for m, v in checks]
    src.append('static const char name[] = NPEGEN_CONFIG_NAME;')
    src.append(f'_Static_assert(sizeof name == {len(rm.config_name) + 1}, "name");')
    (tmp_path / "check.c").write_text("\n".join(src) + "\n")
    run = subprocess.run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic",
                          "-fsyntax-only", "check.c"], cwd=tmp_path, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr
    run = subprocess.run([cc, "-std=c99", "-Wall", "-Werror", "-fsyntax-only", "-x", "c",
                          "regmap.h"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_write_regmap_deterministic(cfg, tmp_path):
    a = write_regmap(cfg, tmp_path / "a")
    b = write_regmap(config_from_dict(ASYMMETRIC) if cfg.name == "asymmetric"
                     else load_config(cfg.name), tmp_path / "b")
    assert set(a) == {"json", "h", "md"}
    assert [p.name for p in a.values()] == ["regmap.json", "regmap.h", "regmap.md"]
    for key in a:
        assert a[key].read_bytes() == b[key].read_bytes()
    assert RegisterMap.from_json(json.loads(a["json"].read_text())) == build_regmap(cfg)


def test_unknown_output_format_has_no_id():
    import dataclasses
    cfg = load_config("tiny")
    cfg = dataclasses.replace(cfg, engine=dataclasses.replace(
        cfg.engine, output_formats=("fp4_e2m1", "posit32_2")))
    with pytest.raises(ValueError, match="output format posit32_2 has no format id"):
        build_regmap(cfg)
