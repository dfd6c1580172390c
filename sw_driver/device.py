"""The host-side driver: one :class:`Device` over any :class:`~sw_driver.transport.Transport`.

::

    dev = Device.open(ModelTransport(load_config("tiny")))   # or a simulation, or a board
    c = dev.matmul(a, b, fmt_a="posit8_0", fmt_b="posit8_0", out_fmt="posit16_1")

:meth:`Device.open` reads ID, VERSION, CONFIG_HASH and the capability registers and refuses a
device that does not match the register map it was given (the ``regmap.json`` generated
with the hardware). :meth:`Device.matmul` takes codes (or floats, encoded with the
formats' own rounding), packs them in the co-processor's layout, runs the job and returns
the result codes; a refused or failed job raises :class:`DeviceError` naming the error.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from generators.formats import get_format
from generators.regmap import ID_VALUE, RegisterMap
from sw_driver.packing import pack_matrix, row_bytes, unpack_matrix
from sw_driver.transport import Transport

__all__ = ["Device", "DeviceError", "JobStats", "MatmulResult", "open_transport"]

BACKENDS = ("model", "verilator", "icarus", "mmio")


def open_transport(backend: str, config=None, **kwargs) -> Transport:
    """A transport by name: ``model`` and ``verilator``/``icarus`` need ``config`` (a
    shipped config name or a Config); ``mmio`` takes :class:`MmioTransport`'s arguments."""
    from generators.config import Config, load_config
    if backend == "model":
        from sw_driver.model import ModelTransport
        cfg = config if isinstance(config, Config) else load_config(config or "default")
        return ModelTransport(cfg, **kwargs)
    if backend in ("verilator", "icarus"):
        from sw_driver.sim import SimTransport
        name = config.name if isinstance(config, Config) else (config or "default")
        return SimTransport(name, simulator=backend, **kwargs)
    if backend == "mmio":
        from sw_driver.mmio import MmioTransport
        if "uio" in kwargs:
            return MmioTransport.from_uio(kwargs.pop("uio"), **kwargs)
        return MmioTransport(**kwargs)
    raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")


class DeviceError(RuntimeError):
    """The co-processor refused or failed a job, or is not the expected device."""

    def __init__(self, message, *, code=None, name=None):
        super().__init__(message)
        self.code, self.name = code, name


@dataclass
class JobStats:
    """Counter deltas of one job (see the register document for their meaning)."""
    cycles: int
    busy_cycles: int
    compute_cycles: int
    read_stall_cycles: int
    write_stall_cycles: int
    macs: int
    saturations: int
    read_bytes: int
    write_bytes: int
    seconds: float

    def utilization(self, peak_macs_per_cycle: int) -> float:
        return self.macs / (self.busy_cycles * peak_macs_per_cycle) if self.busy_cycles else 0.0

    def __add__(self, other: "JobStats") -> "JobStats":
        return JobStats(**{f: getattr(self, f) + getattr(other, f)
                           for f in self.__dataclass_fields__})

    @classmethod
    def zero(cls) -> "JobStats":
        return cls(*([0] * 9), seconds=0.0)


@dataclass
class MatmulResult:
    """Result of :meth:`Device.matmul`: output codes, their values, the job's counters
    (summed over the jobs a large matmul was split into) and the number of jobs."""
    codes: np.ndarray
    values: np.ndarray
    stats: JobStats
    jobs: int = 1


_COUNTERS = ("CYCLES", "BUSY_CYCLES", "COMPUTE_CYCLES", "READ_STALL_CYCLES",
             "WRITE_STALL_CYCLES", "MACS", "SATURATIONS", "READ_BYTES", "WRITE_BYTES")


