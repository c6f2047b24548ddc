"""The ops console in headless Chromium (Debian's), driven by Playwright: token, filter,
one decision opened with its trace and headers. No browser is downloaded.

The console shows labels for people; the stored names it labels are in ``data-decision``
attributes and tooltips, which is what these assertions read."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    RunningServer,
    add_standard_tickets,
    envelope,
    fixture_bytes,
    make_settings,
    with_headers,
)

from worker.decision import DecisionName
from worker.pipeline import Mailgate

TOKEN = "dashboard-token-0123456789abcdef"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[RunningServer]:
    gate = Mailgate.open(
        make_settings(
            tmp_path, None, smtp_listen="127.0.0.1:0", http_listen="127.0.0.1:0", api_token=TOKEN
        )
    )
    add_standard_tickets(gate)
    running = RunningServer(gate)
    with smtplib.SMTP("127.0.0.1", running.port("smtp"), timeout=30) as smtp:
        smtp.sendmail(
            "alice@customer.example", ["support@wildix.com"], fixture_bytes("new_ticket.eml")
        )
        smtp.sendmail(
            "bob@partner.example", ["support@wildix.com"], fixture_bytes("followup_subject_tag.eml")
        )
        smtp.sendmail(
            "carla@customer.example",
            ["support@wildix.com"],
            fixture_bytes("followup_customer_care_it.eml"),
        )
    yield running
    running.stop()
    gate.engine.dispose()


def test_dashboard_shows_the_rejection_log_and_a_decision(
    browser_page: Any, served: RunningServer
) -> None:
    page = browser_page
    page.goto(f"http://127.0.0.1:{served.port('http')}/")
    assert page.locator("#main").is_hidden(), "nothing is shown before the token"
    assert "MAILGATE_API_TOKEN" in page.locator("#token-hint").inner_text(), "where it is"
    page.fill("#token", "wrong")
    page.click("#auth button")
    page.wait_for_selector("#error:has-text('token refused')")
    page.fill("#token", TOKEN)
    page.click("#auth button")
    page.wait_for_selector("#log tbody tr")
    options = page.eval_on_selector_all("#f-decision option", "os => os.map(o => o.value)")
    assert options == ["", "*", *DecisionName], "from the enum"
    labels = page.locator("#f-decision option").all_text_contents()
    assert "Rejected: new ticket by email" in labels, "people read labels, not names"
    assert sorted(decisions_shown(page)) == ["rejected_language", "rejected_new_ticket"], (
        "rejections only"
    )
    page.wait_for_selector("#counts span[data-decision]")
    counts = page.eval_on_selector_all(
        "#counts span", "s => s.map(x => x.dataset.decision + ': ' + x.dataset.count)"
    )
    assert "accepted_followup: 1" in counts and "rejected_new_ticket: 1" in counts
    # No helpdesk and no forward: the console says so (issue 19, never silent).
    page.wait_for_function(
        "document.getElementById('attention').textContent.includes('nowhere to go')"
    )
    page.select_option("#f-decision", "accepted_followup")
    page.click("#filters button")
    page.wait_for_function(
        "() => document.querySelectorAll('#log tbody tr').length === 1 && "
        "document.querySelector('#log tbody tr td.decision').dataset.decision === "
        "'accepted_followup'"
    )
    assert page.locator("#log tbody td.decision").inner_text() == "Follow-up accepted"
    received = page.locator("#log tbody td.time").get_attribute("title") or ""
    assert "Europe/Rome" in received, "times in the viewer's zone (the context's)"
    page.select_option("#f-decision", "")
    page.fill("#f-search", "alice@customer.example")
    page.click("#filters button")
    page.wait_for_function(
        "() => document.querySelectorAll('#log tbody tr').length === 1 && "
        "document.querySelector('#log tbody tr td.sender')"
        ".textContent === 'alice@customer.example'"
    )
    page.click("#log tbody tr")
    page.wait_for_selector("#detail:not([hidden])")
    trace = page.locator("#d-trace tbody tr td:first-child").all_text_contents()
    # The chain's last rule decided; the reply's language is chosen after it.
    assert trace[-2:] == ["new_ticket", "reply_language"] and "auto_generated" in trace
    # Two hits: new_ticket decided, and the reply's language was identified.
    assert page.locator("#d-trace .hit").all_text_contents() == ["HIT", "HIT"]
    page.wait_for_selector("#d-headers tbody tr", state="attached")
    headers = page.locator("#d-headers").text_content() or ""
    assert "W-AIR handsets do not register after firmware update" in headers
    assert "wildix-2022-04" in page.locator("#d-summary").inner_text()


@pytest.fixture
def long_log(tmp_path: Path) -> Iterator[tuple[Mailgate, RunningServer]]:
    """55 old rejections, 210 newer follow-ups, then one more rejection."""
    gate = Mailgate.open(
        make_settings(
            tmp_path, None, smtp_listen="127.0.0.1:0", http_listen="127.0.0.1:0", api_token=TOKEN
        )
    )
    add_standard_tickets(gate)

    def batch(fixture: str, sender: str, prefix: str, count: int) -> None:
        gate.ingest_many(
            [
                (
                    with_headers(fixture_bytes(fixture), Message_ID=f"<{prefix}{n}@x.example>"),
                    envelope(sender),
                )
                for n in range(count)
            ]
        )

    batch("new_ticket.eml", "alice@customer.example", "old-", 55)
    batch("followup_subject_tag.eml", "bob@partner.example", "follow-", 210)
    batch("new_ticket.eml", "dora@customer.example", "new-", 1)
    running = RunningServer(gate)
    yield gate, running
    running.stop()
    gate.engine.dispose()


def decisions_shown(page: Any) -> list[str]:
    return page.eval_on_selector_all(  # type: ignore[no-any-return]
        "#log tbody td.decision", "cells => cells.map(c => c.dataset.decision)"
    )


def test_rejection_log_pages_past_many_newer_followups_and_refreshes(
    browser_page: Any, long_log: tuple[Mailgate, RunningServer]
) -> None:
    gate, running = long_log
    page = browser_page
    page.goto(f"http://127.0.0.1:{running.port('http')}/?refresh=1")
    page.fill("#token", TOKEN)
    page.click("#auth button")
    page.wait_for_function("() => document.querySelectorAll('#log tbody tr').length === 50")
    assert set(decisions_shown(page)) == {"rejected_new_ticket"}
    senders = page.locator("#log tbody tr td.sender").all_text_contents()
    assert senders[0] == "dora@customer.example", "newest first"
    page.click("#more")
    page.wait_for_function("() => document.querySelectorAll('#log tbody tr').length === 56")
    assert page.locator("#more").is_hidden(), "the end of the log"
    seqs = [int(s) for s in page.locator("#log tbody tr td.seq").all_text_contents()]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 56
    # A new rejection appears at the top without anyone reloading.
    later = gate.ingest(
        with_headers(fixture_bytes("new_ticket.eml"), Message_ID="<live@x.example>"),
        envelope("erin@customer.example"),
    )
    page.wait_for_function(
        "() => document.querySelector('#log tbody tr td.sender').textContent === "
        "'erin@customer.example'"
    )
    assert len(decisions_shown(page)) == 57
    # The opaque id from the SMTP answer finds exactly its decision.
    page.fill("#f-search", later.public_id or "")
    page.click("#filters button")
    page.wait_for_function("() => document.querySelectorAll('#log tbody tr').length === 1")
    assert page.locator("#log tbody tr td.public-id").inner_text() == later.public_id
