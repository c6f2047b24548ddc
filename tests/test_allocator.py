"""``fix_mmap_threshold``: serve fixes glibc's mmap threshold so a big message's buffers
are unmapped when freed (bench/big_message_bench.py has the figures)."""

from __future__ import annotations

import subprocess
import sys


def test_the_threshold_is_fixed_on_glibc() -> None:
    # In a child process: the test runner's own allocator stays as it was.
    code = "from worker.allocator import fix_mmap_threshold as f; raise SystemExit(0 if f() else 3)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
