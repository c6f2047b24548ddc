"""IMAP ingress: one thread per mailbox, exactly-once decisions, moves only after commit.

Each worker logs in, selects its mailbox and checks ``UIDVALIDITY`` against its durable
cursor (a change resets the cursor; idempotency makes the re-read harmless). It then
catches up with ``UID SEARCH`` from the cursor, fetches with ``BODY.PEEK[]`` (nothing is
marked seen), decides a batch in one transaction, and only then moves each message to
``Processed``, ``Rejected`` or ``Quarantine`` — with ``MOVE``, or ``COPY`` + ``\\Deleted`` +
``UID EXPUNGE`` of exactly those UIDs, never a plain ``EXPUNGE``. Then it IDLEs (re-issued
at most every ``MAILGATE_IMAP_IDLE_SECONDS``) and catches up again after every wake-up,
because an IDLE notification is a hint, not a list. A crash between commit and move
leaves the message in the mailbox; the next pass decides it as ``duplicate`` and moves it
where the original decision belongs, without a second reply. Socket and protocol errors
reconnect with exponential backoff and jitter, reset after every successful login (servers
such as Exchange Online end sessions when a token expires); a refused login or token is
retried slowly. With ``MAILGATE_IMAP_AUTH=xoauth2|oauthbearer`` the login takes a token from
``worker.oauth``. A lease in the cursor row keeps one replica at a time on a given mailbox.
"""

from __future__ import annotations

import os
import random
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import structlog
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from worker.clock import aware, utcnow
from worker.decision import Channel, Decision
from worker.errors import TransientError
from worker.ingress.answers import IMAP, Answer, answer
from worker.ingress.gateway import Gateway, Outcome
from worker.mail import Envelope, InboundMail
from worker.oauth import (
    CredentialHealth,
    TokenEndpointUnreachable,
    TokenManager,
    TokenRefused,
    credentials_for,
)
from worker.oauth.login import fresh_token_once, imap_login
from worker.pipeline import Mailgate
from worker.store import imap_cursors

log = structlog.get_logger("mailgate.imap")
BATCH = 50
MAX_BACKOFF = 60.0
LOGIN_RETRY = 60.0
DELETED = b"\\Deleted"
SASL_METHODS: dict[str, Literal["xoauth2", "oauthbearer"]] = {
    "xoauth2": "xoauth2",
    "oauthbearer": "oauthbearer",
}


@dataclass(frozen=True)
class ImapTarget:
    """One mailbox from ``MAILGATE_IMAP_URL``."""

    url: str
    host: str
    port: int
    tls: bool  # imaps:// (implicit TLS); imap:// upgrades with STARTTLS when offered
    user: str
    password: str
    mailbox: str
    auth: Literal["xoauth2", "oauthbearer"] | None = None  # None: the URL's password

    @classmethod
    def parse(cls, url: str, auth: str = "password") -> ImapTarget:
        parts = urlsplit(url)
        tls = parts.scheme == "imaps"
        return cls(
            url=url,
            host=parts.hostname or "localhost",
            port=parts.port or (993 if tls else 143),
            tls=tls,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            mailbox=unquote(parts.path.lstrip("/")) or "INBOX",
            auth=SASL_METHODS.get(auth),
        )

    @property
    def key(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.mailbox}"


@dataclass
class MailboxHealth:
    """What ops (and ``/readyz`` later) need to know about one mailbox."""

    state: str = "starting"  # connecting | catching_up | idle | backoff | standby | stopped
    connected: bool = False
    last_error: str | None = None
    last_pass: datetime | None = None
    decided: int = 0
    lag: int = 0  # messages seen in the mailbox, not yet decided
    auth: str = "password"
    credential: CredentialHealth | None = None
    # The waits before the last reconnects, for the log and the tests.
    reconnect_delays: deque[float] = field(default_factory=lambda: deque(maxlen=32))


def connect(
    target: ImapTarget, timeout: float = 30, credentials: TokenManager | None = None
) -> IMAPClient:
    return fresh_token_once(lambda: _login(target, timeout, credentials), credentials)


def _login(target: ImapTarget, timeout: float, credentials: TokenManager | None) -> IMAPClient:
    context = ssl.create_default_context()
    client = IMAPClient(
        target.host, port=target.port, ssl=target.tls, ssl_context=context, timeout=timeout
    )
    try:
        if not target.tls and b"STARTTLS" in client.capabilities():
            client.starttls(context)
        if credentials is None or target.auth is None:
            client.login(target.user, target.password)
        else:
            imap_login(client, target.user, credentials, target.auth)
    except BaseException:
        client.shutdown()
        raise
    return client