class Device:
    """A co-processor, reached through ``transport``, described by ``regmap``.

    Parameters
    ----------
    transport : Transport
    regmap : RegisterMap, dict or path, optional
        The register map of the hardware (``regmap.json``). Default: the transport's own
        (model and simulation transports know their design).
    timeout : float
        Seconds to wait for a job (simulations are slow: the default is generous).
    """

    def __init__(self, transport: Transport, regmap=None, *, timeout: float = 600.0):
        self.transport = transport
        if regmap is None:
            regmap = getattr(transport, "regmap", None)
            if regmap is None:
                raise ValueError("this transport has no register map of its own; pass "
                                 "regmap= (the regmap.json generated with the hardware)")
        elif isinstance(regmap, (str, Path)):
            regmap = RegisterMap.from_json(json.loads(Path(regmap).read_text()))
        elif isinstance(regmap, dict):
            regmap = RegisterMap.from_json(regmap)
        self.regmap = regmap
        self.timeout = timeout
        self.last_stats: JobStats | None = None
        caps = lambda reg: {f.name: f.reset for f in regmap.register(reg).fields}  # noqa: E731
        self.caps = {**caps("CAPS_ARRAY"), **caps("CAPS_BUFFER")}
        ids = regmap.format_ids
        names = {v: k for k, v in ids.items()}
        self.formats = tuple(names[i] for i in sorted(names) if
                             regmap.register("CAPS_FORMATS").fields[0].reset >> i & 1)
        out_mask = regmap.field("CAPS_FORMATS", "OUT").reset
        self.output_formats = tuple(names[i] for i in sorted(names) if out_mask >> i & 1)
        self.max_dim = regmap.register("MAX_DIM").fields[0].reset

    # ---- opening --------------------------------------------------------------------------
    @classmethod
    def open(cls, backend, config=None, regmap=None, *, timeout: float = 600.0,
             **transport_args) -> "Device":
        """Open a co-processor and check that it is the design the driver expects.

        ``backend`` is a :class:`Transport` or a name (``"model"``, ``"verilator"``,
        ``"icarus"``, ``"mmio"``); ``config`` names the design for the model and simulation
        backends. ``regmap`` (a RegisterMap, ``regmap.json`` path or dict) is the map of
        the expected hardware, by default the transport's own. ID, VERSION, CONFIG_HASH and
        the capability registers must match it.
        """
        transport = backend if isinstance(backend, Transport) else \
            open_transport(backend, config, **transport_args)
        try:
            dev = cls(transport, regmap, timeout=timeout)
            dev.check_identity()
        except BaseException:
            try:
                transport.close()
            except Exception:       # the refusal is the error to report, not the shutdown
                pass
            raise
        return dev

    def close(self) -> None:
        self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def read(self, name: str) -> int:
        return self.transport.read32(self.regmap.offset(name))

    def write(self, name: str, value: int = 0, **fields) -> None:
        if fields:
            value = self.regmap.pack(name, **fields)
        self.transport.write32(self.regmap.offset(name), value)

    def check_identity(self) -> None:
        rm = self.regmap
        if (got := self.read("ID")) != ID_VALUE:
            raise DeviceError(f"no npegen co-processor here: ID reads {got:#010x}, "
                              f"expected {ID_VALUE:#010x}")
        for reg in ("VERSION", "CONFIG_HASH", "CAPS_FORMATS", "CAPS_ARRAY", "CAPS_BUFFER",
                    "MAX_DIM"):
            want = rm.register(reg).reset
            got = self.read(reg)
            if got != want:
                held = rm.unpack("CAPS_ARRAY", self.read("CAPS_ARRAY"))
                raise DeviceError(
                    f"{reg} reads {got:#010x} but the driver expected {want:#010x}: the device "
                    f"holds a design with config hash {self.read('CONFIG_HASH'):#010x} "
                    f"({held['ROWS']}x{held['COLS']} PEs, {held['WORD_BITS']}-bit words), the "
                    f"driver expected '{rm.config_name}' (hash {rm.config_hash & 0xFFFFFFFF:#010x}); "
                    f"open it with the regmap.json generated with its hardware")

    # ---- running a job -----------------------------------------------------------------
    def counters(self) -> dict:
        out = {}
        for name in _COUNTERS:
            lo = self.read(name + "_LO")
            out[name] = (self.read(name + "_HI") << 32) | lo
        return out

    def _check_formats(self, fmt_a, fmt_b, out_fmt, fmt_bias):
        for role, f, allowed in (("fmt_a", fmt_a, self.formats), ("fmt_b", fmt_b, self.formats),
                                 ("out_fmt", out_fmt, self.output_formats),
                                 ("fmt_bias", fmt_bias, self.formats)):
            if f is not None and f not in allowed:
                raise ValueError(f"{role} {f!r} is not a format of this design; it has "
                                 f"{', '.join(allowed)}")
        if get_format(fmt_a).bits != get_format(fmt_b).bits:
            raise ValueError(f"fmt_a {fmt_a} and fmt_b {fmt_b} must have the same width "
                             f"(one lane mode), not {get_format(fmt_a).bits} and "
                             f"{get_format(fmt_b).bits} bits")
        if fmt_bias is not None and get_format(fmt_bias).bits != get_format(fmt_a).bits:
            raise ValueError(f"fmt_bias {fmt_bias} must have the width of fmt_a {fmt_a}")

    @staticmethod
    def _codes(x, fmt, name):
        fmt = get_format(fmt)
        x = np.asarray(x)
        if x.dtype.kind == "f":
            return fmt.encode(x).astype(np.int64)
        if x.dtype.kind not in "iu":
            raise TypeError(f"{name} must be codes (integers) or floats, not {x.dtype}")
        if x.size and (x.min() < 0 or x.max() >= 1 << fmt.bits):
            raise ValueError(f"{name} holds values outside the {fmt.bits}-bit codes of "
                             f"{fmt.name}")
        return x.astype(np.int64)

    def matmul(self, a, b, *, fmt_a: str, fmt_b: str | None = None, out_fmt: str,
               bias=None, fmt_bias: str | None = None, relu: bool = False,
               b_transposed: bool = False) -> np.ndarray:
        """``C = A·B (+ bias) (ReLU)`` rounded once into ``out_fmt``.

        ``a`` is M×K, ``b`` K×N (or N×K with ``b_transposed``), ``bias`` N values; each
        either codes of its format or floats (encoded with the format's rounding).
        Shapes up to MAX_DIM in each dimension run as one job; larger M or N are split into
        several jobs (K cannot be: that would round twice). Returns a
        :class:`MatmulResult` (codes, decoded values, counters).
        """
        fmt_b = fmt_b or fmt_a
        if bias is not None and fmt_bias is None:
            fmt_bias = fmt_b
        self._check_formats(fmt_a, fmt_b, out_fmt, fmt_bias if bias is not None else None)
        a = self._codes(a, fmt_a, "a")
        b = self._codes(b, fmt_b, "b")
        if a.ndim != 2 or b.ndim != 2:
            raise ValueError(f"a and b must be 2-D, not {a.ndim}-D and {b.ndim}-D")
        bt = b if b_transposed else b.T
        m, k = a.shape
        n, kb = bt.shape
        if kb != k:
            raise ValueError(f"inner dimensions differ: a is {a.shape}, b is {b.shape}"
                             + (" (transposed)" if b_transposed else ""))
        if min(m, n, k) < 1:
            raise ValueError(f"M, N, K = {m}, {n}, {k}: each must be at least 1")
        if k > self.max_dim:
            raise ValueError(f"K = {k} is more than this design's MAX_DIM {self.max_dim}: a "
                             f"longer dot product cannot be split without a second rounding")
        bias_codes = None
        if bias is not None:
            bias_codes = self._codes(bias, fmt_bias, "bias").reshape(-1)
            if bias_codes.shape != (n,):
                raise ValueError(f"bias must have N = {n} values, not {bias_codes.size}")
        # M and N beyond the hardware limit: independent jobs on blocks of rows/columns.
        out_t = np.uint32 if get_format(out_fmt).bits == 32 else np.uint16
        codes = np.zeros((m, n), out_t)
        stats, jobs = JobStats.zero(), 0
        step = self.max_dim
        for m0 in range(0, m, step):
            for n0 in range(0, n, step):
                block = self._run(a[m0:m0 + step], bt[n0:n0 + step],
                                  None if bias_codes is None else bias_codes[n0:n0 + step],
                                  fmt_a, fmt_b, out_fmt, fmt_bias, relu)
                codes[m0:m0 + step, n0:n0 + step] = block
                stats, jobs = stats + self.last_stats, jobs + 1
        self.last_stats = stats
        values = get_format(out_fmt).decode(codes)
        return MatmulResult(codes=codes, values=values, stats=stats, jobs=jobs)

    def _run(self, a, bt, bias, fmt_a, fmt_b, out_fmt, fmt_bias, relu):
        t = self.transport
        db = self.caps["DATA_BYTES"]
        bits, obits = get_format(fmt_a).bits, get_format(out_fmt).bits
        m, k = a.shape
        n = bt.shape[0]

        def stride(cols, b):
            return -(-row_bytes(cols, b) // db) * db

        sa, sb, sc = stride(k, bits), stride(n, bits), stride(n, obits)
        t.free_all()
        a_addr = t.alloc(m * sa, db)
        b_addr = t.alloc(n * sa, db)
        c_addr = t.alloc(m * sc, db)
        bias_addr = t.alloc(sb, db) if bias is not None else 0
        t.write_mem(a_addr, pack_matrix(a, bits, sa))
        t.write_mem(b_addr, pack_matrix(bt, bits, sa))
        if bias is not None:
            t.write_mem(bias_addr, pack_matrix(bias[None, :], bits))
        ids = self.regmap.format_ids
        regs = {"M": m, "N": n, "K": k, "A_STRIDE": sa, "B_STRIDE": sa, "C_STRIDE": sc}
        for name, addr in (("A", a_addr), ("B", b_addr), ("C", c_addr), ("BIAS", bias_addr)):
            regs[f"{name}_ADDR_LO"] = addr & 0xFFFFFFFF
            regs[f"{name}_ADDR_HI"] = addr >> 32
        for name, value in regs.items():
            self.write(name, value)
        self.write("FORMAT", A=ids[fmt_a], B=ids[fmt_b], OUT=ids[out_fmt],
                   BIAS=ids[fmt_bias] if bias is not None else 0)
        self.write("FLAGS", BIAS=int(bias is not None), RELU=int(bool(relu)))
        before = self.counters()
        t0 = time.monotonic()
        self.write("CTRL", START=1, IRQ_EN=1)
        done = self.wait_done()
        seconds = time.monotonic() - t0
        if not done:
            self.write("CTRL", SOFT_RESET=1)
            raise DeviceError(f"job M,N,K={m},{n},{k} did not finish in {self.timeout} s; "
                              f"the co-processor was soft-reset")
        status = self.regmap.unpack("STATUS", self.read("STATUS"))
        self.write("STATUS", DONE=1)
        after = self.counters()
        self.last_stats = JobStats(**{k.lower(): after[k] - before[k] for k in _COUNTERS},
                                   seconds=seconds)
        if status["ERROR"]:
            names = {code: name for name, (code, _) in self.regmap.error_codes.items()}
            name = names.get(status["ERROR"], f"code {status['ERROR']}")
            doc = self.regmap.error_codes.get(name, (None, ""))[1]
            raise DeviceError(f"the co-processor refused or failed the job: {name}: {doc}",
                              code=status["ERROR"], name=name)
        raw = t.read_mem(c_addr, (m - 1) * sc + row_bytes(n, obits))
        return unpack_matrix(raw, m, n, obits, sc)

    def wait_done(self, timeout: float | None = None) -> bool:
        """Wait until STATUS.DONE (a simulation runs until ``irq``; others poll)."""
        timeout = self.timeout if timeout is None else timeout

        def is_done():
            return self.regmap.unpack("STATUS", self.read("STATUS"))["DONE"] == 1

        wait_irq = getattr(self.transport, "wait_irq", None)
        if wait_irq is not None:
            return bool(wait_irq(timeout)) and is_done()
        return self.transport.wait_until(is_done, timeout=timeout)

    @property
    def widest_output_format(self) -> str:
        """The default output format: the most bits, bf16 before a posit of the same width
        (its range holds any sum of products without saturating)."""
        return sorted(self.output_formats, key=lambda f: (get_format(f).bits, f == "bf16"))[-1]

    def peak_macs_per_cycle(self, fmt: str) -> int:
        lanes = self.caps["WORD_BITS"] // get_format(fmt).bits
        return self.caps["ROWS"] * self.caps["COLS"] * lanes
