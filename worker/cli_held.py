"""``mailgate held …``, ``mailgate operators add`` and ``mailgate audit access``.

The held-mail commands act as the person at the shell: ``--operator`` names them in the
chain record (default: the login name). A message already acted on, or not held, ends
with one line and exit 65, and nothing changes. ``held show`` prints the message's
headers and text with every control character removed (mail is hostile: an escape
sequence must not reach the terminal) and records the read in the content access log.
"""

from __future__ import annotations

import getpass
import json
import re
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from worker.errors import UsageProblem
from worker.exits import exits

if TYPE_CHECKING:
    from worker.held import HeldAction
    from worker.pipeline import Mailgate

held_app = typer.Typer(no_args_is_help=True, help="Held and quarantined mail.")
operators_app = typer.Typer(no_args_is_help=True, help="Named operators of the API.")
SHOWN = ("From", "To", "Cc", "Subject", "Date", "Message-ID")
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
MAX_TEXT = 20_000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")

Operator = Annotated[str | None, typer.Option(help="Your name in the record (default: login).")]
Reason = Annotated[str, typer.Option(help="Why, for the record.")]
PublicId = Annotated[str, typer.Argument(metavar="ID", help="The message's public id.")]


def _operator(name: str | None) -> str:
    """The name the record carries: as the operators file would accept it."""
    if name is None:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry in a container
            name = "cli"
    if not _NAME.fullmatch(name):
        raise UsageProblem(f"--operator: letters, digits and . _ @ - only, got {name!r}")
    return name


def _gate(ctx: typer.Context) -> Mailgate:
    """The gate under the settings of this run (``--config`` is the root command's option)."""
    from worker.startup import open_gate, read_settings

    return open_gate(read_settings(ctx.find_root().params.get("config")))


@held_app.command("list")
@exits()
def held_list(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Held and quarantined messages nobody has acted on yet, oldest first."""
    from worker.console import out
    from worker.held import held_queue

    if fmt not in ("table", "json"):
        raise UsageProblem(f"--format: expected table or json, got {fmt!r}")
    items = held_queue(_gate(ctx))
    if fmt == "json":
        for item in items:
            sys.stdout.write(json.dumps(item.as_dict()) + "\n")
        return
    for item in items:
        expires = item.expires_at.isoformat(timespec="minutes") if item.expires_at else "-"
        out.print(
            f"{item.public_id}  {item.decision:<11} {item.rule:<19} ticket {item.ticket or '-'}"
            f"  from {_safe(item.envelope_from) or '<>'}  expires {expires}",
            markup=False,
        )
    out.print(f"{len(items)} waiting", markup=False)


@held_app.command("show")
@exits()
def held_show(ctx: typer.Context, public_id: PublicId, operator: Operator = None) -> None:
    """The message's decision, headers and text; the read is recorded."""
    from sqlmodel import Session

    from worker.access_log import record_content_read
    from worker.held import find_message
    from worker.mail import InboundMail
    from worker.store.repository import load_raw

    gate = _gate(ctx)
    with Session(gate.read_engine) as session:
        row = find_message(session, public_id)
        raw = load_raw(session, row.raw_sha256)
    assert row.id is not None
    record_content_read(gate.engine, _operator(operator), row.id)
    lines = [f"{row.public_id}: {row.decision} (rule {row.rule}, policy {row.policy})"]
    lines += [f"  trace: {step['rule']} {'HIT' if step['hit'] else 'miss'}" for step in row.trace]
    if raw is None:
        lines.append("(raw message no longer kept)")
    else:
        mail = InboundMail.from_bytes(raw)
        lines += [f"{name}: {_safe(v)}" for name in SHOWN for v in mail.header_all(name)]
        lines += ["", _safe(mail.body_text[:MAX_TEXT], keep_lines=True)]
    sys.stdout.write("\n".join(lines) + "\n")


def _safe(text: str, keep_lines: bool = False) -> str:
    """Text a terminal shows as text: control, escape and bidi-override characters go."""
    if keep_lines:
        return _UNSAFE.sub("", text.replace("\r\n", "\n"))
    return _UNSAFE.sub("", text.replace("\n", " ").replace("\t", " "))


def _act(
    ctx: typer.Context,
    action: HeldAction,
    public_id: str,
    operator: str | None,
    reason: str,
    add: bool,
) -> None:
    from worker.console import out
    from worker.held import act

    record = act(_gate(ctx), public_id, action, _operator(operator), reason, add)
    out.print(
        f"{public_id}: {action.value}d as {record.decision} (record {record.public_id}, "
        f"reply {record.reply.status})",
        markup=False,
    )


@held_app.command("release")
@exits()
def held_release(
    ctx: typer.Context,
    public_id: PublicId,
    reason: Reason = "",
    operator: Operator = None,
    add_participant: Annotated[
        bool, typer.Option("--add-participant", help="Add the sender to the ticket.")
    ] = False,
) -> None:
    """Deliver the message as an accepted follow-up, through the outbox."""
    from worker.held import HeldAction

    _act(ctx, HeldAction.RELEASE, public_id, operator, reason, add_participant)


@held_app.command("reject")
@exits()
def held_reject(
    ctx: typer.Context, public_id: PublicId, reason: Reason = "", operator: Operator = None
) -> None:
    """Give the message its rule's own decision, and send that rule's reply now."""
    from worker.held import HeldAction

    _act(ctx, HeldAction.REJECT, public_id, operator, reason, False)


@held_app.command("discard")
@exits()
def held_discard(
    ctx: typer.Context, public_id: PublicId, reason: Reason = "", operator: Operator = None
) -> None:
    """Give the message its rule's own decision, without any reply."""
    from worker.held import HeldAction

    _act(ctx, HeldAction.DISCARD, public_id, operator, reason, False)


@operators_app.command("add")
@exits()
def operators_add(
    name: Annotated[str, typer.Argument(help="The operator's name in every record.")],
    role: Annotated[str, typer.Option(help="viewer, operator or admin")] = "viewer",
) -> None:
    """Print a new random token once, and the table to add to MAILGATE_OPERATORS_FILE."""
    from pydantic import ValidationError

    from worker.operators import Role, new_operator

    if role not in tuple(Role):
        raise UsageProblem(f"--role: expected viewer, operator or admin, got {role!r}")
    try:
        token, table = new_operator(name, Role(role))
    except ValidationError:
        raise UsageProblem(f"NAME: letters, digits and . _ @ - only, got {name!r}") from None
    sys.stdout.write(
        f"token for {name} (shown once; give it to them, it is not stored): {token}\n\n"
        f"add to MAILGATE_OPERATORS_FILE:\n\n{table}"
    )


@exits()
def audit_access(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option(help="From this time (ISO 8601).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Who read which message's content, and when."""
    from worker.access_log import access_log
    from worker.clock import parse_when

    if fmt not in ("table", "json"):
        raise UsageProblem(f"--format: expected table or json, got {fmt!r}")
    try:
        start = parse_when(since) if since else None
    except ValueError:
        raise UsageProblem(f"--since: not an ISO 8601 date or time: {since!r}") from None
    records = access_log(_gate(ctx).read_engine, start)
    for record in records:
        if fmt == "json":
            sys.stdout.write(json.dumps(record.as_dict()) + "\n")
        else:
            sys.stdout.write(
                f"{record.at.isoformat(timespec='seconds')}  {record.operator}  read "
                f"{record.what} of {record.public_id or record.decision_id}\n"
            )
