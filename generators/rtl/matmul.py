"""The matmul core of the co-processor: tile buffers, tile loader, PE array, result writer.

``C = A·B (+ bias) (ReLU)`` on packed format codes in memory, for any M, N, K ≥ 1, as a
sequence of *steps*. A step computes one R×C output tile (rows ``m0..m0+R-1``, columns
``n0..n0+C-1``) over one K segment of ``k_tile`` operand words; steps run in the order
``for m0: for n0: for kt`` (output-stationary: a PE keeps its accumulator over the K
segments of its output, so every output is one fused dot product rounded once)::

    read DMA ─► filler ─► A banks (R) ─┐                 ┌─► collector ─► row packers ─► write DMA
                          B banks (C) ─┴─► feeder ─► PE array (R×C MacEngines, dot mode)

(The feeder's operations reach the PEs through a register slice per PE row, which each PE
of the row takes from when it is ready, and each PE's results leave through a register
slice of its own: what crosses the array within a cycle is the feeder's hand-over to the
rows' slices, on an AND of their readies (registers), a row slice's advance, on an AND
over its PEs, and the collector's select of one PE's slice. No PE's own logic waits on
another PE.)

Memory layout (see the register document): A is M rows of K codes, B is given transposed
(N rows of K codes, a Linear/Gemm weight with transB=1), C is M rows of N codes, bias is N
codes. Codes are packed little-endian in a row, so operand word ``w`` of a row holds codes
``w·L .. w·L+L-1`` in lanes ``0..L-1`` — exactly an engine operand word.

* **Buffers.** One memory bank per PE row (A) and per PE column (B), ``data_bits`` wide,
  with ``slots`` (1, 2 or 3) *slots* of ``k_tile`` words. A slot holds one tile (one K
  segment of R rows of A, or of C rows of B). Loader and feeder take the slots in the same
  cyclic order 0, 1, .., slots-1. The loader claims a slot as soon as the feeder has
  released it, so it runs up to ``slots - 1`` steps ahead: a step's read commands are
  issued when the step ``slots`` before it has finished. With one slot a load waits for
  the previous step's compute. With two the next tile loads while a step computes, but
  its read latency and load time must both fit into that one step's compute, so with
  load time ≈ compute time the latency shows. With three the reads of step n+2 are issued
  while step n computes and step n+1's data is still arriving: latency and load get two
  steps' compute, and the latency is hidden as long as the DMA keeps enough reads in
  flight (about ``latency / burst beats + 1`` bursts).
* **Reuse.** A tile that the next step needs again is not reloaded: with a single K segment
  (``ceil(K/L) ≤ k_tile``) the A strip stays for all the steps of its rows, and with a
  single N tile as well, B is loaded once per job. Loader and feeder walk the same step
  sequence and agree on this rule (:meth:`_changes`).
* **Bias** enters each output's dot product as one extra first term ``1·bias[n]``: the
  feeder sends an operation with the code of 1.0 in the A format in lane 0 and the bias
  code (loaded with the B tile of the first K segment) in lane 0. The product is exact, so
  this is the single rounding of ``Σ a·b + bias`` that the golden model computes.
* **Edges.** Lanes past K in a row's last word are zeroed on both operands (memory there
  holds other data); PE rows/columns past M/N compute on stale buffer contents and their
  results are dropped.
* **Results.** Each PE emits one code per output tile. The collector takes them one per
  cycle, row by row (R·C cycles per tile, tiles back to back; a tile that starts a new row
  strip first sets up the strip's R row addresses), through two register slices (after
  the select of one PE, and after the NaN test and ReLU) into one packer per PE row,
  which fills a ``data_bits`` beat with consecutive codes of its C row and writes it to
  the write FIFO when full or at the end of the row. The rows of a tile fill at the same
  pace, so consecutive beats belong to different rows; a
  :class:`~generators.rtl.write_combiner.WriteCombiner` gathers each row's beats into
  lines of ``write_burst_beats`` and hands the write DMA one command per line.

Everything is driven by the job parameters (``job``), which must be valid (checked by the
top level) and stable from ``start`` until ``done``.
"""

from __future__ import annotations


import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from generators.formats import get_format
from generators.rtl.streams import EagerFork, SkidBuffer
from generators.rtl.engine import MacEngine
from generators.rtl.dma import dma_cmd_layout
from generators.rtl.write_combiner import WriteCombiner, check_burst_beats, combiner_beat_layout

__all__ = ["MatmulCore", "job_layout"]


def _bits_for(n: int) -> int:
    return max(1, int(n).bit_length())


def _index_bits(n: int) -> int:
    return max(1, (n - 1).bit_length())


def _shift_add_product(x, y):
    """``x * y`` for a narrow ``y``, as shifted copies of ``x`` added (Yosys maps even a
    small ``*`` to a DSP block, which is slow on ECP5)."""
    return sum(Mux(y[i], x << i, 0) for i in range(len(y)))


def _log2(n: int) -> int:
    assert n & (n - 1) == 0 and n > 0, n
    return n.bit_length() - 1


def _is_nan_code(fmt_name, code):
    """An expression that is 1 when ``code`` is a NaN (NaR) code of the format.

    Derived from the format's own decoder: its NaN codes are either at most two codes
    (posit NaR; fp8_e4m3's 0x7f/0xff) or both signs of one contiguous range of magnitudes
    (IEEE-style formats: exponent all ones, mantissa not zero).
    """
    fmt = get_format(fmt_name)
    bits = fmt.bits
    nans = np.flatnonzero(np.isnan(fmt.decode(np.arange(1 << bits))))
    if nans.size == 0:
        return Const(0, 1)
    if nans.size <= 2:
        return Cat(*[code == int(c) for c in nans]).any()
    sign = 1 << (bits - 1)
    mags = nans & (sign - 1)
    lo, hi = int(mags.min()), int(mags.max())
    expected = sorted({s | mg for s in (0, sign) for mg in range(lo, hi + 1)})
    if expected != sorted(int(c) for c in nans):
        raise NotImplementedError(f"{fmt_name}: NaN codes are not one range of magnitudes")
    mag = code[:bits - 1]
    # A bound at the end of the magnitudes' range is left out: a comparison that is
    # always true (bf16's NaNs reach the largest magnitude) is a lint warning.
    above = (mag >= lo) if lo > 0 else Const(1, 1)
    below = (mag <= hi) if hi < sign - 1 else Const(1, 1)
    return above & below


def job_layout(*, addr_bits: int, dim_bits: int, n_formats: int, n_out_formats: int):
    """Job parameters, already checked; formats are engine indices."""
    return data.StructLayout({
        "m": dim_bits, "n": dim_bits, "k": dim_bits,
        "a_addr": addr_bits, "b_addr": addr_bits, "c_addr": addr_bits, "bias_addr": addr_bits,
        "a_stride": addr_bits, "b_stride": addr_bits, "c_stride": addr_bits,
        "fmt_a": _index_bits(n_formats), "fmt_b": _index_bits(n_formats),
        "fmt_bias": _index_bits(n_formats), "out_fmt": _index_bits(n_out_formats),
        "bias": 1, "relu": 1,
    })


