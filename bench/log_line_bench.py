"""What the canonical ``decision`` log line costs per message, against deciding it.

One command: ``.venv/bin/python bench/log_line_bench.py``. A real decision is made once
(a Customer Care follow-up on an embedded SQLite gate in a temporary directory), then its
``decision`` line is emitted many times through the configured structlog chain (JSON on
stderr, here pointed at ``/dev/null``), next to the same number of ``as_dict()`` calls and
of plain ``json.dumps`` of the dict, and next to whole ``gate.ingest`` calls of fresh
messages (parse, chain, commit with ``synchronous=FULL``): the line's share of the
decision path.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0123456789abcdef-0123456789"
LINES, MESSAGES = 5000, 300


def per_call_us(function, count: int) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    for number in range(count):
        function(number)
    return (time.perf_counter() - started) / count * 1e6


def main() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # the log goes to fd 2; keep the bench's own output on stdout
    sys.path.insert(0, str(ROOT))
    import structlog

    from worker.clock import utcnow
    from worker.logs import configure_logging
    from worker.mail import Envelope
    from worker.pipeline import Mailgate
    from worker.settings import load_settings
    from worker.tickets import TicketRecord, upsert

    configure_logging("info")
    data = Path(tempfile.mkdtemp(prefix="mailgate-log-"))
    settings = load_settings(data_dir=data / "var", policy_dir=ROOT / "policies",
                             reply_secret=SECRET, http_listen="off")  # fmt: skip
    gate = Mailgate.open(settings)
    upsert(gate.engine, [TicketRecord(id="2002", kind="customer_care",
                                      participants=["carla@customer.example"])])  # fmt: skip

    def message(number: int) -> tuple[bytes, Envelope]:
        raw = (
            "From: carla@customer.example\r\nTo: support@wildix.com\r\n"
            f"Subject: Re: [Ticket#2002] phones\r\nMessage-ID: <log-{number}@customer.example>"
            "\r\n\r\nThe phones in our second office still lose their registration every "
            "morning after the nightly reboot, could you please have another look?\r\n"
        ).encode()
        envelope = Envelope("carla@customer.example", ("support@wildix.com",), "smtp", utcnow())
        return raw, envelope

    decision = gate.ingest(*message(-1))
    log = structlog.get_logger("mailgate.pipeline")
    as_dict = per_call_us(lambda _: decision.as_dict(), LINES)
    dumps = per_call_us(lambda _: json.dumps(decision.as_dict()), LINES)
    line = per_call_us(lambda _: log.info("decision", **decision.as_dict()), LINES)
    ingest = per_call_us(lambda n: gate.ingest(*message(n)), MESSAGES)
    print(f"per call, µs: as_dict {as_dict:.1f}; json.dumps(as_dict) {dumps:.1f}; "
          f"decision line {line:.1f}; whole ingest {ingest:.1f} (includes one line)")  # fmt: skip
    print(f"the line's share of a decision: {line / ingest:.1%}")


if __name__ == "__main__":
    main()
