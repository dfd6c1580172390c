"""Design configuration: load, validate and describe an npegen design.

A design is described by a small YAML file (``configs/<name>.yaml``) and becomes a frozen
:class:`Config`, the single source of truth from which the RTL, the register map, the golden
models and the driver derive every width and shape. This module is pure Python plus PyYAML and
must not import Amaranth (the driver runs on boards without the HDL toolchain).

The schema is declared once, by the section dataclasses below: each field is a config key, its
default is the key's default, and its ``accept`` metadata says which values are accepted. The
validator walks those dataclasses, so adding a key means adding one field.

Bad input never produces a traceback from deep inside the generator: every problem in a file is
collected and reported together as a :class:`ConfigError` whose messages name the key path, the
offending value and what would be accepted.
"""

import dataclasses
import difflib
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from functools import cached_property
from pathlib import Path
from types import MappingProxyType

import yaml

from generators.formats import (
    FORMATS,
    UnknownFormatError,
    accumulator_geometry,
    get_format,
    lanes as format_lanes,
)

__all__ = [
    "CONFIG_DIR",
    "ArrayConfig",
    "AxiConfig",
    "BufferConfig",
    "Config",
    "ConfigError",
    "EngineConfig",
    "LimitsConfig",
    "config_from_dict",
    "config_to_dict",
    "format_config",
    "load_config",
    "shipped_configs",
]

#: Directory of the shipped configurations (``load_config("tiny")`` reads ``CONFIG_DIR/tiny.yaml``).
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

LANE_BITS = (4, 8, 16)      # lane widths the SIMD engine partitions a word into
MAX_OUTPUT_BITS = 32        # widest format the output encoder can produce
MAX_PES = 256               # largest PE array the tiling controller and regmap are sized for
BURST_LIMIT_BYTES = 4096    # an AXI burst must not cross a 4 KiB boundary


class ConfigError(ValueError):
    """A configuration is invalid.

    Parameters
    ----------
    errors : iterable of str
        One message per problem; each names the key path, the value and what is accepted.
    source : str or None
        The file the configuration came from, if any.

    Attributes
    ----------
    errors : tuple of str
        All problems found (validation does not stop at the first one).
    source : str or None
        The file the configuration came from, if any.
    """

    def __init__(self, errors, source=None):
        if isinstance(errors, str):
            errors = (errors,)
        self.errors = tuple(errors)
        self.source = source
        super().__init__("\n".join(self.errors))

    def __reduce__(self):
        # Keep .errors intact across pickling (pytest-xdist, multiprocessing).
        return (type(self), (self.errors, self.source))


# --- schema vocabulary -----------------------------------------------------------------------

class _OneOf:
    def __init__(self, *values):
        self.values = values

    def __contains__(self, value):
        return value in self.values

    def __str__(self):
        shown = [repr(v) if isinstance(v, str) else str(v) for v in self.values]
        if len(shown) == 1:
            return shown[0]
        return ", ".join(shown[:-1]) + " or " + shown[-1]


#: The deepest MAC engine pipeline: ``len(generators.rtl.engine.PIPELINE_REGISTERS) + 1``
#: (kept here so that configs load without Amaranth; test_config checks the two agree).
MAX_PIPELINE_STAGES = 27


class _Range:
    def __init__(self, lo, hi, *, power_of_two=False):
        self.lo, self.hi, self.power_of_two = lo, hi, power_of_two

    def __contains__(self, value):
        if not self.lo <= value <= self.hi:
            return False
        return not self.power_of_two or value & (value - 1) == 0

    def __str__(self):
        return f"{'a power of two ' if self.power_of_two else ''}in {self.lo}..{self.hi}"


class _Pattern:
    def __init__(self, regex, text):
        self.regex, self.text = re.compile(regex), text

    def __contains__(self, value):
        return self.regex.fullmatch(value) is not None

    def __str__(self):
        return self.text


_NAME = _Pattern(r"[a-z0-9_]+", "lowercase letters, digits and underscores ([a-z0-9_]+)")


