"""Screenshots of the console: the quick start, and a busy day of 5,000 decisions.

One command: ``.venv/bin/python bench/console_screens.py [OUT_DIR]`` (default
``/work/helpers/screens``). Each scenario fills a temporary data dir (embedded SQLite, the
shipped policies, no token set, so ``serve``'s generated console token is used as on a
quick start), runs the real server on loopback, and drives Debian's Chromium with
Playwright: the first screen, the console, and one message opened. The busy day spreads
5,000 decisions over the last 24 hours in a plausible mix (most follow-ups, a fifth new
tickets by email, the rest unknown and closed tickets, strangers, Italian to Customer Care,
robots, a few quarantined) with one hostile message among them. Not a test: it asserts
nothing, it only makes pictures for a person to look at.
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SECRET = "bench-secret-0123456789abcdef-0123456789"
CHROMIUM = "/usr/bin/chromium"
HOSTILE = (
    b"From: =?utf-8?b?PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==?= support@wildix.com"
    b" <billing@paypa1.example>\r\n"
    b"To: support@wildix.com\r\n"
    b"Subject: =?utf-8?q?Invoice_=3Cimg_src=3Dx_onerror=3Dalert=281=29=3E?=\r\n"
    b"Message-ID: <hostile-1@paypa1.example>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
    b"Content-Type: text/html; charset=utf-8\r\n\r\n"
    b'<p onclick="alert(1)">Your account is <b>suspended</b>. '
    b'<a href="javascript:alert(2)">Verify now</a> or <a href="https://paypa1.example/x">'
    b'here</a><img src="https://tracker.example/p.gif"></p><script>alert(3)</script>\r\n'
    b"--b\r\nContent-Type: application/octet-stream\r\n"
    b'Content-Disposition: attachment; filename="=?utf-8?b?aW52b2ljZeKArmZkcC5leGU=?="\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n--b--\r\n"
)


def message(kind: str, number: int) -> tuple[bytes, str]:
    """A raw message of one kind and its envelope sender."""
    fixture = {
        "followup": ("followup_subject_tag.eml", "bob@partner.example"),
        "new": ("new_ticket.eml", f"customer{number % 400}@customer{number % 37}.example"),
        "italian": ("followup_customer_care_it.eml", "carla@customer.example"),
        "robot": ("out_of_office.eml", f"noreply{number % 9}@vendor.example"),
        "garbage": ("binary_garbage.eml", f"x{number}@spam.example"),
    }.get(kind)
    if fixture is not None:
        raw = (FIXTURES / fixture[0]).read_bytes()
        sender = fixture[1]
    else:
        ticket, sender = {
            "unknown": ("98765", "dave@partner.example"),
            "closed": ("3003", "bob@partner.example"),
            "stranger": ("1001", f"colleague{number % 20}@other.example"),
        }[kind]
        raw = (f"From: <{sender}>\r\nTo: support@wildix.com\r\n"
               f"Subject: Re: [Ticket#{ticket}] still broken\r\n\r\nHello, any news?\r\n"
               ).encode()  # fmt: skip
    return _with_message_id(raw, f"<screen-{kind}-{number}@bench.example>"), sender


def _with_message_id(raw: bytes, message_id: str) -> bytes:
    lines = [line for line in raw.split(b"\n") if not line.lower().startswith(b"message-id:")]
    return f"Message-ID: {message_id}\r\n".encode() + b"\n".join(lines)


MIX = [("followup", 60), ("new", 20), ("unknown", 4), ("closed", 3), ("stranger", 3),
       ("italian", 3), ("robot", 6), ("garbage", 1)]  # fmt: skip


def fill(gate: Any, count: int) -> None:
    from worker.mail import Envelope

    now = datetime.now(UTC)
    chooser = random.Random(20)
    kinds = [kind for kind, weight in MIX for _ in range(weight)]
    batch = []
    for number in range(count):
        # Office hours are busier: a day's curve, not a flat line.
        hours_ago = 24 * chooser.betavariate(2, 2) if number % 3 else chooser.uniform(0, 24)
        at = now - timedelta(hours=hours_ago)
        raw, sender = message(chooser.choice(kinds), number)
        batch.append((raw, Envelope(sender, ("support@wildix.com",), "smtp", at)))
    batch.sort(key=lambda item: item[1].received_at)
    for start in range(0, len(batch), 500):
        gate.ingest_many(batch[start : start + 500])


def open_gate(data: Path, tickets: bool = True) -> Any:
    from worker.pipeline import Mailgate
    from worker.settings import load_settings
    from worker.tickets import TicketRecord, upsert
    from worker.web.console_token import ensure_console_token

    settings = load_settings(data_dir=data, policy_dir=ROOT / "policies", reply_secret=SECRET,
                             http_listen="127.0.0.1:0", smtp_listen="off")  # fmt: skip
    ensure_console_token(settings)  # what `mailgate serve` does on the quick start
    gate = Mailgate.open(settings)
    closed = datetime(2025, 1, 10, tzinfo=UTC)
    upsert(gate.engine, [
        TicketRecord(id="1001", kind="technical", participants=["bob@partner.example"]),
        TicketRecord(id="2002", kind="customer_care", participants=["carla@customer.example"]),
        TicketRecord(id="3003", kind="technical", status="closed", closed_at=closed,
                     participants=["bob@partner.example"]),
    ])  # fmt: skip
    return gate


class Running:
    def __init__(self, gate: Any) -> None:
        from worker.serve import Server

        self.server = Server(gate)
        self.loop = asyncio.new_event_loop()
        started: asyncio.Future[list[str]] = self.loop.create_future()
        coroutine = self.server.run(install_signals=False, started=started)
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(coroutine,))
        self.thread.start()
        listening = asyncio.run_coroutine_threadsafe(_wait(started), self.loop).result(30)
        self.url = next(u for u in listening if u.startswith("http")) + "/"

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.stopping.set)
        self.thread.join(30)


async def _wait(future: Any) -> Any:
    return await future


def shoot(browser: Any, running: Running, token: str, out: Path, name: str) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 900},
                                  timezone_id="Europe/Rome", locale="en-GB")  # fmt: skip
    page = context.new_page()
    page.goto(running.url)
    page.screenshot(path=str(out / f"{name}-first-screen.png"))
    page.fill("#token", token)
    started = time.monotonic()
    page.click("#auth button")
    page.wait_for_selector("#log tbody tr")
    page.wait_for_selector("#chart svg")
    page.wait_for_selector("#health .card")
    print(f"{name}: console open (health, chart, held, log) in {time.monotonic() - started:.2f} s")
    for path in ("/api/health", "/api/timeline?hours=24", "/api/timeline?hours=168",
                 "/api/held", "/api/decisions?rejected=true&limit=50"):  # fmt: skip
        print(f"{name}: GET {path} {api_ms(running.url, token, path):.0f} ms (median of 5)")
    page.screenshot(path=str(out / f"{name}-console.png"))
    page.screenshot(path=str(out / f"{name}-console-full.png"), full_page=True)
    page.select_option("#chart-hours", "168")
    page.wait_for_function("() => document.querySelectorAll('#chart rect.hit').length === 168")
    page.locator("#chart").screenshot(path=str(out / f"{name}-week.png"))
    page.select_option("#chart-hours", "24")
    page.select_option("#f-decision", "*")
    page.fill("#f-search", "billing@paypa1.example")
    page.click("#filters button")
    page.wait_for_function("() => document.querySelectorAll('#log tbody tr').length === 1")
    page.click("#log tbody tr")
    page.wait_for_selector("#d-attachments li")
    time.sleep(0.5)  # only for the picture: let the sandboxed frame paint
    page.screenshot(path=str(out / f"{name}-hostile-message.png"))
    context.close()


def api_ms(base: str, token: str, path: str) -> float:
    import statistics
    import urllib.request

    times = []
    for _ in range(5):
        request = urllib.request.Request(base.rstrip("/") + path,
                                         headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        started = time.monotonic()
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
        times.append((time.monotonic() - started) * 1000)
    return statistics.median(times)


def scenario(browser: Any, out: Path, name: str, count: int) -> None:
    with tempfile.TemporaryDirectory(prefix=f"mailgate-{name}-") as tmp:
        gate = open_gate(Path(tmp) / "var")
        started = time.monotonic()
        if count:
            fill(gate, count)
        else:
            for number, kind in enumerate(("new", "followup", "italian", "stranger")):
                raw, sender = message(kind, number)
                gate.ingest_many([(raw, _envelope(sender))])
        gate.ingest_many([(HOSTILE, _envelope("billing@paypa1.example"))])
        print(f"{name}: {count or 5} decisions in {time.monotonic() - started:.1f} s")
        running = Running(gate)
        try:
            shoot(browser, running, gate.settings.api_token, out, name)
        finally:
            running.stop()
            gate.engine.dispose()


def _envelope(sender: str) -> Any:
    from worker.mail import Envelope

    return Envelope(sender, ("support@wildix.com",), "smtp", datetime.now(UTC))


def main() -> None:
    sys.path.insert(0, str(ROOT))
    import structlog
    from playwright.sync_api import sync_playwright

    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())  # no log I/O
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/helpers/screens")
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless"])
        scenario(browser, out, "quickstart", 0)
        scenario(browser, out, "busy-day", 5000)
        browser.close()
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main()
