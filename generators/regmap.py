"""The co-processor's register map: one description, generated from the config.

Everything software sees of the co-processor is described once, here, by a
:class:`RegisterMap` built from a :class:`generators.config.Config` with
:func:`build_regmap`. The RTL register file (:class:`generators.rtl.csr.RegisterFile`), the
JSON description the host driver builds its accessors from (``regmap.json``, like LiteX's
``csr.json``), the C header (``regmap.h``) and the Markdown document (``regmap.md``) all
derive from that object, so they cannot disagree.

This module is pure Python (no Amaranth): the host driver imports it on a board without the
HDL toolchain, and can rebuild a map with :meth:`RegisterMap.from_json`.

Layout
------
A 4 KiB window (``addr_bits`` = 12) of 32-bit registers at word-aligned byte offsets. Each
register is a list of :class:`Field` s; a field's ``access`` says who drives it:

``const``
    Fixed when the design is generated (the value is ``Field.reset``); writes are ignored.
``ro``
    Driven by the hardware; writes are ignored.
``rw``
    Stored in the register file; software writes it, the hardware reads it.
``w1p``
    Writing 1 sends a one-cycle pulse to the hardware; reads return 0.
``w1c``
    A stored bit set by a hardware pulse and cleared by software writing 1.

A 64-bit counter is a pair of registers ``<NAME>_LO`` (at the counter's offset) and
``<NAME>_HI`` (offset + 4), marked ``kind="counter_lo"`` / ``"counter_hi"`` with
``counter=<NAME>``. Reading LO returns bits [31:0] and latches bits [63:32] into a shadow
that HI returns, so "read LO, then HI" is a tear-free 64-bit read.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from generators.formats import get_format

__all__ = [
    "ACCESS",
    "ERROR_CODES",
    "FORMAT_IDS",
    "ID_VALUE",
    "MEMORY_LAYOUT",
    "REGMAP_VERSION",
    "Counter",
    "Field",
    "Register",
    "RegisterMap",
    "build_regmap",
    "write_regmap",
]

#: The ID register's value: "NPEG" in ASCII.
ID_VALUE = 0x4E504547

#: Register map version (major, minor, patch), in the VERSION register.
REGMAP_VERSION = (1, 0, 0)

#: Format ids used in FORMAT and CAPS_FORMATS; 0 means "no format".
FORMAT_IDS = MappingProxyType({
    "fp4_e2m1": 1,
    "posit4_1": 2,
    "posit8_0": 3,
    "posit16_1": 4,
    "posit8_2": 5,
    "posit16_2": 6,
    "fp8_e4m3": 7,
    "fp8_e5m2": 8,
    "bf16": 9,
    "int8": 10,
    "int4": 11,
})

#: STATUS.ERROR codes, in code order: name -> (code, doc).
ERROR_CODES = MappingProxyType({
    "OK": (0, "no error"),
    "BAD_DIMS": (1, "M, N or K is 0 or greater than MAX_DIM"),
    "MISALIGNED": (2, "an address or stride is not a multiple of DATA_BYTES (the AXI data "
                      "width in bytes)"),
    "BAD_STRIDE": (3, "a row stride is smaller than the bytes of one row (rows would overlap)"),
    "BAD_FORMAT": (4, "a format id the design was not built with (A, B and bias: input "
                      "formats; OUT: output formats), or A, B (and bias, if enabled) of "
                      "different widths"),
    "BAD_ADDRESS": (5, "a buffer reaches beyond the AXI address space (2**ADDR_BITS bytes)"),
    "BUSY": (6, "START was written while a job was running; the running job continues and "
                "its results are valid"),
    "AXI_READ": (7, "a read returned SLVERR or DECERR; the job was aborted cleanly"),
    "AXI_WRITE": (8, "a write returned SLVERR or DECERR; the job was aborted cleanly"),
})

#: Field access kinds (see the module docstring).
ACCESS = ("const", "ro", "rw", "w1p", "w1c")

#: Access kinds software can write.
WRITABLE = ("rw", "w1p", "w1c")

#: The memory layout of a job's operands, as documented in regmap.md.
MEMORY_LAYOUT = (
    "A is M rows of K codes, row-major; B is given transposed, as N rows of K codes (the "
    "layout of a Linear/Gemm weight with transB=1); C is M rows of N codes; bias is N codes "
    "in the FORMAT.BIAS format. Codes are packed little-endian within a row: code j of a row "
    "occupies bits [j·bits, (j+1)·bits) of the row's bytes, starting at the row's address. "
    "Each row starts at ADDR + row·STRIDE; addresses and strides must be multiples of "
    "DATA_BYTES. Padding bits in the last byte of a C row are written as 0; bytes beyond it "
    "are not written."
)

#: The programming sequence of one job, as documented in regmap.md.
PROGRAMMING_SEQUENCE = (
    "Write M, N and K.",
    "Write A_ADDR, B_ADDR, C_ADDR (and BIAS_ADDR if FLAGS.BIAS will be set), LO and HI halves.",
    "Write A_STRIDE, B_STRIDE and C_STRIDE (bytes between rows).",
    "Write FORMAT (format ids of A, B, OUT and BIAS) and FLAGS (BIAS, RELU).",
    "Write CTRL.START = 1 (keep CTRL.IRQ_EN as wanted: a write sets every CTRL field).",
    "Wait until STATUS.DONE = 1: poll STATUS, or wait for the interrupt, "
    "irq = CTRL.IRQ_EN & STATUS.DONE.",
    "Read STATUS.ERROR (0 = OK; see the error codes).",
    "Write 1 to STATUS.DONE to clear it (and the interrupt).",
)

_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
_COUNTER_KINDS = ("counter_lo", "counter_hi")


def _did_you_mean(name, choices):
    near = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {near[0]!r}?" if near else ""


# --- data model ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    """A bit field of a 32-bit register.

    Parameters
    ----------
    name : str
        Upper case, ``[A-Z][A-Z0-9_]*``.
    lsb, width : int
        Bits ``[lsb, lsb + width)`` of the register.
    access : str
        One of :data:`ACCESS`.
    reset : int
        Reset value (``rw``, ``w1c``), or the fixed value of a ``const`` field.
    doc : str
        What the field means.
    values : mapping of str to int or None
        Named values of the field (e.g. the error codes of STATUS.ERROR); read-only mapping.
    """

    name: str
    lsb: int
    width: int
    access: str
    reset: int = 0
    doc: str = ""
    values: Mapping | None = field(default=None, hash=False)

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"field name must match [A-Z][A-Z0-9_]*, not {self.name!r}")
        for attr in ("lsb", "width", "reset"):
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"field {self.name}: {attr} must be an integer, not {value!r}")
        if not (0 <= self.lsb and 1 <= self.width and self.lsb + self.width <= 32):
            raise ValueError(f"field {self.name}: bits [{self.lsb}, {self.lsb + self.width}) "
                             f"do not fit in a 32-bit register")
        if self.access not in ACCESS:
            raise ValueError(f"field {self.name}: access must be one of {', '.join(ACCESS)}, "
                             f"not {self.access!r}")
        if not 0 <= self.reset < 1 << self.width:
            raise ValueError(f"field {self.name}: reset value {self.reset:#x} does not fit in "
                             f"{self.width} bits")
        if self.access == "w1p" and self.reset:
            raise ValueError(f"field {self.name}: a w1p field reads 0; its reset must be 0")
        if self.values is not None:
            values = dict(self.values)
            for key, value in values.items():
                if not isinstance(key, str) or isinstance(value, bool) \
                        or not isinstance(value, int) or not 0 <= value < 1 << self.width:
                    raise ValueError(f"field {self.name}: named value {key!r} = {value!r} "
                                     f"does not fit in {self.width} bits")
            object.__setattr__(self, "values", MappingProxyType(values))

    @property
    def msb(self):
        return self.lsb + self.width - 1

    @property
    def mask(self):
        """The field's bits in the register, as a 32-bit mask."""
        return ((1 << self.width) - 1) << self.lsb

    @property
    def writable(self):
        return self.access in WRITABLE

    def bits(self):
        """``"[msb:lsb]"`` (or ``"[lsb]"`` for one bit)."""
        return f"[{self.lsb}]" if self.width == 1 else f"[{self.msb}:{self.lsb}]"

    def to_json(self):
        return {"name": self.name, "lsb": self.lsb, "width": self.width, "access": self.access,
                "reset": self.reset, "doc": self.doc,
                "values": None if self.values is None else dict(self.values)}

    @classmethod
    def from_json(cls, data):
        return cls(name=data["name"], lsb=data["lsb"], width=data["width"],
                   access=data["access"], reset=data.get("reset", 0), doc=data.get("doc", ""),
                   values=data.get("values"))


