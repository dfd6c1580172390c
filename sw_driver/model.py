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


def fast_matmul(fmt_a, a, fmt_b, bt, out_fmt, *, geometry, lanes, bias_fmt=None, bias=None,
                relu=False):
    """:func:`testbenches.golden.matmul` (with B given transposed), fast when it can be.

    Every operand value is an integer multiple of its format's smallest step, so when no
    code is special and every partial sum is an integer below 2**53 (and far from the
    accumulator's saturation), one float64 BLAS product of those integers is exact and
    gives the golden model's sums; rounding into ``out_fmt`` is then the same single
    rounding. Otherwise (NaN/inf codes, wide formats such as bf16 or posit16), the golden
    model itself runs. ``tests/test_driver_model.py`` checks the two agree.
    """
    fa, fb, fo = get_format(fmt_a), get_format(fmt_b), get_format(out_fmt)
    a, bt = np.asarray(a), np.asarray(bt)
    special = bool(np.any(fa.is_special(a)) or np.any(fb.is_special(bt)))
    if bias is not None:
        special |= bool(np.any(get_format(bias_fmt).is_special(np.asarray(bias))))
    ea, eb = fa.min_exponent, fb.min_exponent
    a_int = fa.decode(a) * 2.0 ** -ea
    b_int = fb.decode(bt) * 2.0 ** -eb
    k = a.shape[1]
    bound = float(np.max(np.abs(a_int), initial=0)) * float(np.max(np.abs(b_int), initial=0)) * k
    bias_int = None
    if bias is not None and not special:
        bias_int = get_format(bias_fmt).decode(np.asarray(bias)) * 2.0 ** -(ea + eb)
        if np.any(bias_int != np.round(bias_int)):
            special = True               # a bias finer than the product grid: golden path
        else:
            bound += float(np.max(np.abs(bias_int), initial=0))
    acc_limit = 2.0 ** (geometry.width - 1 + geometry.lsb_exponent - (ea + eb))
    if special or bound >= 2.0 ** 53 or bound >= acc_limit:
        return golden.matmul(fmt_a, a, fmt_b, bt.T, out_fmt, lanes=lanes, geometry=geometry,
                             bias_fmt=bias_fmt, bias=bias, relu=relu)
    sums = a_int @ b_int.T                      # exact: integers below 2**53
    if bias_int is not None:
        sums = sums + bias_int[None, :]
    codes = fo.encode(np.ldexp(sums, ea + eb))
    if relu:
        codes = golden.apply_relu(fo, codes)
    false = np.zeros(sums.shape, dtype=bool)
    return codes, {"nan": false, "pos_inf": false, "neg_inf": false, "saturated": false}


class _AxiError(Exception):
    def __init__(self, code):
        self.code = code


class ModelTransport(Transport):
    """The co-processor of ``config`` as a NumPy model, with ``mem_size`` bytes of memory
    at bus address ``mem_base`` (accesses outside it answer like an AXI error)."""

    name = "model"

    def __init__(self, config, *, mem_size: int = 64 << 20, mem_base: int = 0x1000_0000):
        self.config = config
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
        one cycle per row command and may run one step ahead (two buffer slots); a step
        computes when its tiles are in, one operation per cycle; then the array drains.
        The constants were fitted to RTL runs (within a few percent; see
        tests/rtl/test_driver_sim.py for the ±10% check).
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
        slots = 2 if cfg.buffers.double_buffered else 1
        read_beats = ops = 0
        first = True
        loaded, computed = [], []          # per step: load done, compute done (cycles)
        for m0 in range(0, m, R):
            rows = min(R, m - m0)
            for n0 in range(0, n, C):
                cols = min(C, n - n0)
                for kt in range(k_tiles):
                    beats = cmds = 0
                    if first or k_tiles != 1 or n0 == 0:
                        beats += rows * seg_beats[kt]
                        cmds += rows
                    if first or k_tiles != 1 or n_tiles_gt1:
                        if bias and kt == 0:
                            b0 = n0 * bits // D
                            b1 = ((n0 + cols) * bits - 1) // D
                            beats += b1 - b0 + 1
                            cmds += 1
                        beats += cols * seg_beats[kt]
                        cmds += cols
                    step_ops = seg_words[kt] + (1 if bias and kt == 0 else 0)
                    s = len(loaded)
                    free = computed[s - slots] if s >= slots else 0
                    loaded.append(max(loaded[-1] if s else 0, free) + beats + cmds)
                    start = max(computed[-1] if s else 0, loaded[-1] + 4)
                    computed.append(start + step_ops)
                    read_beats += beats
                    ops += step_ops
                    first = False
        write_beats = m * -(-n * obits // D)
        return {"read_bytes": read_beats * db, "write_bytes": write_beats * db,
                "compute_cycles": ops, "cycles": computed[-1] + 5 + R * C}