class MailboxWorker(threading.Thread):
    """Drains one mailbox for as long as ``stop`` is not set."""

    def __init__(
        self,
        gate: Mailgate,
        target: ImapTarget,
        stop: threading.Event,
        on_batch: Callable[[list[Decision]], None] | None = None,
        credentials: TokenManager | None = None,
    ) -> None:
        super().__init__(name=f"imap:{target.key}", daemon=True)
        self.gate = gate
        self.gateway = Gateway(gate)
        self.target = target
        self.stop = stop
        self.on_batch = on_batch
        if credentials is None and target.auth is not None:
            credentials = credentials_for(gate.settings, target.user)
        self.credentials = credentials
        self.health = MailboxHealth(
            auth=target.auth or "password",
            credential=credentials.health if credentials is not None else None,
        )
        self.delay = 1.0
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        # How long a silent poller keeps the mailbox before another replica takes over.
        self.lease = timedelta(seconds=gate.settings.imap_lease_seconds)
        settings = gate.settings
        # The IMAP answer to a committed decision: the folder it is moved to.
        self.folders = {
            Answer.ACCEPT: settings.imap_processed,
            Answer.REJECT: settings.imap_rejected,
            Answer.QUARANTINE: settings.imap_quarantine,
        }

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.session()
                self.delay = 1.0
            except LoginError as exc:
                self._trouble("login_failed", exc)
                self.stop.wait(LOGIN_RETRY)
            except TokenRefused as exc:  # logged by the token manager, with its error code
                self._trouble(f"token_refused: {exc.code}", exc, quiet=True)
                self.stop.wait(LOGIN_RETRY)
            except (
                OSError,
                IMAPClientError,
                TransientError,
                ssl.SSLError,
                TokenEndpointUnreachable,
            ) as exc:
                self._trouble("connection_lost", exc)
                self._backoff(random.uniform(0.5, 1.5))
            except Exception as exc:  # a bug must not end the thread for good
                log.exception("imap_worker_error", mailbox=self.target.key)
                self._trouble("internal_error", exc)
                self._backoff(1.0)
        self.health.state = "stopped"

    def _backoff(self, jitter: float) -> None:
        wait = self.delay * jitter
        self.health.reconnect_delays.append(wait)
        log.info("imap_reconnect_wait", mailbox=self.target.key, seconds=round(wait, 3))
        self.stop.wait(wait)
        self.delay = min(self.delay * 2, MAX_BACKOFF)

    def _trouble(self, what: str, exc: BaseException, quiet: bool = False) -> None:
        self.health.connected = False
        self.health.state = "backoff"
        self.health.last_error = f"{what}: {type(exc).__name__}"
        if quiet:
            return
        log.warning(
            f"imap_{what}", mailbox=self.target.key, error=type(exc).__name__, detail=str(exc)[:200]
        )

    def session(self) -> None:
        self.health.state = "connecting"
        client = connect(self.target, credentials=self.credentials)
        self.delay = 1.0  # logged in: the next disconnect starts the backoff afresh
        try:
            self.health.connected = True
            capabilities = set(client.capabilities())
            for folder in self.folders.values():
                if not client.folder_exists(folder):
                    client.create_folder(folder)
                    log.info("imap_folder_created", mailbox=self.target.key, folder=folder)
            selected = client.select_folder(self.target.mailbox)
            uidvalidity = int(selected[b"UIDVALIDITY"])
            log.info(
                "imap_connected",
                mailbox=self.target.key,
                uidvalidity=uidvalidity,
                move=b"MOVE" in capabilities,
                uidplus=b"UIDPLUS" in capabilities,
                exists=int(selected.get(b"EXISTS", 0)),
            )
            while not self.stop.is_set():
                if not self.claim_lease(uidvalidity):
                    self.health.state = "standby"
                    self.stop.wait(self.lease.total_seconds() / 3)
                    client.noop()
                    continue
                self.catch_up(client, capabilities, uidvalidity)
                self.idle(client)
        finally:
            self.health.connected = False
            try:
                client.logout()
            except Exception:
                client.shutdown()

    def idle(self, client: IMAPClient) -> None:
        """Wait for news; re-issue IDLE at most every ``imap_idle_seconds``."""
        self.health.state = "idle"
        client.idle()
        started = renewed = time.monotonic()
        try:
            while not self.stop.is_set():
                if client.idle_check(timeout=1):
                    return
                now = time.monotonic()
                if now - started >= self.gate.settings.imap_idle_seconds:
                    return
                if now - renewed >= self.lease.total_seconds() / 3:
                    # Keep the lease while idle; a standby replica takes over if we vanish.
                    self.renew_lease()
                    renewed = now
        finally:
            client.idle_done()

    # -- one pass ------------------------------------------------------------------------

    def catch_up(self, client: IMAPClient, capabilities: set[bytes], uidvalidity: int) -> None:
        self.health.state = "catching_up"
        last = self.cursor_last_uid(uidvalidity)
        # Messages someone else flagged \\Deleted are on their way out: not ours to decide.
        uids = sorted(
            u for u in client.search(["UID", f"{last + 1}:*", "NOT", "DELETED"]) if u > last
        )
        self.health.lag = len(uids)
        for start in range(0, len(uids), BATCH):
            if self.stop.is_set():
                return
            chunk = uids[start : start + BATCH]
            fetched = client.fetch(chunk, ["BODY.PEEK[]", "INTERNALDATE"])
            messages, present = [], []
            for uid in chunk:
                data = fetched.get(uid)
                if not data or b"BODY[]" not in data:
                    continue  # expunged meanwhile by someone else
                raw = bytes(data[b"BODY[]"])
                internal = data.get(b"INTERNALDATE")
                received = aware(internal) if isinstance(internal, datetime) else utcnow()
                messages.append((raw, self.envelope(raw, received)))
                present.append(uid)
            decisions = self.gateway.decide_many(messages)
            self.move(client, capabilities, present, decisions)
            self.save_cursor(uidvalidity, chunk[-1])
            self.health.decided += len(decisions)
            self.health.lag = max(0, len(uids) - start - len(chunk))
            self.health.last_pass = utcnow()
            if self.on_batch is not None:
                self.on_batch(decisions)
        self.health.last_pass = utcnow()
        if uids:
            log.info(
                "imap_caught_up",
                mailbox=self.target.key,
                fetched=len(uids),
                lag=self.health.lag,
                last_uid=uids[-1],
            )

    def envelope(self, raw: bytes, received: datetime) -> Envelope:
        return Envelope.from_headers(InboundMail.from_bytes(raw), Channel.IMAP, received)

    def folder_for(self, decision: Decision) -> str:
        # A duplicate goes where its original went; the recorder says where without a query.
        return self.folders[answer(Outcome(decision), IMAP)]

    def move(
        self,
        client: IMAPClient,
        capabilities: set[bytes],
        uids: list[int],
        decisions: list[Decision],
    ) -> None:
        by_folder: dict[str, list[int]] = {}
        for uid, decision in zip(uids, decisions, strict=True):
            by_folder.setdefault(self.folder_for(decision), []).append(uid)
        for folder, group in by_folder.items():
            if b"MOVE" in capabilities:
                client.move(group, folder)
            else:
                client.copy(group, folder)
                client.add_flags(group, [DELETED])
                if b"UIDPLUS" in capabilities:
                    client.uid_expunge(group)  # only these UIDs: others' \Deleted stay
                else:
                    log.warning(
                        "imap_no_uidplus",
                        mailbox=self.target.key,
                        detail="copied and flagged \\Deleted; not expunged",
                    )
            log.info("imap_moved", mailbox=self.target.key, folder=folder, count=len(group))

    # -- cursor and lease (the SQL lives in worker.store.imap_cursors) ---------------------

    def claim_lease(self, uidvalidity: int) -> bool:
        return imap_cursors.claim_lease(
            self.gate.engine, self.target.key, uidvalidity, self.owner, self.lease
        )

    def renew_lease(self) -> None:
        imap_cursors.renew_lease(self.gate.engine, self.target.key, self.owner, self.lease)

    def cursor_last_uid(self, uidvalidity: int) -> int:
        position = imap_cursors.read_cursor(self.gate.engine, self.target.key, uidvalidity)
        if position.reset_from is not None:
            log.warning(
                "imap_uidvalidity_changed",
                mailbox=self.target.key,
                old=position.reset_from,
                new=uidvalidity,
            )
        return position.last_uid

    def save_cursor(self, uidvalidity: int, uid: int) -> None:
        imap_cursors.save_cursor(self.gate.engine, self.target.key, uidvalidity, uid, self.lease)


def start_workers(gate: Mailgate, stop: threading.Event) -> list[MailboxWorker]:
    settings = gate.settings
    workers = [
        MailboxWorker(gate, ImapTarget.parse(url, settings.imap_auth), stop)
        for url in settings.imap_url or []
    ]
    for worker in workers:
        worker.start()
    return workers


def describe(target: ImapTarget, credentials: TokenManager | None = None) -> dict[str, Any]:
    """``mailgate imap check``: connect, list what is there and what is missing; no change."""
    client = connect(target, credentials=credentials)
    try:
        capabilities = sorted(c.decode() for c in client.capabilities())
        folders = [name for _flags, _sep, name in client.list_folders()]
        examined = client.select_folder(target.mailbox, readonly=True)
        return {
            "mailbox": target.key,
            "capabilities": capabilities,
            "folders": folders,
            "uidvalidity": int(examined[b"UIDVALIDITY"]),
            "messages": int(examined.get(b"EXISTS", 0)),
        }
    finally:
        client.logout()
