"""The ``mailgate`` command line (typer): the commands, their arguments and their help.

Each command is a few calls into the modules that do the work (``worker.ingress.pipe``,
``worker.ingress.replay``, ``worker.console``…). What a failure means is decided once, by
the ``@exits`` decorator (``worker.exits``): one line on stderr and a sysexits code. A new
command is a function here with ``@exits()`` above it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from worker import exits as codes
from worker.clock import parse_when, utcnow
from worker.decision import CHANNELS, DECISIONS
from worker.errors import ConfigError, UsageProblem
from worker.exits import exits, fail
from worker.settings import Settings
from worker.startup import open_gate, read_settings

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
app.add_typer(audit_app, name="audit")
app.add_typer(policy_app, name="policy")
app.add_typer(imap_app, name="imap")

_state: dict[str, Any] = {"config": None}
REPLAY = codes.ExitCodes(
    transient_hint="replay interrupted, rerun to continue "
    "(decided messages are skipped as duplicates): "
)


def settings() -> Settings:
    return read_settings(_state["config"])


def _when(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_when(text)
    except ValueError:
        raise UsageProblem(f"{option}: not an ISO 8601 date or time: {text!r}") from None


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
            min=1, max=64, help="Processes sharing the ports (SO_REUSEPORT); one per core pays."
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
        str | None, typer.Option(help="Envelope sender; <> or MAILER-DAEMON for null.")
    ] = None,
    recipient: Annotated[list[str] | None, typer.Option(help="Envelope recipient.")] = None,
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
    file: Annotated[str, typer.Argument(help="Message file, or - for standard input.")],
    sender: Annotated[str | None, typer.Option(help="Envelope sender; <> for null.")] = None,
    recipient: Annotated[list[str] | None, typer.Option(help="Envelope recipient.")] = None,
    at: Annotated[str | None, typer.Option(help="Decide as if received at this time.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Dry run: the decision and its full rule trace. Writes nothing, sends nothing."""
    from worker.console import print_explain, print_json
    from worker.ingress import pipe

    when = _when(at, "--at")
    delivery = pipe.PipeDelivery(source=file, sender=sender, recipients=tuple(recipient or []))
    decision = pipe.explain(settings(), delivery, when)
    if as_json:
        print_json(decision.as_dict())
    else:
        print_explain(decision)


