"""The ``mailgate`` command line (typer): one function per command, no logic beyond arguments.

Every command reads the settings once, and any ``ConfigError`` becomes one line on stderr
and a non-zero exit before anything starts. ``ingest`` follows the sendmail convention of
pipe transports: exit 0 once the message is decided and committed, 75 (EX_TEMPFAIL) on any
failure, so the MTA keeps the message and retries.
"""

from __future__ import annotations

import csv
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from worker.clock import parse_when, utcnow
from worker.errors import ConfigError, InputError, TransientError
from worker.settings import Settings, load_settings

if TYPE_CHECKING:
    from worker.mail import Envelope
    from worker.pipeline import Mailgate

EX_OK, EX_USAGE, EX_DATAERR, EX_TEMPFAIL, EX_CONFIG = 0, 64, 65, 75, 78

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

out = Console(highlight=False, soft_wrap=True)
_state: dict[str, Any] = {"config": None}


def fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"mailgate: {message}\n")
    raise typer.Exit(code)


def settings(config_error_code: int = EX_CONFIG) -> Settings:
    from worker.logs import configure_logging

    try:
        loaded = load_settings(_state["config"])
    except ConfigError as exc:
        fail(str(exc), config_error_code)
    configure_logging(loaded.log_level)
    return loaded


def open_gate(cfg: Settings, error_code: int = EX_CONFIG) -> Mailgate:
    from worker.pipeline import Mailgate

    try:
        return Mailgate.open(cfg)
    except ConfigError as exc:
        fail(str(exc), error_code)
    except TransientError as exc:
        fail(str(exc), EX_TEMPFAIL)
    except OSError as exc:
        fail(f"data directory {cfg.data_dir}: {exc.strerror}", EX_TEMPFAIL)


@app.callback()
def main_options(
    config: Annotated[Path | None, typer.Option(help="TOML settings file.")] = None,
) -> None:
    _state["config"] = config


def _read_message(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    return Path(source).read_bytes()


def _envelope(
    raw: bytes,
    sender: str | None,
    recipients: list[str],
    channel: str,
    received_at: datetime | None = None,
) -> Envelope:
    from worker.mail import Envelope, InboundMail, normalize_address

    if sender is not None:
        mail_from = "" if sender.strip() in ("", "<>") else normalize_address(sender)
    else:
        mail = InboundMail.from_bytes(raw)
        path = mail.return_path
        mail_from = path if path is not None else mail.from_address
    rcpts = tuple(a for a in (normalize_address(r) for r in recipients) if a)
    return Envelope(
        mail_from=mail_from, rcpt_tos=rcpts, channel=channel, received_at=received_at or utcnow()
    )


@app.command()
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

    cfg = settings()
    gate = open_gate(cfg)
    try:
        code = run_server(gate, workers=workers)
    except ConfigError as exc:
        fail(str(exc), EX_CONFIG)
    if code:
        raise typer.Exit(code)


@app.command()
def ingest(
    file: Annotated[str, typer.Argument(help="Message file, or - for standard input.")] = "-",
    sender: Annotated[str | None, typer.Option(help="Envelope sender; <> for null.")] = None,
    recipient: Annotated[list[str] | None, typer.Option(help="Envelope recipient.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision object.")] = False,
) -> None:
    """Decide one message (an MTA pipe transport): exit 0 when decided, 75 to retry."""
    cfg = settings(EX_TEMPFAIL)
    try:
        raw = _read_message(file)
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}", EX_TEMPFAIL if file == "-" else EX_DATAERR)
    gate = open_gate(cfg, EX_TEMPFAIL)
    try:
        decision = gate.ingest(raw, _envelope(raw, sender, recipient or [], "pipe"))
    except TransientError as exc:
        fail(f"not decided, retry later: {exc}", EX_TEMPFAIL)
    except Exception as exc:  # the MTA must keep the message whatever went wrong
        import structlog

        structlog.get_logger("mailgate").exception("ingest_failed")
        fail(f"not decided, retry later: internal error {type(exc).__name__}", EX_TEMPFAIL)
    if as_json:
        sys.stdout.write(json.dumps(decision.as_dict()) + "\n")
    else:
        reply = decision.reply
        out.print(
            f"{decision.decision} (rule {decision.rule}, policy {decision.policy}, "
            f"ticket {decision.ticket or '-'}; reply {reply['status']}"
            f"{': ' + str(reply['reason']) if reply['reason'] else ''})"
        )


