"""The console's health cards: one card per part an ops person worries about.

Each card says ``ok``, ``warn``, ``bad`` or ``off`` (not configured) with one line of
summary and a few of detail. They come from what ``/readyz`` already checks (listeners,
IMAP mailboxes, the database) and from the store (held mail waiting, the outbox, dead
letters, the relay's last refusal); the OAuth card reads the client secret's expiry date
and each mailbox's token; the helpdesk card reads the connector's ``/readyz`` checks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from worker.clock import aware, utcnow
from worker.decision import UNDELIVERED, OutboxStatus
from worker.held import held_summary
from worker.logs import without_addresses
from worker.settings import Settings
from worker.store.models import OutboxRow

State = Literal["ok", "warn", "bad", "off"]
PENDING = UNDELIVERED
GIVEN_UP = (OutboxStatus.DEAD, OutboxStatus.FAILED)
OUTBOX_SLOW_SECONDS = 15 * 60  # a reply still waiting after this is worth a look
HELD_LONG_SECONDS = 24 * 3600  # as deploy/prometheus/alerts.yml's MailgateHeldMailWaiting
SECRET_WARN_DAYS = 30


@dataclass
class HealthCard:
    key: str
    title: str
    state: State
    summary: str
    detail: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def readiness_cards(checks: dict[str, Any]) -> list[HealthCard]:
    """Listeners, database and each IMAP mailbox, from the ``/readyz`` checks."""
    listeners = checks.get("listeners", "ok")
    database = checks.get("database", "ok")
    cards = [
        HealthCard("listeners", "Listeners", "ok" if listeners == "ok" else "bad", listeners),
        HealthCard("database", "Database", "ok" if database == "ok" else "bad", database),
    ]
    mailboxes = {k.removeprefix("imap "): v for k, v in checks.items() if k.startswith("imap ")}
    if not mailboxes:
        cards.append(HealthCard("imap", "IMAP", "off", "no mailbox polled"))
        return cards
    ready = [name for name, check in mailboxes.items() if check.get("ready")]
    detail = [
        f"{name}: {check.get('state')}, {check.get('lag', 0)} waiting"
        + (f", last error {check['last_error']}" if check.get("last_error") else "")
        for name, check in mailboxes.items()
    ]
    state: State = "ok" if len(ready) == len(mailboxes) else "bad"
    cards.append(
        HealthCard("imap", "IMAP", state, f"{len(ready)} of {len(mailboxes)} ready", detail)
    )
    return cards


def store_cards(engine: Engine, settings: Settings) -> list[HealthCard]:
    """The outbox, its dead letters and the relay, from the outbox table."""
    now = utcnow()
    with Session(engine) as session:
        pending = session.scalar(select(func.count()).where(col(OutboxRow.status).in_(PENDING)))
        oldest = session.scalar(
            select(func.min(OutboxRow.created_at)).where(col(OutboxRow.status).in_(PENDING))
        )
        given_up = session.scalar(select(func.count()).where(col(OutboxRow.status).in_(GIVEN_UP)))
        held, held_since = held_summary(session)
        refusal = session.scalar(
            select(OutboxRow.last_error)
            .where(col(OutboxRow.status).in_((OutboxStatus.RETRY, *GIVEN_UP)))
            .order_by(col(OutboxRow.id).desc())
            .limit(1)
        )
    age = (now - aware(oldest)).total_seconds() if oldest else 0.0
    waiting: State = "warn" if age > OUTBOX_SLOW_SECONDS else "ok"
    outbox = HealthCard(
        "outbox",
        "Outbox",
        waiting,
        f"{pending or 0} waiting" + (f", oldest {_duration(age)}" if pending else ""),
    )
    dead = HealthCard(
        "dead_letters",
        "Dead letters",
        "bad" if given_up else "ok",
        f"{given_up or 0} given up",
        ["mailgate decisions shows which; the relay's last answer is on the Relay card"]
        if given_up
        else [],
    )
    return [_held_card(held, held_since), outbox, dead, _relay_card(settings, refusal)]


def _held_card(count: int, oldest: datetime | None) -> HealthCard:
    if not count or oldest is None:
        return HealthCard("held", "Held mail", "ok", "nothing waiting")
    age = (utcnow() - oldest).total_seconds()
    state: State = "warn" if age > HELD_LONG_SECONDS else "ok"
    return HealthCard("held", "Held mail", state, f"{count} waiting, oldest {_duration(age)}")


def _relay_card(settings: Settings, refusal: str | None) -> HealthCard:
    if not settings.relay_url:
        return HealthCard("relay", "Relay", "off", "none: replies kept as files")
    detail = [f"last refusal: {without_addresses(refusal[:160])}"] if refusal else []
    host = settings.relay_url.split("@")[-1]  # never the password in the URL
    return HealthCard("relay", "Relay", "warn" if refusal else "ok", host, detail)


def oauth_card(settings: Settings, checks: dict[str, Any], today: date) -> HealthCard:
    """When the OAuth client secret runs out, and each mailbox's access token."""
    expires = settings.oauth_secret_expires
    tokens = [
        f"{key.removeprefix('imap ')}: token until {check['token_expires'][:16]}"
        for key, check in checks.items()
        if isinstance(check, dict) and check.get("token_expires")
    ]
    if expires is None:
        uses = settings.imap_auth != "password" or settings.relay_auth != "password"
        state: State = "warn" if uses else "off"
        summary = "secret expiry unknown (MAILGATE_OAUTH_SECRET_EXPIRES)" if uses else "not used"
        return HealthCard("oauth", "OAuth", state, summary, tokens)
    days = (expires - today).days
    state = "bad" if days < 0 else "warn" if days <= SECRET_WARN_DAYS else "ok"
    summary = f"secret expired {-days} days ago" if days < 0 else f"secret expires in {days} days"
    return HealthCard("oauth", "OAuth", state, summary, [f"on {expires.isoformat()}", *tokens])


def helpdesk_card(checks: dict[str, Any]) -> HealthCard:
    """The helpdesk connector, and where accepted follow-ups go (never silent, issue 19)."""
    helpdesk = checks.get("helpdesk")
    nowhere = checks.get("followups")
    if nowhere:  # no helpdesk and no forward: follow-ups stay in the store
        summary = str(nowhere).removeprefix("degraded: ")
        return HealthCard("helpdesk", "Helpdesk", "warn", summary)
    if helpdesk is None:
        return HealthCard("helpdesk", "Helpdesk", "off", "no helpdesk connector")
    if helpdesk == "ok":
        return HealthCard("helpdesk", "Helpdesk", "ok", "in step")
    return HealthCard("helpdesk", "Helpdesk", "warn", str(helpdesk).removeprefix("degraded: "))


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h"
