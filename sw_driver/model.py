"""A NumPy model of the co-processor behind the same registers as the RTL.

:class:`ModelTransport` answers register reads and writes exactly as the hardware's
register file does (the same :class:`generators.regmap.RegisterMap`), refuses bad
programming with the same error codes in the same order of precedence, and computes
results bit for bit as the hardware does (the golden model with the engine's accumulator
geometry). Counters: MACS, SATURATIONS, READ_BYTES, WRITE_BYTES and COMPUTE_CYCLES are
exact (the model walks the hardware's tile schedule); CYCLES and BUSY_CYCLES are an
estimate from a pipeline model of that schedule (see :meth:`ModelTransport._schedule`).

A job runs to completion inside the write of CTRL.START, so STATUS.BUSY always reads 0.
"""

from __future__ import annotations

import numpy as np

from generators.config import BURST_LIMIT_BYTES
from generators.formats import fixed_to_float, get_format
from generators.geometry import engine_geometry, engine_latency, engine_output_fifo_depth
from generators.regmap import ERROR_CODES, build_regmap
from sw_driver.packing import pack_matrix, row_bytes, unpack_matrix
from sw_driver.transport import BumpAllocator, Transport, TransportError
from testbenches import golden

__all__ = ["ModelTransport"]

ERR = {name: code for name, (code, _) in ERROR_CODES.items()}

# Fixed delays (cycles) and capacities of the RTL and of AxiRam, the simulations' memory,
# that the cycle estimate uses (ModelTransport._schedule): registers and queues on each path.
#: From the first cycle of the controller's CHECK state to the loader's first STEP: CHECK
#: (four buffer checks through a four-stage pipeline), DECIDE, the core's prep cycle (the
#: job's widths and K registered) and its setup cycle.
_T_START = 11
#: A read command taken by the DMA to its AR handshake: the burst splitter's three
#: registers and the AR register.
_T_CMD_TO_AR = 4
#: Read commands the DMA holds before their AR (splitter skid buffer 2, command being
#: split 1, burst register 1): the loader waits while it holds that many.
_T_SPLITTER_COMMANDS = 4
#: AR handshake to the first data beat at AxiRam (the simulations' memory).
_T_AR_TO_DATA = 2
#: ARs that AxiRam queues besides the one it answers (its AR channel's queue limit), and
#: data beats it queues for the R channel: with extra read latency, at most three bursts
#: are in flight in the memory, whatever the DMA allows.
_MEM_AR_QUEUE = 2
_MEM_R_QUEUE = 2
#: A data beat on the bus to the filler (the read DMA's skid buffer).
_T_DATA_TO_FILL = 1
#: A slot's last beat written to the feeder's first operation of the step (the slot's
#: ready bit, the feeder's WAIT).
_T_FILL_TO_ISSUE = 2
#: An operation issued to its acceptance by the PEs (F1, F1R, the feeder's slice, the
#: row's slice).
_T_ISSUE_TO_PE = 4
#: A PE's result beat to the collector (the PE's output slice).
_T_PE_TO_COLLECTOR = 1
#: Results a PE's output slice (a SkidBuffer) holds beyond those the PE owes.
_OUT_SLICE = 2
#: A tile's metadata written (with its last operation) to readable by the collector.
_T_META_TO_COLLECTOR = 2
#: A code taken by the collector to its beat's write into the write FIFO: the collector's
#: two register slices (the PE select's, then ReLU's).
_T_TAKE_TO_WRITE = 2
#: A burst's last result beat into the write FIFO to its first W beat on the bus: the FIFO
#: (2), the write combiner's commit (1), the write DMA's splitter and AW register (4; its
#: beats wait meanwhile in the DMA's skid buffer).
_T_WRITE_TO_W = 7
#: The last W beat to the last busy cycle: the write response (2), DONE (1), and the cycle
#: itself.
_T_W_TO_DONE = 4


