"""Decisions under way on one listener, so that a stopping server waits for their commits.

Every transport that decides in the executor (SMTP/LMTP, the milter) counts what it has
handed over; shutdown closes the listeners, then waits for ``idle`` before it stops the
executor, so no acknowledged-to-be message is cut off between decision and commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager


class InFlight:
    """A counter of decisions under way and an event set whenever it is zero."""

    def __init__(self) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()

    @contextmanager
    def deciding(self) -> Iterator[None]:
        self.count += 1
        self.idle.clear()
        try:
            yield
        finally:
            self.count -= 1
            if self.count == 0:
                self.idle.set()
