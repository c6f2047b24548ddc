"""IMAP with OAuth2 against a real Dovecot whose oauth2 passdb asks a loopback OAuth server.

Dovecot checks a token only at login, so a session outlives its token; the tests end
sessions from the server side (``doveadm kick``), as Exchange Online does when a token
expires or is revoked, and then check that the worker logged in again with a good token.
"""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from helpers import RunningServer, cli_env, fixture_bytes, make_settings, with_headers
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
    oauth.lifetime = 4  # renewed with a second to spare, even on a busy machine
    drain = Drain(oauth_settings(tmp_path, dovecot, oauth))
    started = time.monotonic()
    try:
        count = kick_after_each(
            drain, dovecot, until=lambda n: time.monotonic() - started > 3.2 * oauth.lifetime
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
    # The kick, not a refused login: the refusal was healed by the one re-acquisition.
    assert (drain.worker.health.last_error or "").startswith("connection_lost")


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


def get(running: RunningServer, path: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{running.port('http')}{path}"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def mailbox_check(running: RunningServer) -> tuple[int, dict[str, Any]]:
    status, body = get(running, "/readyz")
    checks = json.loads(body)["checks"]
    return status, next(v for k, v in checks.items() if k.startswith("imap "))


def test_wrong_client_secret_serve_runs_not_ready_log_names_error_not_secret(
    tmp_path: Path, oauth: OAuthServer, dovecot: OAuthDovecot
) -> None:
    wrong = "wrong-secret-Vb8nM3kq"
    expires = (utcnow() + timedelta(days=3)).date()
    settings = oauth_settings(
        tmp_path,
        dovecot,
        oauth,
        oauth_client_secret=wrong,
        oauth_secret_expires=expires,
        smtp_listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
    )
    gate = Mailgate.open(settings)
    with structlog.testing.capture_logs() as logs:
        running = RunningServer(gate)
        try:
            oauth.wait_for(lambda: "invalid_client" in oauth.refused, what="refusal")
            deadline = time.monotonic() + 30
            status, check = mailbox_check(running)
            while not check.get("last_error"):  # the worker records it after the refusal
                assert time.monotonic() < deadline, check
                status, check = mailbox_check(running)
            healthz, _ = get(running, "/healthz")
            _, metrics = get(running, "/metrics")
            with smtplib.SMTP("127.0.0.1", running.port("smtp"), timeout=30) as smtp:
                assert smtp.noop()[0] == 250, "serve keeps running"
        finally:
            running.stop()
            gate.engine.dispose()
    assert status == 503 and healthz == 200
    assert check["ready"] is False
    assert check["credential"] == "token endpoint refuses: invalid_client"
    assert check["last_error"] == "token_refused: invalid_client: TokenRefused"
    refused = [e for e in logs if e["event"] == "oauth_token_refused"]
    assert refused and refused[0]["error"] == "invalid_client"
    assert refused[0]["provider"] == "generic"
    assert wrong not in repr(logs) and CLIENT_SECRET not in repr(logs)
    key = ImapTarget.parse(dovecot.oauth_url).key
    assert f'mailgate_oauth_token_refused{{mailbox="{key}"}} 1.0' in metrics
    assert f'mailgate_oauth_secret_expiry_timestamp_seconds{{mailbox="{key}"}}' in metrics


def test_metrics_and_readyz_show_fetch_and_credential_expiry(
    tmp_path: Path, oauth: OAuthServer, dovecot: OAuthDovecot
) -> None:
    """Logged in and fetching; the client secret expires in ten days: ready, but degraded."""
    expires = (utcnow() + timedelta(days=10)).date()
    settings = oauth_settings(
        tmp_path, dovecot, oauth, oauth_secret_expires=expires, http_listen="127.0.0.1:0"
    )
    gate = Mailgate.open(settings)
    dovecot.append(message(0))
    with structlog.testing.capture_logs() as logs:
        running = RunningServer(gate)
        try:
            worker = running.server.imap_workers[0]
            deadline = time.monotonic() + 30
            status, check = mailbox_check(running)
            while not check["ready"] or worker.health.decided < 1:
                assert time.monotonic() < deadline, check
                status, check = mailbox_check(running)
            _, metrics = get(running, "/metrics")
        finally:
            running.stop()
            gate.engine.dispose()
    assert status == 200
    assert check["credential"] == f"degraded: client secret expires {expires}"
    assert check["auth"] == "xoauth2"
    key = worker.target.key
    for name in ("imap_last_fetch", "oauth_token_expiry", "oauth_secret_expiry"):
        assert f'mailgate_{name}_timestamp_seconds{{mailbox="{key}"}}' in metrics
    assert f'mailgate_oauth_token_refused{{mailbox="{key}"}} 0.0' in metrics
    warned = [e for e in logs if e["event"] == "oauth_client_secret_expiring"]
    assert len(warned) == 1 and warned[0]["days_left"] == 10
