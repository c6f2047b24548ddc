"""What this process has learnt of the reply ledger: which (sender, reason) slots are taken,
and until when, so that a reply that will surely be rate-limited is not written first.

The ledger's claim in the write transaction stays the only judge (``worker.recorder``).
This memory only decides *when* a queued reply's body is built: before the commit, outside
the write lock, as usual; or, for a slot this process saw taken (its own claim, or a claim
it lost and then read the holder's time of), only if the claim is won after all, inside
the transaction. A flood from one sender (a mail loop, a campaign, the benchmark's
``smtp-source``) then costs no reply per message, and no outcome depends on this memory:
a slot freed behind its back (erasure deletes ledger rows) still gets its reply, built late.
"""

from __future__ import annotations

import threading
from datetime import datetime

from worker.clock import utcnow

# Enough for a busy day's distinct senders; past it, expired entries go, then all of them.
_LIMIT = 20_000


class ReplySlots:
    """Slots known taken, each until the end of its window; shared by the decide threads
    (readers) and the group-commit thread (writer) of one process."""

    def __init__(self) -> None:
        self._until: dict[tuple[str, str], datetime] = {}
        self._lock = threading.Lock()

    def taken(self, sender: str, reason: str, now: datetime) -> bool:
        until = self._until.get((sender.lower(), reason))
        return until is not None and now < until

    def note(self, sender: str, reason: str, until: datetime) -> None:
        """The slot is taken until ``until`` (its holder's time plus the window)."""
        key = (sender.lower(), reason)
        with self._lock:
            known = self._until.get(key)
            if known is None and len(self._until) >= _LIMIT:
                self._forget_expired(utcnow())
            if known is None or until > known:
                self._until[key] = until

    def _forget_expired(self, now: datetime) -> None:
        expired = [key for key, until in self._until.items() if until <= now]
        for key in expired:
            del self._until[key]
        if len(self._until) >= _LIMIT:
            self._until.clear()