@dataclass(frozen=True)
class Register:
    """A 32-bit register.

    Parameters
    ----------
    name : str
        Upper case, ``[A-Z][A-Z0-9_]*``.
    offset : int
        Byte offset in the register window, a multiple of 4.
    fields : sequence of Field
        Non-overlapping; stored as a tuple in ``lsb`` order.
    doc : str
        What the register is for.
    kind : str
        ``"reg"``, or ``"counter_lo"`` / ``"counter_hi"`` for a half of a 64-bit counter.
    counter : str or None
        For a counter half, the counter's name (``CYCLES`` for ``CYCLES_LO``).
    """

    name: str
    offset: int
    fields: tuple
    doc: str = ""
    kind: str = "reg"
    counter: str | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"register name must match [A-Z][A-Z0-9_]*, not {self.name!r}")
        if isinstance(self.offset, bool) or not isinstance(self.offset, int) \
                or self.offset < 0 or self.offset % 4:
            raise ValueError(f"register {self.name}: offset must be a non-negative multiple "
                             f"of 4, not {self.offset!r}")
        fields_ = tuple(sorted(self.fields, key=lambda f: f.lsb))
        if not fields_:
            raise ValueError(f"register {self.name} has no fields")
        names = [f.name for f in fields_]
        if len(set(names)) != len(names):
            raise ValueError(f"register {self.name}: field names repeat: {', '.join(names)}")
        for lo, hi in zip(fields_, fields_[1:]):
            if lo.lsb + lo.width > hi.lsb:
                raise ValueError(f"register {self.name}: fields {lo.name}{lo.bits()} and "
                                 f"{hi.name}{hi.bits()} overlap")
        object.__setattr__(self, "fields", fields_)
        if self.kind not in ("reg", *_COUNTER_KINDS):
            raise ValueError(f"register {self.name}: kind must be 'reg', 'counter_lo' or "
                             f"'counter_hi', not {self.kind!r}")
        if (self.kind == "reg") != (self.counter is None):
            raise ValueError(f"register {self.name}: counter must be given exactly for the "
                             f"halves of a counter (kind {self.kind!r}, counter "
                             f"{self.counter!r})")
        if self.kind != "reg":
            suffix = "_LO" if self.kind == "counter_lo" else "_HI"
            if self.name != self.counter + suffix:
                raise ValueError(f"register {self.name}: a {self.kind} half of counter "
                                 f"{self.counter} must be called {self.counter + suffix}")

    @property
    def writable(self):
        """Whether software can write any field (otherwise a write gets SLVERR)."""
        return any(f.writable for f in self.fields)

    @property
    def reset(self):
        """The value read after reset, with ``ro`` fields read as 0."""
        return sum(f.reset << f.lsb for f in self.fields if f.access != "w1p")

    def field(self, name):
        for f in self.fields:
            if f.name == name:
                return f
        raise ValueError(f"register {self.name} has no field {name!r}"
                         f"{_did_you_mean(name, self.field_names())} "
                         f"(fields: {', '.join(self.field_names())})")

    def field_names(self):
        return tuple(f.name for f in self.fields)

    def to_json(self):
        return {"name": self.name, "offset": self.offset, "kind": self.kind,
                "counter": self.counter, "doc": self.doc,
                "fields": [f.to_json() for f in self.fields]}

    @classmethod
    def from_json(cls, data):
        return cls(name=data["name"], offset=data["offset"],
                   fields=tuple(Field.from_json(f) for f in data["fields"]),
                   doc=data.get("doc", ""), kind=data.get("kind", "reg"),
                   counter=data.get("counter"))


