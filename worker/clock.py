"""Time in one convention: aware UTC everywhere (sqlmodel's UTCDateTime stores it)."""

from __future__ import annotations

from datetime import UTC, datetime

from worker.errors import UsageProblem


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_when(text: str) -> datetime:
    """An ISO 8601 date or time from the command line; naive values are taken as UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def option_time(text: str | None, option: str) -> datetime | None:
    """A command-line option's time (``--since``, ``--at``…): unset is None, a value that
    is no ISO 8601 date or time is a usage error naming the option."""
    if text is None:
        return None
    try:
        return parse_when(text)
    except ValueError:
        raise UsageProblem(f"{option}: not an ISO 8601 date or time: {text!r}") from None


def aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
