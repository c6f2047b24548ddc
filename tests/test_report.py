"""`mailgate report`: the figures it claims match the decisions recorded."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

from helpers import envelope, fixture_bytes, with_headers

from worker.clock import utcnow
from worker.pipeline import Mailgate
from worker.report import build_report, render_csv, render_html, render_json, render_text


def populate(gate: Mailgate) -> None:
    now = utcnow()
    for number in range(3):  # 3 new-ticket mails, 3 senders, yesterday
        raw = with_headers(fixture_bytes("new_ticket.eml"), Message_ID=f"<n{number}@x.example>")
        gate.ingest(raw, envelope(f"u{number}@customer.example", at=now - timedelta(days=1)))
    gate.ingest(fixture_bytes("followup_subject_tag.eml"), envelope("bob@partner.example"))
    gate.ingest(fixture_bytes("dsn.eml"), envelope(""))
    gate.ingest(fixture_bytes("followup_customer_care_en.eml"), envelope("carla@customer.example"))


class Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.rects: list[dict[str, str | None]] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "rect":
            self.rects.append(values)
        for key in ("src", "href"):
            if values.get(key):
                self.external.append(str(values[key]))

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.text.append(data.strip())


def test_report_figures(gate: Mailgate, tmp_path: Path) -> None:
    populate(gate)
    report = build_report(gate.read_engine, None, None)
    assert report.total == 6
    assert report.by_decision == {
        "rejected_new_ticket": 3,
        "accepted_followup": 2,
        "ignored_auto_generated": 1,
    }
    assert report.replies == {"spooled": 3}
    assert report.suppressed["no_reply_for_decision"] == 2
    assert report.suppressed["auto_generated"] == 1
    assert report.rejected_domains == {"customer.example": 3}
    assert report.followups_by_kind == {"technical": 1, "customer_care": 1}
    assert len(report.by_day) == 2
    data = json.loads(render_json(report))
    assert data["by_decision"]["rejected_new_ticket"] == 3
    rows = list(csv.reader(io.StringIO(render_csv(report))))
    assert ["total", "decisions", "6"] in rows
    assert "rejected_new_ticket" in render_text(report)


def test_html_report_is_self_contained_and_true(gate: Mailgate) -> None:
    """Parse the HTML: no external asset; the chart's bars add up to the decisions."""
    populate(gate)
    page = render_html(build_report(gate.read_engine, None, None))
    cells = Cells()
    cells.feed(page)
    assert cells.external == []
    assert sum(int(str(r["data-count"])) for r in cells.rects) == 6
    by_decision = {}
    for rect in cells.rects:
        by_decision[rect["data-decision"]] = by_decision.get(rect["data-decision"], 0) + int(
            str(rect["data-count"])
        )
    assert by_decision == {
        "rejected_new_ticket": 3,
        "accepted_followup": 2,
        "ignored_auto_generated": 1,
    }
    text = cells.text[cells.text.index("Decisions") :]  # the tables, after chart and legend
    assert text[text.index("rejected_new_ticket") + 1] == "3"
    assert text[text.index("customer.example") + 1] == "3"


def test_period_filter(gate: Mailgate) -> None:
    populate(gate)
    today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    assert build_report(gate.read_engine, today, None).total == 3
    assert build_report(gate.read_engine, None, today).total == 3
