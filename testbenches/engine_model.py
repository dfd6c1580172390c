"""Golden model of the MAC engine's operation stream (built on :mod:`testbenches.golden`).

An operation stream is a set of equal-length arrays (one entry per operation): ``a``,
``b`` (operand words), ``fmt_a``, ``fmt_b``, ``out_fmt`` (format names), ``dot``,
``first``, ``last`` (bools). Semantics, as the RTL implements them:

* ``first`` clears the accumulator(s) (and their sticky flags) before this operation adds;
  otherwise operations keep adding, also across read-outs;
* ``last`` reads the accumulator(s) out after this operation has added: one beat in dot
  mode, one per lane (lane 0 first) in SIMD mode, each rounded once into ``out_fmt``;
* the lane mode (the operand width) and ``dot`` must stay the same from a ``first`` to the
  read-outs that follow it (the model refuses a stream that changes them in between);
* operand formats of different widths make every product NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generators.formats import get_format
from generators.geometry import EngineGeometry
from testbenches.golden import exact_products, round_to_format, to_fixed

__all__ = ["Beats", "engine_reference", "split_lanes"]


@dataclass
class Beats:
    """Read-out beats: parallel arrays."""

    code: np.ndarray
    lane: np.ndarray
    last: np.ndarray
    nan: np.ndarray
    inf: np.ndarray
    saturated: np.ndarray

    def __len__(self):
        return len(self.code)


def split_lanes(words, lane_bits: int, lanes: int) -> np.ndarray:
    """Operand words -> (n, lanes) codes, lane 0 in the least significant bits."""
    words = np.asarray(words, dtype=np.uint64)
    shifts = np.arange(lanes, dtype=np.uint64) * np.uint64(lane_bits)
    return ((words[:, None] >> shifts[None, :]) & np.uint64((1 << lane_bits) - 1)).astype(np.int64)


def engine_reference(geometry: EngineGeometry, ops: dict) -> Beats:
    """Expected read-out beats for an operation stream (see the module docstring)."""
    n = len(ops["a"])
    fmt_a = np.asarray(ops["fmt_a"], dtype=object)
    fmt_b = np.asarray(ops["fmt_b"], dtype=object)
    dot = np.asarray(ops["dot"], dtype=bool)
    first = np.asarray(ops["first"], dtype=bool)
    last = np.asarray(ops["last"], dtype=bool)
    out_fmt = np.asarray(ops["out_fmt"], dtype=object)
    a_words = np.asarray(ops["a"], dtype=np.uint64)
    b_words = np.asarray(ops["b"], dtype=np.uint64)
    max_lanes = geometry.chunks

    # Per operation and lane: exact product as fixed-point int (in its mode's LSBs) and
    # its NaN / ±inf flags. Computed vectorized per (fmt_a, fmt_b) pair.
    step_fixed = np.empty((n, max_lanes), dtype=object)
    step_fixed[:] = 0
    p_nan = np.zeros((n, max_lanes), dtype=bool)
    p_pinf = np.zeros((n, max_lanes), dtype=bool)
    p_ninf = np.zeros((n, max_lanes), dtype=bool)
    mode_bits = np.zeros(n, dtype=np.int64)
    pairs = {(fa, fb) for fa, fb in zip(fmt_a, fmt_b)}
    for fa, fb in pairs:
        sel = np.nonzero((fmt_a == fa) & (fmt_b == fb))[0]
        FA, FB = get_format(fa), get_format(fb)
        mode = geometry.mode(FA.bits)
        mode_bits[sel] = FA.bits
        L = mode.lanes
        if FA.bits != FB.bits:
            p_nan[sel, :L] = True
            continue
        ca = split_lanes(a_words[sel], mode.lane_bits, L)
        cb = split_lanes(b_words[sel], mode.lane_bits, L)
        prod = exact_products(FA, ca, FB, cb)
        p_nan[sel, :L] = np.isnan(prod)
        p_pinf[sel, :L] = prod == np.inf
        p_ninf[sel, :L] = prod == -np.inf
        finite = np.where(np.isfinite(prod), prod, 0.0)
        step_fixed[sel, :L] = to_fixed(finite, mode.lsb_exponent).astype(object)

    # Walk the stream: Python ints for the (possibly wide) accumulators, sticky saturation.
    beats_value, beats_lsb, beats_fmt = [], [], []
    beats = {k: [] for k in ("lane", "last", "nan", "pinf", "ninf", "saturated")}
    acc = [0] * max_lanes
    sticky = np.zeros((4, max_lanes), dtype=bool)   # nan, pinf, ninf, saturated
    seg_mode = seg_dot = None
    for i in range(n):
        mode = geometry.mode(int(mode_bits[i]))
        if first[i]:
            acc = [0] * max_lanes
            sticky[:] = False
            seg_mode, seg_dot = mode.lane_bits, bool(dot[i])
        elif seg_mode is None:
            seg_mode, seg_dot = mode.lane_bits, bool(dot[i])   # after reset: zeros
        elif (seg_mode, seg_dot) != (mode.lane_bits, bool(dot[i])):
            raise ValueError(f"operation {i} changes the lane mode or dot without 'first'")
        L = mode.lanes
        if dot[i]:
            geo = mode.dot
            slots = [(0, sum(step_fixed[i, :L]))]
            sticky[0, 0] |= p_nan[i, :L].any()
            sticky[1, 0] |= p_pinf[i, :L].any()
            sticky[2, 0] |= p_ninf[i, :L].any()
        else:
            geo = mode.simd
            slots = [(l, step_fixed[i, l]) for l in range(L)]
            sticky[0, :L] |= p_nan[i, :L]
            sticky[1, :L] |= p_pinf[i, :L]
            sticky[2, :L] |= p_ninf[i, :L]
        lo, hi = -(1 << (geo.width - 1)), (1 << (geo.width - 1)) - 1
        for slot, add in slots:
            if sticky[3, slot]:
                continue                    # saturation is sticky: the bound stays
            v = acc[slot] + int(add)
            if v < lo or v > hi:
                v = min(max(v, lo), hi)
                sticky[3, slot] = True
            acc[slot] = v
        if last[i]:
            count = 1 if dot[i] else L
            for slot in range(count):
                beats_value.append(acc[slot])
                beats_lsb.append(mode.lsb_exponent)
                beats_fmt.append(out_fmt[i])
                beats["lane"].append(slot)
                beats["last"].append(slot == count - 1)
                beats["nan"].append(sticky[0, slot])
                beats["pinf"].append(sticky[1, slot])
                beats["ninf"].append(sticky[2, slot])
                beats["saturated"].append(sticky[3, slot])

    m = len(beats_value)
    code = np.zeros(m, dtype=np.int64)
    values = np.empty(m, dtype=object)
    values[:] = beats_value
    lsbs = np.asarray(beats_lsb, dtype=np.int64)
    fmts = np.asarray(beats_fmt, dtype=object)
    nan = np.asarray(beats["nan"], dtype=bool)
    pinf = np.asarray(beats["pinf"], dtype=bool)
    ninf = np.asarray(beats["ninf"], dtype=bool)
    for f in set(beats_fmt):
        for lsb in set(lsbs[fmts == f].tolist()):
            sel = np.nonzero((fmts == f) & (lsbs == lsb))[0]
            code[sel] = round_to_format(values[sel], int(lsb), f, nan=nan[sel],
                                        pos_inf=pinf[sel], neg_inf=ninf[sel])
    is_nan = nan | (pinf & ninf)
    return Beats(code=code, lane=np.asarray(beats["lane"], dtype=np.int64),
                 last=np.asarray(beats["last"], dtype=bool), nan=is_nan,
                 inf=(pinf | ninf) & ~is_nan,
                 saturated=np.asarray(beats["saturated"], dtype=bool))
