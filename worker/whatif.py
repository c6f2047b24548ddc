"""``mailgate whatif``: the stored messages decided again under another policy, writing nothing.

Each decision of the period is re-decided from its stored raw message and envelope under the
policy FILE (whatever its ``effective_from``), in worker processes that only read the store,
against today's ticket directory. A message is not its own duplicate: only the decisions
that were duplicates of an earlier one stay so. The answer is the old → new matrix with up to
three example ids per cell; a decision whose raw message is gone (retention, erasure) is
counted as unavailable. ``render_html`` is one self-contained file, every value escaped.
"""

from __future__ import annotations

import html
import json
import multiprocessing
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from worker.mail import Envelope
from worker.policy.document import Policy, PolicySet, load_policy
from worker.store.models import DecisionRow
from worker.store.repository import StoreDirectory, load_raw

EXAMPLES = 3
UNAVAILABLE = "(raw message gone)"
# (row id, shown id, old decision, raw digest, envelope fields)
Item = tuple[int, str, str, str, dict[str, Any]]


@dataclass
class Matrix:
    policy: str
    policy_sha256: str
    since: datetime | None
    until: datetime | None
    cells: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.cells.values())

    def add(self, old: str, new: str, shown: str) -> None:
        self.cells[(old, new)] += 1
        picked = self.examples.setdefault((old, new), [])
        if len(picked) < EXAMPLES:
            picked.append(shown)

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "policy_sha256": self.policy_sha256,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "total": self.total,
            "changed": sum(n for (old, new), n in self.cells.items() if old != new),
            "cells": [
                {"old": old, "new": new, "count": n, "examples": self.examples[(old, new)]}
                for (old, new), n in sorted(self.cells.items())
            ],
        }


class FixedPolicy(PolicySet):
    """A policy set whose one policy is in force at any time."""

    def in_force(self, at: datetime) -> Policy | None:
        return self.policies[0]


class _OwnDecisionDirectory(StoreDirectory):
    """The store as the rules read it, except that a message is not its own duplicate."""

    own_id: int | None = None

    def decided_as(self, dedup_key: str) -> tuple[int, str] | None:
        found = super().decided_as(dedup_key)
        return None if found is None or found[0] == self.own_id else found


_worker: dict[str, Any] = {}


def _start_worker() -> None:
    """In each forked process: a connection pool of its own (none may cross a fork)."""
    _worker["gate"].engine.dispose(close=False)


def _redecide(items: list[Item]) -> list[tuple[str, str, str]]:
    gate = _worker["gate"]
    answers = []
    with Session(gate.read_engine) as session:
        directory = _OwnDecisionDirectory(session)
        for row_id, shown, old, raw_sha256, envelope in items:
            raw = load_raw(session, raw_sha256)
            if raw is None:
                answers.append((old, UNAVAILABLE, shown))
                continue
            directory.own_id = row_id
            classified = gate._classify(raw, Envelope(**envelope), directory, directory)
            answers.append((old, str(classified.result.decision), shown))
    return answers


def _items(engine: Engine, since: datetime | None, until: datetime | None) -> list[Item]:
    statement = select(DecisionRow).order_by(col(DecisionRow.seq))
    if since:
        statement = statement.where(col(DecisionRow.received_at) >= since)
    if until:
        statement = statement.where(col(DecisionRow.received_at) < until)
    with Session(engine) as session:
        rows = session.scalars(statement).all()
    return [
        (
            row.id or 0,
            row.public_id or f"#{row.id}",
            row.decision,
            row.raw_sha256,
            {
                "mail_from": row.envelope_from,
                "rcpt_tos": tuple(row.recipients),
                "channel": row.channel,
                "received_at": row.received_at,
            },
        )
        for row in rows
    ]


def whatif(
    gate: Any, policy_file: Path, since: datetime | None, until: datetime | None, jobs: int = 0
) -> Matrix:
    """Decide the period's stored messages again under ``policy_file``; nothing is written."""
    policy = load_policy(policy_file)
    items = _items(gate.read_engine, since, until)
    matrix = Matrix(policy.id, policy.sha256, since, until)
    _worker["gate"] = replace_policies(gate, policy)
    workers = jobs or min(os.cpu_count() or 1, 4)
    size = max(1, -(-len(items) // (workers * 4)))
    batches = [items[start : start + size] for start in range(0, len(items), size)]
    gate.engine.dispose()  # no pooled connection may cross the fork
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker) as pool:
        for answers in pool.map(_redecide, batches):
            for old, new, shown in answers:
                matrix.add(old, new, shown)
    return matrix


def replace_policies(gate: Any, policy: Policy) -> Any:
    """A copy of ``gate`` deciding under ``policy`` only."""
    from dataclasses import replace

    from worker.pipeline import Mailgate

    return Mailgate(replace(gate.runtime, policies=FixedPolicy([policy])))


def render_text(matrix: Matrix) -> str:
    data = matrix.as_dict()
    lines = [
        f"whatif: policy {matrix.policy} (sha256 {matrix.policy_sha256[:16]}…) over "
        f"{matrix.total} decisions, {data['changed']} would change",
        "",
        f"  {'old decision':<30} {'new decision':<30} {'count':>6}  examples",
    ]
    for cell in data["cells"]:
        mark = " " if cell["old"] == cell["new"] else "*"
        lines.append(
            f"{mark} {cell['old']:<30} {cell['new']:<30} {cell['count']:>6}  "
            + ", ".join(cell["examples"])
        )
    return "\n".join(lines) + "\n"


def render_json(matrix: Matrix) -> str:
    return json.dumps(matrix.as_dict(), indent=2) + "\n"


def render_html(matrix: Matrix) -> str:
    data = matrix.as_dict()
    olds = sorted({c["old"] for c in data["cells"]})
    news = sorted({c["new"] for c in data["cells"]})
    index = {(c["old"], c["new"]): c for c in data["cells"]}
    head = "".join(f"<th>{html.escape(new)}</th>" for new in news)
    body = "".join(
        f"<tr><th>{html.escape(old)}</th>" + "".join(_cell(index.get((old, new))) for new in news)
        + "</tr>"
        for old in olds
    )  # fmt: skip
    title = html.escape(f"mailgate whatif: {matrix.policy}")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}
td.changed{{background:#fff3cd}}small{{color:#666}}
</style></head><body>
<h1>{title}</h1>
<p>Policy sha256 <code>{html.escape(matrix.policy_sha256)}</code>.
Decisions: <strong id="total">{matrix.total}</strong>,
would change: <strong id="changed">{data["changed"]}</strong>.
Rows: the decision recorded; columns: the decision under this policy.</p>
<table><thead><tr><th>old \\ new</th>{head}</tr></thead><tbody>{body}</tbody></table>
</body></html>
"""


def _cell(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "<td></td>"
    changed = ' class="changed"' if cell["old"] != cell["new"] else ""
    examples = html.escape(", ".join(cell["examples"]))
    return (
        f'<td{changed} data-old="{html.escape(cell["old"])}" data-new="{html.escape(cell["new"])}">'
        f"{cell['count']}<br><small>{examples}</small></td>"
    )
