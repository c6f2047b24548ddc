"""The helpdesk settings checked together, and the connector they configure.

``MAILGATE_HELPDESK`` names the connector; its URL and token are then required, the queue
→ kind map (``MAILGATE_HELPDESK_KINDS``) must name known kinds, and ``*`` gives the kind of
every queue not named (``technical`` when unset).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from worker.helpdesk.references import HelpdeskReferences

if TYPE_CHECKING:
    from worker.helpdesk.connector import Connector
    from worker.settings import Settings
    from worker.workflow_settings import HelpdeskSettings

TICKET_KINDS = ("technical", "customer_care")
DEFAULT_KIND = "technical"


def parse_kinds(value: str) -> dict[str, str]:
    """``Queue:kind,Queue:kind`` as a mapping; a bad entry raises ValueError naming it."""
    kinds: dict[str, str] = {}
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        queue, sep, kind = entry.rpartition(":")
        if not sep or not queue.strip() or kind.strip() not in TICKET_KINDS:
            raise ValueError(
                f"MAILGATE_HELPDESK_KINDS: expected Queue:technical or Queue:customer_care, "
                f"got {entry!r}"
            )
        kinds[queue.strip()] = kind.strip()
    return kinds


def kind_of(kinds: dict[str, str], queue: str) -> str:
    return kinds.get(queue) or kinds.get("*") or DEFAULT_KIND


def check_helpdesk_settings(settings: HelpdeskSettings) -> None:
    """Raise ValueError (naming the setting) for a helpdesk configuration that cannot work."""
    parse_kinds(settings.helpdesk_kinds or "")
    if settings.helpdesk_url:
        parts = urlsplit(settings.helpdesk_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("MAILGATE_HELPDESK_URL: expected the helpdesk's http(s):// URL")
    if settings.helpdesk is None:
        return
    needed = f"required with MAILGATE_HELPDESK={settings.helpdesk}"
    if not settings.helpdesk_url:
        raise ValueError(f"MAILGATE_HELPDESK_URL is {needed}")
    if not settings.helpdesk_token:
        raise ValueError(f"MAILGATE_HELPDESK_TOKEN or _FILE is {needed}")


def references(settings: Settings) -> HelpdeskReferences:
    return HelpdeskReferences.for_helpdesk(settings.helpdesk, settings.helpdesk_name)


def connector_for(settings: Settings) -> Connector | None:
    """The configured connector, or None without ``MAILGATE_HELPDESK``."""
    if settings.helpdesk != "rt":
        return None
    from worker.helpdesk.rt import RequestTracker

    assert settings.helpdesk_url and settings.helpdesk_token
    return RequestTracker(settings.helpdesk_url, settings.helpdesk_token)
