"""The console in real Chromium with hostile mail on the page, and a forged cross-site POST.

A page full of hostile messages is listed, searched and opened one by one; meanwhile the
test listens for dialogs (every payload calls ``alert``) and for every request the page
and its frames make (every remote payload points at ``remote.example``). Nothing may run
and nothing may leave loopback; every hostile name and subject shows as the text it is.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import RunningServer, add_standard_tickets, envelope, make_settings
from hostile_mail import IMG_NAME, SCRIPT_SUBJECT, html_message, svg_only_message

from worker.pipeline import Mailgate

TOKEN = "console-token-0123456789abcdef"
EVIL_PAGE = "http://evil.example/"


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[tuple[Mailgate, RunningServer]]:
    gate = Mailgate.open(
        make_settings(tmp_path, None, smtp_listen="off", http_listen="127.0.0.1:0", api_token=TOKEN)
    )
    add_standard_tickets(gate)
    gate.ingest_many(
        [
            (html_message(1), envelope("billing1@paypa1.example")),
            (svg_only_message(), envelope("svg@remote.example")),
            (html_message(2), envelope("\"><img src=x onerror=alert('env')>@x.example")),
        ]
    )
    running = RunningServer(gate)
    yield gate, running
    running.stop()
    gate.engine.dispose()


def watch(page: Any, base: str) -> tuple[list[str], list[str], list[str]]:
    """Every dialog the page opens, every request that leaves ``base``, and every
    Content-Security-Policy complaint (the console's own page must need no exception)."""
    dialogs: list[str] = []
    remote: list[str] = []
    complaints: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    def on_request(request: Any) -> None:
        if not request.url.startswith((base, "about:", "data:")):
            remote.append(request.url)

    page.on("dialog", on_dialog)
    page.on("request", on_request)
    page.on(
        "console",
        lambda m: complaints.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return dialogs, remote, complaints


def open_message(page: Any, row: int) -> Any:
    """Open the row's message; the frame that holds its sanitised HTML, once loaded."""
    if page.locator("#detail").is_visible():
        page.click("#d-close")
    selector = f"#log tbody tr:nth-child({row})"
    public_id = page.locator(selector + " td.public-id").inner_text()
    page.click(selector)
    page.wait_for_selector(f'#d-message[data-shown="{public_id}"]', state="attached")
    return next(f for f in page.frames if f != page.main_frame)


def test_hostile_mail_runs_nothing_and_loads_nothing_remote(
    browser_page: Any, hostile: tuple[Mailgate, RunningServer]
) -> None:
    _, running = hostile
    page = browser_page
    base = f"http://127.0.0.1:{running.port('http')}/"
    dialogs, remote, complaints = watch(page, base)
    response = page.goto(base)
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.fill("#token", TOKEN)
    page.click("#auth button")
    page.wait_for_selector("#log tbody tr")
    page.select_option("#f-decision", "*")
    page.click("#filters button")
    page.wait_for_function("() => document.querySelectorAll('#log tbody tr').length === 3")
    senders = page.locator("#log tbody td.sender").all_text_contents()
    assert "\"><img src=x onerror=alert('env')>@x.example" in senders, "an address is text"
    for row in (1, 2, 3):
        frame = open_message(page, row)
        shown = page.locator("#d-envelope").text_content() or ""
        assert IMG_NAME in shown, "the encoded-word name decodes to text, not markup"
        tags = frame.eval_on_selector_all("body *", "els => els.map(e => e.localName)")
        assert not {"script", "img", "svg", "style", "iframe", "form", "math"} & set(tags)
        handlers = frame.eval_on_selector_all(
            "*", "els => els.flatMap(e => [...e.attributes].map(a => a.name))"
        )
        assert not [a for a in handlers if a.startswith("on") or a == "style"], handlers
        hrefs = frame.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        assert all(h.startswith(("http:", "https:", "mailto:")) for h in hrefs), hrefs
        if row != 2:  # the SVG-only message has neither a subject nor attachments like these
            assert SCRIPT_SUBJECT in shown
            names = page.locator("#d-attachments").text_content() or ""
            assert "invoice<U+202E>fdp.exe" in names and IMG_NAME + ".svg" in names
            text = page.locator("#d-text").text_content() or ""
            assert "<script>alert('text')</script>" in text
    page.click("#d-raw")
    page.wait_for_selector("#d-rawtext:not([hidden])")
    assert "<script>alert('script')</script>" in (page.locator("#d-rawtext").text_content() or "")
    scripts = page.eval_on_selector_all("script", "s => s.map(x => x.src || x.id)")
    assert scripts == ["labels", base + "static/console.js"], "no script joined the page"
    assert dialogs == [], "no script ran"
    assert remote == [], "nothing was fetched from anywhere but the console"
    assert complaints == [], "the sanitised mail needed no blocking, the page no exception"


def test_a_cross_site_post_is_refused(
    browser_page: Any, hostile: tuple[Mailgate, RunningServer]
) -> None:
    _, running = hostile
    page = browser_page
    target = f"http://127.0.0.1:{running.port('http')}/api/held/aaaaaaaaaaaaaaaa/release"
    page.route(
        EVIL_PAGE,
        lambda route: route.fulfill(
            content_type="text/html",
            body=f'<form method="post" action="{target}"><input name="reason" value="x"></form>',
        ),
    )
    page.goto(EVIL_PAGE)
    with page.expect_response(target) as answer:
        page.evaluate("() => document.forms[0].submit()")
    assert answer.value.status == 403
    assert "cross-site request refused" in json.loads(answer.value.body())["error"]
    # Even with the token, a request that says it comes from another site is refused.
    forged = urllib.request.Request(
        target,
        data=b"{}",
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Origin": "http://evil.example"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(forged, timeout=10)
    assert refused.value.code == 403
