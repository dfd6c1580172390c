"""Operation streams for the MAC engine tests (NumPy; see testbenches.engine_model)."""

from __future__ import annotations

import itertools

import numpy as np

from generators.formats import get_format
from generators.geometry import EngineGeometry

__all__ = ["concat", "exhaustive_pairs", "random_groups", "long_dot", "special_values", "special_stream"]

FIELDS = ("a", "b", "fmt_a", "fmt_b", "out_fmt", "dot", "first", "last")


def _ops(**cols):
    n = len(cols["a"])
    out = {k: np.asarray(cols[k]) for k in ("a", "b")}
    for k in ("fmt_a", "fmt_b", "out_fmt"):
        v = cols[k]
        out[k] = np.asarray([v] * n if isinstance(v, str) else v, dtype=object)
    for k in ("dot", "first", "last"):
        v = cols[k]
        out[k] = np.asarray(np.broadcast_to(v, (n,)), dtype=bool).copy()
    return out


def concat(*streams):
    return {k: np.concatenate([s[k] for s in streams]) for k in FIELDS}


def _pack(codes: np.ndarray, lane_bits: int) -> np.ndarray:
    """(n, lanes) codes -> words, lane 0 in the least significant bits."""
    codes = np.asarray(codes, dtype=np.uint64)
    shifts = np.arange(codes.shape[1], dtype=np.uint64) * np.uint64(lane_bits)
    return np.bitwise_or.reduce(codes << shifts[None, :], axis=1)


def exhaustive_pairs(geometry: EngineGeometry, fmt_a: str, fmt_b: str, out_formats) -> dict:
    """Every (a, b) code pair once, SIMD mode, each operation read out on its own."""
    FA, FB = get_format(fmt_a), get_format(fmt_b)
    mode = geometry.mode(FA.bits)
    a, b = np.meshgrid(np.arange(1 << FA.bits), np.arange(1 << FB.bits), indexing="ij")
    a, b = a.ravel(), b.ravel()
    L = mode.lanes
    pad = (-len(a)) % L
    a, b = np.concatenate([a, a[:pad]]), np.concatenate([b, b[:pad]])
    n = len(a) // L
    outs = list(out_formats)
    return _ops(a=_pack(a.reshape(n, L), mode.lane_bits), b=_pack(b.reshape(n, L), mode.lane_bits),
                fmt_a=fmt_a, fmt_b=fmt_b, out_fmt=[outs[i % len(outs)] for i in range(n)],
                dot=False, first=True, last=True)


def _random_codes(rng, fmt, shape):
    return rng.integers(0, 1 << get_format(fmt).bits, size=shape)


def random_groups(geometry: EngineGeometry, formats, out_formats, rng, *, n_ops: int,
                  max_group: int = 8, dot_prob: float = 0.5, mixed_pairs: bool = True) -> dict:
    """Random accumulation groups of 1..max_group operations; the formats (and so the
    lane mode) and dot/SIMD change between groups, and within a group the operand
    formats may change among formats of the same width."""
    by_width = {}
    for f in formats:
        by_width.setdefault(get_format(f).bits, []).append(f)
    cols = {k: [] for k in FIELDS}
    total = 0
    while total < n_ops:
        size = int(rng.integers(1, max_group + 1))
        fa0 = formats[int(rng.integers(len(formats)))]
        width = get_format(fa0).bits
        mode = geometry.mode(width)
        same = by_width[width]
        dot = bool(rng.random() < dot_prob)
        out = out_formats[int(rng.integers(len(out_formats)))]
        for j in range(size):
            fa = same[int(rng.integers(len(same)))] if mixed_pairs else fa0
            fb = same[int(rng.integers(len(same)))] if mixed_pairs else fa0
            ca = _random_codes(rng, fa, (1, mode.lanes))
            cb = _random_codes(rng, fb, (1, mode.lanes))
            cols["a"].append(int(_pack(ca, width)[0]))
            cols["b"].append(int(_pack(cb, width)[0]))
            cols["fmt_a"].append(fa)
            cols["fmt_b"].append(fb)
            cols["out_fmt"].append(out)
            cols["dot"].append(dot)
            cols["first"].append(j == 0)
            cols["last"].append(j == size - 1)
        total += size
    return _ops(**cols)


