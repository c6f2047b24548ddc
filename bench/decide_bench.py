"""The decide step with and without the two reads the write transaction makes anyway.

One command: ``.venv/bin/python bench/decide_bench.py``. An embedded SQLite gate in a
temporary directory with ticket 1001 and 200 recorded decisions; then ``decide`` (no
commit) of 400 fresh messages, half new-ticket mail from ten repeat senders, half
follow-ups on ticket 1001, first as ``explain`` runs it (reading for an earlier decision
and for a free reply slot), then as ``ingest`` runs it since the fold (``recording=True``:
the unique key and the reply-slot claim in the transaction decide). Five rounds,
alternating; medians of ms per message.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0123456789abcdef-0123456789"


def main() -> None:
    sys.path.insert(0, str(ROOT))
    import structlog

    from worker.clock import utcnow
    from worker.mail import Envelope
    from worker.pipeline import Mailgate
    from worker.settings import load_settings
    from worker.tickets import TicketRecord, upsert

    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())  # no log I/O
    data = Path(tempfile.mkdtemp(prefix="mailgate-decide-"))
    settings = load_settings(data_dir=data / "var", policy_dir=ROOT / "policies",
                             reply_secret=SECRET, http_listen="off")  # fmt: skip
    gate = Mailgate.open(settings)
    upsert(gate.engine, [TicketRecord(id="1001", kind="technical",
                                      participants=["bob@partner.example"])])  # fmt: skip

    def message(number: int) -> tuple[bytes, Envelope]:
        if number % 2:
            sender, subject = "bob@partner.example", "Re: [Ticket#1001] trunk"
        else:
            sender, subject = f"a{number % 10}@customer.example", "help"
        head = f"From: {sender}\r\nTo: support@wildix.com\r\nSubject: {subject}\r\n"
        raw = f"{head}Message-ID: <d{number}@customer.example>\r\n\r\n{'x' * 3800}\r\n".encode()
        return raw, Envelope(sender, ("support@wildix.com",), "smtp", utcnow())

    for number in range(200):
        gate.ingest(*message(number))
    rounds: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(5):
        for recording in (False, True):
            started = time.perf_counter()
            for number in range(1000, 1400):
                gate.decide(*message(number), recording=recording)
            rounds[recording].append((time.perf_counter() - started) / 400 * 1000)
    before, after = statistics.median(rounds[False]), statistics.median(rounds[True])
    print(f"decide, ms per message: with the reads {before:.3f}, without {after:.3f} "
          f"(ratio {after / before:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