class MatmulCore(wiring.Component):
    """Tiled ``C = A·B (+ bias) (ReLU)`` over DMA streams, with an R×C array of MacEngines.

    Parameters
    ----------
    rows, cols : int
        PE array shape (R, C).
    engine : dict
        Keyword arguments of :class:`generators.rtl.engine.MacEngine` for every PE
        (built with ``dot_only=True``).
    data_bits : int
        DMA (AXI) data width.
    addr_bits : int
        Byte address width.
    k_tile : int
        Operand words of one K segment (one buffer slot row); a power of two, at least one
        beat.
    slots : int
        Buffer slots per bank: 1 (a load waits for the previous step's compute), 2 (the
        next tile loads while a step computes) or 3 (the loader runs two steps ahead, so
        the memory read latency is hidden too).
    dim_bits : int
        Width of M, N and K.
    len_bits : int
        Width of a DMA command's beat count.
    write_burst_beats : int
        Result beats per write command: each row of C is written in bursts of that many
        beats (the last of a row the rest), 1 to 256.

    Members
    -------
    job : In(job_layout(...))
    start : In(1)
        Starts a job (one-cycle pulse while ``busy`` is low).
    busy : Out(1)
        High from ``start`` until the last result beat has been handed to ``wr_data``.
    rd_cmd : Out(stream.Signature(dma_cmd_layout(...)))
    rd_data : In(stream.Signature({"data", "last"}))
    wr_cmd : Out(stream.Signature(dma_cmd_layout(...)))
    wr_data : Out(stream.Signature({"data", "strb"}))
        The beats of the write commands, in order.
    ev_compute, ev_read_stall, ev_write_stall, ev_saturation : Out(1)
        Per-cycle events for the performance counters.
    ev_macs : Out(...)
        Multiply-accumulates of real elements performed this cycle.
    """

    def __init__(self, *, rows: int, cols: int, engine: dict, data_bits: int, addr_bits: int,
                 k_tile: int, slots: int = 3, dim_bits: int = 17, len_bits: int = 24,
                 write_burst_beats: int = 16):
        for name, v in (("rows", rows), ("cols", cols)):
            if not isinstance(v, int) or not 1 <= v <= 64:
                raise ValueError(f"{name} must be an integer from 1 to 64, not {v!r}")
        if data_bits not in (32, 64, 128):
            raise ValueError(f"data_bits must be 32, 64 or 128, not {data_bits!r}")
        if not isinstance(slots, int) or isinstance(slots, bool) or slots not in (1, 2, 3):
            raise ValueError(f"slots must be 1, 2 or 3, not {slots!r}")
        # Every PE computes dot products only: a dot-only engine leaves out the SIMD
        # read-out and carries no dot flag (see MacEngine's ``dot_only``).
        self.pe_params = dict(engine, dot_only=True)
        probe = MacEngine(**self.pe_params)     # for its derived parameters only
        probe._MustUse__silence = True
        self.formats = probe.formats
        self.output_formats = probe.output_formats
        self.geometry = probe.geometry
        self.word_bits = W = probe.word_bits
        if not isinstance(k_tile, int) or k_tile < 1 or k_tile & (k_tile - 1) \
                or k_tile * W < data_bits:
            raise ValueError(f"k_tile must be a power of two of at least {data_bits // W} words "
                             f"(one {data_bits}-bit beat), not {k_tile!r}")
        self.rows, self.cols = rows, cols
        self.data_bits, self.addr_bits = data_bits, addr_bits
        self.k_tile = k_tile
        self.slots = slots
        self.dim_bits, self.len_bits = dim_bits, len_bits
        check_burst_beats(write_burst_beats, name="write_burst_beats")   # the combiner's rule
        self.write_burst_beats = write_burst_beats
        self.code_bits = probe.code_bits
        # A tile's results wait in the PEs' output FIFOs (one beat per tile and PE) until
        # the collector takes them; its metadata waits here as long.
        self.meta_depth = probe.output_fifo_depth
        self.max_lanes = W // min(get_format(f).bits for f in self.formats)
        super().__init__({
            "job": In(job_layout(addr_bits=addr_bits, dim_bits=dim_bits,
                                 n_formats=len(self.formats),
                                 n_out_formats=len(self.output_formats))),
            "start": In(1),
            "busy": Out(1),
            "rd_cmd": Out(stream.Signature(dma_cmd_layout(addr_width=addr_bits, len_bits=len_bits))),
            "rd_data": In(stream.Signature(data.StructLayout({"data": data_bits, "last": 1}))),
            "wr_cmd": Out(stream.Signature(dma_cmd_layout(addr_width=addr_bits, len_bits=len_bits))),
            "wr_data": Out(stream.Signature(data.StructLayout({"data": data_bits,
                                                               "strb": data_bits // 8}))),
            "ev_compute": Out(1),
            "ev_read_stall": Out(1),
            "ev_write_stall": Out(1),
            "ev_saturation": Out(1),
            "ev_macs": Out(_bits_for(rows * cols * self.max_lanes)),
        })

    # -- constant tables --------------------------------------------------------------
    def _lane_bits(self):
        return [get_format(f).bits for f in self.formats]

    def _one_codes(self):
        return [int(get_format(f).encode(np.array([1.0]))[0]) for f in self.formats]


    def elaborate(self, platform):
        m = Module()
        R, C, W = self.rows, self.cols, self.word_bits
        D, KT = self.data_bits, self.k_tile
        WPB = D // W                        # operand words per beat
        LPS = KT // WPB                     # buffer lines (beats) per slot
        SLOTS = self.slots
        job = self.job
        dim = self.dim_bits
        lane_widths = sorted(set(self._lane_bits()))

        # ---- per-job derived values ------------------------------------------------------
        # The job's fields sit with the register file, far from most of the core: what the
        # walkers use of them is registered here, at start (the code widths) and in the
        # cycle after it (``prep``: values formed from those copies), so that no path runs
        # from a job register through arithmetic (on the 2x2 co-processor those were the
        # critical paths: format -> lane count -> kw's adder, -> the bias bits' adder).
        start = Signal()
        m.d.comb += start.eq(self.start & ~self.busy)
        prep = Signal()             # the cycle after start
        m.d.sync += prep.eq(start)
        lane_bits = Signal(range(33))       # bits of an A/B code
        lsh = Signal(range(4))              # log2(lanes per word)
        out_bits = Signal(range(33))
        with m.If(start):
            with m.Switch(job.fmt_a):
                for i, b in enumerate(self._lane_bits()):
                    with m.Case(i):
                        m.d.sync += [lane_bits.eq(b), lsh.eq(_log2(W // b))]
            with m.Switch(job.out_fmt):
                for i, f in enumerate(self.output_formats):
                    with m.Case(i):
                        m.d.sync += out_bits.eq(get_format(f).bits)
        lanes = Signal(range(self.max_lanes + 1))
        m.d.comb += lanes.eq(1 << lsh)

        kw = Signal(dim)                    # operand words per row
        k_tiles_m1 = Signal(dim)            # K segments - 1
        multi_kt = Signal()                 # more than one K segment
        last_seg_words = Signal(range(KT + 1))
        last_seg_beats = Signal(range(LPS + 1))
        last_lanes = Signal(range(self.max_lanes + 1))
        a_strip_step = Signal(self.addr_bits)   # R rows of A
        b_strip_step = Signal(self.addr_bits)   # C rows of B
        c_strip_step = Signal(self.addr_bits)   # R rows of C
        n_tiles_gt1 = Signal()
        c_codes_bits = Signal(range(C * 32 + 1))    # bits of C codes: the bias step per n0
        k_r = Signal.like(job.k)
        with m.If(prep):
            m.d.sync += [
                kw.eq((k_r + lanes - 1) >> lsh),
                last_lanes.eq(((k_r - 1) & (lanes - 1)) + 1),
                c_codes_bits.eq(lane_bits * C),
            ]
        with m.If(start):
            m.d.sync += [
                k_r.eq(job.k),
                a_strip_step.eq(job.a_stride * R),
                b_strip_step.eq(job.b_stride * C),
                c_strip_step.eq(job.c_stride * R),
                n_tiles_gt1.eq(job.n > C),
            ]

        def seg_beats(words):
            return (words + WPB - 1) >> _log2(WPB)

        # ---- job phases -----------------------------------------------------------------
        setup = Signal()            # the cycle after prep: derived values settle
        # Values derived from kw are registered in the setup cycle (a second stage, so no
        # path runs from K through both adders); the walkers first use them a cycle later.
        last_words_now = Signal(range(KT + 1))
        m.d.comb += last_words_now.eq(((kw - 1) & (KT - 1)) + 1)
        with m.If(setup):
            m.d.sync += [
                k_tiles_m1.eq(((kw + KT - 1) >> _log2(KT)) - 1),
                multi_kt.eq(kw > KT),
                last_seg_words.eq(last_words_now),
                last_seg_beats.eq(seg_beats(last_words_now)),
            ]
        run = Signal()              # loader/feeder/collector may work
        loader_done = Signal()
        feeder_done = Signal()
        collector_done = Signal()
        m.d.sync += setup.eq(prep)
        with m.If(start):
            m.d.sync += self.busy.eq(1)
        with m.If(setup):
            m.d.sync += run.eq(1)

        # ---- buffers --------------------------------------------------------------------
        def bank(name):
            mem = Memory(shape=D, depth=SLOTS * LPS, init=[])
            m.submodules[name] = mem
            return mem.write_port(), mem.read_port(domain="sync")

        a_banks = [bank(f"a_bank{r}") for r in range(R)]
        b_banks = [bank(f"b_bank{c}") for c in range(C)]

        # Slot state: busy (claimed by the loader until the feeder releases it) and ready
        # (completely filled). Set and cleared from different places: collect requests.
        a_busy, a_ready = Signal(SLOTS), Signal(SLOTS)
        b_busy, b_ready = Signal(SLOTS), Signal(SLOTS)
        a_claim, a_fill, a_release = Signal(SLOTS), Signal(SLOTS), Signal(SLOTS)
        b_claim, b_fill, b_release = Signal(SLOTS), Signal(SLOTS), Signal(SLOTS)
        m.d.sync += [
            a_busy.eq((a_busy | a_claim) & ~a_release),
            a_ready.eq((a_ready | a_fill) & ~a_release),
            b_busy.eq((b_busy | b_claim) & ~b_release),
            b_ready.eq((b_ready | b_fill) & ~b_release),
        ]

        # Bias codes per B slot: lane-0 codes of each PE column.
        bias_codes = [[Signal(W, name=f"bias_s{s}_c{c}") for c in range(C)] for s in range(SLOTS)]

        def next_slot(slot):
            # The one cyclic slot order that loader and feeder (and so the filler) share.
            return Mux(slot == SLOTS - 1, 0, slot + 1)

        # ---- tile descriptors from loader to filler -------------------------------------
        TGT_A, TGT_B, TGT_BIAS = 0, 1, 2
        max_rows = max(R, C)
        bias_beats_max = -(-C * W // D) + 1
        desc_layout = data.StructLayout({
            "target": 2, "slot": range(SLOTS), "rows": range(max_rows + 1),
            "beats": range(max(LPS, bias_beats_max) + 1),
            "offset": range(D),          # bias: bit offset of column n0 in the first beat
        })
        # At most three descriptors (A, bias, B) per step, and the loader can have pushed
        # those of at most SLOTS steps that are not filled yet (every step but the first
        # claims a slot of the bank it reloads each step): so the loader only ever waits for
        # a slot, never for room here, and can issue step n+2's reads while step n+1's
        # data is still arriving.
        desc_fifo = fifo.SyncFIFOBuffered(width=desc_layout.size, depth=3 * SLOTS)
        m.submodules.desc_fifo = desc_fifo
        desc_in = data.View(desc_layout, desc_fifo.w_data)
        desc_out = data.View(desc_layout, desc_fifo.r_data)

        # ================================================================================
        # Loader: walks the steps, claims slots and issues one read command per row.
        # ================================================================================
        ld_n0, ld_kt = Signal(dim), Signal(dim)
        ld_first = Signal()
        ld_a_strip = Signal(self.addr_bits)      # address of row m0 of A
        ld_b_strip = Signal(self.addr_bits)      # address of row n0 of B (transposed)
        ld_row = Signal(range(max_rows + 1))
        ld_addr = Signal(self.addr_bits)
        ld_a_slot, ld_b_slot = Signal(range(SLOTS)), Signal(range(SLOTS))
        # Rows of A and columns of B left from m0 / n0 on: counted down as the walk goes
        # (no subtraction from M and N on the way to the read commands).
        ld_m_left, ld_n_left = Signal(dim), Signal(dim)
        ld_rows_a = Signal(range(R + 1))
        ld_cols_b = Signal(range(C + 1))
        ld_last_kt = Signal()
        ld_last_n = Signal()
        ld_last_m = Signal()
        m.d.comb += [
            ld_rows_a.eq(Mux(ld_m_left >= R, R, ld_m_left)),
            ld_cols_b.eq(Mux(ld_n_left >= C, C, ld_n_left)),
            ld_last_kt.eq(ld_kt == k_tiles_m1),
            ld_last_n.eq(ld_n_left <= C),
            ld_last_m.eq(ld_m_left <= R),
        ]
        ld_seg_beats = Signal(range(LPS + 1))
        m.d.comb += ld_seg_beats.eq(Mux(ld_last_kt, last_seg_beats, LPS))
        need_a = Signal()
        need_b = Signal()
        m.d.comb += [
            need_a.eq(ld_first | multi_kt | (ld_n0 == 0)),
            need_b.eq(ld_first | multi_kt | n_tiles_gt1),
        ]
        # Bias: the beats holding codes n0 .. n0+cols-1. The bit of code n0 is stepped
        # with n0 (no multiplier); the end bit is registered in STEP, which every step
        # passes with n0 already set, so B_CLAIM starts from registers.
        bias_bit0 = Signal(dim + 5)
        bias_bit1 = Signal(dim + 5)
        cols_bits = Signal(range(C * 32 + 1))     # ld_cols_b codes, in bits
        with m.Switch(lane_bits):
            for w in lane_widths:
                with m.Case(w):
                    m.d.comb += cols_bits.eq(ld_cols_b * w)
        bias_beat0 = bias_bit0 >> _log2(D)
        bias_beat1 = bias_bit1 >> _log2(D)
        seg_bytes = KT * W // 8
        ld_beats = Signal(self.len_bits)          # of the read command being issued

        m.d.comb += [self.rd_cmd.payload.addr.eq(ld_addr),
                     self.rd_cmd.payload.beats.eq(ld_beats)]
        with m.FSM(name="loader"):
            with m.State("IDLE"):
                with m.If(setup):
                    m.d.sync += [ld_n0.eq(0), ld_kt.eq(0), ld_first.eq(1),
                                 ld_m_left.eq(job.m), ld_n_left.eq(job.n), bias_bit0.eq(0),
                                 ld_a_strip.eq(job.a_addr), ld_b_strip.eq(job.b_addr),
                                 ld_a_slot.eq(0), ld_b_slot.eq(0), loader_done.eq(0)]
                    m.next = "STEP"
            with m.State("STEP"):
                m.d.sync += bias_bit1.eq(bias_bit0 + cols_bits - 1)
                with m.If(need_a):
                    m.next = "A_CLAIM"
                with m.Elif(need_b):
                    m.next = "B_CLAIM"
                with m.Else():
                    m.next = "NEXT"
            with m.State("A_CLAIM"):
                with m.If(~a_busy.bit_select(ld_a_slot, 1) & desc_fifo.w_rdy):
                    m.d.comb += [
                        a_claim.bit_select(ld_a_slot, 1).eq(1),
                        desc_fifo.w_en.eq(1),
                        desc_in.target.eq(TGT_A), desc_in.slot.eq(ld_a_slot),
                        desc_in.rows.eq(ld_rows_a), desc_in.beats.eq(ld_seg_beats),
                    ]
                    m.d.sync += [ld_row.eq(0), ld_addr.eq(ld_a_strip + ld_kt * seg_bytes),
                                 ld_beats.eq(ld_seg_beats)]
                    m.next = "A_CMD"
            with m.State("A_CMD"):
                m.d.comb += self.rd_cmd.valid.eq(1)
                with m.If(self.rd_cmd.ready):
                    m.d.sync += [ld_row.eq(ld_row + 1), ld_addr.eq(ld_addr + job.a_stride)]
                    with m.If(ld_row == ld_rows_a - 1):
                        m.d.sync += ld_a_slot.eq(next_slot(ld_a_slot))
                        with m.If(need_b):
                            m.next = "B_CLAIM"
                        with m.Else():
                            m.next = "NEXT"
            with m.State("B_CLAIM"):
                with m.If(~b_busy.bit_select(ld_b_slot, 1) & desc_fifo.w_rdy):
                    m.d.comb += b_claim.bit_select(ld_b_slot, 1).eq(1)
                    with m.If(job.bias & (ld_kt == 0)):
                        m.d.comb += [
                            desc_fifo.w_en.eq(1),
                            desc_in.target.eq(TGT_BIAS), desc_in.slot.eq(ld_b_slot),
                            desc_in.rows.eq(1), desc_in.beats.eq(bias_beat1 - bias_beat0 + 1),
                            desc_in.offset.eq(bias_bit0[:_log2(D)]),
                        ]
                        m.d.sync += [
                            ld_addr.eq(job.bias_addr + (bias_beat0 << _log2(D // 8))),
                            ld_beats.eq(bias_beat1 - bias_beat0 + 1),
                        ]
                        m.next = "BIAS_CMD"
                    with m.Else():
                        m.next = "B_DESC"
            with m.State("BIAS_CMD"):
                m.d.comb += self.rd_cmd.valid.eq(1)
                with m.If(self.rd_cmd.ready):
                    m.next = "B_DESC"
            with m.State("B_DESC"):
                with m.If(desc_fifo.w_rdy):
                    m.d.comb += [
                        desc_fifo.w_en.eq(1),
                        desc_in.target.eq(TGT_B), desc_in.slot.eq(ld_b_slot),
                        desc_in.rows.eq(ld_cols_b), desc_in.beats.eq(ld_seg_beats),
                    ]
                    m.d.sync += [ld_row.eq(0), ld_addr.eq(ld_b_strip + ld_kt * seg_bytes),
                                 ld_beats.eq(ld_seg_beats)]
                    m.next = "B_CMD"
            with m.State("B_CMD"):
                m.d.comb += self.rd_cmd.valid.eq(1)
                with m.If(self.rd_cmd.ready):
                    m.d.sync += [ld_row.eq(ld_row + 1), ld_addr.eq(ld_addr + job.b_stride)]
                    with m.If(ld_row == ld_cols_b - 1):
                        m.d.sync += ld_b_slot.eq(next_slot(ld_b_slot))
                        m.next = "NEXT"
            with m.State("NEXT"):
                m.d.sync += ld_first.eq(0)
                with m.If(~ld_last_kt):
                    m.d.sync += ld_kt.eq(ld_kt + 1)
                    m.next = "STEP"
                with m.Elif(~ld_last_n):
                    m.d.sync += [ld_kt.eq(0), ld_n0.eq(ld_n0 + C), ld_n_left.eq(ld_n_left - C),
                                 bias_bit0.eq(bias_bit0 + c_codes_bits),
                                 ld_b_strip.eq(ld_b_strip + b_strip_step)]
                    m.next = "STEP"
                with m.Elif(~ld_last_m):
                    m.d.sync += [ld_kt.eq(0), ld_n0.eq(0),
                                 ld_n_left.eq(job.n), ld_m_left.eq(ld_m_left - R),
                                 bias_bit0.eq(0),
                                 ld_a_strip.eq(ld_a_strip + a_strip_step),
                                 ld_b_strip.eq(job.b_addr)]
                    m.next = "STEP"
                with m.Else():
                    m.d.sync += loader_done.eq(1)
                    m.next = "IDLE"

        # ================================================================================
        # Filler: writes the read data into the slot named by each descriptor.
        # ================================================================================
        fl_row = Signal(range(max_rows + 1))
        fl_line = Signal(range(max(LPS, bias_beats_max) + 1))
        bias_line = Signal(bias_beats_max * D)
        fl_bias_slot = Signal(range(SLOTS))
        fl_bias_offset = Signal(range(D))
        cur = desc_out
        for r, (wp, _) in enumerate(a_banks):
            m.d.comb += [wp.addr.eq(cur.slot * LPS + fl_line), wp.data.eq(self.rd_data.payload.data)]
        for c, (wp, _) in enumerate(b_banks):
            m.d.comb += [wp.addr.eq(cur.slot * LPS + fl_line), wp.data.eq(self.rd_data.payload.data)]
        with m.FSM(name="filler"):
            with m.State("WAIT"):
                with m.If(desc_fifo.r_rdy):
                    m.d.sync += [fl_row.eq(0), fl_line.eq(0)]
                    m.next = "FILL"
            with m.State("FILL"):
                m.d.comb += self.rd_data.ready.eq(1)
                with m.If(self.rd_data.valid):
                    line_done = fl_line == cur.beats - 1
                    m.d.sync += fl_line.eq(Mux(line_done, 0, fl_line + 1))
                    with m.Switch(cur.target):
                        with m.Case(TGT_A):
                            for r, (wp, _) in enumerate(a_banks):
                                m.d.comb += wp.en.eq(fl_row == r)
                        with m.Case(TGT_B):
                            for c, (wp, _) in enumerate(b_banks):
                                m.d.comb += wp.en.eq(fl_row == c)
                        with m.Case(TGT_BIAS):
                            for i in range(bias_beats_max):
                                with m.If(fl_line == i):
                                    m.d.sync += bias_line.word_select(i, D).eq(
                                        self.rd_data.payload.data)
                    with m.If(line_done):
                        m.d.sync += fl_row.eq(fl_row + 1)
                        with m.If(fl_row == cur.rows - 1):
                            m.d.comb += desc_fifo.r_en.eq(1)
                            with m.Switch(cur.target):
                                with m.Case(TGT_A):
                                    m.d.comb += a_fill.bit_select(cur.slot, 1).eq(1)
                                    m.next = "WAIT"
                                with m.Case(TGT_B):
                                    m.d.comb += b_fill.bit_select(cur.slot, 1).eq(1)
                                    m.next = "WAIT"
                                with m.Case(TGT_BIAS):
                                    m.d.sync += [fl_bias_slot.eq(cur.slot),
                                                 fl_bias_offset.eq(cur.offset)]
                                    m.next = "BIAS"
            with m.State("BIAS"):
                # Extract the lane-0 bias code of each column from the beats just read.
                with m.Switch(lane_bits):
                    for w in lane_widths:
                        with m.Case(w):
                            # Code n0 starts at bit (n0·w) mod D, n0 a multiple of C: a
                            # multiple of g, the largest power of two dividing C·w (at most
                            # D). Shifting by whole g-bit units leaves the shifter only the
                            # levels it needs (on ECP5 the full shift by any bit offset
                            # into the bias registers was among the co-processor's latest
                            # paths).
                            k = min(_log2(D), ((C * w) & -(C * w)).bit_length() - 1)
                            shifted = Signal(bias_beats_max * D, name=f"bias_shifted_{w}")
                            m.d.comb += shifted.eq(
                                bias_line >> Cat(Const(0, k), fl_bias_offset[k:]))
                            for s in range(SLOTS):
                                with m.If(fl_bias_slot == s):
                                    for c in range(C):
                                        m.d.sync += bias_codes[s][c].eq(shifted.word_select(c, w))
                m.next = "WAIT"

        # ================================================================================
        # Feeder: walks the steps again and streams operand words into the PE array.
        # ================================================================================
        pes = [[MacEngine(**self.pe_params) for _ in range(C)] for _ in range(R)]
        for r in range(R):
            for c in range(C):
                # (``npegen synth --unit shell`` black-boxes ``core.pe_r*``: no other
                # submodule's name starts so)
                m.submodules[f"pe_r{r}_c{c}"] = pes[r][c]
        # A register slice in front of each PE row: the feeder's slice hands an operation
        # to all rows' slices in the same cycle, and each row's slice to its C PEs. The
        # operands and the PEs' ready then cross the array once per row, from and to
        # registers near it, not from one register to all R·C PEs and back through an AND
        # of all their readies in a cycle (on the 2x2 and 2x4 arrays on ECP5 those were the
        # latest paths: the feeder slice's payload and hold registers, whose enable is that
        # AND, and the PEs' first registers behind the broadcast). Rows may then be a
        # cycle or two apart; each PE still takes every operation once, in order.
        # Within a row, an EagerFork: each PE takes the slice's operation when it is ready,
        # and the slice advances when every PE of the row has. A PE's valid is then the
        # slice's valid and a flag of its own, not an AND of the row's readies: on the 2x4
        # array on ECP5 that AND, across four PEs and back into each PE's admission count
        # (``reserved``) and ``i.ready``, was the latest path (13.3 ns) while the PEs took
        # each operation together.
        # The formats travel with each operation in the row's slice: a copy per row, beside
        # the row's PEs, not the job's registers fanned out to all R·C PEs' decoders.
        row_layout = data.StructLayout({"a": W, "b": C * W, "bias": 1, "first": 1, "last": 1,
                                        "fmt_a": len(self.job.fmt_a),
                                        "fmt_b": len(self.job.fmt_b),
                                        "out_fmt": len(self.job.out_fmt)})
        row_slices = [SkidBuffer(row_layout, flush=False) for _ in range(R)]
        row_forks = [EagerFork(row_layout, count=C) for _ in range(R)]
        for r, (row_slice, row_fork) in enumerate(zip(row_slices, row_forks)):
            m.submodules[f"row_slice{r}"] = row_slice
            m.submodules[f"row_fork{r}"] = row_fork
            wiring.connect(m, row_slice.o, row_fork.i)
        all_ready = Signal()        # every row's slice takes the operation
        m.d.comb += all_ready.eq(Cat(*[row_slice.i.ready for row_slice in row_slices]).all())

        fd_n0, fd_kt = Signal(dim), Signal(dim)
        fd_w = Signal(range(KT + 1))          # word within the segment
        fd_bias_phase = Signal()              # the bias operation comes first
        fd_a_slot, fd_b_slot = Signal(range(SLOTS)), Signal(range(SLOTS))
        fd_stepping = Signal()                # ops of the current step are being issued
        fd_last_kt = Signal()                 # registered in WAIT (as fd_seg_last)
        fd_last_n = Signal()
        fd_last_m = Signal()
        fd_rows = Signal(range(R + 1))
        fd_cols = Signal(range(C + 1))
        fd_seg_last = Signal(range(KT))       # last word of the segment
        fd_m_left, fd_n_left = Signal(dim), Signal(dim)     # as the loader's
        m.d.comb += [
            fd_last_n.eq(fd_n_left <= C),
            fd_last_m.eq(fd_m_left <= R),
            fd_rows.eq(Mux(fd_m_left >= R, R, fd_m_left)),
            fd_cols.eq(Mux(fd_n_left >= C, C, fd_n_left)),
        ]
        slots_ready = Signal()
        m.d.comb += slots_ready.eq(a_ready.bit_select(fd_a_slot, 1) & b_ready.bit_select(fd_b_slot, 1))

        # Metadata of each output tile, for the collector.
        meta_layout = data.StructLayout({
            "rows": range(R + 1), "cols": range(C + 1), "last_n": 1, "new_strip": 1,
            "last_step": 1,
        })
        # As deep as the PEs' output FIFOs: with K short, tiles follow each other faster
        # than the engines' latency, and the feeder may run that far ahead of the collector.
        meta_fifo = fifo.SyncFIFOBuffered(width=meta_layout.size, depth=self.meta_depth)
        m.submodules.meta_fifo = meta_fifo
        meta_in = data.View(meta_layout, meta_fifo.w_data)
        meta_out = data.View(meta_layout, meta_fifo.r_data)

        # F0: the operation the counters point at.
        f0_valid = Signal()
        f0_bias = Signal()
        f0_first = Signal()
        f0_last = Signal()
        f0_last_word = Signal()     # the last word of the whole row (lanes past K masked)
        m.d.comb += [
            f0_bias.eq(fd_bias_phase),
            # With a bias, the bias operation starts the accumulation, not word 0.
            f0_first.eq((fd_kt == 0) & (fd_bias_phase | ((fd_w == 0) & ~job.bias))),
            f0_last.eq(fd_last_kt & ~fd_bias_phase & (fd_w == fd_seg_last)),
            f0_last_word.eq(f0_last),
        ]
        # F1: the operation whose buffer lines the read ports are delivering.
        f1_valid = Signal()
        f1_bias = Signal()
        f1_first = Signal()
        f1_last = Signal()
        f1_last_word = Signal()
        f1_word = Signal(range(WPB))
        f1_a_slot = Signal(range(SLOTS))
        f1_b_slot = Signal(range(SLOTS))
        f1_macs = Signal(len(self.ev_macs))
        # F1R: F1 with the buffers' read data in registers, moving with F1 (one enable for
        # the read ports, F1 and F1R, so that no operation is lost or repeated). The block
        # RAMs' clock-to-output (several ns on ECP5) then starts no path: the word select,
        # lane mask and bias select into F2 run from flip-flops (on the 2x2 and 2x4 arrays
        # on ECP5, F2's payload behind the read data was among the latest paths).
        f1r_valid = Signal()
        f1r_bias = Signal()
        f1r_first = Signal()
        f1r_last = Signal()
        f1r_word = Signal(range(WPB))
        f1r_macs = Signal(len(self.ev_macs))
        f1r_mask = Signal(W)
        f1r_a_lines = [Signal(D, name=f"f1r_a_line{r}") for r in range(R)]
        f1r_b_lines = [Signal(D, name=f"f1r_b_line{c}") for c in range(C)]
        f1r_bias_codes = [Signal(W, name=f"f1r_bias_c{c}") for c in range(C)]
        pe_take = Signal()
        f1_advance = Signal()
        # F2: a register slice between F1 and the rows' slices, so that their ready (an
        # AND of registers across the array) reaches no further than this slice: not the
        # buffer read ports or the walk.
        f2_layout = data.StructLayout({"a": R * W, "b": C * W, "bias": 1, "first": 1,
                                       "last": 1, "macs": len(self.ev_macs)})
        m.submodules.pe_slice = f2 = SkidBuffer(f2_layout, flush=False)
        m.d.comb += [
            pe_take.eq(f2.o.valid & all_ready),
            f2.o.ready.eq(all_ready),
            f2.i.valid.eq(f1r_valid),
            f1_advance.eq(~f1r_valid | f2.i.ready),
        ]
        # The last op of a step also needs room for its metadata.
        f0_go = Signal()
        m.d.comb += [
            f0_valid.eq(fd_stepping),
            f0_go.eq(f0_valid & f1_advance & (~f0_last | meta_fifo.w_rdy)),
        ]
        line = fd_w >> _log2(WPB)
        for r, (_, rp) in enumerate(a_banks):
            m.d.comb += [rp.addr.eq(fd_a_slot * LPS + line), rp.en.eq(f1_advance)]
        for c, (_, rp) in enumerate(b_banks):
            m.d.comb += [rp.addr.eq(fd_b_slot * LPS + line), rp.en.eq(f1_advance)]

        # The MACs of one operation of the step (real outputs × lanes, and × the last
        # word's lanes), registered in WAIT (which every step passes with its m0 and n0
        # set) from shifts and adds of the small factors, and picked per operation into F1:
        # no multiplier (a DSP block, 4 ns on ECP5) on the way to the MAC counter.
        step_macs = Signal(len(self.ev_macs))
        step_macs_last = Signal(len(self.ev_macs))
        with m.If(f1_advance):
            m.d.sync += [
                f1_valid.eq(f0_go),
                f1_bias.eq(f0_bias),
                f1_first.eq(f0_first),
                f1_last.eq(f0_last),
                f1_last_word.eq(f0_last_word),
                f1_word.eq(fd_w[:_log2(WPB)] if WPB > 1 else 0),
                f1_a_slot.eq(fd_a_slot),
                f1_b_slot.eq(fd_b_slot),
                f1_macs.eq(Mux(f0_bias, 0, Mux(f0_last_word, step_macs_last, step_macs))),
            ]

        release_a = Signal()
        release_b = Signal()
        m.d.comb += [
            release_a.eq(multi_kt | fd_last_n),
            release_b.eq(multi_kt | n_tiles_gt1 | (fd_last_n & fd_last_m)),
        ]
        with m.FSM(name="feeder"):
            with m.State("IDLE"):
                with m.If(setup):
                    m.d.sync += [fd_n0.eq(0), fd_kt.eq(0), fd_w.eq(0),
                                 fd_m_left.eq(job.m), fd_n_left.eq(job.n),
                                 fd_a_slot.eq(0), fd_b_slot.eq(0), feeder_done.eq(0)]
                    m.next = "WAIT"
            with m.State("WAIT"):
                # Values of the step that ISSUE uses, from registers (fd_kt, m0 and n0
                # change only on the way into WAIT).
                last_kt = fd_kt == k_tiles_m1
                rows_cols = _shift_add_product(fd_rows, fd_cols)
                m.d.sync += [step_macs.eq(rows_cols << lsh),
                             step_macs_last.eq(_shift_add_product(rows_cols, last_lanes)),
                             fd_last_kt.eq(last_kt),
                             fd_seg_last.eq(Mux(last_kt, last_seg_words, KT) - 1)]
                m.d.comb += self.ev_read_stall.eq(~slots_ready)
                with m.If(slots_ready):
                    m.d.sync += [fd_stepping.eq(1), fd_w.eq(0),
                                 fd_bias_phase.eq(job.bias & (fd_kt == 0))]
                    m.next = "ISSUE"
            with m.State("ISSUE"):
                with m.If(f0_go):
                    with m.If(fd_bias_phase):
                        m.d.sync += fd_bias_phase.eq(0)
                    with m.Elif(fd_w != fd_seg_last):
                        m.d.sync += fd_w.eq(fd_w + 1)
                    with m.Else():
                        # The step's last operation: release slots the next step does not use.
                        m.d.sync += fd_stepping.eq(0)
                        with m.If(release_a):
                            m.d.comb += a_release.bit_select(fd_a_slot, 1).eq(1)
                            m.d.sync += fd_a_slot.eq(next_slot(fd_a_slot))
                        with m.If(release_b):
                            m.d.comb += b_release.bit_select(fd_b_slot, 1).eq(1)
                            m.d.sync += fd_b_slot.eq(next_slot(fd_b_slot))
                        with m.If(fd_last_kt):
                            m.d.comb += [
                                meta_fifo.w_en.eq(1),
                                meta_in.rows.eq(fd_rows), meta_in.cols.eq(fd_cols),
                                meta_in.last_n.eq(fd_last_n), meta_in.new_strip.eq(fd_n0 == 0),
                                meta_in.last_step.eq(fd_last_n & fd_last_m),
                            ]
                        with m.If(~fd_last_kt):
                            m.d.sync += fd_kt.eq(fd_kt + 1)
                            m.next = "WAIT"
                        with m.Elif(~fd_last_n):
                            m.d.sync += [fd_kt.eq(0), fd_n0.eq(fd_n0 + C),
                                         fd_n_left.eq(fd_n_left - C)]
                            m.next = "WAIT"
                        with m.Elif(~fd_last_m):
                            m.d.sync += [fd_kt.eq(0), fd_n0.eq(0),
                                         fd_n_left.eq(job.n), fd_m_left.eq(fd_m_left - R)]
                            m.next = "WAIT"
                        with m.Else():
                            m.d.sync += feeder_done.eq(1)
                            m.next = "IDLE"

        # F1 -> PEs: select the word, mask lanes past K, or form the bias operation.
        lane_mask = Signal(W)       # bits of the lanes that hold real codes
        with m.Switch(lane_bits):
            for w in lane_widths:
                with m.Case(w):
                    n_l = W // w
                    with m.Switch(Mux(f1_last_word, last_lanes, n_l)):
                        for v in range(1, n_l + 1):
                            with m.Case(v):
                                m.d.comb += lane_mask.eq((1 << (v * w)) - 1)
        one_a = Signal(W)
        with m.Switch(job.fmt_a):
            for i, code in enumerate(self._one_codes()):
                with m.Case(i):
                    m.d.comb += one_a.eq(code)
        bias_sel = [Signal(W, name=f"bias_c{c}") for c in range(C)]
        with m.Switch(f1_b_slot):
            for s in range(SLOTS):
                with m.Case(s):
                    m.d.comb += [bias_sel[c].eq(bias_codes[s][c]) for c in range(C)]
        with m.If(f1_advance):
            m.d.sync += [
                f1r_valid.eq(f1_valid), f1r_bias.eq(f1_bias), f1r_first.eq(f1_first),
                f1r_last.eq(f1_last), f1r_word.eq(f1_word), f1r_macs.eq(f1_macs),
                f1r_mask.eq(lane_mask),
                *[f1r_a_lines[r].eq(rp.data) for r, (_, rp) in enumerate(a_banks)],
                *[f1r_b_lines[c].eq(rp.data) for c, (_, rp) in enumerate(b_banks)],
                *[f1r_bias_codes[c].eq(bias_sel[c]) for c in range(C)],
            ]
        a_words = []
        for r in range(R):
            wa = Signal(W, name=f"a_word_r{r}")
            m.d.comb += wa.eq(Mux(f1r_bias, one_a, f1r_a_lines[r].word_select(f1r_word, W) & f1r_mask))
            a_words.append(wa)
        b_words = []
        for c in range(C):
            wb = Signal(W, name=f"b_word_c{c}")
            m.d.comb += wb.eq(Mux(f1r_bias, f1r_bias_codes[c],
                                  f1r_b_lines[c].word_select(f1r_word, W) & f1r_mask))
            b_words.append(wb)
        m.d.comb += [
            f2.i.payload.a.eq(Cat(*a_words)), f2.i.payload.b.eq(Cat(*b_words)),
            f2.i.payload.bias.eq(f1r_bias), f2.i.payload.first.eq(f1r_first),
            f2.i.payload.last.eq(f1r_last), f2.i.payload.macs.eq(f1r_macs),
        ]
        op = f2.o.payload
        for r, row_slice in enumerate(row_slices):
            m.d.comb += [
                # valid depends on the other slices' ready so that every row takes each
                # operation in the same cycle (a slice's ready never depends on valid)
                row_slice.i.valid.eq(pe_take),
                row_slice.i.payload.a.eq(op.a.word_select(r, W)),
                row_slice.i.payload.b.eq(op.b),
                row_slice.i.payload.bias.eq(op.bias),
                row_slice.i.payload.first.eq(op.first),
                row_slice.i.payload.last.eq(op.last),
                row_slice.i.payload.fmt_a.eq(job.fmt_a),
                row_slice.i.payload.fmt_b.eq(Mux(op.bias, job.fmt_bias, job.fmt_b)),
                row_slice.i.payload.out_fmt.eq(job.out_fmt),
            ]
            for c in range(C):
                to_pe = row_forks[r].o[c]
                row_op = to_pe.payload
                p = pes[r][c].i.payload
                m.d.comb += [
                    pes[r][c].i.valid.eq(to_pe.valid),
                    to_pe.ready.eq(pes[r][c].i.ready),
                    p.a.eq(row_op.a), p.b.eq(row_op.b.word_select(c, W)),
                    p.fmt_a.eq(row_op.fmt_a), p.fmt_b.eq(row_op.fmt_b),
                    p.out_fmt.eq(row_op.out_fmt),
                    p.dot.eq(1), p.first.eq(row_op.first), p.last.eq(row_op.last),
                ]
        m.d.comb += [
            self.ev_compute.eq(pe_take),
            self.ev_macs.eq(Mux(pe_take, op.macs, 0)),
        ]

        # ================================================================================
        # Collector: takes each output tile from the PEs, row by row, into the packers.
        # ================================================================================
        wr_fifo_layout = combiner_beat_layout(rows=R, addr_width=self.addr_bits, data_width=D)
        WR_DEPTH = 7          # (a level of 3 still leaves room: see wr_room)
        wr_fifo = fifo.SyncFIFOBuffered(width=wr_fifo_layout.size, depth=WR_DEPTH)
        m.submodules.wr_fifo = wr_fifo
        wr_in = data.View(wr_fifo_layout, wr_fifo.w_data)
        # The beats of a row of C are consecutive in memory, but the collector writes the
        # rows of a tile in turn: the combiner gathers each row's beats into bursts of
        # write_burst_beats (one AW and B per burst, not per beat).
        m.submodules.write_combiner = combiner = WriteCombiner(
            rows=R, addr_width=self.addr_bits, data_width=D, burst_beats=self.write_burst_beats,
            len_bits=self.len_bits)
        m.d.comb += [
            combiner.i.valid.eq(wr_fifo.r_rdy),
            combiner.i.payload.eq(wr_fifo.r_data),
            wr_fifo.r_en.eq(combiner.i.ready),
        ]
        wiring.connect(m, combiner.cmd, wiring.flipped(self.wr_cmd))
        wiring.connect(m, combiner.data, wiring.flipped(self.wr_data))

        co_r = Signal(range(R + 1))
        co_c = Signal(range(C + 1))
        co_strip = Signal(self.addr_bits)        # address of C row m0
        co_first_strip = Signal()
        row_addr = Array(Signal(self.addr_bits, name=f"c_row_addr{r}") for r in range(R))
        pack = Array(Signal(D, name=f"pack{r}") for r in range(R))
        fill = Array(Signal(range(D + 1), name=f"fill{r}") for r in range(R))   # bits used
        # The fill after the next code, and whether that fills the beat, kept beside each
        # packer (formed when the fill changes): the beat's write (its FIFO entry, the
        # packer's and row address's updates) then waits on a select of flip-flops, not on
        # an adder and a compare behind the row select (on the 2x2 array on ECP5 those
        # paths, into fill, the row addresses and the write FIFO's level, were among the
        # latest).
        fill_after = Array(Signal(range(D + 1), name=f"fill_after{r}") for r in range(R))
        full_after = Array(Signal(name=f"full_after{r}") for r in range(R))

        def empty_packer(r):
            return [pack[r].eq(0), fill[r].eq(0), fill_after[r].eq(out_bits),
                    full_after[r].eq(out_bits == D)]

        # The PE being collected.
        sel_valid = Signal()
        sel_code = Signal(self.code_bits)
        sel_sat = Signal()
        sel_ready = Signal()
        # A register slice on each PE's output: the collector's ready (a select of the PE
        # being collected and the packers' room) reaches a register beside the PE, not the
        # PE's admission, which counts the results taken (on the 2x4 array on ECP5 that
        # count and the PEs' ready were among the latest paths).
        out_layout = data.StructLayout({"code": self.code_bits, "saturated": 1})
        for r in range(R):
            for c in range(C):
                out_slice = SkidBuffer(out_layout, flush=False)
                m.submodules[f"out_slice_r{r}_c{c}"] = out_slice
                pe_o = pes[r][c].o
                m.d.comb += [
                    out_slice.i.valid.eq(pe_o.valid),
                    out_slice.i.payload.code.eq(pe_o.payload.code),
                    out_slice.i.payload.saturated.eq(pe_o.payload.saturated),
                    pe_o.ready.eq(out_slice.i.ready),
                ]
                o = out_slice.o
                here = (co_r == r) & (co_c == c)
                with m.If(here):
                    m.d.comb += [sel_valid.eq(o.valid), sel_code.eq(o.payload.code),
                                 sel_sat.eq(o.payload.saturated)]
                m.d.comb += o.ready.eq(here & sel_ready)

        in_range = Signal()
        row_end = Signal()
        m.d.comb += [
            in_range.eq((co_r < meta_out.rows) & (co_c < meta_out.cols)),
            row_end.eq(meta_out.last_n & (co_c == meta_out.cols - 1)),
        ]

        # Register slice between the PE select and the packers: the PEs are spread over
        # the device, and the select (an R·C-way multiplexer) followed by the NaN test,
        # ReLU and the packer's insert was the co-processor's critical path. The code
        # travels with its packer row and the tile flags it was taken under.
        s_valid = Signal()
        s_code = Signal(self.code_bits)
        s_sat = Signal()
        s_row = Signal(range(R))
        s_in_range = Signal()
        s_row_end = Signal()
        take = Signal()
        m.d.sync += s_valid.eq(take)
        with m.If(take):
            m.d.sync += [s_code.eq(sel_code), s_sat.eq(sel_sat), s_row.eq(co_r[:len(s_row)]),
                         s_in_range.eq(in_range), s_row_end.eq(row_end)]

        # The collector's own copies of the output format and the ReLU flag, loaded at start:
        # the job's registers also drive every PE's format inputs and were placed among the
        # PEs (on the 2x2 proxy on ECP5, 2.8 ns of routing from there into the NaN test,
        # ReLU and the packer's insert: the latest path, 11.0 ns).
        co_out_fmt = Signal.like(job.out_fmt)
        co_relu = Signal()
        with m.If(start):
            m.d.sync += [co_out_fmt.eq(job.out_fmt), co_relu.eq(job.relu)]
        is_nan = Signal()
        sign = Signal()
        with m.Switch(co_out_fmt):
            for i, f in enumerate(self.output_formats):
                bits = get_format(f).bits
                with m.Case(i):
                    m.d.comb += [is_nan.eq(_is_nan_code(f, s_code[:bits])),
                                 sign.eq(s_code[bits - 1])]

        # A second register slice, between ReLU and the packers: the NaN test and ReLU
        # followed by the packer's insert and the write FIFO's data were the latest paths
        # of the 2x2 and 2x4 proxies on ECP5 (9.9 and 11.3 ns). ``t_*`` is the code on its
        # way into its row's packer, a cycle after ``s_*``.
        t_valid = Signal()
        t_code = Signal(self.code_bits)
        t_row = Signal.like(s_row)
        t_row_end = Signal()
        m.d.sync += t_valid.eq(s_valid & s_in_range)
        with m.If(s_valid):
            # ReLU: a negative code (also -0) becomes +0 (code 0 in every format), except a
            # NaN code — which an overflow produces too (fp8_e4m3 has no infinity), so the
            # code is tested, not the engine's NaN-operand flag.
            m.d.sync += [t_code.eq(Mux(co_relu & sign & ~is_nan, 0, s_code)),
                         t_row.eq(s_row), t_row_end.eq(s_row_end)]
        with m.If(s_valid & s_in_range):
            m.d.comb += self.ev_saturation.eq(s_sat)

        # The packer of row t_row with this code inserted.
        cur_pack = Signal(D)
        cur_fill = Signal(range(D + 1))
        new_pack = Signal(D)
        new_fill = Signal(range(D + 1))
        m.d.comb += [cur_pack.eq(pack[t_row]), cur_fill.eq(fill[t_row]),
                     new_fill.eq(fill_after[t_row])]
        with m.Switch(out_bits):
            for w in sorted({get_format(f).bits for f in self.output_formats}):
                with m.Case(w):
                    m.d.comb += new_pack.eq(cur_pack)
                    with m.Switch(cur_fill >> _log2(w)):
                        for slot in range(D // w):
                            with m.Case(slot):
                                m.d.comb += new_pack.word_select(slot, w).eq(t_code[:w])
        emit = Signal()
        m.d.comb += emit.eq(full_after[t_row] | t_row_end)
        strb = Signal(D // 8)
        with m.Switch((new_fill + 7) >> 3):
            for nbytes in range(1, D // 8 + 1):
                with m.Case(nbytes):
                    m.d.comb += strb.eq((1 << nbytes) - 1)
        m.d.comb += [wr_in.row.eq(t_row), wr_in.addr.eq(row_addr[t_row]), wr_in.data.eq(new_pack),
                     wr_in.strb.eq(strb), wr_in.last.eq(t_row_end)]
        # (INIT below, setting up a new row strip's packers and row addresses, comes after
        # this and wins: for R = 1 its first cycle is the one in which the previous
        # strip's last taken code is here. That code ends its row (a beat, written to the
        # FIFO with this cycle's values) or is outside the tile (not written).)
        with m.If(t_valid):
            with m.If(emit):
                m.d.comb += wr_fifo.w_en.eq(1)
                m.d.sync += [*empty_packer(t_row),
                             row_addr[t_row].eq(row_addr[t_row] + D // 8)]
            with m.Else():
                m.d.sync += [pack[t_row].eq(new_pack), fill[t_row].eq(new_fill),
                             fill_after[t_row].eq(new_fill + out_bits),
                             full_after[t_row].eq(new_fill + out_bits == D)]

        # A code taken in cycle t is written in t + 2, after at most three writes (t - 1,
        # t, t + 1) the level seen in t - 1 does not show. w_rdy is low only with
        # WR_DEPTH - 1 entries in the inner FIFO, and the level counts the output register
        # too, which is full whenever the inner FIFO is not empty for two cycles: so a
        # level of at most WR_DEPTH - 4 in t - 1 means w_rdy in t + 2 (test_matmul fails
        # at - 3).
        wr_room = Signal()
        m.d.sync += wr_room.eq(wr_fifo.level <= WR_DEPTH - 4)
        init_r = Signal(range(R + 1))
        init_addr = Signal(self.addr_bits)
        # A tile's metadata is looked at in its first TAKE cycle (``fresh``): the first code
        # is taken in the same cycle unless the tile starts a new row strip (then INIT sets
        # up the strip's rows first). So tiles follow each other without a gap: R·C
        # cycles per tile, not R·C + 1.
        fresh = Signal()
        with m.FSM(name="collector"):
            with m.State("IDLE"):
                with m.If(setup):
                    m.d.sync += [co_strip.eq(job.c_addr), co_first_strip.eq(1),
                                 collector_done.eq(0), co_r.eq(0), co_c.eq(0), fresh.eq(1)]
                    m.next = "TAKE"
            with m.State("INIT"):
                # Row addresses of the new strip, one per cycle (no multiplier). The slice
                # has written the last code of the previous tile by now.
                m.d.sync += [row_addr[init_r].eq(init_addr), *empty_packer(init_r),
                             init_addr.eq(init_addr + job.c_stride),
                             init_r.eq(init_r + 1)]
                with m.If(init_r == R - 1):
                    m.next = "TAKE"
            with m.State("TAKE"):
                strip_start = Signal()
                m.d.comb += strip_start.eq(fresh & meta_out.new_strip)
                with m.If(meta_fifo.r_rdy & strip_start):
                    base = Mux(co_first_strip, co_strip, co_strip + c_strip_step)
                    m.d.sync += [co_strip.eq(base), co_first_strip.eq(0), fresh.eq(0),
                                 init_r.eq(0), init_addr.eq(base)]
                    m.next = "INIT"
                # Take a code only while the FIFO has room for a beat (registered: the
                # PEs' ready, and through the engines the feeder's, does not wait for
                # the packer's arithmetic).
                stall = Signal()
                m.d.comb += stall.eq(~wr_room)
                m.d.comb += [sel_ready.eq(~stall & meta_fifo.r_rdy & ~strip_start),
                             self.ev_write_stall.eq(sel_valid & stall),
                             take.eq(sel_valid & sel_ready)]
                with m.If(take):
                    m.d.sync += fresh.eq(0)
                    with m.If(co_c != C - 1):
                        m.d.sync += co_c.eq(co_c + 1)
                    with m.Else():
                        m.d.sync += [co_c.eq(0), co_r.eq(co_r + 1)]
                        with m.If(co_r == R - 1):
                            m.d.comb += meta_fifo.r_en.eq(1)
                            m.d.sync += [co_r.eq(0), fresh.eq(1)]
                            with m.If(meta_out.last_step):
                                m.d.sync += collector_done.eq(1)
                                m.next = "IDLE"

        # ---- end of the job: everything collected and handed to the write DMA ------------
        # (level, not r_rdy: an entry just written is not yet visible at the read side.)
        with m.If(run & loader_done & feeder_done & collector_done & ~s_valid & ~t_valid &
                  (wr_fifo.level == 0) & combiner.idle):
            m.d.sync += [self.busy.eq(0), run.eq(0)]
        return m
