"""Drive a generated stream unit (one input, one output stream) under cocotb from pytest."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from testbenches.sim import BUILD_ROOT, build, run_cocotb

__all__ = ["pack_fields", "unpack_fields", "StreamRun", "run_stream_unit"]


def pack_fields(fields: Mapping[str, dict], values: Mapping[str, Sequence[int]]) -> list[int]:
    """Pack per-field integer arrays into payload words with the manifest's offsets."""
    n = len(next(iter(values.values())))
    words = [0] * n
    for name, arr in values.items():
        off, width = fields[name]["offset"], fields[name]["width"]
        mask = (1 << width) - 1
        for i, v in enumerate(np.asarray(arr).tolist()):
            v = int(v)
            if v < 0 or v > mask:
                raise ValueError(f"field {name} value {v} does not fit in {width} bits")
            words[i] |= v << off
    return words


def unpack_fields(fields: Mapping[str, dict], words: Sequence[int]) -> dict:
    out = {}
    for name, f in fields.items():
        mask = (1 << f["width"]) - 1
        out[name] = np.array([(w >> f["offset"]) & mask for w in words], dtype=np.int64)
    return out


@dataclass
class StreamRun:
    words: list
    cycles: int
    toggles: dict


def run_stream_unit(simulator: str, verilog: Path, toplevel: str, in_words: Sequence[int],
                    expected_beats: int, *, seed: int = 1, valid_prob: float = 1.0,
                    ready_prob: float = 1.0, toggles: Sequence[str] = (),
                    tag: Optional[str] = None) -> StreamRun:
    built = build(simulator, [verilog], toplevel)
    text = "".join(f"{w:x}\n" for w in in_words)
    key = hashlib.sha256(f"{text}{seed}{valid_prob}{ready_prob}{toggles}".encode()).hexdigest()[:12]
    work = built.build_dir / "runs" / f"{tag or 'run'}-{key}"
    work.mkdir(parents=True, exist_ok=True)
    infile, outfile = work / "in.hex", work / "out.hex"
    infile.write_text(text)
    run_cocotb(built, "tb_stream_unit", work_dir=work, env={
        "NPEGEN_IN": str(infile), "NPEGEN_OUT": str(outfile),
        "NPEGEN_EXPECTED": str(expected_beats), "NPEGEN_SEED": str(seed),
        "NPEGEN_VALID_PROB": str(valid_prob), "NPEGEN_READY_PROB": str(ready_prob),
        "NPEGEN_TOGGLES": ",".join(toggles),
    })
    words, cycles = [], 0
    for line in outfile.read_text().splitlines():
        if line.startswith("# cycles"):
            cycles = int(line.split()[-1])
        elif line.strip():
            words.append(int(line, 16))
    counts = {}
    tfile = Path(str(outfile) + ".toggles")
    if tfile.exists():
        for line in tfile.read_text().splitlines():
            path, count = line.rsplit(" ", 1)
            counts[path] = int(count)
    return StreamRun(words, cycles, counts)
