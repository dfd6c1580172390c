"""Packing format codes into the co-processor's memory layout (NumPy only).

A matrix of ``rows`` × ``cols`` codes of ``bits`` bits is stored row by row; each row
starts at ``row * stride`` bytes and holds its codes little-endian: code ``j`` occupies
bits ``[j·bits, (j+1)·bits)`` of the row's bytes. ``row_bytes(cols, bits)`` bytes of each
row carry data; the bytes up to the stride are padding.
"""

from __future__ import annotations

import numpy as np

__all__ = ["row_bytes", "pack_matrix", "unpack_matrix"]


def row_bytes(cols: int, bits: int) -> int:
    """Bytes that hold ``cols`` codes of ``bits`` bits."""
    return -(-cols * bits // 8)


def _check_bits(bits):
    if bits not in (4, 8, 16, 32):
        raise ValueError(f"bits must be 4, 8, 16 or 32, not {bits!r}")


def pack_matrix(codes, bits: int, stride: int | None = None, *, fill: int = 0) -> bytes:
    """Pack a 2-D array of codes into ``rows * stride`` bytes (the last row is not padded).

    ``fill`` is the value of padding bytes (tests use a non-zero fill to check that the
    hardware never reads codes past the end of a row as data).
    """
    _check_bits(bits)
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must be a 2-D array, not shape {codes.shape}")
    rows, cols = codes.shape
    rb = row_bytes(cols, bits)
    stride = rb if stride is None or rows == 1 else stride     # one row: no stride
    if stride < rb:
        raise ValueError(f"stride {stride} is smaller than a row of {cols} {bits}-bit codes "
                         f"({rb} bytes)")
    if np.any(codes < 0) or np.any(codes >= (1 << bits)):
        raise ValueError(f"codes must be in [0, {1 << bits}) for {bits}-bit codes")
    c = codes.astype(np.uint64)
    if bits == 4:
        if cols % 2:
            c = np.concatenate([c, np.zeros((rows, 1), np.uint64)], axis=1)
        row = (c[:, 0::2] | (c[:, 1::2] << np.uint64(4))).astype(np.uint8)
    else:
        row = np.ascontiguousarray(c.astype({8: "<u1", 16: "<u2", 32: "<u4"}[bits])).view(
            np.uint8).reshape(rows, -1)
    row = row[:, :rb]
    if rows == 0:
        return b""
    out = np.full((rows, stride), fill, dtype=np.uint8)
    out[:, :rb] = row
    return out.tobytes()[: (rows - 1) * stride + rb]


def unpack_matrix(buf, rows: int, cols: int, bits: int, stride: int | None = None) -> np.ndarray:
    """Inverse of :func:`pack_matrix`; returns codes as uint16 (uint32 for 32-bit codes)."""
    _check_bits(bits)
    rb = row_bytes(cols, bits)
    stride = rb if stride is None or rows == 1 else stride
    raw = np.frombuffer(bytes(buf), dtype=np.uint8)
    need = (rows - 1) * stride + rb if rows else 0
    if raw.size < need:
        raise ValueError(f"buffer of {raw.size} bytes is too small for {rows} rows of "
                         f"stride {stride} ({need} bytes)")
    out_t = np.uint32 if bits == 32 else np.uint16
    if rows == 0:
        return np.zeros((0, cols), out_t)
    padded = np.zeros(rows * stride, np.uint8)
    padded[:need] = raw[:need]
    mat = padded.reshape(rows, stride)[:, :rb]
    if bits == 4:
        lo = mat & 0xF
        hi = mat >> 4
        both = np.stack([lo, hi], axis=-1).reshape(rows, -1)[:, :cols]
        return both.astype(out_t)
    dt = {8: "<u1", 16: "<u2", 32: "<u4"}[bits]
    return np.ascontiguousarray(mat).view(dt).reshape(rows, -1)[:, :cols].astype(out_t)
