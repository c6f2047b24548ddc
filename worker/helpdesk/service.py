"""The helpdesk inside ``serve``: the periodic sync, and what readiness says about it.

Every replica runs the loop; the lease in ``helpdesk_state`` lets one of them sync at a time
and the others read how the last round went from the same row, so each ``/readyz`` says
``degraded: helpdesk …`` while the helpdesk cannot be reached (decisions go on from the
directory as last synced; deliveries wait in the outbox). Accepted follow-ups with no
destination at all (no helpdesk, no ``MAILGATE_FORWARD_TO``/``_URL``) are the other way
to lose track of mail silently, so they are a start-up warning and ``degraded`` too.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog
from sqlalchemy import Engine

from worker.helpdesk import state
from worker.helpdesk.config import parse_kinds
from worker.helpdesk.connector import Connector, HelpdeskUnavailable
from worker.helpdesk.sync import sync_round
from worker.settings import Settings

log = structlog.get_logger("mailgate.helpdesk")
NOWHERE = (
    "degraded: accepted follow-ups have nowhere to go "
    "(set MAILGATE_HELPDESK, MAILGATE_FORWARD_TO or MAILGATE_FORWARD_URL)"
)


def followups_nowhere(settings: Settings) -> bool:
    return not (settings.helpdesk or settings.forward_to or settings.forward_url)


def warn_at_startup(settings: Settings) -> None:
    if followups_nowhere(settings):
        log.warning(
            "followups_have_no_destination",
            hint="accepted follow-ups stay in the database only: set MAILGATE_HELPDESK, "
            "MAILGATE_FORWARD_TO or MAILGATE_FORWARD_URL",
        )


class HelpdeskHealth:
    """How the last sync or delivery went, as this process last saw it."""

    def __init__(self) -> None:
        self.problem: str | None = None

    def refresh(self, engine: Engine, name: str) -> None:
        row = state.read(engine, name)
        self.problem = row.last_error if row is not None else None


def readiness_checks(settings: Settings, health: HelpdeskHealth) -> dict[str, str]:
    """The checks ``/readyz`` adds: ``ok`` or a ``degraded: …`` line (still ready)."""
    checks: dict[str, str] = {}
    if followups_nowhere(settings):
        checks["followups"] = NOWHERE
    if settings.helpdesk:
        problem = health.problem
        checks["helpdesk"] = (
            f"degraded: helpdesk {settings.helpdesk}: {problem}" if problem else "ok"
        )
    return checks


async def sync_loop(
    engine: Engine,
    connector: Connector,
    settings: Settings,
    stopping: asyncio.Event,
    health: HelpdeskHealth,
) -> None:
    """A round at once, then every ``MAILGATE_HELPDESK_SYNC_SECONDS``, until stopping."""
    loop = asyncio.get_running_loop()
    interval = settings.helpdesk_sync_seconds
    lease = timedelta(seconds=max(2 * interval, 30))
    kinds = parse_kinds(settings.helpdesk_kinds or "")
    while not stopping.is_set():
        try:
            await loop.run_in_executor(
                None, lambda: sync_round(engine, connector, kinds, lease=lease)
            )
        except HelpdeskUnavailable:
            pass  # counted and logged by the round; readiness reads it below
        except Exception as exc:  # the database may be away: try again next round
            log.warning("helpdesk_sync_round_failed", error=type(exc).__name__)
        try:
            await loop.run_in_executor(None, health.refresh, engine, connector.name)
        except Exception as exc:
            log.warning("helpdesk_state_unreadable", error=type(exc).__name__)
        try:
            await asyncio.wait_for(stopping.wait(), timeout=interval)
        except TimeoutError:
            continue