@dataclass(frozen=True)
class Counter:
    """A 64-bit, read-only counter: registers ``<name>_LO`` at ``offset`` and ``<name>_HI``
    at ``offset + 4``."""

    name: str
    offset: int
    doc: str = ""

    @property
    def lo(self):
        return self.name + "_LO"

    @property
    def hi(self):
        return self.name + "_HI"

    def registers(self):
        """The two :class:`Register` halves."""
        return (
            Register(self.lo, self.offset, (Field("VALUE", 0, 32, "ro", doc=(
                f"bits [31:0] of {self.name}; reading this latches bits [63:32] for "
                f"{self.hi}")),), doc=self.doc, kind="counter_lo", counter=self.name),
            Register(self.hi, self.offset + 4, (Field("VALUE", 0, 32, "ro", doc=(
                f"bits [63:32] of {self.name}, as latched by the last read of "
                f"{self.lo}")),), doc=self.doc, kind="counter_hi", counter=self.name),
        )


@dataclass(frozen=True)
class RegisterMap:
    """The register map of one design.

    Parameters
    ----------
    registers : sequence of Register
        Every register, counter halves included; stored as a tuple in offset order.
    config_name : str
        The design (``Config.name``).
    config_hash : int
        ``Config.config_hash``.
    addr_bits : int
        Byte address width of the register window (12: 4 KiB).
    data_bits : int
        Register width (32).
    version : tuple of int
        ``(major, minor, patch)`` of the register map layout.
    format_ids : mapping of str to int
        Format name -> id (:data:`FORMAT_IDS`).
    error_codes : mapping of str to (int, str)
        Error name -> (code, doc) (:data:`ERROR_CODES`).
    """

    registers: tuple
    config_name: str
    config_hash: int
    addr_bits: int = 12
    data_bits: int = 32
    version: tuple = REGMAP_VERSION
    format_ids: Mapping = field(default_factory=lambda: FORMAT_IDS, hash=False)
    error_codes: Mapping = field(default_factory=lambda: ERROR_CODES, hash=False)

    def __post_init__(self):
        regs = tuple(sorted(self.registers, key=lambda r: r.offset))
        object.__setattr__(self, "registers", regs)
        object.__setattr__(self, "version", tuple(self.version))
        object.__setattr__(self, "format_ids", MappingProxyType(dict(self.format_ids)))
        object.__setattr__(self, "error_codes", MappingProxyType(
            {name: (code, doc) for name, (code, doc) in self.error_codes.items()}))
        if self.data_bits != 32:
            raise ValueError(f"data_bits must be 32, not {self.data_bits!r}")
        if not isinstance(self.addr_bits, int) or not 3 <= self.addr_bits <= 32:
            raise ValueError(f"addr_bits must be an integer from 3 to 32, "
                             f"not {self.addr_bits!r}")
        names, offsets = {}, {}
        for reg in regs:
            if reg.name in names:
                raise ValueError(f"register name {reg.name} is used twice")
            names[reg.name] = reg
            if reg.offset in offsets:
                raise ValueError(f"registers {offsets[reg.offset].name} and {reg.name} both "
                                 f"at offset {reg.offset:#05x}")
            offsets[reg.offset] = reg
            if reg.offset >= 1 << self.addr_bits:
                raise ValueError(f"register {reg.name} at {reg.offset:#x} is outside the "
                                 f"{1 << self.addr_bits}-byte window")
        for reg in regs:
            if reg.kind == "counter_lo":
                hi = names.get(reg.counter + "_HI")
                if hi is None or hi.kind != "counter_hi" or hi.counter != reg.counter \
                        or hi.offset != reg.offset + 4:
                    raise ValueError(f"counter {reg.counter}: {reg.name} at {reg.offset:#x} "
                                     f"needs {reg.counter}_HI at {reg.offset + 4:#x}")
            elif reg.kind == "counter_hi":
                lo = names.get(reg.counter + "_LO")
                if lo is None or lo.kind != "counter_lo":
                    raise ValueError(f"counter {reg.counter}: {reg.name} has no _LO half")
        ids = list(self.format_ids.values())
        if len(set(ids)) != len(ids) or 0 in ids:
            raise ValueError(f"format ids must be unique and nonzero: {dict(self.format_ids)}")
        codes = [code for code, _ in self.error_codes.values()]
        if len(set(codes)) != len(codes):
            raise ValueError(f"error codes must be unique: {dict(self.error_codes)}")
        object.__setattr__(self, "_by_name", MappingProxyType(names))

    # -- look-ups --------------------------------------------------------------------------

    @property
    def counters(self):
        """The 64-bit counters, in offset order, as :class:`Counter` s."""
        return tuple(Counter(reg.counter, reg.offset, reg.doc)
                     for reg in self.registers if reg.kind == "counter_lo")

    def register(self, name):
        """The :class:`Register` called ``name``; ValueError if there is none."""
        try:
            return self._by_name[name]
        except (KeyError, TypeError):
            raise ValueError(f"no register {name!r}{_did_you_mean(str(name), self._by_name)} "
                             f"in the {self.config_name} register map") from None

    def field(self, reg, field):
        """The :class:`Field` ``field`` of register ``reg``."""
        return self.register(reg).field(field)

    def offset(self, name):
        """Byte offset of register ``name`` (a counter's name gives its LO half)."""
        if name not in self._by_name and name + "_LO" in self._by_name \
                and self._by_name[name + "_LO"].kind == "counter_lo":
            return self._by_name[name + "_LO"].offset
        return self.register(name).offset

    def at(self, offset):
        """The register at byte ``offset``, or None."""
        for reg in self.registers:
            if reg.offset == offset:
                return reg
        return None

    # -- values ----------------------------------------------------------------------------

    def pack(self, reg_name, **field_values):
        """The 32-bit value of register ``reg_name`` with the given fields (others 0).

        A field with named values (e.g. STATUS.ERROR) also accepts the name.

        Raises
        ------
        ValueError
            Unknown register or field (the message lists the register's fields), a value
            that is negative or too wide for its field, or an unknown value name.
        """
        reg = self.register(reg_name)
        value = 0
        for name, v in field_values.items():
            if name not in reg.field_names():
                raise ValueError(f"register {reg.name} has no field {name!r}"
                                 f"{_did_you_mean(name, reg.field_names())} "
                                 f"(fields: {', '.join(reg.field_names())})")
            f = reg.field(name)
            if isinstance(v, str):
                if f.values is None or v not in f.values:
                    known = "" if f.values is None else f" (known: {', '.join(f.values)})"
                    raise ValueError(f"{reg.name}.{name}: unknown value name {v!r}{known}")
                v = f.values[v]
            if isinstance(v, bool):
                v = int(v)
            if not isinstance(v, int):
                raise ValueError(f"{reg.name}.{name}: value must be an integer, not {v!r}")
            if not 0 <= v < 1 << f.width:
                raise ValueError(f"{reg.name}.{name}: value {v} ({v:#x}) does not fit in the "
                                 f"field's {f.width} bits (0..{(1 << f.width) - 1})")
            value |= v << f.lsb
        return value

    def unpack(self, reg_name, value):
        """``{field: int}`` of a 32-bit value read from register ``reg_name``."""
        reg = self.register(reg_name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 32:
            raise ValueError(f"{reg.name}: {value!r} is not a 32-bit register value")
        return {f.name: (value >> f.lsb) & ((1 << f.width) - 1) for f in reg.fields}

    # -- serialisation ---------------------------------------------------------------------

    def to_json(self):
        """The map as plain JSON data (``json.dumps`` it); see :meth:`from_json`."""
        return {
            "generator": "npegen",
            "regmap_version": list(self.version),
            "config": {"name": self.config_name, "hash": self.config_hash},
            "addr_bits": self.addr_bits,
            "data_bits": self.data_bits,
            "formats": dict(self.format_ids),
            "errors": [{"name": name, "code": code, "doc": doc}
                       for name, (code, doc) in self.error_codes.items()],
            "registers": [reg.to_json() for reg in self.registers],
            # Derived from the counter_lo/_hi registers; written for convenience, not read.
            "counters": [{"name": c.name, "lo": c.lo, "hi": c.hi, "lo_offset": c.offset,
                          "hi_offset": c.offset + 4, "doc": c.doc} for c in self.counters],
            "memory_layout": MEMORY_LAYOUT,
        }

    @classmethod
    def from_json(cls, data):
        """Rebuild a map from :meth:`to_json` data (or a parsed ``regmap.json``)."""
        return cls(
            registers=tuple(Register.from_json(r) for r in data["registers"]),
            config_name=data["config"]["name"],
            config_hash=data["config"]["hash"],
            addr_bits=data["addr_bits"],
            data_bits=data["data_bits"],
            version=tuple(data["regmap_version"]),
            format_ids=data["formats"],
            error_codes={e["name"]: (e["code"], e["doc"]) for e in data["errors"]},
        )

    def json_text(self):
        """``regmap.json``: deterministic, indented, newline-terminated."""
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"

    # -- C header --------------------------------------------------------------------------

    def c_defines(self):
        """``[(macro, value)]`` of the C header, in order (also used to test it)."""
        out = [("NPEGEN_CONFIG_HASH", self.config_hash & 0xFFFFFFFF)]
        for reg in self.registers:
            p = f"NPEGEN_{reg.name}"
            out.append((f"{p}_OFFSET", reg.offset))
            for f in reg.fields:
                out.append((f"{p}_{f.name}_SHIFT", f.lsb))
                out.append((f"{p}_{f.name}_WIDTH", f.width))
                out.append((f"{p}_{f.name}_MASK", f.mask))
                if f.access == "const":
                    out.append((f"{p}_{f.name}", f.reset))
        for name, ident in self.format_ids.items():
            out.append((f"NPEGEN_FORMAT_{name.upper()}", ident))
        for name, (code, _) in self.error_codes.items():
            out.append((f"NPEGEN_ERROR_{name}", code))
        macros = [m for m, _ in out]
        dup = sorted({m for m in macros if macros.count(m) > 1})
        if dup:
            raise ValueError(f"C macro names collide: {', '.join(dup)}")
        return out

    def c_header(self):
        """``regmap.h``: offsets, field shifts/widths/masks, constants, format ids, errors."""
        guard = f"NPEGEN_REGMAP_{self.config_name.upper()}_H"
        major, minor, patch = self.version
        lines = [
            "/*",
            f" * npegen register map of design '{self.config_name}', "
            f"config hash 0x{self.config_hash & 0xFFFFFFFF:08x},",
            f" * register map version {major}.{minor}.{patch}.",
            " * generated by npegen — do not edit.",
            " *",
            " * NPEGEN_<REG>_OFFSET is a byte offset in the register window; a field's",
            " * _MASK is in place (value = (reg & MASK) >> SHIFT); NPEGEN_<REG>_<FIELD> alone",
            " * is the value of a constant field. 64-bit counters: read _LO, then _HI.",
            " */",
            f"#ifndef {guard}",
            f"#define {guard}",
            "",
            f"#define NPEGEN_CONFIG_NAME \"{self.config_name}\"",
        ]
        defines = dict(self.c_defines())
        width = max(len(m) for m in defines) + 1

        # Bit sets and identifiers in hex, counts in decimal.
        hex_macros = {f"NPEGEN_{reg}_{f}" for reg, f in (("ID", "VALUE"), ("CONFIG_HASH", "VALUE"),
                                                        ("CAPS_FORMATS", "IN"),
                                                        ("CAPS_FORMATS", "OUT"))}

        def line(macro):
            value = defines[macro]
            if macro.endswith("_MASK") or macro in hex_macros or macro == "NPEGEN_CONFIG_HASH":
                text = f"0x{value:08x}u"
            elif macro.endswith("_OFFSET"):
                text = f"0x{value:03x}u"
            else:
                text = f"{value}u"
            return f"#define {macro:<{width}}{text}"

        lines.append(line("NPEGEN_CONFIG_HASH"))
        for reg in self.registers:
            lines += ["", f"/* {reg.name}: {_c_comment(reg.doc)} */" if reg.doc
                      else f"/* {reg.name} */"]
            p = f"NPEGEN_{reg.name}"
            lines.append(line(f"{p}_OFFSET"))
            for f in reg.fields:
                for suffix in ("_SHIFT", "_WIDTH", "_MASK"):
                    lines.append(line(f"{p}_{f.name}{suffix}"))
                if f.access == "const":
                    lines.append(line(f"{p}_{f.name}"))
        lines += ["", "/* format ids (FORMAT.A/B/OUT/BIAS; bit i of CAPS_FORMATS) */"]
        lines += [line(f"NPEGEN_FORMAT_{name.upper()}") for name in self.format_ids]
        lines += ["", "/* STATUS.ERROR codes */"]
        for name, (_, doc) in self.error_codes.items():
            lines.append(line(f"NPEGEN_ERROR_{name}") + f"  /* {_c_comment(doc)} */")
        lines += ["", f"#endif /* {guard} */", ""]
        return "\n".join(lines)

    # -- Markdown --------------------------------------------------------------------------

    def markdown(self):
        """``regmap.md``: the programmer's reference of this design."""
        major, minor, patch = self.version
        out = [
            f"# npegen register map: design `{self.config_name}`",
            "",
            f"Generated by npegen — do not edit. Config hash "
            f"`0x{self.config_hash & 0xFFFFFFFF:08x}`, register map version "
            f"{major}.{minor}.{patch}. A {1 << self.addr_bits}-byte "
            f"AXI4-Lite window of {self.data_bits}-bit registers; offsets are in bytes.",
            "",
            "Access: `const` fixed at generation time; `ro` driven by the hardware; `rw` "
            "stored, written by software; `w1p` writing 1 pulses the hardware for one cycle, "
            "reads 0; `w1c` set by the hardware, cleared by writing 1. Writing an unmapped "
            "offset or a register with no writable field returns SLVERR and has no effect; "
            "reading an unmapped offset returns 0 with SLVERR. WSTRB byte enables are "
            "honoured.",
            "",
            "## Summary",
            "",
            "| Offset | Register | Access | Description |",
            "|---|---|---|---|",
        ]
        for reg in self.registers:
            access = "/".join(dict.fromkeys(f.access for f in reg.fields))
            doc = reg.doc
            if reg.kind == "counter_lo":
                doc = f"{reg.counter} bits [31:0], latches bits [63:32] for {reg.counter}_HI: {doc}"
            elif reg.kind == "counter_hi":
                doc = f"{reg.counter} bits [63:32], as latched by reading {reg.counter}_LO"
            out.append(f"| `0x{reg.offset:03X}` | {reg.name} | {access} | {_md(doc)} |")

        out += ["", "## Programming sequence", ""]
        out += [f"{i}. {step}" for i, step in enumerate(PROGRAMMING_SEQUENCE, 1)]
        out += ["", "## Memory layout", "", MEMORY_LAYOUT, ""]

        caps = [reg for reg in self.registers
                if all(f.access == "const" for f in reg.fields)]
        out += ["## Capabilities of this design", "", "| Register.Field | Value |", "|---|---|"]
        for reg in caps:
            for f in reg.fields:
                value = f"`0x{f.reset:X}`" if f.width >= 16 else str(f.reset)
                if reg.name == "CAPS_FORMATS":
                    names = [n for n, i in self.format_ids.items() if f.reset >> i & 1]
                    value += " (" + ", ".join(names) + ")"
                out.append(f"| {reg.name}.{f.name} | {value} |")

        out += ["", "## Format ids", "", "| Id | Format |", "|---|---|", "| 0 | (none) |"]
        out += [f"| {ident} | {name} |" for name, ident in self.format_ids.items()]
        out += ["", "## Error codes (STATUS.ERROR)", "", "| Code | Name | Meaning |",
                "|---|---|---|"]
        out += [f"| {code} | {name} | {_md(doc)} |"
                for name, (code, doc) in self.error_codes.items()]

        if self.counters:
            out += ["", "## Counters", "",
                    "64-bit, read-only. Reading `<NAME>_LO` returns bits [31:0] and latches "
                    "bits [63:32] into a shadow that `<NAME>_HI` returns: read LO, then HI, "
                    "for a tear-free value. Counters count from reset or CTRL.CLEAR_COUNTERS.",
                    "", "| LO | HI | Counter | Counts |", "|---|---|---|---|"]
            out += [f"| `0x{c.offset:03X}` | `0x{c.offset + 4:03X}` | {c.name} | {_md(c.doc)} |"
                    for c in self.counters]

        out += ["", "## Registers"]
        for reg in self.registers:
            out += ["", f"### `0x{reg.offset:03X}` {reg.name}", ""]
            if reg.doc:
                out += [reg.doc, ""]
            out += ["| Bits | Field | Access | Reset | Description |", "|---|---|---|---|---|"]
            for f in reversed(reg.fields):
                doc = f.doc
                if f.values:
                    named = ", ".join(f"{v} = {k}" for k, v in f.values.items())
                    doc = f"{doc.rstrip('.')}. Values: {named}."
                out.append(f"| {f.bits()} | {f.name} | {f.access} | `0x{f.reset:X}` | "
                           f"{_md(doc)} |")
        out.append("")
        return "\n".join(out)


def _c_comment(text):
    return text.replace("*/", "* /").replace("/*", "/ *").replace("\n", " ")


def _md(text):
    return text.replace("|", "\\|").replace("\n", " ")


# --- building the map from a config ----------------------------------------------------------

def _format_id(name, role):
    name = get_format(name).name
    if name not in FORMAT_IDS:
        raise ValueError(f"{role} format {name} has no format id (the register map knows "
                         f"{', '.join(FORMAT_IDS)})")
    return FORMAT_IDS[name]


def _value_reg(name, offset, access, doc, field_doc=None, reset=0):
    return Register(name, offset, (Field("VALUE", 0, 32, access, reset, field_doc or doc),),
                    doc)


_COUNTERS = (
    ("CYCLES", 0x080, "every clock cycle"),
    ("BUSY_CYCLES", 0x088, "cycles with STATUS.BUSY"),
    ("COMPUTE_CYCLES", 0x090, "cycles in which the PE array accepted an operation"),
    ("READ_STALL_CYCLES", 0x098, "busy cycles in which the PE array waited for operand tiles "
                                 "from the read DMA"),
    ("WRITE_STALL_CYCLES", 0x0A0, "busy cycles in which results waited for the write path"),
    ("MACS", 0x0A8, "multiply-accumulates of real matrix elements (M·N·K per job; padding and "
                    "bias not counted)"),
    ("SATURATIONS", 0x0B0, "output elements whose accumulator saturated"),
    ("READ_BYTES", 0x0B8, "bytes moved on the AXI read data channel"),
    ("WRITE_BYTES", 0x0C0, "bytes moved on the AXI write data channel"),
)


def build_regmap(cfg):
    """The :class:`RegisterMap` of a :class:`generators.config.Config`.

    Raises
    ------
    ValueError
        A format of the config has no id in :data:`FORMAT_IDS`.
    """
    e, a, x = cfg.engine, cfg.array, cfg.axi
    in_ids = [_format_id(name, "input") for name in e.formats]
    out_ids = [_format_id(name, "output") for name in (e.output_formats or e.formats)]
    caps_in = sum(1 << i for i in in_ids)
    caps_out = sum(1 << i for i in out_ids)
    major, minor, patch = REGMAP_VERSION
    in_values = {get_format(n).name: FORMAT_IDS[get_format(n).name] for n in e.formats}
    out_values = {get_format(n).name: FORMAT_IDS[get_format(n).name]
                  for n in (e.output_formats or e.formats)}
    error_values = {name: code for name, (code, _) in ERROR_CODES.items()}

    regs = [
        _value_reg("ID", 0x000, "const", "Identification", reset=ID_VALUE,
                   field_doc=f'{ID_VALUE:#010x}, "NPEG" in ASCII: an npegen co-processor'),
        Register("VERSION", 0x004, (
            Field("PATCH", 0, 8, "const", patch, "register map version, patch"),
            Field("MINOR", 8, 8, "const", minor, "register map version, minor (additions)"),
            Field("MAJOR", 16, 8, "const", major, "register map version, major "
                                                   "(incompatible changes)"),
        ), "Register map version"),
        _value_reg("CONFIG_HASH", 0x008, "const", "Configuration hash",
                   reset=cfg.config_hash & 0xFFFFFFFF,
                   field_doc="low 32 bits of the hash of the hardware configuration; the "
                             "driver checks it against regmap.json"),
        Register("CAPS_FORMATS", 0x00C, (
            Field("IN", 0, 16, "const", caps_in, "bit i set = format id i usable for A, B "
                                                 "and bias"),
            Field("OUT", 16, 16, "const", caps_out, "bit i set = format id i usable as output "
                                                    "format"),
        ), "Formats the design was built with"),
        Register("CAPS_ARRAY", 0x010, (
            Field("ROWS", 0, 8, "const", a.rows, "PE array rows"),
            Field("COLS", 8, 8, "const", a.cols, "PE array columns"),
            Field("WORD_BITS", 16, 8, "const", e.word_bits, "operand word width of a PE "
                                                            "in bits"),
            Field("DATA_BYTES", 24, 8, "const", x.data_bits // 8,
                  "AXI4 data width in bytes; addresses and strides must be multiples of it"),
        ), "PE array and AXI data width"),
        Register("CAPS_BUFFER", 0x014, (
            Field("K_TILE", 0, 16, "const", cfg.buffers.k_tile,
                  "operand words per buffered row (the K tile)"),
            Field("GUARD_BITS", 16, 8, "const", e.guard_bits, "accumulator guard (carry) bits"),
            Field("ADDR_BITS", 24, 8, "const", x.addr_bits, "AXI4 address width in bits"),
        ), "Tile buffers, accumulator and AXI address width"),
        _value_reg("MAX_DIM", 0x018, "const", "Largest M, N or K of a job",
                   reset=cfg.limits.max_dim, field_doc="largest M, N or K a job accepts"),
        Register("CTRL", 0x020, (
            Field("START", 0, 1, "w1p", 0, "write 1 to start a job with the current "
                                           "configuration registers (BUSY error if one is "
                                           "running)"),
            Field("SOFT_RESET", 1, 1, "w1p", 0, "write 1 to abort any job and reset the "
                                                "controller and DMA; configuration registers "
                                                "keep their values"),
            Field("CLEAR_COUNTERS", 2, 1, "w1p", 0, "write 1 to set every counter to 0"),
            Field("IRQ_EN", 8, 1, "rw", 0, "interrupt enable: irq = IRQ_EN & STATUS.DONE"),
        ), "Control"),
        Register("STATUS", 0x024, (
            Field("BUSY", 0, 1, "ro", 0, "a job is running"),
            Field("DONE", 1, 1, "w1c", 0, "set when a job ends, with or without error; "
                                          "write 1 to clear"),
            Field("ERROR", 8, 8, "ro", 0, "result of the last job (or the last rejected "
                                          "START): an error code", values=error_values),
        ), "Status"),
        _value_reg("M", 0x030, "rw", "Job dimension M", field_doc="rows of A and of C"),
        _value_reg("N", 0x034, "rw", "Job dimension N",
                   field_doc="rows of B (given transposed) = columns of C"),
        _value_reg("K", 0x038, "rw", "Job dimension K",
                   field_doc="codes per row of A and of B (the reduction length)"),
    ]
    for i, (op, what) in enumerate((("A", "A"), ("B", "B (transposed: N rows of K codes)"),
                                    ("C", "C (the result)"), ("BIAS", "the bias vector"))):
        regs.append(_value_reg(f"{op}_ADDR_LO", 0x040 + 8 * i, "rw",
                               f"Byte address of {what}, bits [31:0]",
                               field_doc=f"bits [31:0] of the byte address of {what}"))
        regs.append(_value_reg(f"{op}_ADDR_HI", 0x044 + 8 * i, "rw",
                               f"Byte address of {what}, bits [63:32]",
                               field_doc=f"bits [63:32] of the byte address of {what} (0 for "
                                         f"a 32-bit address space)"))
    for i, op in enumerate("ABC"):
        regs.append(_value_reg(f"{op}_STRIDE", 0x060 + 4 * i, "rw", f"Row stride of {op}",
                               field_doc=f"bytes between the starts of consecutive rows "
                                         f"of {op}"))
    regs += [
        Register("FORMAT", 0x070, (
            Field("A", 0, 8, "rw", 0, "format id of A (an input format)", values=in_values),
            Field("B", 8, 8, "rw", 0, "format id of B (an input format of the same width as "
                                      "A)", values=in_values),
            Field("OUT", 16, 8, "rw", 0, "format id of C (an output format)",
                  values=out_values),
            Field("BIAS", 24, 8, "rw", 0, "format id of the bias (an input format of the same "
                                          "width as A; used if FLAGS.BIAS)", values=in_values),
        ), "Operand and result formats (format ids)"),
        Register("FLAGS", 0x074, (
            Field("BIAS", 0, 1, "rw", 0, "add the bias vector (N codes at BIAS_ADDR) to every "
                                         "row of C; it is preloaded into the accumulators"),
            Field("RELU", 1, 1, "rw", 0, "ReLU: a non-NaN result with its sign bit set "
                                         "(also -0) becomes +0"),
        ), "Job options"),
    ]
    for name, offset, doc in _COUNTERS:
        regs += Counter(name, offset, doc).registers()
    return RegisterMap(registers=tuple(regs), config_name=cfg.name,
                       config_hash=cfg.config_hash)


def write_regmap(cfg, out_dir):
    """Write ``regmap.json``, ``regmap.h`` and ``regmap.md`` of ``cfg`` into ``out_dir``.

    The output is deterministic: the same config gives byte-identical files.

    Returns
    -------
    dict of str to pathlib.Path
        ``{"json": ..., "h": ..., "md": ...}``.
    """
    rm = build_regmap(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "regmap.json", "h": out_dir / "regmap.h",
             "md": out_dir / "regmap.md"}
    texts = {"json": rm.json_text(), "h": rm.c_header(), "md": rm.markdown()}
    for key, path in paths.items():
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(texts[key])
    return paths
