"""The ``mailgate tickets`` commands: ``add``, ``import`` and ``token`` for a directory fed by
hand, ``list``, ``show``, ``remove`` and ``sync`` (one round with ``MAILGATE_HELPDESK``) for
one a helpdesk feeds; ``tickets add`` refuses an id no configured reference could match.
``register`` adds them to the CLI's ``tickets`` group with the CLI's way to read settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from worker.clock import utcnow
from worker.errors import ConfigError, UsageProblem
from worker.exits import exits
from worker.startup import open_gate

if TYPE_CHECKING:
    from worker.settings import Settings


def refuse_unmatchable(gate: Any, ticket_id: str) -> None:
    from worker.ticket_directory import unmatchable

    why = unmatchable(ticket_id, gate.policies.in_force(utcnow()), gate.references)
    if why:
        raise UsageProblem(why)


_settings: list[Callable[[], Settings]] = []  # the CLI's reader, given to register()


def settings() -> Settings:
    return _settings[0]()


def tickets_add(
    ticket_id: Annotated[str, typer.Argument(metavar="ID")],
    kind: Annotated[str, typer.Option(metavar="KIND", help="technical or customer_care")],
    participant: Annotated[
        list[str] | None, typer.Option(metavar="ADDRESS", help="Participant address.")
    ] = None,
    domain: Annotated[
        list[str] | None, typer.Option(metavar="DOMAIN", help="Organisation domain.")
    ] = None,
    status: Annotated[str, typer.Option(metavar="STATUS", help="open or closed")] = "open",
    closed_at: Annotated[
        str | None, typer.Option(metavar="TIME", help="When it was closed (ISO 8601).")
    ] = None,
) -> None:
    """Add or replace one ticket."""
    from pydantic import ValidationError

    from worker.console import out
    from worker.tickets import TicketRecord, describe_error, upsert

    if closed_at is not None and status != "closed":
        raise UsageProblem(f"--closed-at: only for a closed ticket (--status closed), not {status}")
    cfg = settings()
    data: dict[str, Any] = {
        "id": ticket_id,
        "kind": kind,
        "status": status,
        "participants": participant or [],
        "domains": domain or [],
    }
    if closed_at:
        data["closed_at"] = closed_at
    try:
        record = TicketRecord.model_validate(data)
    except ValidationError as exc:
        raise UsageProblem(describe_error(exc)) from None
    gate = open_gate(cfg)
    refuse_unmatchable(gate, record.id)
    upsert(gate.engine, [record])
    out.print(f"ticket {record.id} saved ({record.kind}, {record.status})")


def tickets_import(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="CSV or JSON lines.")],
) -> None:
    """Import tickets; a bad row is reported with its line and field, and nothing changes."""
    from worker.console import out
    from worker.tickets import parse_file, upsert

    cfg = settings()
    records = parse_file(file)
    count = upsert(open_gate(cfg).engine, records)
    out.print(f"imported {count} tickets from {file}")


def tickets_token(ticket_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Print the signed reply address and a Message-ID for the ticket's notifications."""
    from worker.console import out
    from worker.matching import normalize_ticket_id
    from worker.policy.document import PolicySet
    from worker.runtime import reply_secret
    from worker.tokens import ReplyTokens

    cfg = settings()
    policy = PolicySet.load(cfg.policy_dir).in_force(utcnow())
    if policy is None:
        raise ConfigError("no policy in force now")
    domain = (cfg.support_domains or policy.document.support_domains)[0]
    tokens = ReplyTokens(reply_secret(cfg))
    ticket = normalize_ticket_id(ticket_id)
    out.print(
        f"Reply-To: {tokens.reply_address(ticket, policy.document.support_local_part, domain)}"
    )
    out.print(f"Message-ID: {tokens.message_id(ticket, domain)}")


def tickets_list(
    status: Annotated[str | None, typer.Option(help="open or closed")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, json or csv")] = "table",
) -> None:
    """The tickets in the directory, most recently changed first."""
    from worker.console import out
    from worker.ticket_directory import list_tickets, render

    if fmt not in ("table", "json", "csv"):
        raise UsageProblem(f"--format: expected table, json or csv, got {fmt!r}")
    rows = list_tickets(open_gate(settings()).engine, status)
    out.print(render(rows, fmt), markup=False)


def tickets_show(
    ticket_id: Annotated[str, typer.Argument(metavar="ID")],
    fmt: Annotated[str, typer.Option("--format", help="table, json or csv")] = "table",
) -> None:
    """One ticket: kind, status, participants, domains, closed time, where it came from."""
    from worker.console import out
    from worker.errors import NoInputError
    from worker.ticket_directory import get_ticket, render

    row = get_ticket(open_gate(settings()).engine, ticket_id)
    if row is None:
        raise NoInputError(f"ticket {ticket_id}", "not in the directory")
    out.print(render([row], fmt if fmt in ("json", "csv") else "table"), markup=False)


def tickets_remove(ticket_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Remove one ticket from the directory (the helpdesk's own record is not touched)."""
    from worker.console import out
    from worker.errors import NoInputError
    from worker.ticket_directory import remove_ticket

    if not remove_ticket(open_gate(settings()).engine, ticket_id):
        raise NoInputError(f"ticket {ticket_id}", "not in the directory")
    out.print(f"ticket {ticket_id.upper()} removed")


def tickets_sync(
    full: Annotated[
        bool, typer.Option("--full", help="Read every ticket, not just changes.")
    ] = False,
) -> None:
    """One sync round with the helpdesk (MAILGATE_HELPDESK) into the directory."""
    from worker.console import out
    from worker.errors import TransientError
    from worker.helpdesk.config import connector_for, parse_kinds
    from worker.helpdesk.connector import HelpdeskUnavailable
    from worker.helpdesk.sync import sync_round

    cfg = settings()
    connector = connector_for(cfg)
    if connector is None:
        raise ConfigError("no helpdesk configured: set MAILGATE_HELPDESK, _URL and _TOKEN")
    gate = open_gate(cfg)
    try:
        report = sync_round(
            gate.engine, connector, parse_kinds(cfg.helpdesk_kinds or ""), full=full
        )
    except HelpdeskUnavailable as exc:
        raise TransientError(f"helpdesk {connector.name}: {exc}") from None
    assert report is not None
    out.print(f"synced {report.tickets} tickets from {connector.name} (cursor {report.cursor})")


def register(app: typer.Typer, read_settings: Callable[[], Settings]) -> None:
    """Add the commands to the ``tickets`` group."""
    _settings[:] = [read_settings]
    for name, command in (
        ("add", tickets_add),
        ("import", tickets_import),
        ("token", tickets_token),
        ("list", tickets_list),
        ("show", tickets_show),
        ("remove", tickets_remove),
        ("sync", tickets_sync),
    ):
        app.command(name)(exits()(command))
