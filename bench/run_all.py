"""`make bench`: run every bench/bench_*.py; each writes JSON and a table under bench/results/."""

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv):
    scripts = sorted(HERE.glob("bench_*.py"))
    if not scripts:
        print("no benchmarks found")
        return 1
    status = 0
    for i, script in enumerate(scripts, 1):
        print(f"\n=== [{i}/{len(scripts)}] {script.name} ===", flush=True)
        t0 = time.monotonic()
        rc = subprocess.call([sys.executable, str(script), *argv])
        print(f"--- {script.name}: {'ok' if rc == 0 else f'FAILED ({rc})'} in {time.monotonic() - t0:.1f} s")
        status |= rc != 0
    print(f"\nresults: {HERE / 'results'}")
    return int(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
