"""Gathers the result beats of several rows of C into write bursts."""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from generators.rtl.dma import dma_cmd_layout, write_data_layout

__all__ = ["WriteCombiner", "check_burst_beats", "combiner_beat_layout"]


def combiner_beat_layout(*, rows: int, addr_width: int, data_width: int) -> data.StructLayout:
    """A beat of one row: its row, byte address, data and strobes, and whether it is the
    row's last (the row's line is written out after it)."""
    return data.StructLayout({"row": range(rows), "addr": addr_width, "data": data_width,
                              "strb": data_width // 8, "last": 1})


def check_burst_beats(burst_beats, *, name: str = "burst_beats") -> None:
    """Raise :exc:`ValueError` unless ``burst_beats`` is a line length the combiner builds
    (an integer from 1 to 256, AXI4's longest INCR burst); ``name`` is the parameter's name
    in the message (a component that builds a combiner checks its own argument up front)."""
    if (isinstance(burst_beats, bool) or not isinstance(burst_beats, int)
            or not 1 <= burst_beats <= 256):
        raise ValueError(f"{name} must be an integer from 1 to 256, not {burst_beats!r}")


class WriteCombiner(wiring.Component):
    """Turns interleaved beats of several address runs ("rows") into multi-beat write
    commands, one per line of ``burst_beats`` beats of a row.

    The collector of the co-processor writes the output tiles row by row: one row's beats
    are at consecutive addresses, but between two of them come the other rows' beats of
    the same tile. Written as they come, every beat is a burst of its own (an AW and a B
    for every beat); many memory systems pay per burst. Here each row fills a line of
    ``burst_beats`` beats in a buffer memory, and a full line (or the row's last beat)
    becomes one command of that many beats, whose beats then follow on ``data`` in order.
    Each row has two lines, so it fills one while the other is written out.

    Parameters
    ----------
    rows : int
        Rows whose beats interleave (at least 1).
    addr_width, data_width : int
        Byte addresses and the data bus (a multiple of 8 bits).
    burst_beats : int
        Beats per line, 1 to 256 (1: a command per beat, as without the combiner).
    len_bits : int
        Width of a command's beat count (the DMA's :func:`dma_cmd_layout`; at least wide
        enough for ``burst_beats``).

    Members
    -------
    i : In(stream.Signature(combiner_beat_layout(...)))
        Beats. After a row's beat at ``addr`` (without ``last``), that row's next beat
        must be at ``addr + data_width // 8``. A beat is taken when its row has a free line
        (``i.ready`` depends on ``i.payload.row``, never on ``i.valid``).
    cmd : Out(stream.Signature(dma_cmd_layout(addr_width=addr_width, len_bits=len_bits)))
        A command per line: its first beat's address and its number of beats.
    data : Out(stream.Signature(write_data_layout(data_width=data_width)))
        The lines' beats, in the order of the commands. A line's beats may start before its
        command is taken, and the commands may run ahead of the data.
    idle : Out(1)
        No beat held: every line written out (its beats taken from ``data``), every
        command taken.
    """

    def __init__(self, *, rows: int, addr_width: int, data_width: int, burst_beats: int,
                 len_bits: int = 24):
        for name, value, lo in (("rows", rows, 1), ("addr_width", addr_width, 1),
                                ("data_width", data_width, 8)):
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ValueError(f"{name} must be an integer of at least {lo}, not {value!r}")
        if data_width % 8:
            raise ValueError(f"data_width must be a multiple of 8, not {data_width}")
        check_burst_beats(burst_beats)
        if (isinstance(len_bits, bool) or not isinstance(len_bits, int)
                or len_bits < burst_beats.bit_length()):
            raise ValueError(f"len_bits must be an integer of at least {burst_beats.bit_length()} "
                             f"(a count of {burst_beats} beats), not {len_bits!r}")
        self._len_bits = len_bits
        self._rows = rows
        self._addr_width = addr_width
        self._data_width = data_width
        self._burst = burst_beats
        super().__init__({
            "i": In(stream.Signature(combiner_beat_layout(
                rows=rows, addr_width=addr_width, data_width=data_width))),
            "cmd": Out(stream.Signature(dma_cmd_layout(addr_width=addr_width, len_bits=len_bits))),
            "data": Out(stream.Signature(write_data_layout(data_width=data_width))),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        R, L, D = self._rows, self._burst, self._data_width
        lines = 2 * R
        beat_layout = write_data_layout(data_width=D)
        # line 2·r + h is row r's half h; beat b of line l at address l·L + b
        m.submodules.mem = mem = Memory(shape=beat_layout, depth=lines * L, init=[])
        wr = mem.write_port()
        rd = mem.read_port(domain="sync")

        # What is committed: a command for the DMA, and the line to read out for the data.
        # Each FIFO holds at most one entry per line (a line is committed once and freed
        # when read out; a command may wait longer than its line, so its FIFO's room is
        # checked too).
        cmd_layout = dma_cmd_layout(addr_width=self._addr_width, len_bits=self._len_bits)
        drain_layout = data.StructLayout({"line": range(lines), "beats": range(1, L + 1)})
        m.submodules.cmd_fifo = cmd_fifo = SyncFIFO(width=cmd_layout.size, depth=lines)
        m.submodules.drain_fifo = drain_fifo = SyncFIFO(width=drain_layout.size, depth=lines)

        # ---- filling ---------------------------------------------------------------------
        half = Array(Signal(name=f"half{r}") for r in range(R))         # the line it fills
        count = Array(Signal(range(L), name=f"count{r}") for r in range(R))
        start = Array(Signal(self._addr_width, name=f"start{r}") for r in range(R))
        busy = Signal(lines)          # committed and not yet read out
        beat = self.i.payload
        line = Signal(range(lines))
        m.d.comb += [
            line.eq(Cat(half[beat.row], beat.row)),
            self.i.ready.eq(~busy.bit_select(line, 1) & cmd_fifo.w_rdy & drain_fifo.w_rdy),
            wr.addr.eq(line * L + count[beat.row]),
            wr.data.data.eq(beat.data),
            wr.data.strb.eq(beat.strb),
        ]
        first = count[beat.row] == 0
        commit = Signal()
        m.d.comb += commit.eq(beat.last | (count[beat.row] == L - 1))
        cmd_in = data.View(cmd_layout, cmd_fifo.w_data)
        drain_in = data.View(drain_layout, drain_fifo.w_data)
        m.d.comb += [
            cmd_in.addr.eq(Mux(first, beat.addr, start[beat.row])),
            cmd_in.beats.eq(count[beat.row] + 1),
            drain_in.line.eq(line),
            drain_in.beats.eq(count[beat.row] + 1),
        ]
        set_busy = Signal(lines)
        with m.If(self.i.valid & self.i.ready):
            m.d.comb += wr.en.eq(1)
            with m.If(first):
                m.d.sync += start[beat.row].eq(beat.addr)
            with m.If(commit):
                m.d.comb += [cmd_fifo.w_en.eq(1), drain_fifo.w_en.eq(1),
                             set_busy.eq(1 << line)]
                m.d.sync += [count[beat.row].eq(0), half[beat.row].eq(~half[beat.row])]
            with m.Else():
                m.d.sync += count[beat.row].eq(count[beat.row] + 1)

        # ---- commands ----------------------------------------------------------------------
        m.d.comb += [
            self.cmd.valid.eq(cmd_fifo.r_rdy),
            self.cmd.payload.eq(cmd_fifo.r_data),
            cmd_fifo.r_en.eq(self.cmd.ready),
        ]

        # ---- reading out: the read port's data register is the output register -------------
        drain = data.View(drain_layout, drain_fifo.r_data)
        index = Signal(range(L))          # next beat of the line at the FIFO's head
        advance = Signal()                # the data register is free or is taken now
        read = Signal()
        m.d.comb += [
            advance.eq(~self.data.valid | self.data.ready),
            read.eq(advance & drain_fifo.r_rdy),
            rd.en.eq(read),
            rd.addr.eq(drain.line * L + index),
            self.data.payload.eq(rd.data),
        ]
        clear_busy = Signal(lines)
        with m.If(advance):
            m.d.sync += self.data.valid.eq(drain_fifo.r_rdy)
        with m.If(read):
            with m.If(index == drain.beats - 1):
                # its last beat is in the data register: the line may be filled again
                m.d.comb += [drain_fifo.r_en.eq(1), clear_busy.eq(1 << drain.line)]
                m.d.sync += index.eq(0)
            with m.Else():
                m.d.sync += index.eq(index + 1)
        m.d.sync += busy.eq((busy | set_busy) & ~clear_busy)

        m.d.comb += self.idle.eq(~busy.any() & ~cmd_fifo.r_rdy & ~self.data.valid
                                 & Cat(*[count[r] == 0 for r in range(R)]).all())
        return m
