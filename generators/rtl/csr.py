"""The AXI4-Lite register file of the co-processor, built from a :class:`RegisterMap`.

The register map (:mod:`generators.regmap`) is the single description of the registers;
this module only turns it into hardware, so the RTL, ``regmap.json``, ``regmap.h`` and
``regmap.md`` cannot disagree.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from generators.regmap import RegisterMap
from generators.rtl.axi import AxiLiteSignature, AxiResp

__all__ = ["RegisterFile", "member_name"]


def member_name(reg, field) -> str:
    """The member name of ``field`` of ``reg``: ``<reg>_<field>`` in lower case, or just
    ``<reg>`` for a register whose only field is ``VALUE``."""
    if len(reg.fields) == 1 and field.name == "VALUE":
        return reg.name.lower()
    return f"{reg.name}_{field.name}".lower()


class RegisterFile(wiring.Component):
    """AXI4-Lite subordinate holding the registers of a :class:`~generators.regmap.RegisterMap`.

    Parameters
    ----------
    regmap : RegisterMap
        The map to implement (``build_regmap(cfg)``, or ``RegisterMap.from_json(...)``).

    Members
    -------
    bus : In(AxiLiteSignature(addr_width=regmap.addr_bits, data_width=32))
        The register window (subordinate side).
    <name> : one per field that is not ``const``, named by :func:`member_name`
        (``ctrl_start``, ``status_error``, ``format_out``; ``m``, ``a_addr_lo``,
        ``a_stride`` for the single-``VALUE`` registers):

        * ``rw``  -> ``Out(width)``: the stored value, initialised to ``Field.reset``.
        * ``w1p`` -> ``Out(1)``: high for exactly one cycle (the cycle after the write is
          performed) when software writes 1 to the bit.
        * ``ro``  -> ``In(width)``: driven by the hardware, sampled when read.
        * ``w1c`` -> ``In(1)`` ``<name>_set``, a set pulse from the hardware, and ``Out(1)``
          ``<name>``, the stored bit. A set and a software clear in the same cycle: the set
          wins, so no event is lost.
    <counter> : In(64), one per 64-bit counter (``cycles``, ``macs``, ...)
        Reading ``<COUNTER>_LO`` returns bits [31:0] and latches bits [63:32] into a shadow
        register that ``<COUNTER>_HI`` returns (read LO, then HI: a tear-free value).

    Behaviour
    ---------
    * Writes: AW and W are accepted independently (either order, or together) into
      one-deep holding registers; the write is performed once both are present and no
      write response is outstanding, and BVALID rises the cycle after. BVALID and BRESP are
      held until BREADY. WSTRB byte enables are honoured for every field (a ``w1p`` or
      ``w1c`` bit whose byte is not enabled is not written).
    * A write to an unmapped offset, or to a register with no ``rw``/``w1p``/``w1c`` field
      (``const``/``ro`` registers, counters), has no effect and returns SLVERR. Writes to
      the ``const``/``ro`` fields of a writable register are ignored (OKAY).
    * Reads: one at a time; ARREADY is high while no read response is pending, RDATA/RRESP
      are registered and held with RVALID until RREADY. An unmapped offset reads 0 with
      SLVERR. ``w1p`` fields read 0.
    * Offsets are decoded on address bits ``[2:addr_bits]``; the two low address bits
      (sub-word byte address) are ignored, AWPROT/ARPROT too.
    * No soft reset here: the controller acts on CTRL.SOFT_RESET; configuration registers
      keep their values across it.
    """

    def __init__(self, regmap: RegisterMap):
        if not isinstance(regmap, RegisterMap):
            raise TypeError(f"regmap must be a RegisterMap (generators.regmap.build_regmap), "
                            f"not {type(regmap).__name__}")
        if regmap.data_bits != 32:
            raise ValueError(f"regmap.data_bits must be 32, not {regmap.data_bits}")
        if regmap.addr_bits < 12:
            raise ValueError(f"regmap.addr_bits must be at least 12 (AXI4-Lite), "
                             f"not {regmap.addr_bits}")
        self.regmap = regmap
        members = {"bus": In(AxiLiteSignature(addr_width=regmap.addr_bits, data_width=32))}
        owner = {"bus": "the AXI4-Lite port"}

        def add(name, member, what):
            if name in owner:
                raise ValueError(f"member name {name!r} of {what} collides with "
                                 f"{owner[name]}")
            owner[name] = what
            members[name] = member

        for reg in regmap.registers:
            if reg.kind != "reg":
                continue
            for f in reg.fields:
                name, what = member_name(reg, f), f"{reg.name}.{f.name}"
                if f.access == "rw":
                    add(name, Out(f.width, init=f.reset), what)
                elif f.access == "w1p":
                    add(name, Out(1), what)
                elif f.access == "ro":
                    add(name, In(f.width), what)
                elif f.access == "w1c":
                    if f.width != 1:
                        raise ValueError(f"{what}: a w1c field must be 1 bit wide, "
                                         f"not {f.width}")
                    add(name + "_set", In(1), what)
                    add(name, Out(1, init=f.reset), what)
        for counter in regmap.counters:
            add(counter.name.lower(), In(64), f"counter {counter.name}")
        super().__init__(members)

    def field_signal(self, reg_name: str, field_name: str):
        """The member of a field (its ``Out`` value for ``w1c``); None for ``const``."""
        f = self.regmap.field(reg_name, field_name)
        if f.access == "const":
            return None
        return getattr(self, member_name(self.regmap.register(reg_name), f))

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        rm = self.regmap
        word = slice(2, rm.addr_bits)

        # ---- write path ----------------------------------------------------------------
        aw_full = Signal()
        aw_addr = Signal(rm.addr_bits)
        w_full = Signal()
        w_data = Signal(32)
        w_strb = Signal(4)
        m.d.comb += [bus.awready.eq(~aw_full), bus.wready.eq(~w_full)]
        with m.If(bus.awvalid & ~aw_full):
            m.d.sync += [aw_full.eq(1), aw_addr.eq(bus.awaddr)]
        with m.If(bus.wvalid & ~w_full):
            m.d.sync += [w_full.eq(1), w_data.eq(bus.wdata), w_strb.eq(bus.wstrb)]
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)

        do_write = Signal()
        m.d.comb += do_write.eq(aw_full & w_full & ~bus.bvalid)
        bit_en = Cat(*(w_strb[i].replicate(8) for i in range(4)))   # per-bit write enable

        clears = []     # (w1c member, its set input, its clear strobe)
        for reg in rm.registers:
            for f in reg.fields:
                if f.access == "w1p":
                    m.d.sync += self.field_signal(reg.name, f.name).eq(0)   # default: no pulse
                elif f.access == "w1c":
                    name = member_name(reg, f)
                    clears.append((getattr(self, name), getattr(self, name + "_set"),
                                   Signal(name=f"{name}_clear")))
        clear_of = {id(sig): clr for sig, _, clr in clears}

        with m.If(do_write):
            m.d.sync += [aw_full.eq(0), w_full.eq(0), bus.bvalid.eq(1),
                         bus.bresp.eq(AxiResp.SLVERR)]
            with m.Switch(aw_addr[word]):
                for reg in rm.registers:
                    if not reg.writable:
                        continue
                    with m.Case(reg.offset >> 2):
                        m.d.sync += bus.bresp.eq(AxiResp.OKAY)
                        for f in reg.fields:
                            bits = slice(f.lsb, f.lsb + f.width)
                            data, en = w_data[bits], bit_en[bits]
                            sig = self.field_signal(reg.name, f.name)
                            if f.access == "rw":
                                m.d.sync += sig.eq((sig & ~en) | (data & en))
                            elif f.access == "w1p":
                                m.d.sync += sig.eq(data & en)
                            elif f.access == "w1c":
                                m.d.comb += clear_of[id(sig)].eq(data & en)

        for sig, set_, clr in clears:
            with m.If(set_):
                m.d.sync += sig.eq(1)
            with m.Elif(clr):
                m.d.sync += sig.eq(0)

        # ---- read path -----------------------------------------------------------------
        shadows = {c.name: Signal(32, name=f"{c.name.lower()}_hi_shadow") for c in rm.counters}
        m.d.comb += bus.arready.eq(~bus.rvalid)
        with m.If(bus.arvalid & ~bus.rvalid):
            m.d.sync += [bus.rvalid.eq(1), bus.rdata.eq(0), bus.rresp.eq(AxiResp.SLVERR)]
            with m.Switch(bus.araddr[word]):
                for reg in rm.registers:
                    with m.Case(reg.offset >> 2):
                        m.d.sync += bus.rresp.eq(AxiResp.OKAY)
                        if reg.kind == "counter_lo":
                            count = getattr(self, reg.counter.lower())
                            m.d.sync += [bus.rdata.eq(count[:32]),
                                         shadows[reg.counter].eq(count[32:])]
                        elif reg.kind == "counter_hi":
                            m.d.sync += bus.rdata.eq(shadows[reg.counter])
                        else:
                            m.d.sync += bus.rdata.eq(self._read_value(reg))
        with m.Elif(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)

        return m

    def _read_value(self, reg):
        const = sum(f.reset << f.lsb for f in reg.fields if f.access == "const")
        value = Const(const, 32)
        for f in reg.fields:
            if f.access in ("rw", "ro", "w1c"):
                value = value | (Value.cast(self.field_signal(reg.name, f.name)) << f.lsb)
        return value[:32]
