"""The ``mailgate`` command line (typer): the commands, their arguments and their help.

Each command is a few calls into the modules that do the work (``worker.ingress.pipe``,
``worker.ingress.replay``, ``worker.console``…). What a failure means is decided once, by
the ``@exits`` decorator (``worker.exits``): one line on stderr and a sysexits code. A new
command is a function here with ``@exits()`` above it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from worker import exits as codes
from worker.cli_config import register as register_policy_commands
from worker.cli_held import audit_access, held_app, operators_app
from worker.clock import option_time
from worker.decision import CHANNELS, DECISIONS
from worker.errors import UsageProblem
from worker.exits import exits, fail
from worker.startup import open_gate, open_store, read_settings
from worker.tickets_commands import register as register_ticket_commands

if TYPE_CHECKING:
    from worker.settings import Settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="mailgate: enforce a support desk's email channel policy.",
)
tickets_app = typer.Typer(no_args_is_help=True, help="The ticket directory.")
audit_app = typer.Typer(no_args_is_help=True, help="The tamper-evident decision chain.")
policy_app = typer.Typer(no_args_is_help=True, help="Policy documents.")
imap_app = typer.Typer(no_args_is_help=True, help="IMAP mailboxes.")
app.add_typer(tickets_app, name="tickets")
register_ticket_commands(tickets_app, lambda: settings())
app.add_typer(audit_app, name="audit")
app.add_typer(policy_app, name="policy")
app.add_typer(imap_app, name="imap")
# Held mail and named operators (SPEC "Held mail and operators"): worker.cli_held.
app.add_typer(held_app, name="held")
app.add_typer(operators_app, name="operators")
audit_app.command("access")(audit_access)

_state: dict[str, Any] = {"config": None}
SINCE_HELP = "From this time (ISO 8601)."
UNTIL_HELP = "Before this time (ISO 8601)."


def settings() -> Settings:
    return read_settings(_state["config"])


_when = option_time  # an option's time; a bad value is a usage error naming the option


def _period(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """``--since`` and ``--until``; a period that ends before it starts is a usage error
    (it would silently find nothing)."""
    start, end = _when(since, "--since"), _when(until, "--until")
    if start is not None and end is not None and start >= end:
        raise UsageProblem(f"--since {since} is not before --until {until}")
    return start, end


@app.callback()
def main_options(
    config: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="TOML settings file (keys without the MAILGATE_ prefix); the environment "
            "still wins. An MTA's pipe passes no environment: give this there.",
        ),
    ] = None,
) -> None:
    _state["config"] = config


@app.command()
@exits()
def serve(
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            metavar="N",
            help="Processes sharing the ports (SO_REUSEPORT); one per core pays.",
        ),
    ] = 1,
) -> None:
    """Run every configured listener and the outbox worker until SIGTERM."""
    from worker.serve import serve as run_server

    code = run_server(open_gate(settings()), workers=workers)
    if code:
        raise typer.Exit(code)


@app.command()
@exits()
def dispatch() -> None:
    """Run only the outbox worker (relay, forwards, webhooks, spool): for pipe installs."""
    from worker.serve import serve as run_server

    # No listener and no mailbox: exactly `serve` with every listener off.
    off = {"smtp_listen": None, "lmtp_listen": None, "milter_listen": None, "ingest_socket": "off"}
    cfg = settings().model_copy(update=off | {"http_listen": None, "imap_url": None})
    code = run_server(open_gate(cfg))
    if code:
        raise typer.Exit(code)


@app.command()
@exits(codes.PIPE)
def ingest(
    arguments: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="FILE|- RECIPIENT",
            help="Message file, or - for standard input (the default). Addresses after "
            "it are further recipients: Postfix expands --recipient ${recipient} so.",
            show_default=False,
        ),
    ] = None,
    sender: Annotated[
        str | None,
        typer.Option(metavar="ADDRESS", help="Envelope sender; <> or MAILER-DAEMON for null."),
    ] = None,
    recipient: Annotated[
        list[str] | None, typer.Option(metavar="ADDRESS", help="Envelope recipient.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision object.")] = False,
) -> None:
    """Decide one message (an MTA pipe transport).

    Exit 0 decided, 64 usage, 65 unreadable input, 75 retry later (also a bad setting).
    """
    import sys

    from worker.ingress import pipe

    delivery = pipe.PipeDelivery.from_arguments(arguments or [], sender, recipient or [])
    decision = pipe.ingest(settings(), delivery)
    sys.stdout.write(pipe.output(decision, as_json))


@app.command()
@exits()
def explain(
    file: Annotated[
        str | None,
        typer.Argument(metavar="FILE", help="Message file, or - for standard input."),
    ] = None,
    sender: Annotated[
        str | None, typer.Option(metavar="ADDRESS", help="Envelope sender; <> for null.")
    ] = None,
    recipient: Annotated[
        list[str] | None, typer.Option(metavar="ADDRESS", help="Envelope recipient.")
    ] = None,
    at: Annotated[
        str | None, typer.Option(metavar="TIME", help="Decide as if received at this time.")
    ] = None,
    decision_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            metavar="ID",
            help="Instead of FILE: the stored decision (its id from the SMTP answer, or "
            "its seq) with the trace recorded when it was decided.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision object.")] = False,
) -> None:
    """Dry run: the decision and its full rule trace. Writes nothing, sends nothing."""
    from worker.console import print_explain, print_json

    if (file is None) == (decision_id is None):
        raise UsageProblem("give a message FILE or --id of a past decision, not both")
    if decision_id is not None:
        from worker.stored_decision import find_stored

        record = find_stored(open_store(settings()), decision_id)
    else:
        from worker.ingress import pipe

        when = _when(at, "--at")
        delivery = pipe.PipeDelivery(
            source=str(file), sender=sender, recipients=tuple(recipient or [])
        )
        record = pipe.explain(settings(), delivery, when).as_dict()
    if as_json:
        print_json(record)
    else:
        print_explain(record)


@app.command()
@exits(codes.REPLAY)
def replay(
    archive: Annotated[
        Path,
        typer.Argument(
            metavar="MBOX|MAILDIR|FILE", help="An mbox file, a Maildir folder or one message."
        ),
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide, write nothing.")] = False,
) -> None:
    """Decide an archive, each message under the policy in force when it was received."""
    from worker.console import print_replay
    from worker.ingress import replay as replays

    cfg = settings()
    total = replays.count(archive)
    summary = replays.replay_with_progress(open_gate(cfg), archive, total, dry_run=dry_run)
    print_replay(archive, summary, dry_run)


@app.command()
@exits()
def migrate() -> None:
    """Bring the database to this release's schema (every command also does it on start)."""
    from worker.console import out
    from worker.store.db import make_engine, migrate_command

    cfg = settings()
    before, after = migrate_command(make_engine(cfg.effective_database_url, cfg.db_busy_timeout))
    if before == after:
        out.print(f"database schema already at revision {after}")
    else:
        out.print(f"database schema migrated from revision {before or 'none'} to {after}")


