"""The AXI4 matrix-multiplication co-processor: the top level of a generated design.

::

    s_axil ─► RegisterFile ─► controller (checks, job latch, abort) ─► MatmulCore ─┐
                 ▲ counters                                             ▲ │   │    │
                 └───────────────────────────── events ─────────────────┘ │   │    │
    m_axi ◄─┬─ AxiReadDma  ◄── read commands ─────────────────────────────┘   │    │
            │            └──► read data ──────────────────────────────────────┘    │
            └─ AxiWriteDma ◄── write commands and data ────────────────────────────┘

The controller latches the job registers when START is written, checks them (dimensions,
formats, alignment, strides, address range: the first failing check's code goes to
STATUS.ERROR and the job ends at once, nothing is read or written), then runs the core
and waits until the write DMA has every write response. An AXI error response aborts the
job: the DMAs stop addressing new bursts and finish the ones in flight (no hang, no
half-written burst left open), the core is reset, and STATUS.ERROR says which side
failed. CTRL.SOFT_RESET does the same from any state and returns to idle without DONE.

Only this component takes the whole configuration; the parts take narrow parameters.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from generators.formats import get_format
from generators.regmap import ERROR_CODES, FORMAT_IDS, build_regmap
from generators.rtl.axi import Axi4Signature, AxiLiteSignature, connect_half
from generators.rtl.csr import RegisterFile
from generators.rtl.dma import AxiReadDma, AxiWriteDma
from generators.rtl.engine import engine_params
from generators.rtl.matmul import MatmulCore

__all__ = ["Coprocessor", "ERROR"]

#: STATUS.ERROR codes by name (from the register map).
ERROR = {name: code for name, (code, _) in ERROR_CODES.items()}


class Coprocessor(wiring.Component):
    """AXI4 matmul co-processor generated from a :class:`generators.config.Config`.

    Parameters
    ----------
    config : Config
        The design. ``engine_overrides`` may change MacEngine parameters (tests use a
        shorter pipeline); the register map and its CONFIG_HASH always describe
        ``config``.

    Members
    -------
    s_axil : In(AxiLiteSignature(addr_width=12, data_width=32))
        Control and status registers (``regmap.md``).
    m_axi : Out(Axi4Signature(addr_width=axi.addr_bits, data_width=axi.data_bits,
        id_width=axi.id_bits))
        Memory: operands, bias and results.
    irq : Out(1)
        ``CTRL.IRQ_EN & STATUS.DONE`` (level).
    """

    def __init__(self, config, *, engine_overrides: dict | None = None):
        self.config = config
        self.regmap = build_regmap(config)
        self.engine = engine_params(config, **(engine_overrides or {}))
        axi = config.axi
        self.data_bytes = axi.data_bits // 8
        self.dim_bits = max(1, config.limits.max_dim.bit_length())
        super().__init__({
            "s_axil": In(AxiLiteSignature(addr_width=self.regmap.addr_bits, data_width=32)),
            "m_axi": Out(Axi4Signature(addr_width=axi.addr_bits, data_width=axi.data_bits,
                                       id_width=axi.id_bits)),
            "irq": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        axi = cfg.axi
        A = axi.addr_bits
        DB = self.data_bytes

        regs = RegisterFile(self.regmap)
        m.submodules.regs = regs
        wiring.connect(m, wiring.flipped(self.s_axil), regs.bus)

        dma_args = dict(addr_width=A, data_width=axi.data_bits, id_width=axi.id_bits,
                        max_burst_beats=axi.max_burst_beats)
        rd = AxiReadDma(max_outstanding=axi.max_outstanding_reads, **dma_args)
        wr = AxiWriteDma(max_outstanding=4, **dma_args)
        m.submodules.read_dma = rd
        m.submodules.write_dma = wr
        connect_half(m, self.m_axi, rd.bus)
        connect_half(m, self.m_axi, wr.bus)

        core = MatmulCore(rows=cfg.array.rows, cols=cfg.array.cols, engine=self.engine,
                          data_bits=axi.data_bits, addr_bits=A, k_tile=cfg.buffers.k_tile,
                          slots=cfg.buffers.slots, dim_bits=self.dim_bits,
                          write_burst_beats=axi.write_burst_beats)
        # The core's reset is a flip-flop, set on every transition into ABORT or SOFT_RESET
        # and cleared on the way out of their WAIT states: it reaches every flip-flop of
        # every PE, and decoded from the control state it made a path of four routings
        # across the array on the 2x2 co-processor on ECP5 (11.9 ns).
        core_reset = Signal()
        m.submodules.core = ResetInserter(core_reset)(core)
        wiring.connect(m, core.rd_cmd, rd.cmd)
        wiring.connect(m, rd.data, core.rd_data)
        wiring.connect(m, core.wr_cmd, wr.cmd)
        wiring.connect(m, core.wr_data, wr.data)

        formats = self.engine["formats"]
        out_formats = self.engine["output_formats"]

        # ---- the job registers, latched at START -------------------------------------
        L = {}
        for name in ("m", "n", "k", "a_addr_lo", "a_addr_hi", "b_addr_lo", "b_addr_hi",
                     "c_addr_lo", "c_addr_hi", "bias_addr_lo", "bias_addr_hi", "a_stride",
                     "b_stride", "c_stride", "format_a", "format_b", "format_out",
                     "format_bias", "flags_bias", "flags_relu"):
            src = getattr(regs, name)
            L[name] = Signal.like(src, name=f"job_{name}")

        def latch():
            return [L[name].eq(getattr(regs, name)) for name in L]

        # ---- checks (on the latched values) ----------------------------------------------
        def lookup(fmt_id, names, tag):
            """(valid, engine index, code bits) of a format id."""
            valid = Signal(name=f"{tag}_ok")
            index = Signal(range(max(2, len(names))), name=f"{tag}_index")
            bits = Signal(range(33), name=f"{tag}_bits")
            with m.Switch(fmt_id):
                for i, f in enumerate(names):
                    with m.Case(FORMAT_IDS[get_format(f).name]):
                        m.d.comb += [valid.eq(1), index.eq(i), bits.eq(get_format(f).bits)]
            return valid, index, bits

        a_ok, a_idx, a_bits = lookup(L["format_a"], formats, "fmt_a")
        b_ok, b_idx, b_bits = lookup(L["format_b"], formats, "fmt_b")
        bias_ok, bias_idx, bias_bits = lookup(L["format_bias"], formats, "fmt_bias")
        o_ok, o_idx, o_bits = lookup(L["format_out"], out_formats, "fmt_out")
        use_bias = L["flags_bias"]

        max_dim = cfg.limits.max_dim
        bad_dims = Signal()
        m.d.comb += bad_dims.eq(Cat(*[(L[d] == 0) | (L[d] > max_dim) for d in "mnk"]).any())
        bad_format = Signal()
        m.d.comb += bad_format.eq(~a_ok | ~b_ok | ~o_ok | (a_bits != b_bits)
                                  | (use_bias & (~bias_ok | (bias_bits != a_bits))))

        def misaligned(value):
            return value[:(DB - 1).bit_length()] != 0 if DB > 1 else 0

        multi_m = L["m"] > 1
        multi_n = L["n"] > 1
        bad_align = Signal()
        m.d.comb += bad_align.eq(
            misaligned(L["a_addr_lo"]) | misaligned(L["b_addr_lo"]) | misaligned(L["c_addr_lo"])
            | (use_bias & misaligned(L["bias_addr_lo"]))
            | (multi_m & (misaligned(L["a_stride"]) | misaligned(L["c_stride"])))
            | (multi_n & misaligned(L["b_stride"])))

        # Bytes of one row: ceil(count * bits / 8), count ≤ max_dim.
        def row_bytes(count, bits, tag):
            rb = Signal(self.dim_bits + 3, name=f"{tag}_row_bytes")
            with m.Switch(bits):
                for b in sorted({get_format(f).bits for f in (*formats, *out_formats)}):
                    with m.Case(b):
                        m.d.comb += rb.eq((count * b + 7) >> 3)
            return rb

        ab_row = row_bytes(L["k"], a_bits, "ab")
        c_row = row_bytes(L["n"], o_bits, "c")
        bias_row = row_bytes(L["n"], a_bits, "bias")
        # The stride check compares with the row bytes registered: the latched values are
        # stable through CHECK (eight cycles before DECIDE reads bad_stride_r), and the row
        # bytes' adder, the select by width and the compare's carry chain in one cycle were
        # the 2x2 co-processor's latest path on ECP5 (10.2 ns, from the N register).
        ab_row_r, c_row_r = Signal.like(ab_row), Signal.like(c_row)
        m.d.sync += [ab_row_r.eq(ab_row), c_row_r.eq(c_row)]
        bad_stride = Signal()
        m.d.comb += bad_stride.eq((multi_m & (L["a_stride"] < ab_row_r))
                                  | (multi_n & (L["b_stride"] < ab_row_r))
                                  | (multi_m & (L["c_stride"] < c_row_r)))

        # Address range, one buffer per cycle: base + (rows - 1) * stride + row bytes must
        # not pass 2**addr_bits (and the HI word must be 0 where the bus is 32 bits).
        buffers = [("a_addr", "m", "a_stride", ab_row, 1), ("b_addr", "n", "b_stride", ab_row, 1),
                   ("c_addr", "m", "c_stride", c_row, 1), ("bias_addr", None, None, bias_row,
                                                          use_bias)]
        # Four register stages (the selected operands, two half products, the product, the
        # sum), so that each multiplier (rows times half the stride, one DSP block on ECP5)
        # has a cycle to itself and the adder that joins them another: chk_end of buffer i
        # arrives four cycles after chk_i == i. (With the whole product and its join in one
        # cycle, chk_prod was among the latest paths of the 2x2 co-processor on ECP5.)
        # Rows are at most max_dim - 1 when the dimensions are good (when they are not,
        # BAD_DIMS wins over BAD_ADDRESS), so the multipliers are dim_bits wide.
        LAT = 4
        chk_i = Signal(range(len(buffers) + LAT + 1))
        chk_base = Signal(64)
        chk_rows = Signal(self.dim_bits)
        chk_stride = Signal(32)
        chk_bytes = Signal(self.dim_bits + 3)
        chk_used = Signal()
        with m.Switch(chk_i):
            for i, (addr, rows, stride, rb, used) in enumerate(buffers):
                with m.Case(i):
                    m.d.sync += [
                        chk_base.eq(Cat(L[addr + "_lo"], L[addr + "_hi"])),
                        chk_rows.eq(L[rows] - 1 if rows else 0),
                        chk_stride.eq(L[stride] if stride else 0),
                        chk_bytes.eq(rb),
                        chk_used.eq(used),
                    ]
        chk_prod_lo = Signal(self.dim_bits + 16)
        chk_prod_hi = Signal(self.dim_bits + 16)
        chk_base2 = Signal(64)
        chk_bytes2 = Signal(self.dim_bits + 3)
        chk_used2 = Signal()
        m.d.sync += [chk_prod_lo.eq(chk_rows * chk_stride[:16]),
                     chk_prod_hi.eq(chk_rows * chk_stride[16:]), chk_base2.eq(chk_base),
                     chk_bytes2.eq(chk_bytes), chk_used2.eq(chk_used)]
        chk_prod = Signal(self.dim_bits + 32)
        chk_base3 = Signal(64)
        chk_bytes3 = Signal(self.dim_bits + 3)
        chk_used3 = Signal()
        m.d.sync += [chk_prod.eq(chk_prod_lo + (chk_prod_hi << 16)), chk_base3.eq(chk_base2),
                     chk_bytes3.eq(chk_bytes2), chk_used3.eq(chk_used2)]
        chk_end = Signal(66)
        m.d.sync += chk_end.eq(chk_base3 + chk_prod + chk_bytes3)
        chk_end_used = Signal()
        m.d.sync += chk_end_used.eq(chk_used3)
        bad_address = Signal()
        # The other checks, registered (the latched values are stable through CHECK).
        bad_dims_r, bad_format_r, bad_align_r, bad_stride_r = Signal(), Signal(), Signal(), Signal()
        m.d.sync += [bad_dims_r.eq(bad_dims), bad_format_r.eq(bad_format),
                     bad_align_r.eq(bad_align), bad_stride_r.eq(bad_stride)]

        # ---- state -----------------------------------------------------------------------
        error = Signal(8)
        done_set = Signal()
        busy = Signal()
        abort = Signal()
        m.d.comb += [
            regs.status_busy.eq(busy),
            regs.status_error.eq(error),
            regs.status_done_set.eq(done_set),
            self.irq.eq(regs.ctrl_irq_en & regs.status_done),
            rd.abort.eq(abort),
            wr.abort.eq(abort),
        ]
        job = core.job
        m.d.comb += [
            job.m.eq(L["m"]), job.n.eq(L["n"]), job.k.eq(L["k"]),
            job.a_addr.eq(L["a_addr_lo"]), job.b_addr.eq(L["b_addr_lo"]),
            job.c_addr.eq(L["c_addr_lo"]), job.bias_addr.eq(L["bias_addr_lo"]),
            job.a_stride.eq(L["a_stride"]), job.b_stride.eq(L["b_stride"]),
            job.c_stride.eq(L["c_stride"]),
            job.bias.eq(use_bias), job.relu.eq(L["flags_relu"]),
        ]
        # The engine indices of the formats, registered: the latched values are stable
        # for the CHECK cycles before the core starts, and the look-up stays off the
        # core's paths (every PE's format input, the loader's lane arithmetic).
        m.d.sync += [job.fmt_a.eq(a_idx), job.fmt_b.eq(b_idx), job.fmt_bias.eq(bias_idx),
                     job.out_fmt.eq(o_idx)]
        if A > 32:
            for addr in ("a_addr", "b_addr", "c_addr", "bias_addr"):
                m.d.comb += getattr(job, addr).eq(Cat(L[addr + "_lo"], L[addr + "_hi"]))

        soft_reset = regs.ctrl_soft_reset

        def on_soft_reset():
            # Called last in every state: a later assignment to m.next wins.
            with m.If(soft_reset):
                m.d.sync += [error.eq(0), core_reset.eq(1)]
                m.next = "SOFT_RESET"
        with m.FSM(name="control") as control:
            with m.State("IDLE"):
                with m.If(regs.ctrl_start):
                    m.d.sync += latch()
                    m.d.sync += [error.eq(0), bad_address.eq(0), chk_i.eq(0)]
                    m.next = "CHECK"
                on_soft_reset()
            with m.State("CHECK"):
                # chk_end of buffer i arrives LAT cycles after chk_i == i.
                m.d.sync += chk_i.eq(chk_i + 1)
                with m.If((chk_i >= LAT) & chk_end_used & (chk_end > (1 << A))):
                    m.d.sync += bad_address.eq(1)
                with m.If(chk_i == len(buffers) + LAT - 1):
                    m.next = "DECIDE"
                on_soft_reset()
            with m.State("DECIDE"):
                code = Mux(bad_dims_r, ERROR["BAD_DIMS"],
                       Mux(bad_format_r, ERROR["BAD_FORMAT"],
                       Mux(bad_align_r, ERROR["MISALIGNED"],
                       Mux(bad_stride_r, ERROR["BAD_STRIDE"],
                       Mux(bad_address, ERROR["BAD_ADDRESS"], ERROR["OK"])))))
                with m.If(bad_dims_r | bad_format_r | bad_align_r | bad_stride_r | bad_address):
                    m.d.sync += error.eq(code)
                    m.d.comb += done_set.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += core.start.eq(1)
                    m.next = "RUN"
                on_soft_reset()
            with m.State("RUN"):
                with m.If(rd.error | wr.error):
                    m.d.sync += [error.eq(Mux(rd.error, ERROR["AXI_READ"], ERROR["AXI_WRITE"])),
                                 core_reset.eq(1)]
                    m.next = "ABORT"
                with m.Elif(~core.busy):
                    m.next = "DRAIN"
                on_soft_reset()
            with m.State("DRAIN"):
                # Every result beat is with the write DMA: wait for its write responses.
                with m.If(wr.error):
                    m.d.sync += [error.eq(ERROR["AXI_WRITE"]), core_reset.eq(1)]
                    m.next = "ABORT"
                with m.Elif(wr.idle & rd.idle):
                    m.d.comb += done_set.eq(1)
                    m.next = "IDLE"
                on_soft_reset()
            with m.State("ABORT"):
                # Stop the DMAs cleanly and hold the core in reset until the bus is quiet.
                m.d.comb += abort.eq(1)
                m.next = "ABORT_WAIT"
                on_soft_reset()
            with m.State("ABORT_WAIT"):
                with m.If(rd.idle & wr.idle):
                    m.d.comb += done_set.eq(1)
                    m.d.sync += core_reset.eq(0)
                    m.next = "IDLE"
                on_soft_reset()
            with m.State("SOFT_RESET"):
                m.d.comb += abort.eq(1)
                m.next = "SOFT_RESET_WAIT"
            with m.State("SOFT_RESET_WAIT"):
                with m.If(rd.idle & wr.idle):
                    m.d.sync += core_reset.eq(0)
                    m.next = "IDLE"
        # An expression of the state register, not an assignment inside the FSM: Icarus
        # never evaluates an FSM's combinational block while the state stays at its
        # initial value, which would leave a state-decoded signal X until the first START.
        m.d.comb += busy.eq(~control.ongoing("IDLE"))
        # START while a job runs is refused; the running job goes on.
        with m.If(regs.ctrl_start & busy & ~soft_reset):
            m.d.sync += error.eq(ERROR["BUSY"])

        # ---- performance counters ------------------------------------------------------
        def counter(name, inc):
            c = Signal(64, name=f"counter_{name}")
            with m.If(regs.ctrl_clear_counters):
                m.d.sync += c.eq(0)
            with m.Else():
                m.d.sync += c.eq(c + inc)
            m.d.comb += getattr(regs, name).eq(c)

        # The core's events are registered (qualified by busy) before the 64-bit adders:
        # the PEs' ready, and so the MAC event, is a long chain through the engines. The
        # counts land a cycle late, long before DONE (the write responses come after).
        ev = {name: Signal.like(sig, name=f"{name}_r") for name, sig in (
            ("compute", core.ev_compute), ("read_stall", core.ev_read_stall),
            ("write_stall", core.ev_write_stall), ("macs", core.ev_macs),
            ("saturation", core.ev_saturation))}
        m.d.sync += [
            ev["compute"].eq(core.ev_compute & busy),
            ev["read_stall"].eq(core.ev_read_stall & busy),
            ev["write_stall"].eq(core.ev_write_stall & busy),
            ev["macs"].eq(Mux(busy, core.ev_macs, 0)),
            ev["saturation"].eq(core.ev_saturation & busy),
        ]
        counter("cycles", 1)
        counter("busy_cycles", busy)
        counter("compute_cycles", ev["compute"])
        counter("read_stall_cycles", ev["read_stall"])
        counter("write_stall_cycles", ev["write_stall"])
        counter("macs", ev["macs"])
        counter("saturations", ev["saturation"])
        counter("read_bytes", Mux(rd.beat, DB, 0))
        counter("write_bytes", Mux(wr.beat, DB, 0))
        return m
