"""Test harness (not product): a memory-copy unit built from one AxiReadDma and one
AxiWriteDma sharing one AXI4 manager port ``m_axi``.

Read data feeds write data with the strobes of the ``wr_strb`` input, unless ``rd_sink``
is high: then read data is consumed and dropped (to measure the read half alone). The
commands and status of both halves are flat ports (``rd_cmd_valid``, ``rd_cmd_addr``, ...,
``wr_idle``), and the read data stream is mirrored on ``rd_out_*`` outputs so that the
bench can check it. Exported with ``to_verilog(..., separator="_")``.

The two halves have separate ``rd_abort`` / ``wr_abort`` inputs: what to do with one half
when the other reports an error is a top-level policy, and the bench implements it (it
aborts the other half).
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from generators.rtl.axi import Axi4Signature, connect_half
from generators.rtl.dma import AxiReadDma, AxiWriteDma

__all__ = ["DmaCopyHarness"]


class DmaCopyHarness(wiring.Component):
    """Memory copy through an AXI4 read DMA and write DMA (parameters as theirs)."""

    def __init__(self, *, addr_width: int = 32, data_width: int = 32, id_width: int = 1,
                 max_burst_beats: int = 16, max_outstanding: int = 4, len_bits: int = 24):
        self.params = dict(addr_width=addr_width, data_width=data_width, id_width=id_width,
                           max_burst_beats=max_burst_beats, max_outstanding=max_outstanding,
                           len_bits=len_bits)
        members = {"m_axi": Out(Axi4Signature(addr_width=addr_width, data_width=data_width,
                                              id_width=id_width))}
        for side in ("rd", "wr"):
            members.update({
                f"{side}_cmd_valid": In(1), f"{side}_cmd_addr": In(addr_width),
                f"{side}_cmd_beats": In(len_bits), f"{side}_cmd_ready": Out(1),
                f"{side}_abort": In(1),
                f"{side}_error": Out(1), f"{side}_idle": Out(1), f"{side}_beat": Out(1),
            })
        members.update({
            "wr_strb": In(data_width // 8),
            "rd_sink": In(1),
            "rd_out_valid": Out(1), "rd_out_ready": Out(1), "rd_out_last": Out(1),
            "rd_out_data": Out(data_width),
        })
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.rd = rd = AxiReadDma(**self.params)
        m.submodules.wr = wr = AxiWriteDma(**self.params)
        connect_half(m, self.m_axi, rd.bus)
        connect_half(m, self.m_axi, wr.bus)
        for side, dma in (("rd", rd), ("wr", wr)):
            m.d.comb += [
                dma.cmd.valid.eq(getattr(self, f"{side}_cmd_valid")),
                dma.cmd.payload.addr.eq(getattr(self, f"{side}_cmd_addr")),
                dma.cmd.payload.beats.eq(getattr(self, f"{side}_cmd_beats")),
                getattr(self, f"{side}_cmd_ready").eq(dma.cmd.ready),
                dma.abort.eq(getattr(self, f"{side}_abort")),
                getattr(self, f"{side}_error").eq(dma.error),
                getattr(self, f"{side}_idle").eq(dma.idle),
                getattr(self, f"{side}_beat").eq(dma.beat),
            ]
        m.d.comb += [
            wr.data.valid.eq(rd.data.valid & ~self.rd_sink),
            wr.data.payload.data.eq(rd.data.payload.data),
            wr.data.payload.strb.eq(self.wr_strb),
            rd.data.ready.eq(self.rd_sink | wr.data.ready),
            self.rd_out_valid.eq(rd.data.valid),
            self.rd_out_ready.eq(rd.data.ready),
            self.rd_out_last.eq(rd.data.payload.last),
            self.rd_out_data.eq(rd.data.payload.data),
        ]
        return m
