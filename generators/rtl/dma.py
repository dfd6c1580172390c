"""AXI4 manager burst DMA: a read half and a write half.

Each half takes *commands* — a byte address and a number of data-bus beats — on an
``amaranth.lib.stream`` and moves them over its half of an AXI4 manager port
(:class:`generators.rtl.axi.Axi4ReadSignature` / :class:`~generators.rtl.axi.Axi4WriteSignature`;
a top level joins the two with :func:`generators.rtl.axi.connect_half`)::

    cmd ─► burst splitter ─► AR/AW register ─► bus
                 │ (≤ max_burst_beats, never across 4 KiB)
                 └─► per-burst queue ─► R: last flag of the command  ─► skid ─► data
                                        W: beats owed to each burst ◄─ skid ◄─ data

* A command is split into INCR bursts of full-width beats (AxSIZE = log2(data bytes)) of
  at most ``max_burst_beats`` beats, none crossing a 4 KiB boundary. The splitter is
  registered in three stages for Fmax (``cmd.ready`` comes from a register; the first
  burst of a command is offered to the AR/AW register three cycles after the command is
  taken). It takes the next command in the cycle it hands out the last burst of the
  current one, so back-to-back commands leave no gap on the address channel, and up to
  ``max_outstanding`` bursts are in flight, so the data channel need not wait for
  address round trips.
* One transaction ID (0): responses come back in order.
* The data streams pass through a two-entry skid buffer, so that ``data.ready`` and the
  bus ready/valid signals have no combinational path between them.
* Errors (SLVERR/DECERR) and ``abort`` stop the DMA *cleanly*: no new bursts are
  addressed, the current command is dropped, and the DMA keeps its side of every burst
  already addressed (the read half accepts all their R beats, the write half sends all
  their W beats — with WSTRB = 0 — and accepts all their B responses). ``idle`` rises when
  that is done; the DMA then accepts commands again. The bus side never violates AXI
  (AxVALID and WVALID with their payloads stay stable until accepted).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from generators.config import BURST_LIMIT_BYTES
from generators.rtl.axi import Axi4ReadSignature, Axi4WriteSignature, AxiBurst
from generators.rtl.streams import SkidBuffer

__all__ = ["AxiReadDma", "AxiWriteDma", "dma_cmd_layout", "read_data_layout",
           "write_data_layout"]

#: AxCACHE: normal non-cacheable bufferable.
CACHE_NORMAL_NC_BUFFERABLE = 0b0011


def dma_cmd_layout(*, addr_width: int, len_bits: int = 24) -> data.StructLayout:
    """Payload of one DMA command: a byte address (a multiple of the data bytes) and a
    number of data-bus beats."""
    return data.StructLayout({"addr": addr_width, "beats": len_bits})


def read_data_layout(*, data_width: int) -> data.StructLayout:
    """Payload of one read beat; ``last`` marks the final beat of a command."""
    return data.StructLayout({"data": data_width, "last": 1})


def write_data_layout(*, data_width: int) -> data.StructLayout:
    """Payload of one write beat with its byte strobes."""
    return data.StructLayout({"data": data_width, "strb": data_width // 8})


def _check_params(addr_width, data_width, id_width, max_burst_beats, max_outstanding, len_bits):
    def integer(name, value, lo, hi):
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise ValueError(f"{name} must be an integer from {lo} to {hi}, not {value!r}")
    integer("addr_width", addr_width, 12, 64)
    if data_width not in (32, 64, 128):
        raise ValueError(f"data_width must be 32, 64 or 128, not {data_width!r}")
    integer("id_width", id_width, 1, 16)
    integer("max_burst_beats", max_burst_beats, 1, 256)
    integer("max_outstanding", max_outstanding, 1, 16)
    integer("len_bits", len_bits, 1, 32)


class _BurstSplitter(wiring.Component):
    """Splits commands into INCR bursts of at most ``max_burst_beats`` beats that do not
    cross a 4 KiB boundary. ``burst.last`` marks the final burst of a command. ``stop``
    drops the current command (and any command already taken but not started) and refuses
    new ones while high.

    Three register stages, so that no path is longer than one small adder (Fmax)::

        cmd ─► skid buffer ─► command being split ─► burst register ─► burst
                              (addr, beats left, beats to the 4 KiB boundary)

    ``cmd.ready`` comes from a register (the skid buffer), so the command's producer sees
    no combinational path from the bus; the beats left before the 4 KiB boundary are kept
    in a register and stepped with each burst rather than computed from the address.
    A command's first burst leaves two cycles after the command is taken; after that one
    burst per cycle, also across commands.
    """

    def __init__(self, *, addr_width, data_bytes, max_burst_beats, len_bits):
        self._addr_width = addr_width
        self._shift = data_bytes.bit_length() - 1
        self._max_burst = max_burst_beats
        self._len_bits = len_bits
        super().__init__({
            "cmd": In(stream.Signature(dma_cmd_layout(addr_width=addr_width, len_bits=len_bits))),
            "burst": Out(stream.Signature(data.StructLayout({
                "addr": addr_width, "beats": range(max_burst_beats + 1), "last": 1}))),
            "stop": In(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        shift, max_burst = self._shift, self._max_burst
        page_beats = BURST_LIMIT_BYTES >> shift

        # ---- stage 1: the command register (a skid buffer: cmd.ready is a register) -------
        m.submodules.cmd_skid = skid = SkidBuffer(
            dma_cmd_layout(addr_width=self._addr_width, len_bits=self._len_bits))
        m.d.comb += [
            skid.i.valid.eq(self.cmd.valid & ~self.stop),
            skid.i.payload.eq(self.cmd.payload),
            self.cmd.ready.eq(skid.i.ready & ~self.stop),
            skid.flush.eq(self.stop),
        ]

        # ---- stage 2: the command being split ----------------------------------------------
        active = Signal()
        addr = Signal(self._addr_width)
        remaining = Signal.like(self.cmd.payload.beats)
        page_left = Signal(range(page_beats + 1))     # beats from addr to the next 4 KiB

        cap = Signal(range(max_burst + 1))
        m.d.comb += cap.eq(Mux(page_left < max_burst, page_left, max_burst))
        last = Signal()
        m.d.comb += last.eq(remaining <= cap)
        beats = Signal(range(max_burst + 1))
        m.d.comb += beats.eq(Mux(last, remaining, cap))

        # ---- stage 3: the burst register -------------------------------------------------
        advance = Signal()          # stage 2 hands a burst to stage 3
        m.d.comb += advance.eq(active & (~self.burst.valid | self.burst.ready))
        with m.If(self.stop):
            m.d.sync += self.burst.valid.eq(0)
        with m.Elif(advance):
            m.d.sync += [
                self.burst.valid.eq(1),
                self.burst.payload.addr.eq(addr),
                self.burst.payload.beats.eq(beats),
                self.burst.payload.last.eq(last),
            ]
        with m.Elif(self.burst.ready):
            m.d.sync += self.burst.valid.eq(0)

        take = Signal()
        m.d.comb += [
            take.eq(~self.stop & (~active | (advance & last))),
            skid.o.ready.eq(take),
        ]
        cmd = skid.o.payload
        with m.If(self.stop):
            m.d.sync += active.eq(0)
        with m.Elif(take & skid.o.valid):
            m.d.sync += [
                addr.eq(cmd.addr),
                remaining.eq(cmd.beats),
                page_left.eq(page_beats - cmd.addr[shift:12]),
                active.eq(cmd.beats != 0),    # 0 beats: accepted, nothing moves
            ]
        with m.Elif(take):
            m.d.sync += active.eq(0)
        with m.Elif(advance):
            # Not the last burst, so it had ``cap`` beats: it ended at the 4 KiB boundary
            # (the next one starts a new page) or ``max_burst`` beats before it.
            m.d.sync += [
                addr.eq(addr + (cap << shift)),
                remaining.eq(remaining - cap),
                page_left.eq(Mux(page_left <= max_burst, page_beats, page_left - max_burst)),
            ]
        m.d.comb += self.busy.eq(skid.o.valid | active | self.burst.valid)
        return m


class _DmaBase(wiring.Component):
    def __init__(self, *, addr_width: int, data_width: int, id_width: int,
                 max_burst_beats: int, max_outstanding: int, len_bits: int, members: dict):
        self.addr_width = addr_width
        self.data_width = data_width
        self.id_width = id_width
        self.max_burst_beats = max_burst_beats
        self.max_outstanding = max_outstanding
        self.len_bits = len_bits
        self.data_bytes = data_width // 8
        super().__init__({
            "cmd": In(stream.Signature(dma_cmd_layout(addr_width=addr_width, len_bits=len_bits))),
            **members,
            "abort": In(1),
            "error": Out(1),
            "idle": Out(1),
            "beat": Out(1),
        })

    def _splitter(self, m):
        m.submodules.splitter = split = _BurstSplitter(
            addr_width=self.addr_width, data_bytes=self.data_bytes,
            max_burst_beats=self.max_burst_beats, len_bits=self.len_bits)
        wiring.connect(m, wiring.flipped(self.cmd), split.cmd)
        return split


class AxiReadDma(_DmaBase):
    """AXI4 read DMA: commands in, the data of each command out, in order.

    Parameters
    ----------
    addr_width : int
        Byte address width (12 to 64).
    data_width : int
        Bus and beat width in bits: 32, 64 or 128.
    id_width : int
        ARID/RID width (1 to 16); the DMA always uses ID 0.
    max_burst_beats : int
        Longest burst (1 to 256 beats; any value, not only powers of two).
    max_outstanding : int
        Bursts addressed but not yet completed (1 to 16).
    len_bits : int
        Width of a command's beat count.

    Members
    -------
    cmd : In(stream.Signature(dma_cmd_layout(...)))
        One transfer: ``addr`` is a byte address that must be a multiple of
        ``data_width // 8`` (not checked: the low bits are passed to the bus as they are),
        ``beats`` the number of beats. A command of 0 beats is accepted and moves
        nothing (and produces no ``last``). ``addr + beats * data_width // 8`` must not
        pass the end of the address space. Commands are not accepted while the DMA
        stops after an error or ``abort``.
    data : Out(stream.Signature(read_data_layout(...)))
        The beats of the commands in order, ``last`` on the final beat of each command.
    bus : Out(Axi4ReadSignature(...))
    abort : In(1)
        Pulse: stop as after an error (below) but without setting ``error``; also clears
        ``error``. For a soft reset mid-transfer.
    error : Out(1)
        Sticky: an R beat came back with SLVERR or DECERR. From then on the DMA
        addresses no new bursts, drops the current command, delivers no more data (beats
        still in its output buffer are discarded, so ``data.valid`` may fall without a
        transfer and the failed command never sees ``last``) and accepts, with ``rready``
        high, every R beat of the bursts already addressed. Error responses to those
        bursts (and to bursts aborted) are not reported again. ``error`` stays set —
        it does not block later commands — until ``abort``.
    idle : Out(1)
        No command in progress, no burst outstanding, no data waiting in the output
        buffer, not stopping.
    beat : Out(1)
        One-cycle pulse (a cycle late) per good R beat taken into the data path; beats
        discarded after an error or abort are not counted.
    """

    def __init__(self, *, addr_width: int, data_width: int, id_width: int = 1,
                 max_burst_beats: int = 16, max_outstanding: int = 4, len_bits: int = 24):
        _check_params(addr_width, data_width, id_width, max_burst_beats, max_outstanding,
                      len_bits)
        super().__init__(
            addr_width=addr_width, data_width=data_width, id_width=id_width,
            max_burst_beats=max_burst_beats, max_outstanding=max_outstanding,
            len_bits=len_bits, members={
                "data": Out(stream.Signature(read_data_layout(data_width=data_width))),
                "bus": Out(Axi4ReadSignature(addr_width=addr_width, data_width=data_width,
                                             id_width=id_width)),
            })

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        split = self._splitter(m)
        stopping = Signal()
        m.d.comb += split.stop.eq(stopping | self.abort)     # no command taken as abort comes

        # ---- R: per-burst "last burst of its command" flags, skid buffer to data ---------
        m.submodules.flags = flags = SyncFIFO(width=1, depth=self.max_outstanding + 1)
        m.submodules.skid = skid = SkidBuffer(read_data_layout(data_width=self.data_width))
        wiring.connect(m, skid.o, wiring.flipped(self.data))
        r_err = Signal()
        r_fire = Signal()
        r_last_fire = Signal()
        m.d.comb += [
            r_err.eq(bus.rresp[1]),          # SLVERR or DECERR
            bus.rready.eq(stopping | skid.i.ready),
            r_fire.eq(bus.rvalid & bus.rready),
            r_last_fire.eq(r_fire & bus.rlast),
            skid.i.valid.eq(bus.rvalid & ~stopping & ~r_err),
            skid.i.payload.data.eq(bus.rdata),
            skid.i.payload.last.eq(bus.rlast & flags.r_data),
            skid.flush.eq(stopping),
            flags.r_en.eq(r_last_fire),
        ]
        m.d.sync += self.beat.eq(skid.i.valid & skid.i.ready)

        # ---- AR: a register loaded from the splitter ---------------------------------------
        in_flight = Signal(range(self.max_outstanding + 1))    # addressed, not completed
        room = Signal()
        load = Signal()
        m.d.comb += [
            room.eq((in_flight < self.max_outstanding) | r_last_fire),
            load.eq(split.burst.valid & (~bus.arvalid | bus.arready) & room & ~stopping),
            split.burst.ready.eq(load),
            flags.w_en.eq(load),
            flags.w_data.eq(split.burst.payload.last),
        ]
        with m.If(load):
            m.d.sync += [
                bus.arvalid.eq(1),
                bus.araddr.eq(split.burst.payload.addr),
                bus.arlen.eq(split.burst.payload.beats - 1),
            ]
        with m.Elif(bus.arready):
            m.d.sync += bus.arvalid.eq(0)
        m.d.sync += in_flight.eq(in_flight + load - r_last_fire)
        m.d.comb += [
            bus.arid.eq(0),
            bus.arsize.eq(self.data_bytes.bit_length() - 1),
            bus.arburst.eq(AxiBurst.INCR),
            bus.arlock.eq(0),
            bus.arcache.eq(CACHE_NORMAL_NC_BUFFERABLE),
            bus.arprot.eq(0),
        ]

        # ---- error, abort, idle ------------------------------------------------------------
        new_error = Signal()
        m.d.comb += new_error.eq(r_fire & r_err & ~stopping)
        drained = Signal()
        m.d.comb += drained.eq(~split.busy & ~bus.arvalid & (in_flight == 0))
        with m.If(self.abort):
            m.d.sync += self.error.eq(0)
        with m.Elif(new_error):
            m.d.sync += self.error.eq(1)
        with m.If(self.abort | new_error):
            m.d.sync += stopping.eq(1)
        with m.Elif(drained):
            m.d.sync += stopping.eq(0)
        m.d.comb += self.idle.eq(drained & ~stopping & ~self.data.valid)
        return m


class AxiWriteDma(_DmaBase):
    """AXI4 write DMA: commands and a data stream in, bursts out.

    Parameters
    ----------
    addr_width, data_width, id_width, max_burst_beats, len_bits
        As :class:`AxiReadDma`.
    max_outstanding : int
        Bursts addressed whose B response has not arrived (1 to 16).

    Members
    -------
    cmd : In(stream.Signature(dma_cmd_layout(...)))
        As :class:`AxiReadDma`.
    data : In(stream.Signature(write_data_layout(...)))
        The beats of the commands in order, with byte strobes. The first beats may be
        offered before their command; they wait in a two-entry input buffer.
    bus : Out(Axi4WriteSignature(...))
        AW is issued as soon as a burst is split off (W beats of earlier bursts may still
        be flowing); W beats of a burst may be offered before its AW is accepted, and
        BREADY is always high.
    abort : In(1)
        Pulse: stop as after an error (below) without setting ``error``; also clears
        ``error``. For a soft reset.
    error : Out(1)
        Sticky: a B response was SLVERR or DECERR. From then on the DMA addresses no new
        bursts and drops the current command; every burst already addressed still gets
        all its W beats, but they are sent with WSTRB = 0 (nothing is written) and do not
        consume ``data``; the beats in the input buffer are discarded (a W beat already
        offered on the bus is completed as it is first). All B responses are collected.
        The producer of ``data`` must itself be flushed (e.g. aborted) before new
        commands, or its leftover beats go to them. ``error`` stays set until ``abort``.
    idle : Out(1)
        No command in progress, no W beat owed, no B response outstanding, not stopping.
    beat : Out(1)
        One-cycle pulse (a cycle late) per W beat taken from ``data`` and accepted by the
        bus (not the WSTRB = 0 beats sent while stopping).
    """

    def __init__(self, *, addr_width: int, data_width: int, id_width: int = 1,
                 max_burst_beats: int = 16, max_outstanding: int = 4, len_bits: int = 24):
        _check_params(addr_width, data_width, id_width, max_burst_beats, max_outstanding,
                      len_bits)
        super().__init__(
            addr_width=addr_width, data_width=data_width, id_width=id_width,
            max_burst_beats=max_burst_beats, max_outstanding=max_outstanding,
            len_bits=len_bits, members={
                "data": In(stream.Signature(write_data_layout(data_width=data_width))),
                "bus": Out(Axi4WriteSignature(addr_width=addr_width, data_width=data_width,
                                              id_width=id_width)),
            })

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        split = self._splitter(m)
        stopping = Signal()
        m.d.comb += split.stop.eq(stopping | self.abort)     # no command taken as abort comes

        # ---- B ---------------------------------------------------------------------------
        b_fire = Signal()
        m.d.comb += [bus.bready.eq(1), b_fire.eq(bus.bvalid)]

        # ---- AW: a register loaded from the splitter; the burst's length queued for W ------
        m.submodules.owed = owed = SyncFIFO(width=8, depth=self.max_outstanding + 1)
        pending = Signal(range(self.max_outstanding + 1))    # B responses outstanding
        room = Signal()
        load = Signal()
        m.d.comb += [
            room.eq((pending < self.max_outstanding) | b_fire),
            load.eq(split.burst.valid & (~bus.awvalid | bus.awready) & room & ~stopping),
            split.burst.ready.eq(load),
            owed.w_en.eq(load),
            owed.w_data.eq(split.burst.payload.beats - 1),
        ]
        with m.If(load):
            m.d.sync += [
                bus.awvalid.eq(1),
                bus.awaddr.eq(split.burst.payload.addr),
                bus.awlen.eq(split.burst.payload.beats - 1),
            ]
        with m.Elif(bus.awready):
            m.d.sync += bus.awvalid.eq(0)
        m.d.sync += pending.eq(pending + load - b_fire)
        m.d.comb += [
            bus.awid.eq(0),
            bus.awsize.eq(self.data_bytes.bit_length() - 1),
            bus.awburst.eq(AxiBurst.INCR),
            bus.awlock.eq(0),
            bus.awcache.eq(CACHE_NORMAL_NC_BUFFERABLE),
            bus.awprot.eq(0),
        ]

        # ---- W: beats of the burst at the head of the queue --------------------------------
        m.submodules.skid = skid = SkidBuffer(write_data_layout(data_width=self.data_width))
        m.d.comb += [     # while stopping, the data stream is not consumed
            skid.i.valid.eq(self.data.valid & ~stopping),
            skid.i.payload.eq(self.data.payload),
            self.data.ready.eq(skid.i.ready & ~stopping),
        ]
        zero = Signal()          # stopping: owed beats go out with WSTRB = 0
        w_beat = Signal(8)
        w_fire = Signal()
        m.d.comb += [
            bus.wvalid.eq(owed.r_rdy & (zero | skid.o.valid)),
            bus.wdata.eq(skid.o.payload.data),
            bus.wstrb.eq(Mux(zero, 0, skid.o.payload.strb)),
            bus.wlast.eq(w_beat == owed.r_data),
            skid.o.ready.eq(owed.r_rdy & ~zero & bus.wready),
            w_fire.eq(bus.wvalid & bus.wready),
            owed.r_en.eq(w_fire & bus.wlast),
        ]
        with m.If(w_fire):
            m.d.sync += w_beat.eq(Mux(bus.wlast, 0, w_beat + 1))
        m.d.sync += self.beat.eq(skid.o.valid & skid.o.ready)

        # ---- error, abort, idle ------------------------------------------------------------
        new_error = Signal()
        m.d.comb += new_error.eq(b_fire & bus.bresp[1] & ~stopping)
        drained = Signal()
        m.d.comb += drained.eq(~split.busy & ~bus.awvalid & ~owed.r_rdy & (pending == 0))
        with m.If(self.abort):
            m.d.sync += self.error.eq(0)
        with m.Elif(new_error):
            m.d.sync += self.error.eq(1)
        with m.If(self.abort | new_error):
            m.d.sync += stopping.eq(1)
        with m.Elif(drained):
            m.d.sync += [stopping.eq(0), zero.eq(0)]
        # Switch the W channel to WSTRB = 0 only between offers (WVALID's payload must
        # stay stable until accepted); the input buffer is emptied at the same time.
        switch = Signal()
        m.d.comb += switch.eq(stopping & ~zero & (~bus.wvalid | bus.wready))
        with m.If(switch & ~drained):
            m.d.sync += zero.eq(1)
        m.d.comb += skid.flush.eq(switch)
        m.d.comb += self.idle.eq(drained & ~stopping)
        return m
