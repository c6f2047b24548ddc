"""Aggregates of the decision log for ops and auditors, in text, JSON, CSV and HTML.

The HTML report is one self-contained file (inline CSS and an inline SVG chart, no
external assets, every value escaped) that can be handed to an auditor as is. All
figures come from one read of the decision, outbox and ticket tables for the period.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from worker.decision import DecisionName, OutboxKind, OutboxStatus, ReplyStatus, is_rejection
from worker.mail import domain_of
from worker.store.models import DecisionRow, OutboxRow, Ticket


@dataclass
class Report:
    since: datetime | None
    until: datetime | None
    total: int = 0
    by_decision: Counter[str] = field(default_factory=Counter)
    by_rule: Counter[str] = field(default_factory=Counter)
    by_policy: Counter[str] = field(default_factory=Counter)
    by_day: dict[str, Counter[str]] = field(default_factory=dict)
    replies: Counter[str] = field(default_factory=Counter)  # outbox status of sent replies
    suppressed: Counter[str] = field(default_factory=Counter)  # reason
    rejected_domains: Counter[str] = field(default_factory=Counter)
    followups_by_kind: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "total": self.total,
            "by_decision": dict(self.by_decision),
            "by_rule": dict(self.by_rule),
            "by_policy": dict(self.by_policy),
            "by_day": {day: dict(counts) for day, counts in sorted(self.by_day.items())},
            "replies": {"sent_or_queued": dict(self.replies), "suppressed": dict(self.suppressed)},
            "top_rejected_sender_domains": self.rejected_domains.most_common(10),
            "followups_by_ticket_kind": dict(self.followups_by_kind),
        }


def build_report(engine: Engine, since: datetime | None, until: datetime | None) -> Report:
    report = Report(since, until)
    statement = select(DecisionRow)
    if since:
        statement = statement.where(col(DecisionRow.received_at) >= since)
    if until:
        statement = statement.where(col(DecisionRow.received_at) < until)
    with Session(engine) as session:
        rows = session.scalars(statement).all()
        ids = [r.id for r in rows if r.reply_status == ReplyStatus.QUEUED]
        delivery: dict[int, str] = {}
        for start in range(0, len(ids), 500):
            for outbox in session.scalars(
                select(OutboxRow).where(
                    col(OutboxRow.decision_id).in_(ids[start : start + 500]),
                    col(OutboxRow.kind) == OutboxKind.AUTO_REPLY,
                )
            ).all():
                delivery[outbox.decision_id] = outbox.status
        kinds = {t.id: t.kind for t in session.scalars(select(Ticket)).all()}
    for row in rows:
        report.total += 1
        report.by_decision[row.decision] += 1
        report.by_rule[row.rule] += 1
        report.by_policy[row.policy or "(none)"] += 1
        day = row.received_at.date().isoformat()
        report.by_day.setdefault(day, Counter())[row.decision] += 1
        if row.reply_status == ReplyStatus.QUEUED:
            report.replies[delivery.get(row.id or 0, OutboxStatus.QUEUED)] += 1
        else:
            report.suppressed[row.reply_reason or row.reply_status] += 1
        if is_rejection(row.decision):
            report.rejected_domains[domain_of(row.envelope_from) or "(null sender)"] += 1
        if row.decision == DecisionName.ACCEPTED_FOLLOWUP:
            report.followups_by_kind[kinds.get(row.ticket or "", "unknown")] += 1
    return report


def _tables(report: Report) -> list[tuple[str, list[tuple[str, int]]]]:
    return [
        ("Decisions", report.by_decision.most_common()),
        ("Rules that decided", report.by_rule.most_common()),
        ("Policy versions", report.by_policy.most_common()),
        ("Replies sent or queued, by delivery state", report.replies.most_common()),
        ("Replies suppressed, by reason", report.suppressed.most_common()),
        ("Top rejected sender domains", report.rejected_domains.most_common(10)),
        ("Follow-ups by ticket kind", report.followups_by_kind.most_common()),
    ]


def render_text(report: Report) -> str:
    period = f"{report.since or 'beginning'} – {report.until or 'now'}"
    lines = [f"mailgate report, {period}: {report.total} decisions", ""]
    for title, rows in _tables(report):
        lines.append(title)
        lines += [f"  {key:<40} {value:>8}" for key, value in rows] or ["  (none)"]
        lines.append("")
    lines.append("Per day")
    for day, counts in sorted(report.by_day.items()):
        lines.append(f"  {day}  " + ", ".join(f"{k} {v}" for k, v in counts.most_common()))
    return "\n".join(lines) + "\n"


def render_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2) + "\n"


def render_csv(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["section", "key", "count"])
    writer.writerow(["total", "decisions", report.total])
    for title, rows in _tables(report):
        for key, value in rows:
            writer.writerow([title, key, value])
    for day, counts in sorted(report.by_day.items()):
        for decision, value in counts.items():
            writer.writerow(["per day", f"{day} {decision}", value])
    return buffer.getvalue()


# One colour per decision name; the report test checks that no name lacks one.
COLORS: dict[DecisionName, str] = {
    DecisionName.ACCEPTED_FOLLOWUP: "#2e7d32",
    DecisionName.REJECTED_NEW_TICKET: "#c62828",
    DecisionName.REJECTED_UNKNOWN_TICKET: "#ef6c00",
    DecisionName.REJECTED_CLOSED_TICKET: "#8e24aa",
    DecisionName.REJECTED_UNAUTHORIZED_SENDER: "#ad1457",
    DecisionName.REJECTED_LANGUAGE: "#1565c0",
    DecisionName.IGNORED_AUTO_GENERATED: "#757575",
    DecisionName.DUPLICATE: "#bdbdbd",
    DecisionName.QUARANTINED: "#f9a825",
}


def _chart(report: Report) -> str:
    """A stacked bar per day, as inline SVG (no script, no external asset)."""
    days = sorted(report.by_day.items())
    if not days:
        return "<p>No decisions in this period.</p>"
    width, height, bar = max(60 * len(days), 300), 220, 36
    peak = max(sum(c.values()) for _, c in days)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 40}" '
        f'height="{height + 50}" role="img" aria-label="decisions per day">'
    ]
    for index, (day, counts) in enumerate(days):
        x, y = 30 + index * 60, float(height)
        for decision in DecisionName:
            value = counts.get(decision, 0)
            if not value:
                continue
            h = value / peak * (height - 20)
            y -= h
            parts.append(
                f'<rect x="{x}" y="{y:.1f}" width="{bar}" height="{h:.1f}" '
                f'fill="{COLORS[decision]}" data-day="{day}" '
                f'data-decision="{decision}" data-count="{value}">'
                f"<title>{day} {decision}: {value}</title></rect>"
            )
        parts.append(
            f'<text x="{x}" y="{height + 16}" font-size="10">{html.escape(day[5:])}</text>'
        )
    parts.append("</svg>")
    legend = "".join(
        f'<span class="key"><i style="background:{color}"></i>{html.escape(name)}</span>'
        for name, color in COLORS.items()
    )
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def render_html(report: Report) -> str:
    period = html.escape(f"{report.since or 'beginning'} – {report.until or 'now'}")
    sections = []
    for title, rows in _tables(report):
        body = (
            "".join(f"<tr><td>{html.escape(str(k))}</td><td class=n>{v}</td></tr>" for k, v in rows)
            or '<tr><td colspan="2">(none)</td></tr>'
        )
        sections.append(f"<h2>{html.escape(title)}</h2><table><tbody>{body}</tbody></table>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mailgate report {period}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}
table{{border-collapse:collapse;margin-bottom:1em}}td{{border:1px solid #ccc;padding:3px 8px}}
td.n{{text-align:right}}.legend .key{{margin-right:1em;font-size:12px}}
.legend i{{display:inline-block;width:10px;height:10px;margin-right:4px}}
</style></head><body>
<h1>mailgate channel-policy report</h1>
<p>Period: {period}. Decisions: <strong id="total">{report.total}</strong>.</p>
<h2>Decisions per day</h2>{_chart(report)}
{"".join(sections)}
</body></html>
"""
