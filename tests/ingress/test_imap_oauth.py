"""IMAP with OAuth2 against a real Dovecot whose oauth2 passdb asks a loopback OAuth server.

Dovecot checks a token only at login, so a session outlives its token; the tests end
sessions from the server side (``doveadm kick``), as Exchange Online does when a token
expires or is revoked, and then check that the worker logged in again with a good token.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import cli_env, fixture_bytes, make_settings, with_headers
from oauth_server import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, OAuthDovecot, OAuthServer
from sqlmodel import Session, select

from worker.clock import utcnow
from worker.decision import Decision
from worker.ingress.imap import ImapTarget, MailboxWorker
from worker.pipeline import Mailgate
from worker.settings import Settings
from worker.store.models import DecisionRow


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    server = OAuthServer()
    yield server
    server.close()


@pytest.fixture
def dovecot(oauth: OAuthServer) -> Iterator[OAuthDovecot]:
    server = OAuthDovecot(oauth)
    yield server
    server.close()


def oauth_settings(
    tmp_path: Path, dovecot: OAuthDovecot, oauth: OAuthServer, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "imap_url": dovecot.oauth_url,
        "imap_auth": "xoauth2",
        "imap_idle_seconds": 30,
        "oauth_token_url": oauth.token_url,
        "oauth_client_id": CLIENT_ID,
        "oauth_client_secret": CLIENT_SECRET,
    }
    values.update(overrides)
    return make_settings(tmp_path, None, **values)


class Drain:
    """A mailbox worker in a thread; tests wait on its batches, never on the clock."""

    def __init__(self, settings: Settings) -> None:
        self.gate = Mailgate.open(settings)
        self.stop = threading.Event()
        self.changed = threading.Condition()
        target = ImapTarget.parse(settings.imap_url[0], settings.imap_auth)  # type: ignore[index]
        self.worker = MailboxWorker(self.gate, target, self.stop, on_batch=self._batch)
        self.worker.start()

    def _batch(self, decisions: list[Decision]) -> None:
        with self.changed:
            self.changed.notify_all()

    def wait_decided(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while self.worker.health.decided < count:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"decided {self.worker.health.decided} of {count}"
                self.changed.wait(remaining)

    def rows(self) -> list[DecisionRow]:
        with Session(self.gate.engine) as session:
            return list(session.scalars(select(DecisionRow).order_by(DecisionRow.seq)).all())

    def close(self) -> None:
        self.stop.set()
        self.worker.join(30)
        assert not self.worker.is_alive()
        self.gate.engine.dispose()


def message(number: int) -> bytes:
    return with_headers(
        fixture_bytes("new_ticket.eml"),
        Message_ID=f"<oauth-{number}@customer.example>",
        Return_Path=f"<user{number}@customer.example>",
        From=f"user{number}@customer.example",
    )


def assert_each_decided_once(drain: Drain, count: int) -> None:
    decided = [r for r in drain.rows() if r.decision != "duplicate"]
    assert sorted(r.message_id for r in decided) == sorted(
        f"<oauth-{n}@customer.example>" for n in range(count)
    )


@pytest.mark.parametrize(
    ("mechanism", "refresh_token", "grant"),
    [("xoauth2", None, "client_credentials"), ("oauthbearer", REFRESH_TOKEN, "refresh_token")],
)
def test_both_mechanisms_drain_a_mailbox(
    tmp_path: Path,
    oauth: OAuthServer,
    dovecot: OAuthDovecot,
    mechanism: str,
    refresh_token: str | None,
    grant: str,
) -> None:
    for number in range(3):
        dovecot.append(message(number))
    settings = oauth_settings(
        tmp_path, dovecot, oauth, imap_auth=mechanism, oauth_refresh_token=refresh_token
    )
    drain = Drain(settings)
    try:
        drain.wait_decided(3)
    finally:
        drain.close()
    assert_each_decided_once(drain, 3)
    assert dovecot.message_ids("INBOX") == []
    assert len(dovecot.message_ids("Rejected")) == 3
    assert [i.grant for i in oauth.issued] == [grant]
    assert f"method={mechanism.upper()}" in dovecot.log()
    credential = drain.worker.health.credential
    assert credential is not None and credential.token_expires_at is not None
    assert credential.token_expires_at > utcnow() + timedelta(minutes=50)


def kick_after_each(drain: Drain, dovecot: OAuthDovecot, until: Any) -> int:
    """Append a message, wait for its decision, end the session; repeat while ``until()``."""
    count = 0
    while not until(count):
        dovecot.append(message(count))
        count += 1
        drain.wait_decided(count)
        dovecot.kick()
    return count


def test_tokens_renewed_during_a_drain_longer_than_three_lifetimes(
    tmp_path: Path, oauth: OAuthServer, dovecot: OAuthDovecot
) -> None:
    """Sessions end every message; each new login gets a token Dovecot finds active."""
    oauth.lifetime = 3
    drain = Drain(oauth_settings(tmp_path, dovecot, oauth))
    started = time.monotonic()
    try:
        count = kick_after_each(
            drain, dovecot, until=lambda n: time.monotonic() - started > 3.5 * oauth.lifetime
        )
        dovecot.append(message(count))
        drain.wait_decided(count + 1)
    finally:
        drain.close()
    assert_each_decided_once(drain, count + 1)
    assert len(oauth.issued) >= 4, "renewed at least once per lifetime"
    assert all(i.active for i in oauth.introspections), "no login with a stale token"
    assert len(oauth.introspections) == count + 1, "one login per session"


def test_session_ended_after_expiry_logs_in_with_a_renewed_token(
    tmp_path: Path, oauth: OAuthServer, dovecot: OAuthDovecot
) -> None:
    oauth.lifetime = 2
    drain = Drain(oauth_settings(tmp_path, dovecot, oauth))
    try:
        dovecot.append(message(0))
        drain.wait_decided(1)
        first = oauth.issued[0]
        oauth.wait_for(lambda: time.monotonic() > first.expires, what="token expiry")
        dovecot.kick()
        dovecot.append(message(1))
        drain.wait_decided(2)
    finally:
        drain.close()
    assert_each_decided_once(drain, 2)
    assert len(oauth.issued) == 2
    assert [i.active for i in oauth.introspections] == [True, True]


def test_all_tokens_revoked_while_idle_next_messages_decided_once(
    tmp_path: Path, oauth: OAuthServer, dovecot: OAuthDovecot
) -> None:
    """The cached token is refused at the next login: re-acquired once, no slow retry."""
    drain = Drain(oauth_settings(tmp_path, dovecot, oauth))
    try:
        dovecot.append(message(0))
        drain.wait_decided(1)
        oauth.revoke_all()
        dovecot.kick()
        dovecot.append(message(1))
        dovecot.append(message(2))
        drain.wait_decided(3, timeout=30)  # well below the 60 s retry of a refused login
    finally:
        drain.close()
    assert_each_decided_once(drain, 3)
    assert len(oauth.issued) == 2
    assert [i.active for i in oauth.introspections] == [True, False, True]
    assert drain.worker.health.last_error == "connection_lost: IMAPClientError" or (
        drain.worker.health.last_error or ""
    ).startswith("connection_lost")


def test_backoff_resets_after_each_successful_login(
    tmp_path: Path, oauth: OAuthServer, dovecot: OAuthDovecot
) -> None:
    """Four server-side disconnects in a row: every wait is the first step's, not doubled."""
    drain = Drain(oauth_settings(tmp_path, dovecot, oauth))
    try:
        kick_after_each(drain, dovecot, until=lambda n: n == 4)
        dovecot.append(message(4))
        drain.wait_decided(5)
    finally:
        drain.close()
    delays = list(drain.worker.health.reconnect_delays)
    assert len(delays) == 4, delays
    assert all(0.5 <= d <= 1.5 for d in delays), delays  # doubling would reach 2..12 s


