"""Accepted follow-ups into their tickets: the ``helpdesk`` outbox kind.

The row is written with the decision, in its transaction (``follow_up_item``), and carries
the customer's message as received; the dispatcher later hands it to the connector
(``deliver_row``), retrying with backoff while the helpdesk is away. A message without a
Message-ID gets one, derived from its bytes and prepended, because the connector finds an
earlier attempt by it: that is what makes a retry after a timeout deliver nothing twice.
"""

from __future__ import annotations

import structlog
from sqlalchemy import Engine

from worker.decision import Decision, OutboxItem, OutboxKind
from worker.helpdesk import state
from worker.helpdesk.connector import Connector, FollowUp, HelpdeskRefused, HelpdeskUnavailable
from worker.mail import InboundMail

log = structlog.get_logger("mailgate.helpdesk")


def follow_up_item(decision: Decision, mail: InboundMail) -> OutboxItem:
    """The outbox row that delivers this accepted follow-up into ``decision.ticket``."""
    raw = bytes(mail.raw)
    message_id = mail.message_id
    if message_id is None:
        message_id = f"<mailgate.{mail.raw_sha256[:40]}@mailgate.invalid>"
        raw = f"Message-ID: {message_id}\r\n".encode() + raw
    return OutboxItem(
        OutboxKind.HELPDESK, decision.envelope_from or "", decision.ticket or "", message_id, raw
    )


def deliver_row(
    engine: Engine, connector: Connector, ticket: str, message_id: str, body: bytes
) -> tuple[str, str]:
    """(status, detail) for the dispatcher: ``sent``; ``retry`` while the helpdesk is away;
    ``failed`` when it has no such ticket."""
    try:
        result = connector.deliver(FollowUp(ticket, message_id, body))
    except HelpdeskUnavailable as exc:
        state.count_error(engine, connector.name, "delivery", str(exc))
        return "retry", str(exc)
    except HelpdeskRefused as exc:
        state.count_error(engine, connector.name, "delivery", str(exc))
        log.warning("helpdesk_delivery_refused", helpdesk=connector.name, error=str(exc))
        return "failed", str(exc)
    state.clear_error(engine, connector.name)
    return "sent", f"{connector.name}: {result}"
