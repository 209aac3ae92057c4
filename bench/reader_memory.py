"""Peak memory of streaming a store export, by file size: constant memory means a flat column.

    python bench/reader_memory.py [--sizes 1000,10000,50000]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from producers.sources.csv import read_csv  # noqa: E402
from producers.sources.jsonl import read_jsonl  # noqa: E402


def measure(reader, path: Path) -> tuple[int, int, float]:
    next(reader(path))  # imports and pydantic warm-up outside the measurement
    tracemalloc.start()
    started = time.perf_counter()
    try:
        count = sum(1 for row in reader(path) if row.order is not None)
        return count, tracemalloc.get_traced_memory()[1], time.perf_counter() - started
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    sizes = [int(n) for n in parser.parse_args().sizes.split(",")]
    print(f"{'format':8}{'orders':>10}{'file MB':>10}{'peak KiB':>10}{'orders/s':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, reader in (("jsonl", read_jsonl), ("csv", read_csv)):
            first = None
            for n in sizes:
                path = Path(tmp) / f"{n}.{fmt}"
                subprocess.run([sys.executable, str(ROOT / "examples" / "generate_orders.py"), "--count", str(n),
                                "--seed", "1", "--format", fmt, "--out", str(path)], check=True)
                count, peak, seconds = measure(reader, path)
                first = first or peak
                print(f"{fmt:8}{count:>10}{path.stat().st_size / 1e6:>10.1f}{peak / 1024:>10.0f}{count / seconds:>10.0f}"
                      f"   peak x{peak / first:.2f} of the smallest")


if __name__ == "__main__":
    main()
