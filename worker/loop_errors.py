"""asyncio's own error reports, one line each and at most one per kind per minute.

When the process runs out of file descriptors, asyncio reports "socket.accept() out of
system resource" on every accept attempt, with a traceback: 1.13 million reports (750 MB of
log) in 140 s. Here each kind of report (its message and exception type) is logged once per
``INTERVAL`` as one line with the number suppressed since, and never with a traceback; a
``CancelledError`` left over from a session ended at shutdown is not an error at all.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

log = structlog.get_logger("mailgate.loop")
INTERVAL = 60.0


class LoopErrors:
    """An event loop exception handler that rate-limits by kind."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self.last: dict[tuple[str, str], float] = {}
        self.suppressed: dict[tuple[str, str], int] = {}

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if isinstance(error, asyncio.CancelledError):
            return
        kind = (str(context.get("message", "")), type(error).__name__ if error else "")
        now = time.monotonic()
        if now - self.last.get(kind, -self.interval) < self.interval:
            self.suppressed[kind] = self.suppressed.get(kind, 0) + 1
            return
        self.last[kind] = now
        log.error(
            "event_loop_error",
            message=kind[0][:200],
            error_type=kind[1] or None,
            error=str(error)[:200] if error else None,
            suppressed=self.suppressed.pop(kind, 0),
        )
