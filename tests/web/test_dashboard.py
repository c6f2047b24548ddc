"""The ops dashboard in headless Chromium (Debian's), driven by Playwright: token, filter,
one decision opened with its trace and headers. No browser is downloaded."""

from __future__ import annotations

import shutil
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
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser_page() -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium missing (Debian package chromium; scripts/test installs it)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        yield page
        browser.close()


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
    page.fill("#token", "wrong")
    page.click("#auth button")
    page.wait_for_selector("#error:has-text('token refused')")
    page.fill("#token", TOKEN)
    page.click("#auth button")
    page.wait_for_selector("#log tbody tr")
    options = page.locator("#f-decision option").all_text_contents()
    assert options == ["rejections (all)", "everything", *DecisionName], "from the enum"
    decisions = page.locator("#log tbody tr td:nth-child(3)").all_text_contents()
    assert sorted(decisions) == ["rejected_language", "rejected_new_ticket"], "rejections only"
    counts = page.locator("#counts span").all_text_contents()
    assert "accepted_followup: 1" in counts and "rejected_new_ticket: 1" in counts
    # No helpdesk and no forward: the console says so (issue 19, never silent).
    assert "accepted follow-ups have nowhere to go" in page.locator("#degraded").inner_text()
    page.select_option("#f-decision", "accepted_followup")
    page.click("#filters button")
    page.wait_for_function(
        "document.querySelectorAll('#log tbody tr').length === 1 && "
        "document.querySelector('#log tbody tr td:nth-child(3)').textContent === "
        "'accepted_followup'"
    )
    page.select_option("#f-decision", "")
    page.fill("#f-sender", "alice@customer.example")
    page.click("#filters button")
    page.wait_for_function(
        "document.querySelectorAll('#log tbody tr').length === 1 && "
        "document.querySelector('#log tbody tr td:nth-child(6)')"
        ".textContent === 'alice@customer.example'"
    )
    page.click("#log tbody tr")
    page.wait_for_selector("#detail:not([hidden])")
    trace = page.locator("#d-trace tbody tr td:first-child").all_text_contents()
    assert trace[-1] == "new_ticket" and "auto_generated" in trace
    assert page.locator("#d-trace .hit").all_text_contents() == ["HIT"]
    headers = page.locator("#d-headers").inner_text()
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


def rows_shown(page: Any) -> list[str]:
    return page.locator("#log tbody tr td:nth-child(3)").all_text_contents()  # type: ignore[no-any-return]


def test_rejection_log_pages_past_many_newer_followups_and_refreshes(
    browser_page: Any, long_log: tuple[Mailgate, RunningServer]
) -> None:
    gate, running = long_log
    page = browser_page
    page.goto(f"http://127.0.0.1:{running.port('http')}/?refresh=1")
    page.fill("#token", TOKEN)
    page.click("#auth button")
    page.wait_for_function("document.querySelectorAll('#log tbody tr').length === 50")
    assert set(rows_shown(page)) == {"rejected_new_ticket"}
    senders = page.locator("#log tbody tr td:nth-child(6)").all_text_contents()
    assert senders[0] == "dora@customer.example", "newest first"
    page.click("#more")
    page.wait_for_function("document.querySelectorAll('#log tbody tr').length === 56")
    assert page.locator("#more").is_hidden(), "the end of the log"
    seqs = [int(s) for s in page.locator("#log tbody tr td:first-child").all_text_contents()]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 56
    # A new rejection appears at the top without anyone reloading.
    later = gate.ingest(
        with_headers(fixture_bytes("new_ticket.eml"), Message_ID="<live@x.example>"),
        envelope("erin@customer.example"),
    )
    page.wait_for_function(
        "document.querySelector('#log tbody tr td:nth-child(6)').textContent === "
        "'erin@customer.example'"
    )
    assert len(rows_shown(page)) == 57
    # The opaque id from the SMTP answer finds exactly its decision.
    page.fill("#f-id", later.public_id or "")
    page.click("#filters button")
    page.wait_for_function("document.querySelectorAll('#log tbody tr').length === 1")
    assert page.locator("#log tbody tr td:nth-child(10)").inner_text() == later.public_id
