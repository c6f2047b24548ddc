"""The loop every periodic job of ``serve`` runs: a round at once, then one every interval.

A round is blocking work (the database, a TSA), so it runs in a thread; a failing round is
logged as one warning line and tried again next round, since the database or the remote
end may only be away for a while. The first round runs even when ``stopping`` is already
set, so that a short-lived process still does its work once. Retention, the hold expiry
and chain anchoring are such jobs (``worker.serve.jobs``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

log = structlog.get_logger("mailgate.periodic")


def _kind(exc: Exception) -> str:
    return type(exc).__name__


async def every(
    interval: float,
    stopping: asyncio.Event,
    round_: Callable[[], object],
    failed: str,
    describe: Callable[[Exception], str] = _kind,
) -> None:
    """Run ``round_`` now, then every ``interval`` seconds, until ``stopping`` is set; a
    failure is logged as event ``failed`` with ``describe(exc)`` (never a frame's locals)."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            await loop.run_in_executor(None, round_)
        except Exception as exc:
            log.warning(failed, error=describe(exc))
        try:
            await asyncio.wait_for(stopping.wait(), timeout=interval)
            return
        except TimeoutError:
            continue
