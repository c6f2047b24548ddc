"""What ``/readyz`` and the metrics ask a running ``serve``: are the listeners serving, and
how is each IMAP mailbox doing (state, lag, last error, its credential's health)."""

from __future__ import annotations

import asyncio
from typing import Any

from worker.ingress.imap import MailboxWorker
from worker.web.mailbox_metrics import credential_check


def readiness(
    servers: list[asyncio.base_events.Server], imap_workers: list[MailboxWorker]
) -> dict[str, Any]:
    """One entry per check; the web side turns them into ``/readyz``'s answer."""
    checks: dict[str, Any] = {
        "listeners": "ok" if all(s.is_serving() for s in servers) else "not serving",
    }
    for worker in imap_workers:
        health = worker.health
        checks[f"imap {worker.target.key}"] = {
            "ready": health.connected and health.state in ("idle", "catching_up"),
            "state": health.state,
            "lag": health.lag,
            "last_error": health.last_error,
            **credential_check(health),
        }
    return checks


def imap_lag(imap_workers: list[MailboxWorker]) -> dict[str, int]:
    """Messages seen in each mailbox and not yet decided."""
    return {worker.target.key: worker.health.lag for worker in imap_workers}