def _grid(values):
    """``(ints, e)`` with ``values == ints * 2**e`` exactly, ``ints`` integral float64."""
    nz = np.abs(values[values != 0])
    if nz.size == 0:
        return np.zeros_like(values), 0
    mant, exp = np.frexp(nz)
    # The lowest set bit of each value: strip the mantissa's trailing zeros.
    low = exp - 53
    m_int = np.ldexp(mant, 53).astype(np.int64)
    tz = np.zeros(m_int.shape, dtype=np.int64)
    rest = m_int.copy()
    for shift in (32, 16, 8, 4, 2, 1):
        mask = (rest & ((1 << shift) - 1)) == 0
        tz += np.where(mask, shift, 0)
        rest = np.where(mask, rest >> shift, rest)
    e = int((low + tz).min())
    return np.ldexp(values, -e), e


def _limbs(ints, bits):
    """Split integral float64 values into signed limbs of ``bits`` bits (exact)."""
    sign = np.sign(ints)
    mag = np.abs(ints)
    out = []
    while True:
        q = np.floor(mag / 2.0 ** bits)
        out.append(sign * (mag - q * 2.0 ** bits))
        mag = q
        if not np.any(mag):
            return out


def fast_matmul(fmt_a, a, fmt_b, bt, out_fmt, *, geometry, lanes, bias_fmt=None, bias=None,
                relu=False, max_products=16):
    """:func:`testbenches.golden.matmul` (with B given transposed), fast when it can be.

    Every operand value is an integer multiple of a power of two (its grid), so when no
    code is special the exact sums are integer matrix products. Each operand's integers
    are split into limbs small enough that every partial sum of limb products stays below
    2**53, so float64 BLAS products of the limbs are exact; the limb products are combined
    exactly with Python integers and rounded once into ``out_fmt`` (to float64 with round
    to odd, then the format's encoder — the golden model's own rounding). Far from the
    accumulator's saturation only; otherwise (NaN/inf codes, possible saturation, more
    than ``max_products`` limb products) the golden model itself runs.
    ``tests/test_driver_model.py`` checks the two agree.
    """
    fa, fb, fo = get_format(fmt_a), get_format(fmt_b), get_format(out_fmt)
    a, bt = np.asarray(a), np.asarray(bt)

    def slow():
        return golden.matmul(fmt_a, a, fmt_b, bt.T, out_fmt, lanes=lanes, geometry=geometry,
                             bias_fmt=bias_fmt, bias=bias, relu=relu)

    if np.any(fa.is_special(a)) or np.any(fb.is_special(bt)):
        return slow()
    if bias is not None and np.any(get_format(bias_fmt).is_special(np.asarray(bias))):
        return slow()
    va, vb = fa.decode(a), fb.decode(bt)
    k = a.shape[1]
    top = float(np.max(np.abs(va), initial=0)) * float(np.max(np.abs(vb), initial=0)) * k
    vbias = get_format(bias_fmt).decode(np.asarray(bias)) if bias is not None else None
    if vbias is not None:
        top += float(np.max(np.abs(vbias), initial=0))
    # Saturation is possible only near the accumulator's range: leave that to the golden.
    if top >= 2.0 ** (geometry.width - 2 + geometry.lsb_exponent):
        return slow()
    a_int, ea = _grid(va)
    b_int, eb = _grid(vb)
    limb_bits = max(1, (53 - max(1, int(k).bit_length())) // 2)
    a_limbs, b_limbs = _limbs(a_int, limb_bits), _limbs(b_int, limb_bits)
    if len(a_limbs) * len(b_limbs) > max_products:
        return slow()
    e = ea + eb
    if len(a_limbs) == 1 and len(b_limbs) == 1 and top * 2.0 ** -e < 2.0 ** 52:
        sums = a_int @ b_int.T                       # one exact product, below 2**53
        total = None
    else:
        total = np.zeros((a.shape[0], bt.shape[0]), dtype=object)
        for i, al in enumerate(a_limbs):
            for j, bl in enumerate(b_limbs):
                part = (al @ bl.T).astype(np.int64).astype(object)
                total = total + part * (1 << (limb_bits * (i + j)))
    if vbias is not None:
        if e > 0:
            return slow()
        b_grid = vbias * 2.0 ** -e
        if np.any(b_grid != np.round(b_grid)):
            return slow()                            # a bias finer than the product grid
        if total is None and np.max(np.abs(sums), initial=0) + np.max(np.abs(b_grid)) < 2.0 ** 52:
            sums = sums + b_grid[None, :]
        else:
            if total is None:
                total = sums.astype(np.int64).astype(object)
            total = total + np.array([int(x) for x in b_grid], dtype=object)[None, :]
    if total is None:
        x = np.ldexp(sums, e)
    else:
        to_float = np.frompyfunc(lambda v: fixed_to_float(int(v), e), 1, 1)
        x = to_float(total).astype(np.float64)
    codes = fo.encode(x)
    if relu:
        codes = golden.apply_relu(fo, codes)
    false = np.zeros(codes.shape, dtype=bool)
    return codes, {"nan": false, "pos_inf": false, "neg_inf": false, "saturated": false}


class _AxiError(Exception):
    def __init__(self, code):
        self.code = code


class ModelTransport(Transport):
    """The co-processor of ``config`` as a NumPy model, with ``mem_size`` bytes of memory
    at bus address ``mem_base`` (accesses outside it answer like an AXI error).

    ``read_latency`` is the memory's read latency in cycles (from a read command to its
    first data beat) that the cycle estimate assumes; it changes no result or exact
    counter."""

    name = "model"

    def __init__(self, config, *, mem_size: int = 64 << 20, mem_base: int = 0x1000_0000,
                 read_latency: int = 0):
        if isinstance(read_latency, bool) or not isinstance(read_latency, int) \
                or read_latency < 0:
            raise ValueError(f"read_latency must be a non-negative integer, not {read_latency!r}")
        self.config = config
        self.read_latency = read_latency
        self.regmap = build_regmap(config)
        e = config.engine
        self.formats = tuple(get_format(f).name for f in e.formats)
        self.output_formats = tuple(get_format(f).name for f in (e.output_formats or e.formats))
        self.geometry = engine_geometry(word_bits=e.word_bits, formats=self.formats,
                                        guard_bits=e.guard_bits)
        self.mem_base, self.mem_size = mem_base, mem_size
        self.mem = bytearray(mem_size)
        self.allocator = BumpAllocator(mem_base, mem_size)
        self.regs = {r.offset: r.reset for r in self.regmap.registers}
        self.counters = {c.name: 0 for c in self.regmap.counters}
        self.shadow = {}
        ids = self.regmap.format_ids
        self._in_ids = {ids[f]: f for f in self.formats}
        self._out_ids = {ids[f]: f for f in self.output_formats}

    # ---- registers ----------------------------------------------------------------------
    def _field(self, reg, field):
        f = self.regmap.field(reg, field)
        return (self.regs[self.regmap.offset(reg)] >> f.lsb) & ((1 << f.width) - 1)

    def _value(self, reg):
        return self.regs[self.regmap.offset(reg)]

    def read32(self, offset: int) -> int:
        reg = self.regmap.at(offset)
        if reg is None:
            raise TransportError(f"read of unmapped register offset {offset:#x}")
        if reg.kind == "counter_lo":
            value = self.counters[reg.counter]
            self.shadow[reg.counter] = value >> 32
            return value & 0xFFFFFFFF
        if reg.kind == "counter_hi":
            return self.shadow.get(reg.counter, 0)
        value = self.regs[reg.offset]
        for f in reg.fields:
            if f.access == "w1p":
                value &= ~f.mask
        return value

    def write32(self, offset: int, value: int) -> None:
        reg = self.regmap.at(offset)
        if reg is None or not reg.writable:
            raise TransportError(f"write to {'unmapped' if reg is None else 'read-only'} "
                                 f"register offset {offset:#x}")
        old = self.regs[reg.offset]
        new = old
        pulses = []
        for f in reg.fields:
            bits = (value >> f.lsb) & ((1 << f.width) - 1)
            if f.access == "rw":
                new = (new & ~f.mask) | (bits << f.lsb)
            elif f.access == "w1c" and bits:
                new &= ~f.mask
            elif f.access == "w1p" and bits:
                pulses.append(f.name)
        self.regs[reg.offset] = new
        if reg.name == "CTRL":
            if "CLEAR_COUNTERS" in pulses:
                self.counters = {k: 0 for k in self.counters}
            if "SOFT_RESET" in pulses:
                self._set_status(error=0)
            elif "START" in pulses:
                self._start()

    def _set_status(self, *, error=None, done=None):
        off = self.regmap.offset("STATUS")
        v = self.regs[off]
        if error is not None:
            f = self.regmap.field("STATUS", "ERROR")
            v = (v & ~f.mask) | (error << f.lsb)
        if done:
            v |= self.regmap.field("STATUS", "DONE").mask
        self.regs[off] = v

    # ---- memory -------------------------------------------------------------------------
    def alloc(self, nbytes: int, align: int = 64) -> int:
        return self.allocator.alloc(nbytes, align)

    def free_all(self) -> None:
        self.allocator.reset()

    def _span(self, addr, n):
        lo = addr - self.mem_base
        if lo < 0 or lo + n > self.mem_size:
            return None
        return lo

    def write_mem(self, addr: int, data: bytes) -> None:
        lo = self._span(addr, len(data))
        if lo is None:
            raise TransportError(f"write of {len(data)} bytes at {addr:#x} is outside the "
                                 f"model's memory [{self.mem_base:#x}, "
                                 f"{self.mem_base + self.mem_size:#x})")
        self.mem[lo:lo + len(data)] = data

    def read_mem(self, addr: int, nbytes: int) -> bytes:
        lo = self._span(addr, nbytes)
        if lo is None:
            raise TransportError(f"read of {nbytes} bytes at {addr:#x} is outside the "
                                 f"model's memory")
        return bytes(self.mem[lo:lo + nbytes])

    # ---- a job --------------------------------------------------------------------------
    def _start(self):
        error = self._check()
        if error:
            self._set_status(error=error, done=True)
            return
        try:
            self._run()
            self._set_status(error=0, done=True)
        except _AxiError as exc:
            self._set_status(error=exc.code, done=True)

    def _job(self):
        v = self._value
        addr = {n: v(f"{n}_ADDR_LO") | (v(f"{n}_ADDR_HI") << 32) for n in ("A", "B", "C", "BIAS")}
        return dict(m=v("M"), n=v("N"), k=v("K"), addr=addr,
                    stride={n: v(f"{n}_STRIDE") for n in ("A", "B", "C")},
                    fmt={n: self._field("FORMAT", n) for n in ("A", "B", "OUT", "BIAS")},
                    bias=bool(self._field("FLAGS", "BIAS")),
                    relu=bool(self._field("FLAGS", "RELU")))

    def _check(self) -> int:
        """The hardware's checks, in its order of precedence."""
        j = self._job()
        cfg = self.config
        db = cfg.axi.data_bits // 8
        if any(x == 0 or x > cfg.limits.max_dim for x in (j["m"], j["n"], j["k"])):
            return ERR["BAD_DIMS"]
        fa, fb = self._in_ids.get(j["fmt"]["A"]), self._in_ids.get(j["fmt"]["B"])
        fo, fbias = self._out_ids.get(j["fmt"]["OUT"]), self._in_ids.get(j["fmt"]["BIAS"])
        if fa is None or fb is None or fo is None or get_format(fa).bits != get_format(fb).bits:
            return ERR["BAD_FORMAT"]
        if j["bias"] and (fbias is None or get_format(fbias).bits != get_format(fa).bits):
            return ERR["BAD_FORMAT"]
        multi_m, multi_n = j["m"] > 1, j["n"] > 1
        lo = {n: j["addr"][n] & 0xFFFFFFFF for n in j["addr"]}
        aligned = [lo["A"], lo["B"], lo["C"]] + ([lo["BIAS"]] if j["bias"] else [])
        if multi_m:
            aligned += [j["stride"]["A"], j["stride"]["C"]]
        if multi_n:
            aligned += [j["stride"]["B"]]
        if any(x % db for x in aligned):
            return ERR["MISALIGNED"]
        bits, obits = get_format(fa).bits, get_format(fo).bits
        ab_row, c_row = row_bytes(j["k"], bits), row_bytes(j["n"], obits)
        if (multi_m and j["stride"]["A"] < ab_row) or (multi_n and j["stride"]["B"] < ab_row) \
                or (multi_m and j["stride"]["C"] < c_row):
            return ERR["BAD_STRIDE"]
        limit = 1 << cfg.axi.addr_bits
        spans = [("A", j["m"], j["stride"]["A"], ab_row), ("B", j["n"], j["stride"]["B"], ab_row),
                 ("C", j["m"], j["stride"]["C"], c_row)]
        if j["bias"]:
            spans.append(("BIAS", 1, 0, row_bytes(j["n"], bits)))
        for name, rows, stride, rb in spans:
            if j["addr"][name] + (rows - 1) * stride + rb > limit:
                return ERR["BAD_ADDRESS"]
        return 0

    def _read_rows(self, addr, rows, stride, cols, bits):
        rb = row_bytes(cols, bits)
        span = (rows - 1) * stride + rb
        lo = self._span(addr, span)
        if lo is None:
            raise _AxiError(ERR["AXI_READ"])
        return unpack_matrix(bytes(self.mem[lo:lo + span]), rows, cols, bits, stride)

    def _run(self):
        j = self._job()
        fa, fb = self._in_ids[j["fmt"]["A"]], self._in_ids[j["fmt"]["B"]]
        fo = self._out_ids[j["fmt"]["OUT"]]
        fbias = self._in_ids.get(j["fmt"]["BIAS"]) if j["bias"] else None
        bits, obits = get_format(fa).bits, get_format(fo).bits
        m, n, k = j["m"], j["n"], j["k"]
        a = self._read_rows(j["addr"]["A"], m, j["stride"]["A"], k, bits)
        bt = self._read_rows(j["addr"]["B"], n, j["stride"]["B"], k, bits)
        bias = self._read_rows(j["addr"]["BIAS"], 1, 0, n, bits)[0] if fbias else None
        mode = self.geometry.mode(bits)
        codes, flags = fast_matmul(fa, a, fb, bt, fo, geometry=mode.dot, lanes=mode.lanes,
                                   bias_fmt=fbias, bias=bias, relu=j["relu"])
        stats = self._schedule(m, n, k, mode.lanes, bits, bool(fbias), obits,
                               addr=j["addr"], stride=j["stride"])
        c_addr, c_stride = j["addr"]["C"], j["stride"]["C"]
        c_rb = row_bytes(n, obits)
        if self._span(c_addr, (m - 1) * c_stride + c_rb) is None:
            self._count(stats, flags, m * n * k, partial=True)
            raise _AxiError(ERR["AXI_WRITE"])
        packed = pack_matrix(codes, obits, c_stride)
        for r in range(m):
            lo = c_addr - self.mem_base + r * c_stride
            self.mem[lo:lo + c_rb] = packed[r * c_stride:r * c_stride + c_rb]
        self._count(stats, flags, m * n * k)

    def _count(self, stats, flags, macs, partial=False):
        c = self.counters
        c["MACS"] += macs
        c["SATURATIONS"] += int(np.sum(flags["saturated"]))
        c["READ_BYTES"] += stats["read_bytes"]
        c["WRITE_BYTES"] += 0 if partial else stats["write_bytes"]
        c["COMPUTE_CYCLES"] += stats["compute_cycles"]
        busy = stats["cycles"]
        c["BUSY_CYCLES"] += busy
        c["CYCLES"] += busy

    def _schedule(self, m, n, k, lanes, bits, bias, obits, *, addr, stride):
        """DMA traffic, operations and estimated busy cycles of the hardware's tile schedule.

        Walks MatmulCore's steps (``for m0: for n0: for kt``) with its reuse rule and times
        every step through the units of the RTL in turn, each unit starting an item in the
        first cycle in which the unit is free and the item's inputs are there. No constant
        is fitted: the fixed delays are the RTL's registers (``_T_*`` above) and the
        engine's latency and FIFO depth come from :mod:`generators.geometry`, as in
        MacEngine.

        * Loader: STEP; per tile it loads, a CLAIM cycle (waiting for the feeder to release
          the slot ``buffers.slots`` loads back) and one read command per row and cycle
          (B: the bias command and a B_DESC cycle first); NEXT. A command waits while the
          read DMA holds ``_T_SPLITTER_COMMANDS`` commands without their AR.
        * Read DMA and memory: bursts of at most ``axi.max_burst_beats`` beats, none across
          a 4 KiB page; an AR ``_T_CMD_TO_AR`` cycles after the command, one per cycle, at
          most ``axi.max_outstanding_reads`` bursts in flight; data ``_T_AR_TO_DATA +
          read_latency`` cycles after the AR, one beat per cycle. The memory (AxiRam)
          answers one burst at a time and queues ``_MEM_AR_QUEUE`` more ARs, which limits
          the bursts in flight when ``read_latency`` is long.
        * Filler: one beat per cycle, a WAIT cycle before each tile and a BIAS cycle after
          the bias (the data waits meanwhile).
        * Feeder: per step a WAIT cycle (until its slots are filled), then one operation
          per cycle into the PEs. A PE admits while it owes at most ``output FIFO depth -
          max lanes`` results (a dot-product tile owes one, until the collector takes it),
          so the feeder runs ahead of the collector by up to that many tiles; the last
          operation of a tile also needs room in the metadata FIFO (as deep).
        * PEs: a tile's results leave the engine latency after its last operation.
        * Collector: R·C takes per tile, one per cycle once the results are there, the
          first in the cycle its metadata is looked at; a tile that starts a new row strip
          first takes that cycle and R INIT cycles. The register slices write a code to
          the write FIFO two cycles after its take.
        * Writes: a code that fills its row's beat (or ends the row) is written to the write
          FIFO two cycles after its take; each row's beats are gathered into bursts of
          ``axi.write_burst_beats`` (the last of a row the rest), a burst going out when
          its last beat is in; the W channel takes one beat per cycle, the bursts in the
          order they were completed.
        * Start and end: the controller's checks before the core starts; after the last
          W beat, the write response before DONE.

        The write combiner is taken never to hold the collector (each row has a second
        line to fill while one goes out). Costs O(steps · (R + C) + bursts).
        """
        cfg = self.config
        R, C = cfg.array.rows, cfg.array.cols
        W, D, KT = cfg.engine.word_bits, cfg.axi.data_bits, cfg.buffers.k_tile
        db = D // 8
        wpb = D // W
        kw = -(-k // lanes)
        k_tiles = -(-kw // KT)
        last_words = kw - (k_tiles - 1) * KT
        seg_beats = [KT // wpb] * (k_tiles - 1) + [-(-last_words // wpb)]
        seg_words = [KT] * (k_tiles - 1) + [last_words]
        multi_kt = k_tiles != 1
        n_tiles_gt1 = n > C
        slots = cfg.buffers.slots
        in_flight = cfg.axi.max_outstanding_reads
        # The engine's timing, from the functions MacEngine itself uses.
        stages, max_lanes = cfg.engine.pipeline_stages, self.geometry.chunks
        pe_latency = engine_latency(stages)
        fifo_depth = engine_output_fifo_depth(stages, max_lanes)
        # A PE admits while the results it owes (in its pipeline and FIFO) are at most this
        # many (room for a whole SIMD read-out); a dot-product tile owes one.
        pe_limit = fifo_depth - max_lanes
        meta_depth = fifo_depth

        max_burst, page_beats = cfg.axi.max_burst_beats, BURST_LIMIT_BYTES // db
        ar, r_last = [], []                # per read burst: AR cycle, its last beat's R cycle
        mem_took = []                      # per read burst: the memory takes its AR
        mem_done = 0                       # the memory has queued the last burst's beats
        cmd_ar = []                        # per read command: the AR cycle of its last burst
        fill_next = 0                      # the filler's next free cycle
        fill_gap = 0                       # cycles it spends before the next tile's beats

        def read(want, address, beats, new_tile, gap_after=0):
            """A read command wanted in cycle ``want``: returns the cycle the DMA takes it
            and the cycle the filler writes its last beat."""
            nonlocal fill_next, fill_gap, mem_done
            i = len(cmd_ar)
            cmd = max(want, cmd_ar[i - _T_SPLITTER_COMMANDS] if i >= _T_SPLITTER_COMMANDS else 0)
            earliest = cmd + _T_CMD_TO_AR
            # The DMA's bursts: at most max_burst beats, none across a 4 KiB page.
            page_left = page_beats - (address % BURST_LIMIT_BYTES) // db
            while beats:
                burst = min(beats, page_left, max_burst)
                beats -= burst
                page_left = page_beats
                b = len(ar)
                t_ar = max(earliest, ar[-1] + 1 if ar else 0,
                           r_last[b - in_flight] + 1 if b >= in_flight else 0,
                           mem_took[b - _MEM_AR_QUEUE] + 1 if b >= _MEM_AR_QUEUE else 0)
                earliest = t_ar + 1
                # The memory answers one burst at a time: it takes the AR from its queue
                # once it has handed the previous burst's beats to the R channel.
                mem_took.append(max(t_ar, mem_done))
                arrive = (max(t_ar + _T_AR_TO_DATA + self.read_latency, mem_done + 1)
                          + _T_DATA_TO_FILL)
                first = max(arrive, fill_next + (fill_gap if new_tile else 0))
                last = first + burst - 1
                fill_next, new_tile = last + 1, False
                ar.append(t_ar)
                # Beats the filler cannot take yet wait in the skid buffer.
                r_last.append(last - _T_DATA_TO_FILL)
                # The R channel's queue holds _MEM_R_QUEUE beats ahead of the bus.
                mem_done = max(first - _T_DATA_TO_FILL - 1, r_last[-1] - _MEM_R_QUEUE)
            # WAIT before the next tile (and BIAS after the bias).
            fill_gap = 1 + gap_after
            cmd_ar.append(t_ar)
            return cmd, last

        def claim(t, filled, released):
            """A/B_CLAIM: wait until the slot of the tile ``slots`` loads back is released."""
            q = len(filled)
            return max(t + 1, released[q - slots] + 1 if q >= slots else 0)

        def load_rows(t, row0, row_stride, n_rows, kt, filled, released):
            """A tile's rows of segment ``kt``, one read command each; records when its
            last beat is written (and that its slot is not yet released)."""
            for r in range(n_rows):
                t, done = read(t + 1, row0 + r * row_stride + kt * seg_bytes, seg_beats[kt],
                               new_tile=r == 0)
            filled.append(done)
            released.append(None)
            return t

        a_filled, a_released = [], []      # per A tile loaded: last beat written, released
        b_filled, b_released = [], []
        loader = _T_START                  # the loader's STEP cycle of the next step
        feeder = _T_START + 1              # the feeder's earliest ISSUE cycle
        collector = _T_START               # the collector's first look at the next tile
        taken = []                         # per tile: its last take, which reads its metadata
        tile_take0 = []                    # per row strip, per N tile: its first take
        read_beats = ops = 0
        first = True
        seg_bytes = KT * W // 8
        for m0 in range(0, m, R):
            rows = min(R, m - m0)
            a_row = addr["A"] + m0 * stride["A"]
            tile_take0.append([])
            for n0 in range(0, n, C):
                cols = min(C, n - n0)
                b_row = addr["B"] + n0 * stride["B"]
                last_n = n0 + C >= n
                for kt in range(k_tiles):
                    # ---- loader ---------------------------------------------------------
                    t = loader
                    if first or multi_kt or n0 == 0:
                        t = claim(t, a_filled, a_released)
                        t = load_rows(t, a_row, stride["A"], rows, kt, a_filled, a_released)
                        read_beats += rows * seg_beats[kt]
                    if first or multi_kt or n_tiles_gt1:
                        t = claim(t, b_filled, b_released)
                        if bias and kt == 0:
                            b0 = n0 * bits // D
                            b1 = ((n0 + cols) * bits - 1) // D
                            t, _ = read(t + 1, addr["BIAS"] + b0 * db, b1 - b0 + 1,
                                        new_tile=True, gap_after=1)
                            read_beats += b1 - b0 + 1
                        t += 1                                  # B_DESC
                        t = load_rows(t, b_row, stride["B"], cols, kt, b_filled, b_released)
                        read_beats += cols * seg_beats[kt]
                    loader = t + 2                              # NEXT, then STEP
                    # ---- feeder -----------------------------------------------------------
                    step_ops = seg_words[kt] + (1 if bias and kt == 0 else 0)
                    go = max(feeder, max(a_filled[-1], b_filled[-1]) + _T_FILL_TO_ISSUE)
                    # The PEs admit the step's first operation once they owe at most
                    # pe_limit results: tile j - pe_limit - 1's has left the PE. It leaves
                    # into the PE's output slice, which holds _OUT_SLICE results, when
                    # the collector takes the one _OUT_SLICE tiles before it; the slice's
                    # ready and the PE's admission are registers (a cycle each). This
                    # binds only when the collector is the bottleneck, which then also
                    # sets the job's end: the estimate is the same with or without the
                    # slice's entries counted (checked on tiny, 200x2x1 and 300x2x2, with
                    # the RTL), but the feeder's and loader's cycles follow the RTL.
                    j = len(taken)                 # tiles whose last operation went before
                    if j > pe_limit + _OUT_SLICE:
                        go = max(go, taken[j - pe_limit - 1 - _OUT_SLICE] + 2
                                 - _T_ISSUE_TO_PE)
                    go_last = go + step_ops - 1
                    last_kt = kt == k_tiles - 1
                    if last_kt and j >= meta_depth:
                        go_last = max(go_last, taken[j - meta_depth] + 1)
                    if multi_kt or last_n:
                        a_released[-1] = go_last
                    if multi_kt or n_tiles_gt1 or (last_n and m0 + R >= m):
                        b_released[-1] = go_last
                    feeder = go_last + 2
                    ops += step_ops
                    first = False
                    if not last_kt:
                        continue
                    # ---- collector --------------------------------------------------------
                    meta = max(collector, go_last + _T_META_TO_COLLECTOR)
                    start = meta + (1 + R if n0 == 0 else 0)   # a new strip: INIT first
                    take0 = max(start, go_last + _T_ISSUE_TO_PE + pe_latency
                                + _T_PE_TO_COLLECTOR)
                    taken.append(take0 + R * C - 1)
                    tile_take0[-1].append(take0)
                    collector = taken[-1] + 1
        # ---- writes: each row's beats in bursts, the bursts in the order they complete ----
        row_beats = -(-n * obits // D)
        burst_beats = cfg.axi.write_burst_beats
        codes_per_beat = D // obits
        bursts = []                        # (cycle its last beat is written, beats)
        for s, starts in enumerate(tile_take0):
            for r in range(min(R, m - s * R)):
                for j0 in range(0, row_beats, burst_beats):
                    j = min(j0 + burst_beats, row_beats) - 1      # the burst's last beat
                    q = min((j + 1) * codes_per_beat, n) - 1      # the code that ends it
                    bursts.append((starts[q // C] + r * C + q % C + _T_TAKE_TO_WRITE, j - j0 + 1))
        w_next = 0
        for written, beats in sorted(bursts):
            w_next = max(written + _T_WRITE_TO_W, w_next) + beats
        write_beats = m * row_beats
        return {"read_bytes": read_beats * db, "write_bytes": write_beats * db,
                "compute_cycles": ops, "cycles": w_next - 1 + _T_W_TO_DONE}
