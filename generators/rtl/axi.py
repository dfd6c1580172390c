"""AMBA AXI4 and AXI4-Lite interface signatures.

Members are flat and carry the AMBA signal names (``awaddr``, ``rready``, ...), so that a
port ``m_axi`` of a top-level component exports as ``m_axi_awaddr`` etc. (see
:func:`generators.build.to_verilog`), which is what cocotbext-axi's ``from_prefix`` and
vendor IP integrators expect. Directions are those of the *manager* (master): ``Out`` is
driven by the manager; a subordinate (slave) port is ``In(signature)``, i.e. flipped.

The AXI4 signature is the union of a read half (AR, R) and a write half (AW, W, B), so a
read DMA and a write DMA each take one half and the top level joins them with
:func:`connect_half`.
"""

from __future__ import annotations

from amaranth.hdl import Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AxiResp", "AxiBurst", "Axi4ReadSignature", "Axi4WriteSignature", "Axi4Signature",
           "AxiLiteSignature", "connect_half"]


class AxiResp:
    """RRESP/BRESP codes."""
    OKAY = 0
    EXOKAY = 1
    SLVERR = 2
    DECERR = 3


class AxiBurst:
    """ARBURST/AWBURST codes."""
    FIXED = 0
    INCR = 1
    WRAP = 2


def _check(addr_width, data_width, id_width=None, *, lite=False):
    if not isinstance(addr_width, int) or not 12 <= addr_width <= 64:
        raise ValueError(f"addr_width must be an integer from 12 to 64, not {addr_width!r}")
    allowed = (32, 64) if lite else (32, 64, 128, 256, 512, 1024)
    if data_width not in allowed:
        raise ValueError(f"data_width must be one of {', '.join(map(str, allowed))}, "
                         f"not {data_width!r}")
    if id_width is not None and (not isinstance(id_width, int) or not 1 <= id_width <= 16):
        raise ValueError(f"id_width must be an integer from 1 to 16, not {id_width!r}")


def _read_members(addr_width, data_width, id_width):
    return {
        "arid": Out(id_width), "araddr": Out(addr_width), "arlen": Out(8), "arsize": Out(3),
        "arburst": Out(2), "arlock": Out(1), "arcache": Out(4), "arprot": Out(3),
        "arvalid": Out(1), "arready": In(1),
        "rid": In(id_width), "rdata": In(data_width), "rresp": In(2), "rlast": In(1),
        "rvalid": In(1), "rready": Out(1),
    }


def _write_members(addr_width, data_width, id_width):
    return {
        "awid": Out(id_width), "awaddr": Out(addr_width), "awlen": Out(8), "awsize": Out(3),
        "awburst": Out(2), "awlock": Out(1), "awcache": Out(4), "awprot": Out(3),
        "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wlast": Out(1),
        "wvalid": Out(1), "wready": In(1),
        "bid": In(id_width), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
    }


class _AxiSignature(wiring.Signature):
    _kind = ""

    def __init__(self, *, addr_width: int, data_width: int, id_width: int):
        _check(addr_width, data_width, id_width)
        self.addr_width = addr_width
        self.data_width = data_width
        self.id_width = id_width
        super().__init__(self._members(addr_width, data_width, id_width))

    def __eq__(self, other):
        return (type(self) is type(other) and self.addr_width == other.addr_width
                and self.data_width == other.data_width and self.id_width == other.id_width)

    def __hash__(self):
        return hash((type(self), self.addr_width, self.data_width, self.id_width))

    def __repr__(self):
        return (f"{type(self).__name__}(addr_width={self.addr_width}, "
                f"data_width={self.data_width}, id_width={self.id_width})")


class Axi4ReadSignature(_AxiSignature):
    """The read half (AR and R channels) of an AXI4 manager.

    Parameters
    ----------
    addr_width : int
        Byte address width (12 to 64).
    data_width : int
        Data width in bits (32 to 1024, a power of two).
    id_width : int
        Transaction ID width (1 to 16).
    """

    @staticmethod
    def _members(a, d, i):
        return _read_members(a, d, i)


class Axi4WriteSignature(_AxiSignature):
    """The write half (AW, W and B channels) of an AXI4 manager. Parameters as
    :class:`Axi4ReadSignature`."""

    @staticmethod
    def _members(a, d, i):
        return _write_members(a, d, i)


class Axi4Signature(_AxiSignature):
    """A full AXI4 manager interface (all five channels). Parameters as
    :class:`Axi4ReadSignature`."""

    @staticmethod
    def _members(a, d, i):
        return {**_write_members(a, d, i), **_read_members(a, d, i)}


class AxiLiteSignature(wiring.Signature):
    """An AXI4-Lite manager interface (``In(AxiLiteSignature(...))`` for a subordinate).

    Parameters
    ----------
    addr_width : int
        Byte address width (12 to 64).
    data_width : int
        32 or 64.
    """

    def __init__(self, *, addr_width: int, data_width: int = 32):
        _check(addr_width, data_width, lite=True)
        self.addr_width = addr_width
        self.data_width = data_width
        super().__init__({
            "awaddr": Out(addr_width), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wvalid": Out(1),
            "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_width), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
            "rdata": In(data_width), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })

    def __eq__(self, other):
        return (type(self) is type(other) and self.addr_width == other.addr_width
                and self.data_width == other.data_width)

    def __hash__(self):
        return hash((type(self), self.addr_width, self.data_width))

    def __repr__(self):
        return f"AxiLiteSignature(addr_width={self.addr_width}, data_width={self.data_width})"


def connect_half(m, full, half):
    """Connect the members of ``half`` (a read or write half, both manager-side ports)
    to the same-named members of ``full`` (the manager port of the whole AXI4 interface).
    """
    stmts = []
    for name, member in half.signature.members.items():
        outer, inner = getattr(full, name), getattr(half, name)
        if member.flow == Out:
            stmts.append(Value.cast(outer).eq(inner))
        else:
            stmts.append(Value.cast(inner).eq(outer))
    m.d.comb += stmts