@app.command()
def explain(
    file: Annotated[str, typer.Argument(help="Message file, or - for standard input.")],
    sender: Annotated[str | None, typer.Option(help="Envelope sender; <> for null.")] = None,
    recipient: Annotated[list[str] | None, typer.Option(help="Envelope recipient.")] = None,
    at: Annotated[str | None, typer.Option(help="Decide as if received at this time.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Dry run: the decision and its full rule trace. Writes nothing, sends nothing."""
    cfg = settings()
    try:
        raw = _read_message(file)
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}", EX_DATAERR)
    gate = open_gate(cfg)
    when = _when(at, "--at") if at else None
    try:
        decision = gate.explain(raw, _envelope(raw, sender, recipient or [], "pipe", when))
    except TransientError as exc:
        fail(str(exc), EX_TEMPFAIL)
    if as_json:
        sys.stdout.write(json.dumps(decision.as_dict()) + "\n")
        return
    out.print(f"decision: {decision.decision}  (rule {decision.rule})")
    out.print(f"policy:   {decision.policy}  sha256 {decision.policy_sha256}")
    out.print(f"ticket:   {decision.ticket or '-'}")
    out.print(f"reply:    {decision.reply['status']}  {decision.reply['reason'] or ''}")
    table = Table("rule", "result", "reason", show_lines=False)
    for step in decision.trace:
        table.add_row(step["rule"], "HIT" if step["hit"] else "miss", step["reason"])
    out.print(table)


def _when(text: str, option: str) -> datetime:
    try:
        return parse_when(text)
    except ValueError:
        fail(f"{option}: not an ISO 8601 date or time: {text!r}", EX_USAGE)


@app.command()
def replay(
    archive: Annotated[Path, typer.Argument(help="An mbox file or a Maildir folder.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide, write nothing.")] = False,
) -> None:
    """Decide an archive, each message under the policy in force when it was received."""
    from rich.progress import Progress

    from worker import archive as archives
    from worker.mail import InboundMail

    cfg = settings()
    try:
        total = archives.count(archive)
    except (ValueError, OSError) as exc:
        fail(str(exc), EX_DATAERR)
    gate = open_gate(cfg)
    counts: dict[str, int] = {}
    undated = 0
    batch: list[tuple[bytes, Envelope]] = []

    def flush() -> None:
        if not batch:
            return
        if dry_run:
            decided = [gate.explain(raw, envelope) for raw, envelope in batch]
        else:
            decided = gate.ingest_many(batch)
        for decision in decided:
            counts[decision.decision] = counts.get(decision.decision, 0) + 1
        batch.clear()

    try:
        with Progress(console=Console(stderr=True), transient=False) as progress:
            task = progress.add_task("replaying" + (" (dry run)" if dry_run else ""), total=total)
            for raw in archives.messages(archive):
                mail = InboundMail.from_bytes(raw)
                when = archives.received_at(mail)
                if when is None:
                    undated += 1
                base = _envelope(raw, None, [], "replay", when)
                batch.append((raw, base))
                if len(batch) >= 100:
                    flush()
                progress.advance(task)
            flush()
            progress.update(task, completed=total)
    except TransientError as exc:
        fail(
            f"replay interrupted, rerun to continue (decided messages are skipped as "
            f"duplicates): {exc}",
            EX_TEMPFAIL,
        )
    table = Table(
        "decision",
        "messages",
        title=f"{archive} ({'dry run, nothing written' if dry_run else 'recorded'})",
    )
    for name, number in sorted(counts.items(), key=lambda item: -item[1]):
        table.add_row(name, str(number))
    table.add_row("total", str(sum(counts.values())))
    out.print(table)
    if undated:
        out.print(f"{undated} messages carried no usable date and were decided as received now")


@tickets_app.command("add")
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
        fail(describe_error(exc), EX_USAGE)
    gate = open_gate(cfg)
    try:
        upsert(gate.engine, [record])
    except TransientError as exc:
        fail(str(exc), EX_TEMPFAIL)
    out.print(f"ticket {record.id} saved ({record.kind}, {record.status})")


@tickets_app.command("import")
def tickets_import(file: Annotated[Path, typer.Argument(help="CSV or JSON lines.")]) -> None:
    """Import tickets; a bad row is reported with its line and field, and nothing changes."""
    from worker.tickets import parse_file, upsert

    cfg = settings()
    try:
        records = parse_file(file)
    except InputError as exc:
        fail(str(exc), EX_DATAERR)
    gate = open_gate(cfg)
    try:
        count = upsert(gate.engine, records)
    except TransientError as exc:
        fail(str(exc), EX_TEMPFAIL)
    out.print(f"imported {count} tickets from {file}")


@tickets_app.command("token")
def tickets_token(ticket_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Print the signed reply address and a Message-ID for the ticket's notifications."""
    from worker.matching import normalize_ticket_id
    from worker.policy.document import PolicySet
    from worker.tokens import ReplyTokens

    cfg = settings()
    try:
        policies = PolicySet.load(cfg.policy_dir)
    except ConfigError as exc:
        fail(str(exc), EX_CONFIG)
    policy = policies.in_force(utcnow())
    if policy is None:
        fail("no policy in force now", EX_CONFIG)
    domain = (cfg.support_domains or policy.document.support_domains)[0]
    tokens = ReplyTokens(cfg.resolved_reply_secret())
    ticket = normalize_ticket_id(ticket_id)
    out.print(
        f"Reply-To: {tokens.reply_address(ticket, policy.document.support_local_part, domain)}"
    )
    out.print(f"Message-ID: {tokens.message_id(ticket, domain)}")


@app.command()
def decisions(
    since: Annotated[str | None, typer.Option(help="From this time (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (ISO 8601).")] = None,
    decision: Annotated[str | None, typer.Option(help="Only this decision.")] = None,
    rule: Annotated[str | None, typer.Option(help="Only decided by this rule.")] = None,
    sender: Annotated[str | None, typer.Option(help="Only this envelope sender.")] = None,
    ticket: Annotated[str | None, typer.Option(help="Only this ticket.")] = None,
    channel: Annotated[str | None, typer.Option(help="smtp, lmtp, imap, pipe, replay")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, json or csv")] = "table",
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    public_id: Annotated[
        str | None, typer.Option("--id", help="The id from the SMTP answer (queued as …).")
    ] = None,
    rejected: Annotated[bool, typer.Option("--rejected", help="Every rejection.")] = False,
    before: Annotated[int | None, typer.Option(help="Only older than this seq (paging).")] = None,
) -> None:
    """The decision log, with the delivery state of each automatic reply."""
    from sqlmodel import Session

    from worker.decision import DECISIONS
    from worker.store.queries import DecisionFilter, find_decisions

    if fmt not in ("table", "json", "csv"):
        fail(f"--format: expected table, json or csv, got {fmt!r}", EX_USAGE)
    if decision is not None and decision not in DECISIONS:
        fail(f"--decision: unknown decision {decision!r}; one of {', '.join(DECISIONS)}", EX_USAGE)
    wanted = DecisionFilter(
        since=_when(since, "--since") if since else None,
        until=_when(until, "--until") if until else None,
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
    cfg = settings()
    gate = open_gate(cfg)
    with Session(gate.read_engine) as session:
        found = find_decisions(session, wanted)
    columns = (
        "seq",
        "public_id",
        "received_at",
        "decision",
        "rule",
        "ticket",
        "envelope_from",
        "reply_status",
        "reply_reason",
        "delivery",
        "policy",
        "channel",
        "message_id",
    )
    records = []
    for row, delivery in found:
        record = {c: _plain(getattr(row, c, None)) for c in columns}
        record["delivery"] = delivery
        records.append(record)
    if fmt == "json":
        for record in records:
            sys.stdout.write(json.dumps(record) + "\n")
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=columns)
        writer.writeheader()
        writer.writerows(records)
    else:
        shown = columns[:12]
        table = Table(*shown)
        for record in records:
            table.add_row(*(str(record[c] or "-") for c in shown))
        # Piped into a file or a pager, keep whole values rather than squeeze to 80 columns.
        console = out if out.is_terminal else Console(highlight=False, width=260)
        console.print(table)


@app.command()
def report(
    since: Annotated[str | None, typer.Option(help="From this time (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (ISO 8601).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="text, json, csv or html")] = "text",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write here.")] = None,
) -> None:
    """Aggregates for ops and auditors over a period."""
    from worker.report import build_report, render_csv, render_html, render_json, render_text

    renderers = {"text": render_text, "json": render_json, "csv": render_csv, "html": render_html}
    if fmt not in renderers:
        fail(f"--format: expected one of {', '.join(renderers)}, got {fmt!r}", EX_USAGE)
    start = _when(since, "--since") if since else None
    end = _when(until, "--until") if until else None
    cfg = settings()
    gate = open_gate(cfg)
    text = renderers[fmt](build_report(gate.read_engine, start, end))
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"report written to {output}")


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


@audit_app.command("verify")
def audit_verify(
    export: Annotated[
        Path | None,
        typer.Option("--export", help="Verify an export file offline instead of the database."),
    ] = None,
) -> None:
    """Check the decision chain; exit 1 naming the first broken row."""
    from sqlmodel import Session

    from worker.audit import verify_chain, verify_export
    from worker.store.models import ChainHead
    from worker.store.repository import iter_chain

    if export is not None:
        try:
            with export.open(encoding="utf-8") as handle:
                result = verify_export(handle)
        except OSError as exc:
            fail(f"cannot read {export}: {exc.strerror}", EX_DATAERR)
        if not result.ok:
            fail(f"audit chain broken in {export}: {result.problem}", 1)
        out.print(f"audit export intact: {result.rows} decisions")
        return
    cfg = settings()
    gate = open_gate(cfg)
    with Session(gate.read_engine) as session:
        head = session.get(ChainHead, 1)
        assert head is not None
        result = verify_chain(iter_chain(session), head.seq, head.digest)
    if not result.ok:
        fail(f"audit chain broken: {result.problem}", 1)
    out.print(f"audit chain intact: {result.rows} decisions, head {head.digest[:16]}…")


@audit_app.command("export")
def audit_export(file: Annotated[Path, typer.Argument(help="JSON lines to write.")]) -> None:
    """Write the decision chain for an auditor: one JSON line per decision, then the head."""
    from sqlmodel import Session

    from worker.audit import export_record
    from worker.store.models import ChainHead
    from worker.store.repository import iter_chain

    cfg = settings()
    gate = open_gate(cfg)
    count = 0
    with Session(gate.read_engine) as session, file.open("w", encoding="utf-8") as handle:
        # One read transaction: the rows and the head are one consistent snapshot.
        for row in iter_chain(session):
            handle.write(json.dumps(export_record(row), ensure_ascii=False) + "\n")
            count += 1
        head = session.get(ChainHead, 1)
        assert head is not None
        handle.write(json.dumps({"head": {"seq": head.seq, "digest": head.digest}}) + "\n")
    out.print(f"exported {count} decisions to {file}; head {head.digest}")


@policy_app.command("check")
def policy_check(
    file: Annotated[Path | None, typer.Argument(help="One policy file; default: all.")] = None,
) -> None:
    """Validate policy documents; a problem names the file, the key and what is wrong."""
    from worker.policy.document import PolicySet, load_policy

    cfg = settings()
    try:
        if file is not None:
            policies = [load_policy(file)]
        else:
            policies = PolicySet.load(cfg.policy_dir).policies
    except ConfigError as exc:
        fail(str(exc), 1)
    for policy in policies:
        out.print(
            f"ok  {policy.id}  effective {policy.document.effective_from.date()}  {policy.path}"
        )


@policy_app.command("show")
def policy_show(
    at: Annotated[str | None, typer.Option(help="In force at this time instead of now.")] = None,
) -> None:
    """Which policy version is in force now (or at --at)."""
    from worker.policy.document import PolicySet

    cfg = settings()
    try:
        policies = PolicySet.load(cfg.policy_dir)
    except ConfigError as exc:
        fail(str(exc), EX_CONFIG)
    when = _when(at, "--at") if at else utcnow()
    policy = policies.in_force(when)
    if policy is None:
        fail(f"no policy in force at {when.isoformat()}", 1)
    doc = policy.document
    out.print(f"{doc.id}: {doc.title}")
    out.print(f"  effective from {doc.effective_from.isoformat()}")
    out.print(
        f'  source: {doc.source.document}, "{doc.source.section}" '
        f"(updated {doc.source.updated}) {doc.source.url}"
    )
    out.print(f"  portal: {doc.portal_url}")
    out.print(f"  support domains: {', '.join(cfg.support_domains or doc.support_domains)}")
    out.print(f"  file: {policy.path}  sha256 {policy.sha256}")


@imap_app.command("check")
def imap_check() -> None:
    """Connect to each MAILGATE_IMAP_URL mailbox and say what is there; changes nothing."""
    from imapclient.exceptions import IMAPClientError, LoginError

    from worker.ingress.imap import ImapTarget, describe

    cfg = settings()
    if not cfg.imap_url:
        fail("MAILGATE_IMAP_URL is not set", EX_CONFIG)
    wanted = {"MOVE", "UIDPLUS", "IDLE"}
    problems = 0
    for url in cfg.imap_url:
        target = ImapTarget.parse(url)
        try:
            info = describe(target)
        except LoginError:
            out.print(f"FAIL {target.key}: login refused")
            problems += 1
            continue
        except (OSError, IMAPClientError) as exc:
            out.print(f"FAIL {target.key}: {type(exc).__name__}: {exc}")
            problems += 1
            continue
        caps = set(info["capabilities"])
        out.print(
            f"ok   {target.key}: {info['messages']} messages, UIDVALIDITY {info['uidvalidity']}"
        )
        missing_caps = sorted(wanted - caps)
        out.print(
            "     capabilities: "
            + " ".join(sorted(wanted & caps))
            + (f"; missing: {' '.join(missing_caps)}" if missing_caps else "")
        )
        for folder in (cfg.imap_processed, cfg.imap_rejected, cfg.imap_quarantine):
            state = "present" if folder in info["folders"] else "missing (serve creates it)"
            out.print(f"     folder {folder}: {state}")
        if "MOVE" not in caps and "UIDPLUS" not in caps:
            out.print("     warning: without MOVE or UIDPLUS moved messages stay \\Deleted")
    if problems:
        raise typer.Exit(1)


def main() -> None:
    app()
