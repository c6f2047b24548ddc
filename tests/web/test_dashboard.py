"""The ops dashboard in headless Chromium (Debian's), driven by Playwright: token, filter,
one decision opened with its trace and headers. No browser is downloaded."""

from __future__ import annotations

import shutil
import smtplib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import RunningServer, add_standard_tickets, fixture_bytes, make_settings

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
    decisions = page.locator("#log tbody tr td:nth-child(3)").all_text_contents()
    assert sorted(decisions) == ["rejected_language", "rejected_new_ticket"], "rejections only"
    counts = page.locator("#counts span").all_text_contents()
    assert "accepted_followup: 1" in counts and "rejected_new_ticket: 1" in counts
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
