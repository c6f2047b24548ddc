"""glibc's allocator told to give a large message's memory back once it is freed.

glibc serves a request above ``M_MMAP_THRESHOLD`` with a mapping of its own and unmaps it
on free, but the threshold is dynamic: each such free raises it to the freed size (up to
32 MiB), and the heap's trim threshold with it. After one 25 MB message, the next large
buffers come from the heap and stay there once freed. Measured with
``bench/big_message_bench.py``: ``serve`` kept 3.7× a 25 MB message's size after answering
it; with the threshold fixed at glibc's default, 1.9×. The price is a map and unmap per
buffer above 128 KiB, which the few-KB messages of normal traffic never allocate.
"""

from __future__ import annotations

import ctypes
import sys

M_MMAP_THRESHOLD = -3  # <malloc.h>
DEFAULT_THRESHOLD = 128 * 1024


def fix_mmap_threshold(size: int = DEFAULT_THRESHOLD) -> bool:
    """Fix the threshold (which turns its adjustment off); False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, size))
