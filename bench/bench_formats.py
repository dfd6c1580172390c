"""Encode throughput of generators.formats next to ml_dtypes' own ``astype``.

Encodes N random float64 (log-uniform magnitudes over each format's range and a few
binades beyond, random signs, fixed seed) into posit16_1, fp4_e2m1, fp8_e4m3, fp8_e5m2
and bf16; the time is the best of R runs, after one warm-up run (which builds the lazy
tables). Prints an aligned table and writes JSON.

    .venv/bin/python bench/bench_formats.py            # N = 10**6, R = 7
    .venv/bin/python bench/bench_formats.py --quick    # tiny run (smoke test)
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generators.formats import FORMATS  # noqa: E402

try:
    import ml_dtypes
except ImportError:  # the comparison column is then empty
    ml_dtypes = None

BENCH_FORMATS = ("posit16_1", "fp4_e2m1", "fp8_e4m3", "fp8_e5m2", "bf16")
ML_NAMES = {"fp4_e2m1": "float4_e2m1fn", "fp8_e4m3": "float8_e4m3fn",
            "fp8_e5m2": "float8_e5m2", "bf16": "bfloat16"}
TARGET_RATIO = 3.0        # npegen should be within 3x of ml_dtypes' time
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "formats.json"


def best_time(fn, repeats: int) -> float:
    fn()                                   # warm-up: lazy tables, page faults
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def inputs(fmt, count: int, rng) -> np.ndarray:
    exponents = rng.uniform(fmt.min_exponent - 3, fmt.max_exponent + 3, count)
    return np.exp2(exponents) * rng.choice([-1.0, 1.0], count)


def run(count: int, repeats: int, seed: int = 1) -> list[dict]:
    rows = []
    for name in BENCH_FORMATS:
        fmt = FORMATS[name]
        x = inputs(fmt, count, np.random.default_rng(seed))
        ours = best_time(lambda: fmt.encode(x), repeats)
        row = dict(format=name, values=count, npegen_s=ours, npegen_values_per_s=count / ours)
        if ml_dtypes is not None and name in ML_NAMES:
            dtype = getattr(ml_dtypes, ML_NAMES[name])
            with np.errstate(over="ignore"):
                theirs = best_time(lambda: x.astype(dtype), repeats)
                same = bool(np.array_equal(fmt.encode(x, via_float32=True),
                                           x.astype(dtype).view(fmt.code_dtype)))
            row.update(ml_dtypes_s=theirs, ml_dtypes_values_per_s=count / theirs,
                       time_ratio=ours / theirs, within_target=ours / theirs <= TARGET_RATIO,
                       codes_match_via_float32=same)
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    head = ("format", "npegen values/s", "ml_dtypes values/s", "time ratio",
            f"<= {TARGET_RATIO:g}x")
    lines = [head]
    for r in rows:
        has_ml = "ml_dtypes_s" in r
        lines.append((r["format"], f"{r['npegen_values_per_s'] / 1e6:.1f} M",
                      f"{r['ml_dtypes_values_per_s'] / 1e6:.1f} M" if has_ml else "-",
                      f"{r['time_ratio']:.2f}" if has_ml else "-",
                      ("yes" if r["within_target"] else "NO") if has_ml else "-"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    fmt_line = lambda line: "  ".join(  # noqa: E731
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
    return "\n".join([fmt_line(lines[0]), "  ".join("-" * w for w in widths)]
                     + [fmt_line(line) for line in lines[1:]])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny run: 10**4 values, 2 repeats")
    p.add_argument("-n", "--values", type=int, default=10 ** 6)
    p.add_argument("-r", "--repeats", type=int, default=7)
    p.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    args = p.parse_args(argv)
    count, repeats = (10 ** 4, 2) if args.quick else (args.values, args.repeats)
    rows = run(count, repeats)
    print(f"encode {count} random float64 (best of {repeats}); time ratio = npegen / ml_dtypes")
    print(table(rows))
    result = dict(benchmark="formats.encode", values=count, repeats=repeats, quick=args.quick,
                  numpy=np.__version__,
                  ml_dtypes=getattr(ml_dtypes, "__version__", None),
                  python=platform.python_version(), machine=platform.machine(),
                  processor=platform.processor(), target_time_ratio=TARGET_RATIO, rows=rows)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
