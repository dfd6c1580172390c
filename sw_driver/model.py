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

from generators.formats import get_format
from generators.geometry import engine_geometry
from generators.regmap import ERROR_CODES, build_regmap
from sw_driver.packing import pack_matrix, row_bytes, unpack_matrix
from sw_driver.transport import BumpAllocator, Transport, TransportError
from testbenches import golden

__all__ = ["ModelTransport"]

ERR = {name: code for name, (code, _) in ERROR_CODES.items()}


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
        to_float = np.frompyfunc(lambda v: golden._round_to_odd_float(int(v), e), 1, 1)
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
        stats = self._schedule(m, n, k, mode.lanes, bits, bool(fbias), obits)
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

    def _schedule(self, m, n, k, lanes, bits, bias, obits):
        """DMA traffic, operations and estimated cycles of the hardware's tile schedule.

        Walks MatmulCore's steps (``for m0: for n0: for kt``) with its reuse rule. The
        cycle estimate is a two-stage pipeline: the loader moves one beat per cycle plus
        one cycle per row command and runs up to ``buffers.slots - 1`` steps ahead (a
        step's reads are issued when the step ``slots`` before it has released its slot,
        and its data arrives ``read_latency`` cycles later at the earliest, behind the
        data of the steps before it; one read burst per tile row (and one for the bias),
        at most ``axi.max_outstanding_reads`` of them in flight, so a burst is issued only
        when the one that many bursts before it has completed); a step computes when its
        tiles are in, one operation per cycle; then the array drains. The constants were fitted to RTL
        runs (within a few percent; see tests/rtl/test_driver_sim.py for the ±10% check).
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
        n_tiles_gt1 = n > C
        slots = cfg.buffers.slots
        latency = self.read_latency
        in_flight = cfg.axi.max_outstanding_reads
        burst_end = []                     # completion cycle of every read burst so far
        data_time = 0                      # the read data channel is busy until then
        read_beats = ops = 0
        first = True
        loaded, computed = [], []          # per step: load done, compute done (cycles)
        drained = 0                        # the collector has taken every result so far
        for m0 in range(0, m, R):
            rows = min(R, m - m0)
            for n0 in range(0, n, C):
                cols = min(C, n - n0)
                for kt in range(k_tiles):
                    bursts = []
                    if first or k_tiles != 1 or n0 == 0:
                        bursts += [seg_beats[kt]] * rows
                    if first or k_tiles != 1 or n_tiles_gt1:
                        if bias and kt == 0:
                            b0 = n0 * bits // D
                            b1 = ((n0 + cols) * bits - 1) // D
                            bursts.append(b1 - b0 + 1)
                        bursts += [seg_beats[kt]] * cols
                    beats = sum(bursts)
                    step_ops = seg_words[kt] + (1 if bias and kt == 0 else 0)
                    s = len(loaded)
                    free = computed[s - slots] if s >= slots else 0
                    issue = free
                    for b in bursts:            # one cycle per command besides its beats
                        if len(burst_end) >= in_flight:
                            # + 3: counter update, AR register, the memory's own response
                            issue = max(issue, burst_end[-in_flight] + 3)
                        data_time = max(data_time, issue + latency) + b + 1
                        burst_end.append(data_time)
                        issue += 1
                    loaded.append(data_time)
                    start = max(computed[-1] if s else 0, loaded[-1] + 4)
                    end = start + step_ops
                    if kt == k_tiles - 1:
                        # The read-out: a PE holds one finished result while it computes
                        # the next, so this tile's results wait for the previous ones to
                        # be collected (R·C cycles, plus R to set up a new row strip).
                        end = max(end, drained)
                        drained = end + R * C + (R if n0 == 0 else 0)
                    computed.append(end)
                    read_beats += beats
                    ops += step_ops
                    first = False
        write_beats = m * -(-n * obits // D)
        return {"read_bytes": read_beats * db, "write_bytes": write_beats * db,
                "compute_cycles": ops, "cycles": max(computed[-1] + R * C, drained) + 5}