def test_imap_check_shows_method_token_and_expiry(
    tmp_path: Path, oauth: OAuthServer, dovecot: OAuthDovecot
) -> None:
    expires = (utcnow() + timedelta(days=5)).date().isoformat()
    env = cli_env(
        tmp_path / "var",
        MAILGATE_IMAP_URL=dovecot.oauth_url,
        MAILGATE_IMAP_AUTH="oauthbearer",
        MAILGATE_OAUTH_TOKEN_URL=oauth.token_url,
        MAILGATE_OAUTH_CLIENT_ID=CLIENT_ID,
        MAILGATE_OAUTH_CLIENT_SECRET=CLIENT_SECRET,
        MAILGATE_OAUTH_SECRET_EXPIRES=expires,
    )
    mailgate = [sys.executable, "-m", "worker"]
    done = subprocess.run(
        [*mailgate, "imap", "check"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "auth: oauthbearer (generic, client_credentials); token obtained, expires 20" in (
        done.stdout
    )
    assert f"client secret expires {expires}" in done.stdout
    assert CLIENT_SECRET not in done.stdout + done.stderr
    wrong = {**env, "MAILGATE_OAUTH_CLIENT_SECRET": "not-the-secret-Pq2"}
    failed = subprocess.run(
        [*mailgate, "imap", "check"], env=wrong, capture_output=True, text=True, timeout=60
    )
    assert failed.returncode == 1
    assert "auth oauthbearer, no token: invalid_client" in failed.stdout
    assert "not-the-secret-Pq2" not in failed.stdout + failed.stderr
