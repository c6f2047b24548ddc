"""What the ``mailgate`` commands print: tables for people, JSON lines and CSV for scripts.

Output goes to standard output; messages about failures go to standard error through
``worker.exits``. Nothing here decides, reads the store or connects anywhere: the decision
log's records come from ``worker.decision_log``, ``imap check`` is
``worker.ingress.imap_check``.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.decision_log import DECISION_COLUMNS

if TYPE_CHECKING:
    from rich.console import Console

    from worker.ingress.replay import ReplaySummary
    from worker.policy.document import Policy


class _Console:
    """rich's Console, made on first use: CSV and JSON output never pay rich's import."""

    _console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(highlight=False, soft_wrap=True)
        return getattr(self._console, name)


out: Any = _Console()


def Table(*columns: str, **options: Any) -> Any:
    from rich.table import Table as RichTable

    return RichTable(*columns, **options)


TABLE_COLUMNS = DECISION_COLUMNS[:12]


def print_json(value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")


def print_explain(decision: dict[str, Any]) -> None:
    """A decision object (``Decision.as_dict()``, or a stored one), then each rule of the
    trace with hit or miss and its reason."""
    out.print(f"decision: {decision['decision']}  (rule {decision['rule']})")
    if decision.get("seq") is not None:
        out.print(f"recorded: seq {decision['seq']}  received {decision['received_at']}")
    if decision.get("duplicate_of") is not None:
        out.print(f"repeats:  the decision with id {decision['duplicate_of']}")
    out.print(f"policy:   {decision['policy']}  sha256 {decision['policy_sha256']}")
    out.print(f"ticket:   {decision['ticket'] or '-'}")
    out.print(f"reply:    {decision['reply']['status']}  {decision['reply']['reason'] or ''}")
    table = Table("rule", "result", "reason", "description", show_lines=False)
    for step in decision["trace"]:
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


def print_decisions(records: list[dict[str, Any]], fmt: str) -> None:
    """The decision log (``worker.decision_log``) as a table, JSON lines or CSV."""
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
        from rich.console import Console

        console = out if out.is_terminal else Console(highlight=False, width=260)
        console.print(table)
