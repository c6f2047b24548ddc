"""Crash safety under SMTP load: `mailgate serve` SIGKILLed five times at random moments
while client threads deliver and retry whatever was not acknowledged. Afterwards every
acknowledged message has exactly one decision, none has two, and nobody got two replies."""

from __future__ import annotations

import random
import smtplib
import threading
import time
from pathlib import Path

from helpers import ServeProcess, cli_env, fixture_bytes, free_port, make_settings, with_headers
from sqlmodel import Session, select

from worker.audit import verify_chain
from worker.pipeline import Mailgate
from worker.store.models import ChainHead, DecisionRow, OutboxRow
from worker.store.repository import iter_chain

CLIENTS, PER_CLIENT, KILLS = 4, 80, 5


class Service(ServeProcess):
    def __init__(self, tmp_path: Path, port: int) -> None:
        super().__init__(
            cli_env(
                str(tmp_path / "var"),
                MAILGATE_SMTP_LISTEN=f"127.0.0.1:{port}",
                MAILGATE_HTTP_LISTEN="off",
            )
        )


def test_sigkill_under_smtp_load(tmp_path: Path) -> None:
    port = free_port()
    service = Service(tmp_path, port)
    service.start()
    acked: set[str] = set()
    retries = [0]
    lock = threading.Lock()
    base = fixture_bytes("new_ticket.eml")

    def client(number: int) -> None:
        for sequence in range(PER_CLIENT):
            message_id = f"<crash-{number}-{sequence}@customer.example>"
            sender = f"c{number}m{sequence}@customer.example"
            raw = with_headers(base, Message_ID=message_id, From=sender, Return_Path="")
            raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            while True:  # an MTA's retry: until the server acknowledges
                try:
                    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
                        smtp.sendmail(sender, ["support@wildix.com"], raw)
                    with lock:
                        acked.add(message_id)
                    break
                except (smtplib.SMTPException, OSError):
                    with lock:
                        retries[0] += 1
                    time.sleep(0.05)  # client back-off while the server is down

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    kills = 0
    rng = random.Random()
    while kills < KILLS:
        time.sleep(rng.uniform(0.05, 0.6))  # fault injection at a random moment
        service.kill()
        kills += 1
        service.start()
    for thread in threads:
        thread.join(300)
    assert service.stop() == 0
    service.start()  # one clean start spools whatever a kill left in the outbox
    assert service.stop() == 0

    gate = Mailgate.open(make_settings(tmp_path))
    with Session(gate.engine) as session:
        rows = session.scalars(select(DecisionRow)).all()
        replies = session.scalars(select(OutboxRow)).all()
        head = session.get(ChainHead, 1)
        assert head is not None
        assert verify_chain(iter_chain(session), head.seq, head.digest).ok
    decided = [r for r in rows if r.decision != "duplicate"]
    assert len(acked) == CLIENTS * PER_CLIENT
    assert retries[0] > 0, "the kills interrupted deliveries (else the test proves nothing)"
    ids = [r.message_id for r in decided]
    assert len(ids) == len(set(ids)), "a message was decided twice"
    assert set(ids) == acked, "an acknowledged message has no decision"
    recipients = [r.rcpt_to for r in replies]
    assert len(recipients) == len(set(recipients)) == len(acked), "one reply per sender"
    assert {r.status for r in replies} == {"spooled"}
    spooled = list((tmp_path / "var" / "outbox").glob("*.eml"))
    assert len(spooled) == len(acked)