def _key(default=MISSING, accept=None, *, kind=None):
    """A config key: its default (``MISSING`` = required) and the values it accepts.

    ``kind`` overrides the type check implied by the annotation: ``"formats"`` is a list of
    lane format names, ``"output_formats"`` a list of any formats or null.
    """
    return field(default=default, metadata={"accept": accept, "kind": kind, "key": True})


# --- the schema: one frozen dataclass per section --------------------------------------------

@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    """The SIMD MAC engine (one processing element).

    Parameters
    ----------
    word_bits : int
        Operand word width W (8, 16 or 32); a word carries ``W // bits`` lanes of a format.
    formats : tuple of str
        Input formats the engine decodes and multiplies (each 4, 8 or 16 bits, at most W).
    output_formats : tuple of str
        Formats the accumulator can be rounded into; ``None`` means the same as ``formats``
        (resolved at construction, so the attribute is always a tuple).
    guard_bits : int
        Carry/guard bits of the exact accumulator, 0..64.
    share_multiplier : bool
        Share one partitioned significand multiplier across modes; ``False`` builds separate
        per-format units (the area baseline).
    operand_isolation : bool
        Hold unused lanes' operands still so they do not toggle.
    pipeline_stages : int
        MAC pipeline registers, 1..21 (see :class:`generators.rtl.engine.MacEngine`).
    """

    word_bits: int = _key(16, _OneOf(8, 16, 32))
    formats: tuple = _key(kind="formats")
    output_formats: tuple = _key(None, kind="output_formats")
    guard_bits: int = _key(15, _Range(0, 64))
    share_multiplier: bool = _key(True)
    operand_isolation: bool = _key(True)
    pipeline_stages: int = _key(3, _Range(1, MAX_PIPELINE_STAGES))

    def __post_init__(self):
        # Lists become tuples so the object is hashable and really immutable.
        if isinstance(self.formats, list):
            object.__setattr__(self, "formats", tuple(self.formats))
        if self.output_formats is None:
            object.__setattr__(self, "output_formats", self.formats)
        elif isinstance(self.output_formats, list):
            object.__setattr__(self, "output_formats", tuple(self.output_formats))


@dataclass(frozen=True, kw_only=True)
class ArrayConfig:
    """The PE array of the co-processor.

    Parameters
    ----------
    rows, cols : int
        Array shape, 1..64 each, at most 256 PEs in total.
    dataflow : str
        Only ``"output_stationary"`` for now.
    """

    rows: int = _key(4, _Range(1, 64))
    cols: int = _key(4, _Range(1, 64))
    dataflow: str = _key("output_stationary", _OneOf("output_stationary"))


@dataclass(frozen=True, kw_only=True)
class AxiConfig:
    """The AXI4 master (DMA) and AXI4-Lite slave.

    Parameters
    ----------
    data_bits : int
        AXI4 master data width: 32, 64 or 128.
    addr_bits : int
        Address width, 32..64.
    id_bits : int
        Transaction ID width, 1..8.
    max_burst_beats : int
        Longest INCR burst, a power of two in 1..256 (and at most 4 KiB).
    max_outstanding_reads : int
        Read bursts in flight, 1..16.
    write_burst_beats : int
        Result beats per write burst, a power of two in 1..256, at most
        ``max_burst_beats``: the co-processor gathers each output row's beats into bursts
        of that many (the last of a row the rest), in a buffer of two such lines per PE row.
    """

    data_bits: int = _key(64, _OneOf(32, 64, 128))
    addr_bits: int = _key(32, _Range(32, 64))
    id_bits: int = _key(4, _Range(1, 8))
    max_burst_beats: int = _key(256, _Range(1, 256, power_of_two=True))
    max_outstanding_reads: int = _key(4, _Range(1, 16))
    write_burst_beats: int = _key(16, _Range(1, 256, power_of_two=True))


@dataclass(frozen=True, kw_only=True)
class BufferConfig:
    """On-chip tile buffers.

    Parameters
    ----------
    k_tile : int
        Operand words of K per tile, a power of two in 8..4096 (at least one AXI beat).
        When a whole row of K fits (``ceil(K / lanes) <= k_tile``), the A rows of an
        output strip stay in the buffer for all its tiles, which halves the DMA traffic.
    slots : int
        Tile buffers per operand bank: 1, 2 or 3. With 1 a tile's load waits for the
        previous step's compute; with 2 the next tile loads while a step computes (DMA
        overlaps compute); with 3 the loader runs two steps ahead, so the memory read
        latency is hidden as well.
    """

    k_tile: int = _key(256, _Range(8, 4096, power_of_two=True))
    slots: int = _key(3, _OneOf(1, 2, 3))


