"""The HTTP side's blocking work, kept off the event loop and away from the decisions.

``serve`` gives the HTTP side a small thread pool of its own (``HTTP_THREADS``): before,
HTTP and decisions shared one 16-thread pool, and 200 concurrent ``/metrics`` or
``/api/decisions`` requests queued every SMTP ``DATA`` behind them. Responses are encoded
to JSON in that pool too (a thousand decisions took the event loop, which also serves SMTP
and the milter, for tens of milliseconds each), and concurrent ``/metrics`` scrapes share
one collection instead of each querying the database.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

HTTP_THREADS = 2


def encoded(function: Callable[..., Any], *args: Any) -> bytes:
    """In the pool: call ``function`` and encode its result as JSON."""
    return json.dumps(function(*args)).encode()


class SharedRun:
    """One run of a blocking call at a time; callers arriving meanwhile get its result."""

    def __init__(self, function: Callable[[], Any]) -> None:
        self.function = function
        self.running: asyncio.Future[Any] | None = None

    async def __call__(self, executor: Executor) -> Any:
        if self.running is None or self.running.done():
            loop = asyncio.get_running_loop()
            self.running = loop.run_in_executor(executor, self.function)
        return await asyncio.shield(self.running)
