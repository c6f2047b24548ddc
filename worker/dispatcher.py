"""The outbound dispatcher: hands committed outbox rows to the relay or the webhook.

Rows are claimed in a short transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
replicas share the work; SQLite serialises on its write lock) with a lease, then sent
outside any transaction, then marked. A crash between sending and marking lets the lease
expire and the row is sent once more, with the same Message-ID, so the receiver can
deduplicate: at most one resend. Automatic replies go out with ``MAIL FROM:<>``.

Outcomes: 2xx ``sent``; 4xx or a connection failure ``retry`` with exponential backoff and
jitter; 5xx (or HTTP 4xx) ``failed``, permanently; past the policy's maximum delivery age
``dead`` (dead-letter). Each outcome is one log line.
"""

from __future__ import annotations

import random
import smtplib
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import unquote, urlsplit

import structlog
from sqlalchemy import Engine, or_
from sqlmodel import col, select

from worker.clock import utcnow
from worker.decision import UNDELIVERED, OutboxKind, OutboxStatus
from worker.forwarding import SIGNATURE_HEADER, sign
from worker.logs import without_addresses
from worker.mail import wire_address
from worker.oauth import TokenError, TokenManager
from worker.oauth.login import smtp_login
from worker.outbox import MAIL_KINDS
from worker.store.db import transaction, writer_turn
from worker.store.models import OutboxRow

log = structlog.get_logger("mailgate.outbox")
LEASE = timedelta(minutes=2)
BASE_DELAY = 30.0
MAX_DELAY = 3600.0
SMTP_TIMEOUT = 30.0
HTTP_TIMEOUT = 15.0
NO_SMTPUTF8 = "non-ASCII address and the relay does not offer SMTPUTF8 (RFC 6531)"


@dataclass(frozen=True)
class Outcome:
    status: OutboxStatus  # SENT, RETRY or FAILED
    detail: str


def backoff(attempts: int) -> timedelta:
    delay = min(BASE_DELAY * 2 ** max(attempts - 1, 0), MAX_DELAY)
    return timedelta(seconds=delay * random.uniform(0.8, 1.2))