@dataclass(frozen=True, kw_only=True)
class LimitsConfig:
    """Job limits.

    Parameters
    ----------
    max_dim : int
        Largest M, N or K a single job accepts, 1..2**31-1.
    """

    max_dim: int = _key(65535, _Range(1, 2**31 - 1))


@dataclass(frozen=True, kw_only=True)
class Config:
    """A complete, validated npegen design configuration.

    Build one with :func:`load_config` or :func:`config_from_dict`. Constructing one directly
    (or with :func:`dataclasses.replace`, e.g. for a design sweep) validates it the same way and
    raises :class:`ConfigError` if it is not buildable.

    Parameters
    ----------
    name : str
        Design name, ``[a-z0-9_]+``; defaults to the file stem (``"custom"`` without a file).
    description : str
        Free text.
    engine, array, axi, buffers, limits
        The sections, see :class:`EngineConfig`, :class:`ArrayConfig`, :class:`AxiConfig`,
        :class:`BufferConfig` and :class:`LimitsConfig`.
    source : str or None
        The file the configuration was loaded from. Provenance only: not compared, not hashed.

    Attributes
    ----------
    formats : tuple of str
        Input formats, in configuration order.
    lanes : mapping of str to int
        Lanes per operand word for each format (``word_bits // bits``).
    modes : tuple of int
        Sorted lane widths present, e.g. ``(4, 8, 16)``.
    lanes_per_mode : mapping of int to int
        Lanes per word for each lane width in ``modes``.
    accumulator_bits : mapping of str to int
        Exact (quire/Kulisch) accumulator width per format, with ``engine.guard_bits``.
    dot_accumulator_bits : int
        Accumulator width of the dot-product mode, where all lanes of a word sum into one
        accumulator: max over formats of ``accumulator_bits + ceil(log2(lanes))``.
    peak_macs_per_cycle : mapping of str to int
        ``rows * cols * lanes`` per format.
    config_hash : int
        32-bit hash of the hardware-relevant configuration (everything but name, description
        and source); the hardware exposes it in a register and the driver checks it.
    """

    name: str = _key("custom", _NAME)
    description: str = _key("")
    engine: EngineConfig = _key()
    array: ArrayConfig = _key(ArrayConfig())
    axi: AxiConfig = _key(AxiConfig())
    buffers: BufferConfig = _key(BufferConfig())
    limits: LimitsConfig = _key(LimitsConfig())
    source: str | None = field(default=None, compare=False)

    def __post_init__(self):
        for f in _sections(Config):
            if not isinstance(getattr(self, f.name), f.type):
                raise TypeError(f"Config.{f.name} must be an instance of {f.type.__name__}, "
                                f"got {getattr(self, f.name)!r}")
        # Validate the object itself, so that one built by hand or by dataclasses.replace()
        # is held to the same rules as one loaded from a file.
        _, errors = _validate(config_to_dict(self), where="config")
        if errors:
            raise ConfigError(errors, self.source)

    def __getstate__(self):
        # Only the fields: derived values are recomputed on demand (and the read-only mapping
        # views they are cached as cannot be pickled or deep-copied).
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def formats(self):
        return self.engine.formats

    @cached_property
    def lanes(self):
        return MappingProxyType({name: format_lanes(get_format(name), self.engine.word_bits)
                                 for name in self.formats})

    @cached_property
    def modes(self):
        return tuple(sorted({get_format(name).bits for name in self.formats}))

    @cached_property
    def lanes_per_mode(self):
        return MappingProxyType({bits: self.engine.word_bits // bits for bits in self.modes})

    @cached_property
    def accumulator_bits(self):
        return MappingProxyType({
            name: accumulator_geometry(get_format(name), guard_bits=self.engine.guard_bits).width
            for name in self.formats
        })

    @cached_property
    def dot_accumulator_bits(self):
        # Summing L lanes into one accumulator needs ceil(log2(L)) more carry bits.
        return max(self.accumulator_bits[name] + (self.lanes[name] - 1).bit_length()
                   for name in self.formats)

    @cached_property
    def peak_macs_per_cycle(self):
        pes = self.array.rows * self.array.cols
        return MappingProxyType({name: pes * self.lanes[name] for name in self.formats})

    @cached_property
    def config_hash(self):
        hardware = config_to_dict(self)
        del hardware["name"], hardware["description"]
        # Canonical JSON: independent of key order and of how the YAML was written.
        canonical = json.dumps(hardware, sort_keys=True, separators=(",", ":"))
        return int(hashlib.sha256(canonical.encode()).hexdigest()[:8], 16)


def _keys(cls):
    return [f for f in fields(cls) if f.metadata.get("key")]


def _sections(cls):
    return [f for f in _keys(cls) if dataclasses.is_dataclass(f.type)]


# --- validation ------------------------------------------------------------------------------

_INVALID = object()   # marks a value that already produced an error (skip dependent checks)


def _show(value):
    """A value as the user wrote it in YAML, shortened."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _show_typed(value):
    if value is None:
        return "null"
    return f"{type(value).__name__} {_show(value)}"


def _did_you_mean(word, candidates):
    # Like difflib.get_close_matches(n=1), but ties go to the longer common prefix, then to the
    # earlier candidate: for 'posit8_1x' that is 'posit8_0', not 'posit4_1' or 'posit8_2'.
    word = str(word)
    best, best_score = None, (0.6, 0)
    for candidate in candidates:
        score = (difflib.SequenceMatcher(None, word, candidate).ratio(),
                 len(os.path.commonprefix([word, candidate])))
        if score > best_score:
            best, best_score = candidate, score
    return f"; did you mean {best!r}?" if best is not None else ""


def _known_formats():
    return ", ".join(FORMATS) + ", or any posit<n>_<es>"


def _check_format_name(name, path, errors):
    """Return the format of ``name`` (or ``_INVALID``, after recording why)."""
    if not isinstance(name, str):
        errors.append(f"{path}: expected a format name, got {_show_typed(name)}")
        return _INVALID
    try:
        return get_format(name)
    except UnknownFormatError as exc:
        if re.fullmatch(r"posit\d+_\d+", name):
            errors.append(f"{path}: {exc}")     # says which of n, es is out of range
        else:
            errors.append(f"{path}: unknown format {name!r}{_did_you_mean(name, FORMATS)} "
                          f"(known: {_known_formats()})")
        return _INVALID


def _check_format_list(value, path, errors, *, lane_formats):
    if not isinstance(value, list | tuple):
        errors.append(f"{path}: expected a list of format names such as [int8, posit8_0], "
                      f"got {_show_typed(value)}")
        return _INVALID
    if not value:
        errors.append(f"{path}: must list at least one format (known: {_known_formats()})")
        return _INVALID
    ok = True
    first_seen = {}
    for index, name in enumerate(value):
        item = f"{path}[{index}]"
        fmt = _check_format_name(name, item, errors)
        if fmt is _INVALID:
            ok = False
            continue
        if name in first_seen:
            errors.append(f"{item}: duplicate format {name!r} "
                          f"(already listed at {path}[{first_seen[name]}])")
            ok = False
            continue
        first_seen[name] = index
        if lane_formats and fmt.bits not in LANE_BITS:
            errors.append(f"{item}: {name} is {fmt.bits} bits wide; lane formats must be "
                          f"{_OneOf(*LANE_BITS)} bits")
            ok = False
        elif not lane_formats and fmt.bits > MAX_OUTPUT_BITS:
            errors.append(f"{item}: {name} is {fmt.bits} bits wide; output formats must be "
                          f"at most {MAX_OUTPUT_BITS} bits")
            ok = False
    return tuple(value) if ok else _INVALID


def _check_value(f, value, path, errors):
    kind = f.metadata["kind"]
    if kind == "formats":
        return _check_format_list(value, path, errors, lane_formats=True)
    if kind == "output_formats":
        if value is None:
            return None
        return _check_format_list(value, path, errors, lane_formats=False)
    # bool is a subclass of int in Python, but `true` is never a sensible width.
    if f.type is int and (isinstance(value, bool) or not isinstance(value, int)):
        errors.append(f"{path}: expected an integer, got {_show_typed(value)}")
        return _INVALID
    if f.type is bool and not isinstance(value, bool):
        errors.append(f"{path}: expected true or false, got {_show_typed(value)}")
        return _INVALID
    if f.type is str and not isinstance(value, str):
        errors.append(f"{path}: expected a string, got {_show_typed(value)}")
        return _INVALID
    accept = f.metadata["accept"]
    if accept is not None and value not in accept:
        errors.append(f"{path}: {_show(value)} is not accepted; must be {accept}")
        return _INVALID
    return value


def _check_mapping(cls, raw, prefix, errors):
    """Check ``raw`` against the keys of ``cls``; return ``{key: value or _INVALID}``."""
    keys = {f.name: f for f in _keys(cls)}
    for key in raw:
        if key not in keys:
            errors.append(f"{prefix}{key}: unknown key{_did_you_mean(key, keys)} "
                          f"(accepted: {', '.join(keys)})")
    values = {}
    for name, f in keys.items():
        path = prefix + name
        if dataclasses.is_dataclass(f.type):
            section = raw.get(name)
            if section is None:         # absent, or every key in it commented out
                section = {}
            if not isinstance(section, Mapping):
                errors.append(f"{path}: expected a mapping of {name} settings, "
                              f"got {_show_typed(section)}")
                values[name] = _INVALID
            else:
                values[name] = _check_mapping(f.type, section, path + ".", errors)
        elif name in raw:
            values[name] = _check_value(f, raw[name], path, errors)
        elif f.default is MISSING:
            hint = f" (a list such as [int8, posit8_0]; known: {_known_formats()})" \
                if f.metadata["kind"] == "formats" else ""
            errors.append(f"{path}: required key is missing{hint}")
            values[name] = _INVALID
        else:
            values[name] = f.default
    return values


def _valid(*values):
    return all(value is not _INVALID for value in values)


def _check_combinations(values, errors):
    """Constraints between keys; each runs only if the keys it reads are individually valid."""
    engine, array, axi, buffers = (values[s] for s in ("engine", "array", "axi", "buffers"))

    if _valid(engine):
        word_bits, formats = engine["word_bits"], engine["formats"]
        if _valid(word_bits, formats):
            for name in formats:
                bits = get_format(name).bits
                # Lane widths are 4, 8 or 16 and words 8, 16 or 32: fitting implies dividing.
                if bits > word_bits:
                    errors.append(f"engine.formats: {name} ({bits} bits) does not fit in a "
                                  f"word of engine.word_bits = {word_bits} bits")
    if _valid(array) and _valid(array["rows"], array["cols"]):
        rows, cols = array["rows"], array["cols"]
        if rows * cols > MAX_PES:
            errors.append(f"array: rows * cols = {rows} * {cols} = {rows * cols} PEs is more "
                          f"than the {MAX_PES} accepted")
    if _valid(engine, axi, buffers):
        k_tile, word_bits, data_bits = buffers["k_tile"], engine["word_bits"], axi["data_bits"]
        if _valid(k_tile, word_bits, data_bits) and k_tile * word_bits < data_bits:
            errors.append(f"buffers.k_tile: {k_tile} words of engine.word_bits = {word_bits} "
                          f"bits is {k_tile * word_bits} bits, less than one AXI beat of "
                          f"axi.data_bits = {data_bits} bits; must be at least "
                          f"{data_bits // word_bits}")
    if _valid(axi):
        beats, data_bits = axi["max_burst_beats"], axi["data_bits"]
        if _valid(beats, data_bits) and beats * data_bits // 8 > BURST_LIMIT_BYTES:
            errors.append(f"axi.max_burst_beats: {beats} beats of axi.data_bits = {data_bits} "
                          f"bits is {beats * data_bits // 8} bytes, but a burst cannot cross "
                          f"a {BURST_LIMIT_BYTES}-byte boundary; must be at most "
                          f"{BURST_LIMIT_BYTES * 8 // data_bits}")
        write_beats = axi["write_burst_beats"]
        if _valid(beats, write_beats) and write_beats > beats:
            errors.append(f"axi.write_burst_beats: {write_beats} is more than "
                          f"axi.max_burst_beats = {beats}")


def _validate(raw, *, where, default_name=None):
    """Check a parsed configuration; return ``(values, errors)`` with every error found."""
    errors = []
    if not isinstance(raw, Mapping):
        top = ", ".join(f.name for f in _keys(Config))
        errors.append(f"{where}: expected a mapping of config keys ({top}), "
                      f"got {_show_typed(raw)}")
        return None, errors
    if "name" not in raw and default_name is not None:
        if default_name in _NAME:
            raw = {**raw, "name": default_name}
        else:
            errors.append(f"name: {default_name!r} (taken from the file name) is not "
                          f"accepted; must be {_NAME}; add a 'name:' key")
    values = _check_mapping(Config, raw, "", errors)
    _check_combinations(values, errors)
    return values, errors


# --- public API ------------------------------------------------------------------------------

def config_from_dict(data, *, source=None):
    """Build a validated :class:`Config` from a plain mapping (e.g. parsed YAML).

    Parameters
    ----------
    data : mapping
        Configuration keys as in ``configs/default.yaml``; missing keys take their defaults.
    source : str or None
        Where the data came from; a missing ``name`` defaults to this file's stem.

    Raises
    ------
    ConfigError
        With every problem found, not just the first.
    """
    default_name = Path(source).stem if source is not None else None
    values, errors = _validate(data, where=source or "config", default_name=default_name)
    if errors:
        raise ConfigError(errors, source)
    sections = {f.name: f.type(**values[f.name]) for f in _sections(Config)}
    return Config(name=values["name"], description=values["description"], **sections,
                  source=source)


def config_to_dict(config, *, derived=False):
    """Return ``config`` as plain JSON-able data.

    ``config_from_dict(config_to_dict(config)) == config`` holds. ``source`` is not included.

    Parameters
    ----------
    config : Config
    derived : bool
        Also include a ``"derived"`` entry with the computed values (not accepted back by
        :func:`config_from_dict`).
    """
    data = {"name": config.name, "description": config.description}
    for section in _sections(Config):
        obj = getattr(config, section.name)
        data[section.name] = {
            f.name: list(value) if isinstance(value, tuple) else value
            for f in _keys(section.type) for value in [getattr(obj, f.name)]
        }
    if derived:
        data["derived"] = {
            "config_hash": config.config_hash,
            "lanes": dict(config.lanes),
            "modes": list(config.modes),
            "lanes_per_mode": {str(bits): n for bits, n in config.lanes_per_mode.items()},
            "accumulator_bits": dict(config.accumulator_bits),
            "dot_accumulator_bits": config.dot_accumulator_bits,
            "peak_macs_per_cycle": dict(config.peak_macs_per_cycle),
        }
    return data


class _Loader(yaml.SafeLoader):
    """A SafeLoader that records duplicate keys (plain YAML silently keeps the last one)."""

    def __init__(self, stream):
        super().__init__(stream)
        self.duplicates = []

    def construct_mapping(self, node, deep=False):
        first_line = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                line = key_node.start_mark.line + 1
                if key_node.value in first_line:
                    self.duplicates.append(
                        f"line {line}: duplicate key {key_node.value!r} (first at line "
                        f"{first_line[key_node.value]}); YAML would silently keep the last one")
                else:
                    first_line[key_node.value] = line
        return super().construct_mapping(node, deep=deep)


def _parse_yaml(text, source):
    loader = _Loader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = " ".join(str(part) for part in (getattr(exc, "context", None),
                                                  getattr(exc, "problem", None)) if part)
        if mark is None:
            raise ConfigError(f"{source}: YAML syntax error: {problem or exc}", source) from None
        lines = text.splitlines()

        def quote(mark):
            return f": {lines[mark.line].strip()!r}" if mark.line < len(lines) else ""

        # PyYAML words it as "while parsing X ... expected Y"; say where X started, since
        # that (an unclosed bracket, say) is often the real mistake.
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        where = ""
        if context and context_mark is not None and context_mark.line != mark.line:
            where = f" ({context} started at line {context_mark.line + 1}{quote(context_mark)})"
            problem = exc.problem
        raise ConfigError(f"{source}: YAML syntax error at line {mark.line + 1}, column "
                          f"{mark.column + 1}{quote(mark)}: {problem}{where}", source) from None
    finally:
        loader.dispose()
    if loader.duplicates:
        raise ConfigError([f"{source}: {message}" for message in loader.duplicates], source)
    if data is None:
        raise ConfigError(f"{source}: the file is empty; expected a mapping with at least "
                          f"engine.formats", source)
    return data


def load_config(path_or_name):
    """Load and validate a configuration file.

    Parameters
    ----------
    path_or_name : str or os.PathLike
        A bare name such as ``"default"`` or ``"tiny"`` selects ``CONFIG_DIR/<name>.yaml``;
        anything else (a :class:`~pathlib.Path`, or a string containing a path separator or
        ending in ``.yaml``/``.yml``) is a path.

    Raises
    ------
    ConfigError
        The file does not exist, is not valid YAML, or is not a valid configuration.
    """
    if isinstance(path_or_name, str) and path_or_name in _NAME:
        path = CONFIG_DIR / f"{path_or_name}.yaml"
        if not path.is_file():
            shipped = shipped_configs()
            raise ConfigError(f"{path_or_name!r} is not a shipped config"
                              f"{_did_you_mean(path_or_name, shipped)} (shipped: "
                              f"{', '.join(shipped)}; or give a path to a .yaml file)")
    else:
        path = Path(path_or_name)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such file", source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read: {exc}", source) from None
    return config_from_dict(_parse_yaml(text, source), source=source)


def shipped_configs():
    """Names of the configurations in :data:`CONFIG_DIR`, sorted."""
    return sorted(path.stem for path in CONFIG_DIR.glob("*.yaml"))


def _is_plain_yaml(text):
    """Whether ``text`` can be written unquoted in YAML and read back as the same string."""
    try:
        return bool(text) and yaml.safe_load(text) == text and text.strip() == text
    except yaml.YAMLError:
        return False


def format_config(config):
    """Describe ``config`` as aligned text, for ``npegen config show``.

    The settings part is valid YAML (it loads back to an equal configuration); the derived
    values follow as comments.
    """
    def scalar(value):
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return "[" + ", ".join(value) + "]"
        if isinstance(value, str):
            return value if _is_plain_yaml(value) else json.dumps(value)
        return str(value)

    data = config_to_dict(config)
    width = 2 + max(len(key) for section in _sections(Config) for key in data[section.name])
    lines = [f"# npegen design {config.name!r}"
             + (f" (from {config.source})" if config.source else "")]
    lines += [f"{'name:':<{width + 2}}{config.name}",
              f"{'description:':<{width + 2}}{scalar(config.description)}"]
    for section in _sections(Config):
        lines.append(f"{section.name}:")
        lines += [f"  {key + ':':<{width}}{scalar(value)}"
                  for key, value in data[section.name].items()]

    lines += ["", "# derived",
              f"#   config_hash           0x{config.config_hash:08x}",
              "#   modes                 " + ", ".join(
                  f"{bits}-bit x{config.lanes_per_mode[bits]}" for bits in config.modes),
              f"#   dot_accumulator_bits  {config.dot_accumulator_bits}",
              f"#   PEs                   {config.array.rows * config.array.cols}"
              f" ({config.array.rows} x {config.array.cols})",
              "#"]
    header = ("format", "bits", "lanes", "accumulator_bits", "peak_macs_per_cycle")
    rows = [(name, get_format(name).bits, config.lanes[name], config.accumulator_bits[name],
             config.peak_macs_per_cycle[name]) for name in config.formats]
    name_width = max(len(header[0]), *(len(row[0]) for row in rows))
    for row in [header, *rows]:
        cells = [f"{row[0]:<{name_width}}"] + [f"{cell:>{len(title)}}"
                                               for cell, title in zip(row[1:], header[1:])]
        lines.append("#   " + "  ".join(cells))
    return "\n".join(lines)
