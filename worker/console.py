"""What the ``mailgate`` commands print: tables for people, JSON lines and CSV for scripts.

Output goes to standard output; messages about failures go to standard error through
``worker.exits``. Nothing here decides or writes to the store.
"""

from __future__ import annotations

import csv
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from worker.decision import Decision
    from worker.ingress.replay import ReplaySummary
    from worker.policy.document import Policy
    from worker.settings import Settings
    from worker.store.queries import DecisionFilter

out = Console(highlight=False, soft_wrap=True)

DECISION_COLUMNS = (
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
TABLE_COLUMNS = DECISION_COLUMNS[:12]


def print_json(value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")


def print_explain(decision: Decision) -> None:
    """The decision, then each rule of the trace with hit or miss and its reason."""
    out.print(f"decision: {decision.decision}  (rule {decision.rule})")
    out.print(f"policy:   {decision.policy}  sha256 {decision.policy_sha256}")
    out.print(f"ticket:   {decision.ticket or '-'}")
    out.print(f"reply:    {decision.reply.status}  {decision.reply.reason or ''}")
    table = Table("rule", "result", "reason", "description", show_lines=False)
    for step in decision.trace:
        hit = "HIT" if step["hit"] else "miss"
        table.add_row(step["rule"], hit, step["reason"], step.get("description", ""))
    out.print(table)


def print_policy(policy: Policy, support_domains: list[str] | None) -> None:
    """A policy version: where it comes from, where it sends people, which file it is."""
    doc = policy.document
    out.print(f"{doc.id}: {doc.title}")
    out.print(f"  effective from {doc.effective_from.isoformat()}")
    out.print(
        f'  source: {doc.source.document}, "{doc.source.section}" '
        f"(updated {doc.source.updated}) {doc.source.url}"
    )
    out.print(f"  portal: {doc.portal_url}")
    out.print(f"  support domains: {', '.join(support_domains or doc.support_domains)}")
    out.print(f"  file: {policy.path}  sha256 {policy.sha256}")


def print_replay(archive: Path, summary: ReplaySummary, dry_run: bool) -> None:
    title = f"{archive} ({'dry run, nothing written' if dry_run else 'recorded'})"
    table = Table("decision", "messages", title=title)
    for name, number in summary.counts.most_common():
        table.add_row(name, str(number))
    table.add_row("total", str(summary.total))
    out.print(table)
    if summary.undated:
        out.print(
            f"{summary.undated} messages carried no usable date and were decided as received now"
        )


def print_decisions(engine: Engine, wanted: DecisionFilter, fmt: str) -> None:
    """The decision log as a table, JSON lines or CSV, newest first."""
    from sqlmodel import Session

    from worker.store.queries import find_decisions

    with Session(engine) as session:
        found = find_decisions(session, wanted)
    records = []
    for row, delivery in found:
        record = {c: _plain(getattr(row, c, None)) for c in DECISION_COLUMNS}
        record["delivery"] = delivery
        records.append(record)
    if fmt == "json":
        for record in records:
            print_json(record)
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=DECISION_COLUMNS)
        writer.writeheader()
        writer.writerows(records)
    else:
        table = Table(*TABLE_COLUMNS)
        for record in records:
            table.add_row(*(str(record[c] or "-") for c in TABLE_COLUMNS))
        # Piped into a file or a pager, keep whole values rather than squeeze to 80 columns.
        console = out if out.is_terminal else Console(highlight=False, width=260)
        console.print(table)


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def print_mailbox_checks(settings: Settings) -> int:
    """``mailgate imap check``: one block per mailbox; how many could not be reached."""
    from imapclient.exceptions import IMAPClientError, LoginError

    from worker.ingress.imap import ImapTarget, describe
    from worker.oauth import TokenError, credentials_for

    problems = 0
    for url in settings.imap_url or []:
        target = ImapTarget.parse(url, settings.imap_auth)
        credentials = credentials_for(settings, target.user) if target.auth else None
        try:
            info = describe(target, credentials)
        except TokenError as exc:
            out.print(f"FAIL {target.key}: auth {target.auth}, no token: {exc}")
            problems += 1
            continue
        except LoginError:
            out.print(f"FAIL {target.key}: login refused")
            problems += 1
            continue
        except (OSError, IMAPClientError) as exc:
            out.print(f"FAIL {target.key}: {type(exc).__name__}: {exc}")
            problems += 1
            continue
        _print_mailbox(settings, target.key, info)
        out.print(f"     auth: {auth_line(target.auth, credentials)}")
    return problems


def auth_line(method: str | None, credentials: Any) -> str:
    """``imap check``'s auth line: the method and, with OAuth2, the token and its expiry."""
    if credentials is None:
        return "password"
    health = credentials.health
    expires = health.token_expires_at.isoformat() if health.token_expires_at else "unknown"
    line = f"{method} ({health.provider}, {health.grant}); token obtained, expires {expires}"
    if health.degraded:
        line += f"; client secret expires {health.secret_expires}"
    return line


def _print_mailbox(settings: Settings, key: str, info: dict[str, Any]) -> None:
    wanted = {"MOVE", "UIDPLUS", "IDLE"}
    caps = set(info["capabilities"])
    out.print(f"ok   {key}: {info['messages']} messages, UIDVALIDITY {info['uidvalidity']}")
    missing_caps = sorted(wanted - caps)
    out.print(
        "     capabilities: "
        + " ".join(sorted(wanted & caps))
        + (f"; missing: {' '.join(missing_caps)}" if missing_caps else "")
    )
    for folder in (settings.imap_processed, settings.imap_rejected, settings.imap_quarantine):
        state = "present" if folder in info["folders"] else "missing (serve creates it)"
        out.print(f"     folder {folder}: {state}")
    if "MOVE" not in caps and "UIDPLUS" not in caps:
        out.print("     warning: without MOVE or UIDPLUS moved messages stay \\Deleted")
