"""Per-mailbox health for ``/metrics`` and ``/readyz``: last fetch, token and secret expiry.

The gauges are timestamps (seconds since the epoch) so that an alert reads as "expires
within N days" or "no fetch for N minutes" without mailgate knowing the thresholds; the
refused gauge is 1 while the token endpoint refuses the credential. ``credential_check``
is the part of a mailbox's ``/readyz`` entry that concerns OAuth2: not ready while the
endpoint refuses, degraded 14 days before the client secret expires.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, time
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from worker.ingress.imap import MailboxHealth, MailboxWorker


class MailboxCollector(Collector):
    def __init__(self, workers: Callable[[], Iterable[MailboxWorker]]) -> None:
        self.workers = workers

    def collect(self) -> Iterator[Any]:
        labels = ["mailbox"]
        fetched = GaugeMetricFamily(
            "mailgate_imap_last_fetch_timestamp_seconds",
            "When the mailbox was last searched and fetched successfully",
            labels=labels,
        )
        token = GaugeMetricFamily(
            "mailgate_oauth_token_expiry_timestamp_seconds",
            "When the mailbox's current OAuth2 access token expires",
            labels=labels,
        )
        secret = GaugeMetricFamily(
            "mailgate_oauth_secret_expiry_timestamp_seconds",
            "When the OAuth2 client secret expires (MAILGATE_OAUTH_SECRET_EXPIRES)",
            labels=labels,
        )
        refused = GaugeMetricFamily(
            "mailgate_oauth_token_refused",
            "1 while the token endpoint refuses the mailbox's credential",
            labels=labels,
        )
        for worker in self.workers():
            key, health = worker.target.key, worker.health
            if health.last_pass is not None:
                fetched.add_metric([key], health.last_pass.timestamp())
            credential = health.credential
            if credential is None:
                continue
            refused.add_metric([key], 1.0 if credential.refused else 0.0)
            if credential.token_expires_at is not None:
                token.add_metric([key], credential.token_expires_at.timestamp())
            if credential.secret_expires is not None:
                midnight = datetime.combine(credential.secret_expires, time(), UTC)
                secret.add_metric([key], midnight.timestamp())
        yield from (fetched, token, secret, refused)


def credential_check(health: MailboxHealth) -> dict[str, Any]:
    credential = health.credential
    if credential is None:
        return {}
    check: dict[str, Any] = {"auth": health.auth, "credential": credential.summary()}
    if credential.refused:
        check["ready"] = False
    if credential.token_expires_at is not None:
        check["token_expires"] = credential.token_expires_at.isoformat()
    return check