@app.command()
@exits(REPLAY)
def replay(
    archive: Annotated[Path, typer.Argument(help="An mbox file or a Maildir folder.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide, write nothing.")] = False,
) -> None:
    """Decide an archive, each message under the policy in force when it was received."""
    from rich.console import Console
    from rich.progress import Progress

    from worker.console import print_replay
    from worker.ingress import replay as replays

    cfg = settings()
    total = replays.count(archive)
    gate = open_gate(cfg)
    with Progress(console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task("replaying" + (" (dry run)" if dry_run else ""), total=total)
        summary = replays.replay(
            gate, archive, dry_run=dry_run, advance=lambda: progress.advance(task)
        )
        progress.update(task, completed=total)
    print_replay(archive, summary, dry_run)


@tickets_app.command("add")
@exits()
def tickets_add(
    ticket_id: Annotated[str, typer.Argument(metavar="ID")],
    kind: Annotated[str, typer.Option(help="technical or customer_care")],
    participant: Annotated[list[str] | None, typer.Option(help="Participant address.")] = None,
    domain: Annotated[list[str] | None, typer.Option(help="Organisation domain.")] = None,
    status: Annotated[str, typer.Option(help="open or closed")] = "open",
    closed_at: Annotated[str | None, typer.Option(help="When it was closed (ISO 8601).")] = None,
) -> None:
    """Add or replace one ticket."""
    from pydantic import ValidationError

    from worker.console import out
    from worker.tickets import TicketRecord, describe_error, upsert

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
    upsert(open_gate(cfg).engine, [record])
    out.print(f"ticket {record.id} saved ({record.kind}, {record.status})")


@tickets_app.command("import")
@exits()
def tickets_import(file: Annotated[Path, typer.Argument(help="CSV or JSON lines.")]) -> None:
    """Import tickets; a bad row is reported with its line and field, and nothing changes."""
    from worker.console import out
    from worker.tickets import parse_file, upsert

    cfg = settings()
    records = parse_file(file)
    count = upsert(open_gate(cfg).engine, records)
    out.print(f"imported {count} tickets from {file}")


@tickets_app.command("token")
@exits()
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


@app.command()
@exits()
def decisions(
    since: Annotated[str | None, typer.Option(help="From this time (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (ISO 8601).")] = None,
    decision: Annotated[
        str | None, typer.Option(help="Only this decision: " + ", ".join(DECISIONS) + ".")
    ] = None,
    rule: Annotated[str | None, typer.Option(help="Only decided by this rule.")] = None,
    sender: Annotated[str | None, typer.Option(help="Only this envelope sender.")] = None,
    ticket: Annotated[str | None, typer.Option(help="Only this ticket.")] = None,
    channel: Annotated[
        str | None, typer.Option(help="Only this channel: " + ", ".join(CHANNELS) + ".")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, json or csv")] = "table",
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    public_id: Annotated[
        str | None, typer.Option("--id", help="The id from the SMTP answer (queued as …).")
    ] = None,
    rejected: Annotated[bool, typer.Option("--rejected", help="Every rejection.")] = False,
    before: Annotated[int | None, typer.Option(help="Only older than this seq (paging).")] = None,
) -> None:
    """The decision log, with the delivery state of each automatic reply."""
    from worker.console import print_decisions
    from worker.store.queries import DecisionFilter

    if fmt not in ("table", "json", "csv"):
        raise UsageProblem(f"--format: expected table, json or csv, got {fmt!r}")
    if decision is not None and decision not in DECISIONS:
        raise UsageProblem(
            f"--decision: unknown decision {decision!r}; one of {', '.join(DECISIONS)}"
        )
    if channel is not None and channel not in CHANNELS:
        raise UsageProblem(f"--channel: unknown channel {channel!r}; one of {', '.join(CHANNELS)}")
    wanted = DecisionFilter(
        since=_when(since, "--since"),
        until=_when(until, "--until"),
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
    print_decisions(open_gate(settings()).read_engine, wanted, fmt)


@app.command()
@exits()
def report(
    since: Annotated[str | None, typer.Option(help="From this time (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (ISO 8601).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="text, json, csv or html")] = "text",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write here.")] = None,
) -> None:
    """Aggregates for ops and auditors over a period."""
    import sys

    from worker.console import out
    from worker.files import write_text
    from worker.report import build_report, render_csv, render_html, render_json, render_text

    renderers = {"text": render_text, "json": render_json, "csv": render_csv, "html": render_html}
    if fmt not in renderers:
        raise UsageProblem(f"--format: expected one of {', '.join(renderers)}, got {fmt!r}")
    start, end = _when(since, "--since"), _when(until, "--until")
    text = renderers[fmt](build_report(open_gate(settings()).read_engine, start, end))
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
        typer.Option("--export", help="Verify an export file offline instead of the database."),
    ] = None,
) -> None:
    """Check the decision chain; exit 1 naming the first broken row."""
    from worker.audit import verify_database, verify_export
    from worker.console import out
    from worker.files import opened_for_reading

    if export is not None:
        with opened_for_reading(export) as handle:
            result = verify_export(handle)
        if not result.ok:
            fail(f"audit chain broken in {export}: {result.problem}", 1)
        out.print(f"audit export intact: {result.rows} decisions")
        return
    result, head = verify_database(open_gate(settings()).read_engine)
    if not result.ok:
        fail(f"audit chain broken: {result.problem}", 1)
    out.print(f"audit chain intact: {result.rows} decisions, head {head[:16]}…")


@audit_app.command("export")
@exits()
def audit_export(file: Annotated[Path, typer.Argument(help="JSON lines to write.")]) -> None:
    """Write the decision chain for an auditor: one JSON line per decision, then the head."""
    from worker.audit import export_chain
    from worker.console import out
    from worker.files import opened_for_writing

    gate = open_gate(settings())
    with opened_for_writing(file) as handle:
        count, head = export_chain(gate.read_engine, handle)
    out.print(f"exported {count} decisions to {file}; head {head}")


@policy_app.command("check")
@exits()
def policy_check(
    file: Annotated[Path | None, typer.Argument(help="One policy file; default: all.")] = None,
) -> None:
    """Validate policy documents; a problem names the file, the key and what is wrong."""
    from worker.console import out
    from worker.files import read_bytes
    from worker.policy.document import PolicySet, load_policy

    cfg = settings()
    if file is not None:
        read_bytes(file)  # a missing file is no input (66), not a broken policy (1)
    try:
        policies = (
            [load_policy(file)] if file is not None else PolicySet.load(cfg.policy_dir).policies
        )
    except ConfigError as exc:
        fail(str(exc), 1)
    for policy in policies:
        out.print(
            f"ok  {policy.id}  effective {policy.document.effective_from.date()}  {policy.path}"
        )


@policy_app.command("show")
@exits()
def policy_show(
    at: Annotated[str | None, typer.Option(help="In force at this time instead of now.")] = None,
) -> None:
    """Which policy version is in force now (or at --at)."""
    from worker.console import print_policy
    from worker.policy.document import PolicySet

    cfg = settings()
    policies = PolicySet.load(cfg.policy_dir)
    when = _when(at, "--at") or utcnow()
    policy = policies.in_force(when)
    if policy is None:
        fail(f"no policy in force at {when.isoformat()}", 1)
    print_policy(policy, cfg.support_domains)


@imap_app.command("check")
@exits()
def imap_check() -> None:
    """Connect to each MAILGATE_IMAP_URL mailbox and say what is there; changes nothing."""
    from worker.console import print_mailbox_checks

    cfg = settings()
    if not cfg.imap_url:
        raise ConfigError("MAILGATE_IMAP_URL is not set")
    if print_mailbox_checks(cfg):
        raise typer.Exit(1)


def main() -> None:
    codes.run(app)
