"""`keap-orders demo` end to end, as the README's Quick start runs it: a real worker subprocess via the celery CLI."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import REDIS_URL


def test_demo_imports_the_examples_and_reports(redis_client):
    env = {**os.environ, "REDIS_URL": REDIS_URL}
    result = subprocess.run([sys.executable, "-m", "admin.cli", "demo"], env=env, capture_output=True,
                            text=True, timeout=300)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "invalid rows:   1" in out and "failed:         0" in out and "demo: OK" in out
    done = int(re.search(r"done:\s+(\d+)", out).group(1))
    calls_per_order = float(re.search(r"calls/order:\s+([\d.]+)", out).group(1))
    assert done >= 50 and 1 <= calls_per_order <= 4
    # The demo cleans up after itself: no demo keys or queues are left in Redis.
    assert not list(redis_client.scan_iter("*demo-*", count=1000))
