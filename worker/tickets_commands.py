"""The ``mailgate tickets`` commands for the directory as a helpdesk feeds it: ``list``,
``show``, ``remove`` and ``sync`` (one round with ``MAILGATE_HELPDESK``), and the check that
makes ``tickets add`` refuse an id no configured reference could match."""

from __future__ import annotations

from collections.abc import Callable
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


def register(app: typer.Typer, settings: Callable[[], Settings]) -> None:
    """Add the commands to the ``tickets`` group."""

    @app.command("list")
    @exits()
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

    @app.command("show")
    @exits()
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

    @app.command("remove")
    @exits()
    def tickets_remove(ticket_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
        """Remove one ticket from the directory (the helpdesk's own record is not touched)."""
        from worker.console import out
        from worker.errors import NoInputError
        from worker.ticket_directory import remove_ticket

        if not remove_ticket(open_gate(settings()).engine, ticket_id):
            raise NoInputError(f"ticket {ticket_id}", "not in the directory")
        out.print(f"ticket {ticket_id.upper()} removed")

    @app.command("sync")
    @exits()
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