def _one_accumulation(n: int):
    """``first`` and ``last`` flags of ``n`` operations that form one accumulation."""
    first = np.zeros(n, dtype=bool)
    first[0] = True
    last = np.zeros(n, dtype=bool)
    last[-1] = True
    return first, last


def long_dot(geometry: EngineGeometry, fmt: str, out_fmt: str, rng, *, terms: int,
             codes=None) -> dict:
    """One dot product of ``terms`` products (``terms / lanes`` operations), read out once."""
    mode = geometry.mode(get_format(fmt).bits)
    n = -(-terms // mode.lanes)
    ca = _random_codes(rng, fmt, (n, mode.lanes)) if codes is None else codes[0]
    cb = _random_codes(rng, fmt, (n, mode.lanes)) if codes is None else codes[1]
    first, last = _one_accumulation(n)
    return _ops(a=_pack(ca, mode.lane_bits), b=_pack(cb, mode.lane_bits), fmt_a=fmt, fmt_b=fmt,
                out_fmt=out_fmt, dot=True, first=first, last=last)


def saturating_stream(geometry: EngineGeometry, fmt: str, out_fmt: str, *, dot: bool,
                      steps: int = 12, up: int | None = None, negative: bool = False,
                      nan_last: bool = False) -> dict:
    """One accumulation per lane (or one dot product) of ``+max·+max`` for ``up`` steps
    (half of them by default), then ``+max·-max``: with few guard bits every accumulator
    saturates high, and its result stays at the bound although the exact sum comes back
    into range (saturation is sticky). ``negative``: the signs the other way round,
    saturating low. (``steps=3, up=2`` with one guard bit: the first overflow is at the
    step before the last, and the last is back in range.)
    ``nan_last``: the last step's ``a`` is the format's NaN/NaR, which must win over
    the saturation."""
    F = get_format(fmt)
    lanes = geometry.mode(F.bits).lanes
    big = F.encode(np.array([F.max_value, -F.max_value]))
    if negative:
        big = big[::-1]
    ca = np.full((steps, lanes), F.encode(np.array([F.max_value]))[0])
    up = steps // 2 if up is None else up
    cb = np.concatenate([np.full((up, lanes), big[0]), np.full((steps - up, lanes), big[1])])
    if nan_last:
        ca[-1] = F.encode(np.array([np.nan]))[0]
    first, last = _one_accumulation(steps)
    return _ops(a=_pack(ca, F.bits), b=_pack(cb, F.bits), fmt_a=fmt, fmt_b=fmt,
                out_fmt=out_fmt, dot=dot, first=first, last=last)


def special_values(fmt: str) -> np.ndarray:
    """Corner codes of a format: zeros, ±smallest, ±largest, ±1, NaR/NaN/inf where present."""
    F = get_format(fmt)
    x = np.array([0.0, -0.0, 1.0, -1.0, F.min_value, -F.min_value, F.max_value, -F.max_value,
                  np.inf, -np.inf, np.nan, 1.5, -0.75])
    return np.unique(F.encode(x).astype(np.int64))


def special_stream(geometry: EngineGeometry, fmt: str, out_formats) -> dict:
    """Every pair of corner codes in every lane position, SIMD and dot."""
    F = get_format(fmt)
    mode = geometry.mode(F.bits)
    codes = special_values(fmt)
    pairs = np.array(list(itertools.product(codes, codes)))
    L = mode.lanes
    rows = []
    for shift in range(L):   # rotate so every pair visits every lane
        rolled = np.roll(np.resize(pairs, (-(-len(pairs) // L) * L, 2)), shift, axis=0)
        rows.append(rolled)
    allp = np.concatenate(rows)
    n = len(allp) // L
    a = _pack(allp[:n * L, 0].reshape(n, L), mode.lane_bits)
    b = _pack(allp[:n * L, 1].reshape(n, L), mode.lane_bits)
    outs = list(out_formats)
    simd = _ops(a=a, b=b, fmt_a=fmt, fmt_b=fmt, out_fmt=[outs[i % len(outs)] for i in range(n)],
                dot=False, first=True, last=True)
    dot = _ops(a=a, b=b, fmt_a=fmt, fmt_b=fmt, out_fmt=[outs[(i + 1) % len(outs)] for i in range(n)],
               dot=True, first=True, last=True)
    return concat(simd, dot)
