"""Held mail in the console, in real Chromium: an operator releases one message and rejects
another from the queue, sees the queue empty and each chain record with their name; a
viewer sees the queue but cannot act, in the page or by calling the API from it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from helpers import RunningServer
from web.test_held_api import held_from, operators_served

from worker.access_log import access_log
from worker.held import held_queue
from worker.pipeline import Mailgate

ADMIN = "admin-token-console-0123456789abc"
VIEWER = "viewer-token-console-0123456789ab"
OPERATOR = "operator-token-console-012345678"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mailgate, RunningServer]]:
    tmp_path = tmp_path_factory.mktemp("console_held")
    yield from operators_served(tmp_path, ADMIN, VIEWER, OPERATOR, smtp_listen="off")


def hold(gate: Mailgate, n: int) -> str:
    return held_from(gate, f"<console-held-{n}@partner.example>")


def sign_in(page: Any, running: RunningServer, token: str) -> None:
    page.goto(f"http://127.0.0.1:{running.port('http')}/?refresh=5")
    page.fill("#token", token)
    page.click("#auth button")
    page.wait_for_selector("#held-panel:not([hidden])")


def held_rows(page: Any) -> int:
    return page.locator("#held tbody tr").count()  # type: ignore[no-any-return]


def test_an_operator_releases_and_rejects_held_mail_in_the_console(
    browser_page: Any, served: tuple[Mailgate, RunningServer]
) -> None:
    gate, running = served
    first, second = hold(gate, 1), hold(gate, 2)
    page = browser_page
    sign_in(page, running, OPERATOR)
    page.wait_for_function("() => document.querySelectorAll('#held tbody tr').length === 2")
    held_card = page.locator('#health .card[data-key="held"] .summary').inner_text()
    assert held_card.startswith("2 waiting, oldest")
    assert page.locator("#who").inner_text() == "signed in as olga (operator)"
    row = page.locator(f'#held tbody tr[data-public-id="{first}"]')
    row.locator("input.reason").fill("a colleague of the customer")
    third = hold(gate, 4)  # arrives while the reason is being typed
    page.wait_for_function("() => document.querySelectorAll('#held tbody tr').length === 3")
    assert row.locator("input.reason").input_value() == "a colleague of the customer", (
        "the refresh keeps what is being typed"
    )
    row.locator("button.act-release").click()
    page.wait_for_function("() => document.querySelectorAll('#held tbody tr').length === 2")
    page.locator(f'#held tbody tr[data-public-id="{second}"] button.act-reject').click()
    page.wait_for_function("() => document.querySelectorAll('#held tbody tr').length === 1")
    page.locator(f'#held tbody tr[data-public-id="{third}"] button.act-discard').click()
    page.wait_for_selector("#held-empty:not([hidden])")
    assert held_rows(page) == 0 and page.locator("#held-count").inner_text() == "0"
    assert held_queue(gate) == []
    page.select_option("#f-decision", "*")
    page.click("#filters button")
    page.wait_for_function("() => document.querySelectorAll('#log tbody tr').length === 6")
    why = page.locator("#log tbody td.why").all_text_contents()
    assert "released by olga: a colleague of the customer" in why, why
    assert "rejected by olga" in why and "discarded by olga" in why, why
    page.locator("#log tbody tr", has_text="released by olga").click()
    page.wait_for_selector("#d-trace .hit")
    assert page.locator("#d-trace tbody tr td:first-child").all_text_contents() == ["operator"]
    assert "Follow-up accepted" in page.locator("#d-summary").inner_text()
    reads = {(r.operator, r.what) for r in access_log(gate.engine)}
    assert ("olga", "message") in reads, "opening the record's message is recorded"


def test_a_viewer_sees_the_queue_but_cannot_act(
    browser_page: Any, served: tuple[Mailgate, RunningServer]
) -> None:
    gate, running = served
    waiting = hold(gate, 3)
    page = browser_page
    sign_in(page, running, VIEWER)
    row = page.locator(f'#held tbody tr[data-public-id="{waiting}"]')
    row.wait_for()
    assert row.locator("button.act-release").is_disabled()
    assert row.locator("button.act-reject").is_disabled()
    status = page.evaluate(
        """async ([id, token]) => (await fetch(`/api/held/${id}/release`, {method: "POST",
            headers: {Authorization: "Bearer " + token}})).status""",
        [waiting, VIEWER],
    )
    assert status == 403
    raw = page.evaluate(
        """async ([id, token]) => (await fetch(`/api/messages/${id}/raw`,
            {headers: {Authorization: "Bearer " + token}})).status""",
        [waiting, VIEWER],
    )
    assert raw == 403, "the raw message is for operators"
    assert waiting in [item.public_id for item in held_queue(gate)], "still waiting"
    row.locator("td.sender").click()
    page.wait_for_selector(f'#d-message[data-shown="{waiting}"]', state="attached")
    assert page.locator("#d-raw").is_hidden(), "no raw message for a viewer"
    assert page.locator("#d-text").inner_text().strip(), "but the message view, yes"