class Dispatcher:
    """Sends due outbox rows; ``run_once`` is one claim-send-mark round."""

    def __init__(
        self,
        engine: Engine,
        relay_url: str | None,
        secret: bytes,
        batch: int = 20,
        relay_credentials: TokenManager | None = None,
    ) -> None:
        self.engine = engine
        self.relay_url = relay_url
        self.relay_credentials = relay_credentials  # MAILGATE_RELAY_AUTH=xoauth2
        self.secret = secret
        self.batch = batch

    def kinds(self) -> tuple[str, ...]:
        # Without a relay, mail rows are spooled to files instead (worker.outbox).
        return (*MAIL_KINDS, OutboxKind.WEBHOOK) if self.relay_url else (OutboxKind.WEBHOOK,)

    def claim(self, now: datetime) -> list[OutboxRow]:
        with writer_turn(self.engine), transaction(self.engine) as session:
            statement = (
                select(OutboxRow)
                .where(
                    col(OutboxRow.kind).in_(self.kinds()),
                    col(OutboxRow.status).in_(UNDELIVERED),
                    col(OutboxRow.next_attempt_at) <= now,
                    or_(col(OutboxRow.claimed_until).is_(None), col(OutboxRow.claimed_until) < now),
                )
                .order_by(col(OutboxRow.id))
                .limit(self.batch)
            )
            if session.get_bind().dialect.name == "postgresql":
                statement = statement.with_for_update(skip_locked=True)
            rows = list(session.scalars(statement).all())
            for row in rows:
                if row.status == OutboxStatus.SENDING:
                    log.warning(
                        "outbox_resend_after_lease", outbox_id=row.id, message_id=row.message_id
                    )
                row.status = OutboxStatus.SENDING
                row.claimed_until = now + LEASE
                row.attempts += 1
            session.flush()
            session.expunge_all()  # detached copies for the send, outside the transaction
        return rows

    def run_once(self, now: datetime | None = None) -> int:
        now = now or utcnow()
        rows = self.claim(now)
        for row in rows:
            if row.expires_at is not None and now > row.expires_at:
                self.mark(row, OutboxStatus.DEAD, "maximum delivery age reached", now)
                continue
            try:
                outcome = self.send(row)
            except Exception as exc:  # never let one row stop the loop
                outcome = Outcome(OutboxStatus.RETRY, f"internal error {type(exc).__name__}")
            self.mark(row, outcome.status, outcome.detail, now)
        return len(rows)

    def mark(self, row: OutboxRow, status: OutboxStatus, detail: str, now: datetime) -> None:
        with writer_turn(self.engine), transaction(self.engine) as session:
            stored = session.get(OutboxRow, row.id)
            if stored is None:
                return
            stored.claimed_until = None
            stored.last_error = None if status == OutboxStatus.SENT else detail[:500]
            if status == OutboxStatus.RETRY:
                stored.status = OutboxStatus.RETRY
                stored.next_attempt_at = utcnow() + backoff(stored.attempts)
            else:
                stored.status = status
                stored.done_at = utcnow()
        event = {
            OutboxStatus.SENT: "outbox_sent",
            OutboxStatus.RETRY: "outbox_retry",
            OutboxStatus.FAILED: "outbox_failed",
            OutboxStatus.DEAD: "outbox_dead_letter",
        }[status]
        level = "info" if status == OutboxStatus.SENT else "warning"
        getattr(log, level)(
            event,
            outbox_id=row.id,
            decision_id=row.decision_id,
            kind=row.kind,
            attempts=row.attempts,
            # A relay's refusal often quotes the recipient; only the decision line names it.
            detail=without_addresses(detail[:200]),
            message_id=row.message_id,
        )

    def send(self, row: OutboxRow) -> Outcome:
        if row.kind == OutboxKind.WEBHOOK:
            return self.post(row)
        assert self.relay_url is not None
        return send_mail(
            self.relay_url, row.mail_from, row.rcpt_to, row.body, self.relay_credentials
        )

    def post(self, row: OutboxRow) -> Outcome:
        request = urllib.request.Request(
            row.rcpt_to,
            data=row.body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(row.body, self.secret),
                "X-Mailgate-Delivery": str(row.id),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
                return Outcome(OutboxStatus.SENT, f"HTTP {response.status}")
        except urllib.error.HTTPError as exc:
            permanent = 400 <= exc.code < 500 and exc.code not in (408, 425, 429)
            return Outcome(
                OutboxStatus.FAILED if permanent else OutboxStatus.RETRY, f"HTTP {exc.code}"
            )
        except (urllib.error.URLError, OSError) as exc:
            return Outcome(OutboxStatus.RETRY, f"connection: {exc}")


def send_mail(
    relay_url: str,
    mail_from: str,
    rcpt_to: str,
    body: bytes,
    credentials: TokenManager | None = None,
) -> Outcome:
    """One message through the relay; the SMTP reply code decides the outcome.

    With ``credentials`` the relay login is SASL XOAUTH2 as the URL's user (Microsoft 365
    SMTP AUTH); a token that cannot be had is a retry, like a relay that cannot be reached.
    An address with a non-ASCII local part can only travel with SMTPUTF8 (RFC 6531); a relay
    that does not offer it will never take the message, so that is a permanent failure at
    once, not days of retries.
    """
    mail_from, rcpt_to = wire_address(mail_from), wire_address(rcpt_to)
    parts = urlsplit(relay_url)
    host, port = parts.hostname or "127.0.0.1", parts.port
    try:
        if parts.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                host, port or 465, timeout=SMTP_TIMEOUT, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(host, port or 25, timeout=SMTP_TIMEOUT)
        with client:
            client.ehlo()
            if parts.scheme == "smtp" and client.has_extn("starttls") and parts.username:
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if parts.username and credentials is not None:
                smtp_login(client, unquote(parts.username), credentials)
            elif parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
            options = _mail_options(client, mail_from, rcpt_to)
            if options is None:
                return Outcome(OutboxStatus.FAILED, NO_SMTPUTF8)
            client.sendmail(mail_from, [rcpt_to], body, mail_options=options)
        return Outcome(OutboxStatus.SENT, "250")
    except UnicodeEncodeError:
        return Outcome(OutboxStatus.FAILED, NO_SMTPUTF8)
    except smtplib.SMTPRecipientsRefused as exc:
        code, message = next(iter(exc.recipients.values()))
        return _by_code(code, message)
    except smtplib.SMTPResponseException as exc:
        return _by_code(exc.smtp_code, exc.smtp_error)
    except (smtplib.SMTPException, OSError) as exc:
        return Outcome(OutboxStatus.RETRY, f"connection: {type(exc).__name__}: {exc}")
    except TokenError as exc:
        return Outcome(OutboxStatus.RETRY, f"token: {type(exc).__name__}: {exc}")


def _mail_options(client: smtplib.SMTP, mail_from: str, rcpt_to: str) -> list[str] | None:
    """MAIL FROM options for these addresses; ``None`` when the relay cannot take them."""
    if f"{mail_from}{rcpt_to}".isascii():
        return []
    if not client.has_extn("smtputf8"):
        return None
    return ["SMTPUTF8", "BODY=8BITMIME"] if client.has_extn("8bitmime") else ["SMTPUTF8"]


def _by_code(code: int, message: bytes | str) -> Outcome:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return Outcome(OutboxStatus.FAILED if code >= 500 else OutboxStatus.RETRY, f"{code} {text}")
