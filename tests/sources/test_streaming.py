"""Readers stream: the tracemalloc peak while reading 20k orders is no larger than while reading 1k."""
from __future__ import annotations

import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from producers.sources.csv import read_csv
from producers.sources.jsonl import read_jsonl

GENERATOR = Path(__file__).resolve().parents[2] / "examples" / "generate_orders.py"
SMALL, LARGE = 1_000, 20_000
MARGIN = 128 * 1024  # bytes: noise of allocator pools and caches, far below what 19k extra orders would hold


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[tuple[str, int], Path]:
    folder = tmp_path_factory.mktemp("generated")
    made = {}
    for fmt in ("jsonl", "csv"):
        for count in (SMALL, LARGE):
            path = folder / f"{count}.{fmt}"
            subprocess.run([sys.executable, str(GENERATOR), "--count", str(count), "--seed", "3", "--format", fmt,
                            "--out", str(path)], check=True)
            made[fmt, count] = path
    return made


def peak_while_reading(reader, path: Path) -> tuple[int, int]:
    """(orders read, peak traced bytes) for one full pass that keeps nothing."""
    next(reader(path))  # warm up pydantic and the csv module outside the measurement
    tracemalloc.start()
    try:
        count = sum(1 for row in reader(path) if row.order is not None)
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("fmt, reader", [("jsonl", read_jsonl), ("csv", read_csv)])
def test_memory_does_not_grow_with_file_size(files, fmt, reader):
    small_count, small_peak = peak_while_reading(reader, files[fmt, SMALL])
    large_count, large_peak = peak_while_reading(reader, files[fmt, LARGE])
    assert (small_count, large_count) == (SMALL, LARGE)
    assert files[fmt, LARGE].stat().st_size > 40 * MARGIN  # the large file could never hide in the margin
    assert large_peak <= small_peak + MARGIN, (fmt, small_peak, large_peak)