@app.command()
@exits()
def decisions(
    since: Annotated[str | None, typer.Option(metavar="TIME", help=SINCE_HELP)] = None,
    until: Annotated[str | None, typer.Option(metavar="TIME", help=UNTIL_HELP)] = None,
    decision: Annotated[
        str | None,
        typer.Option(metavar="DECISION", help="Only this decision: " + ", ".join(DECISIONS) + "."),
    ] = None,
    rule: Annotated[
        str | None, typer.Option(metavar="RULE", help="Only decided by this rule.")
    ] = None,
    sender: Annotated[
        str | None, typer.Option(metavar="ADDRESS", help="Only this envelope sender.")
    ] = None,
    ticket: Annotated[str | None, typer.Option(metavar="ID", help="Only this ticket.")] = None,
    channel: Annotated[
        str | None,
        typer.Option(metavar="CHANNEL", help="Only this channel: " + ", ".join(CHANNELS) + "."),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", metavar="FORMAT", help="table, json or csv")
    ] = "table",
    limit: Annotated[int, typer.Option(metavar="N", help="At most this many, newest first.")] = 100,
    public_id: Annotated[
        str | None,
        typer.Option("--id", metavar="ID", help="The id from the SMTP answer (queued as …)."),
    ] = None,
    rejected: Annotated[bool, typer.Option("--rejected", help="Every rejection.")] = False,
    before: Annotated[
        int | None, typer.Option(metavar="SEQ", help="Only older than this seq (paging).")
    ] = None,
) -> None:
    """The decision log, with the delivery state of each automatic reply."""
    from worker.console import print_decisions
    from worker.decision_log import check_options, decision_records
    from worker.store.queries import DecisionFilter

    check_options(fmt, decision, channel)
    start, end = _period(since, until)
    wanted = DecisionFilter(
        since=start,
        until=end,
        decision=decision,
        rule=rule,
        sender=sender,
        ticket=ticket,
        channel=channel,
        limit=limit,
        public_id=public_id,
        rejected=rejected,
        before=before,
    )
    print_decisions(decision_records(open_store(settings()), wanted), fmt)


@app.command()
@exits()
def report(
    since: Annotated[str | None, typer.Option(metavar="TIME", help=SINCE_HELP)] = None,
    until: Annotated[str | None, typer.Option(metavar="TIME", help=UNTIL_HELP)] = None,
    fmt: Annotated[
        str, typer.Option("--format", metavar="FORMAT", help="text, json, csv or html")
    ] = "text",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", metavar="FILE", help="Write here.")
    ] = None,
) -> None:
    """Aggregates for ops and auditors over a period."""
    import sys

    from worker.console import out
    from worker.files import write_text
    from worker.report import build_report, render

    start, end = _period(since, until)
    text = render(build_report(open_store(settings()), start, end), fmt)
    if output is None:
        sys.stdout.write(text)
        return
    write_text(output, text)
    out.print(f"report written to {output}")


@audit_app.command("verify")
@exits()
def audit_verify(
    export: Annotated[
        Path | None,
        typer.Option(
            "--export",
            metavar="FILE",
            help="Verify an export file offline instead of the database.",
        ),
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option("--ca", help="The TSA's CA certificate (default MAILGATE_TSA_CA_FILE)."),
    ] = None,
) -> None:
    """Check the chain and its anchors; exit 1 naming the first broken record."""
    from worker.anchoring import print_verified, verify_command

    verified = verify_command(settings, export, ca_file)
    if not verified.result.ok:
        fail(f"audit chain broken{verified.where}: {verified.result.problem}", 1)
    print_verified(verified)


@audit_app.command("export")
@exits()
def audit_export(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="JSON lines to write.")],
) -> None:
    """Write the chain for an auditor: one JSON line per record, then the head."""
    from worker.chain_store import export_chain
    from worker.console import out
    from worker.files import opened_for_writing

    engine = open_store(settings())
    with opened_for_writing(file) as handle:
        count, head = export_chain(engine, handle)
    out.print(f"exported {count} records to {file}; head {head}")


def _evidence_commands() -> None:
    from worker.cli_evidence import register

    register(app, audit_app, settings, _when)
    register_policy_commands(policy_app, imap_app, settings)


_evidence_commands()


def main() -> None:
    import sys

    from worker.cli_args import hoist_config, plain_metavars

    sys.argv[1:] = hoist_config(sys.argv[1:])
    plain_metavars()
    codes.run(app)
