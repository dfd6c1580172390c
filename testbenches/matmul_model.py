"""Reference results and memory images for co-processor jobs (golden model + packing).

A *job* is what one START computes: ``C = A·B (+ bias) (ReLU)`` with A (M×K), B given
transposed (N×K), bias (N) and C (M×N) as packed codes at addresses with row strides.
:func:`expected_c` is the golden result, with the engine geometry of the design (lane
count and dot-product accumulator of the operand width), as the hardware computes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from generators.formats import get_format
from generators.geometry import engine_geometry
from sw_driver.packing import pack_matrix, row_bytes, unpack_matrix
from testbenches import golden

__all__ = ["Job", "expected_c", "random_job", "random_codes"]


@dataclass
class Job:
    fmt_a: str
    fmt_b: str
    out_fmt: str
    a: np.ndarray                   # M×K codes
    bt: np.ndarray                  # N×K codes (B transposed)
    bias: Optional[np.ndarray] = None   # N codes in fmt_bias
    fmt_bias: Optional[str] = None
    relu: bool = False
    a_addr: int = 0
    b_addr: int = 0
    c_addr: int = 0
    bias_addr: int = 0
    a_stride: int = 0
    b_stride: int = 0
    c_stride: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def m(self):
        return self.a.shape[0]

    @property
    def k(self):
        return self.a.shape[1]

    @property
    def n(self):
        return self.bt.shape[0]


def random_codes(fmt, shape, rng, *, finite=True, special_rate=0.0):
    """Random codes of ``fmt``; with ``finite`` no NaN/NaR/inf codes except at
    ``special_rate``."""
    fmt = get_format(fmt)
    codes = rng.integers(0, 1 << fmt.bits, size=shape, dtype=np.int64)
    if finite:
        bad = fmt.is_special(codes)
        while np.any(bad):
            codes[bad] = rng.integers(0, 1 << fmt.bits, size=int(bad.sum()))
            bad = fmt.is_special(codes)
        if special_rate:
            specials = np.flatnonzero(fmt.is_special(np.arange(1 << fmt.bits)))
            if specials.size:
                hit = rng.random(shape) < special_rate
                codes[hit] = rng.choice(specials, size=int(hit.sum()))
    return codes


def expected_c(job: Job, *, word_bits: int, formats, guard_bits: int):
    """Golden C codes (M×N) and flags for ``job`` on an engine of the given parameters."""
    geo = engine_geometry(word_bits=word_bits, formats=formats, guard_bits=guard_bits)
    mode = geo.mode_of(job.fmt_a)
    return golden.matmul(job.fmt_a, job.a, job.fmt_b, job.bt.T, job.out_fmt,
                         lanes=mode.lanes, geometry=mode.dot,
                         bias_fmt=job.fmt_bias if job.bias is not None else None,
                         bias=job.bias, relu=job.relu)


def layout_job(job: Job, *, data_bytes: int, base: int = 0x1000, rng=None, pad_max: int = 2):
    """Choose aligned addresses and strides (random padding with ``rng``); returns the
    end address. Buffers are placed one after the other from ``base``."""
    def align(x):
        return -(-x // data_bytes) * data_bytes

    bits = get_format(job.fmt_a).bits
    out_bits = get_format(job.out_fmt).bits
    addr = align(base)
    for name, rows, cols, b in (("a", job.m, job.k, bits), ("b", job.n, job.k, bits),
                                ("c", job.m, job.n, out_bits)):
        pad = int(rng.integers(0, pad_max + 1)) * data_bytes if rng is not None else 0
        stride = align(row_bytes(cols, b)) + pad
        setattr(job, f"{name}_addr", addr)
        setattr(job, f"{name}_stride", stride)
        addr = align(addr + rows * stride + (data_bytes if rng is not None else 0))
    job.bias_addr = addr
    addr = align(addr + row_bytes(job.n, bits) + data_bytes)
    return addr


def memory_image(job: Job, size: int, *, fill_rng=None) -> bytearray:
    """Memory with A, Bᵀ and bias in place; everything else random (or zero)."""
    if fill_rng is not None:
        mem = bytearray(fill_rng.integers(0, 256, size=size, dtype=np.uint8).tobytes())
    else:
        mem = bytearray(size)
    bits = get_format(job.fmt_a).bits

    def put(addr, codes, stride):
        # Only the bytes of each row: the padding keeps its (random) contents, so that a
        # design that reads codes past the end of a row computes garbage.
        rb = row_bytes(codes.shape[1], bits)
        blob = pack_matrix(codes, bits, stride)
        for r in range(codes.shape[0]):
            mem[addr + r * stride:addr + r * stride + rb] = blob[r * stride:r * stride + rb]
            if codes.shape[1] * bits % 8:      # a half-used last byte: random upper nibble
                mem[addr + r * stride + rb - 1] |= 0xF0 if (fill_rng is not None) else 0

    put(job.a_addr, job.a, job.a_stride)
    put(job.b_addr, job.bt, job.b_stride)
    if job.bias is not None:
        put(job.bias_addr, job.bias[None, :], row_bytes(job.n, bits))
    return mem


def read_c(job: Job, mem) -> np.ndarray:
    out_bits = get_format(job.out_fmt).bits
    size = (job.m - 1) * job.c_stride + row_bytes(job.n, out_bits)
    return unpack_matrix(bytes(mem[job.c_addr:job.c_addr + size]), job.m, job.n, out_bits,
                         job.c_stride)


def random_job(rng, formats, *, m, n, k, fmt_a=None, fmt_b=None, out_fmt=None,
               output_formats=None, bias=None, relu=None, special_rate=0.0) -> Job:
    """A random job on formats of one width (A, B and bias), any output format."""
    formats = list(formats)
    output_formats = list(output_formats or formats)
    fmt_a = fmt_a or formats[rng.integers(len(formats))]
    width = get_format(fmt_a).bits
    same = [f for f in formats if get_format(f).bits == width]
    fmt_b = fmt_b or same[rng.integers(len(same))]
    out_fmt = out_fmt or output_formats[rng.integers(len(output_formats))]
    use_bias = bool(rng.integers(2)) if bias is None else bias
    fmt_bias = same[rng.integers(len(same))] if use_bias else None
    job = Job(fmt_a=fmt_a, fmt_b=fmt_b, out_fmt=out_fmt,
              a=random_codes(fmt_a, (m, k), rng, special_rate=special_rate),
              bt=random_codes(fmt_b, (n, k), rng, special_rate=special_rate),
              bias=random_codes(fmt_bias, (n,), rng) if use_bias else None,
              fmt_bias=fmt_bias, relu=bool(rng.integers(2)) if relu is None else relu)
    return job
