"""IMAP drain throughput: mailgate vs a plain imapclient fetch-and-move loop, same Dovecot.

One command: ``.venv/bin/python bench/imap_bench.py`` (needs Debian's ``dovecot-imapd``;
run as root, like the tests, to start a throw-away Dovecot on loopback). It fills an INBOX
with 10,000 ~4 KB messages (new-ticket mail and follow-ups with unique Message-IDs), drains
it with a loop that fetches with ``BODY.PEEK[]`` and MOVEs to ``Processed`` without
deciding anything (the baseline), moves everything back, then drains it with mailgate's
IMAP worker (decisions committed to SQLite with ``synchronous=FULL`` before each move).
Prints msg/s and CPU ms per message for both, and the ratio of the rates. ``--source DIR``
runs the ``worker`` package of another checkout (an export of an older commit) against this
bench's baseline.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _source() -> Path:
    """``--source DIR``, read before ``worker`` is imported so that DIR's package is the one."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--source", type=Path, default=ROOT)
    return Path(early.parse_known_args()[0].source).resolve()


SOURCE = _source()
sys.path[:0] = [str(SOURCE), str(ROOT / "tests")]

from helpers import Dovecot, add_standard_tickets, make_settings  # noqa: E402

from worker.ingress.imap import ImapTarget, MailboxWorker  # noqa: E402
from worker.pipeline import Mailgate  # noqa: E402

BATCH = 50  # the baseline's batch, fixed whichever checkout runs as mailgate


def message(number: int) -> bytes:
    followup = number % 2 == 1
    subject = "Re: [Ticket#1001] handsets" if followup else "Our PBX does not boot"
    sender = "bob@partner.example" if followup else f"user{number}@customer.example"
    head = (
        f"Return-Path: <{sender}>\r\nFrom: {sender}\r\nTo: support@wildix.com\r\n"
        f"Subject: {subject}\r\nMessage-ID: <imap-bench-{number}@bench.example>\r\n"
        "Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\n"
    )
    return head.encode() + (b"X" * 76 + b"\r\n") * 50


def fill(dovecot: Dovecot, count: int) -> None:
    """Deliver straight into the Maildir (much faster than APPEND); Dovecot indexes it."""
    new = dovecot.root / "home" / dovecot.user / "Maildir" / "new"
    for sub in ("new", "cur", "tmp"):
        (new.parent / sub).mkdir(parents=True, exist_ok=True)
    for number in range(count):
        (new / f"{1700000000 + number}.M{number}P1.bench").write_bytes(message(number))
    for path in [dovecot.root / "home", *(dovecot.root / "home").rglob("*")]:
        shutil.chown(path, "mail", "mail")
    # Let Dovecot index the new files before anything is timed, so neither side pays it.
    client = dovecot.client()
    client.select_folder("INBOX")
    uids = client.search("ALL")
    client.fetch(uids, ["FLAGS", "RFC822.SIZE", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
    client.logout()


def baseline(dovecot: Dovecot) -> tuple[float, float, int]:
    client = dovecot.client()
    if not client.folder_exists("Processed"):
        client.create_folder("Processed")
    client.select_folder("INBOX")
    started, cpu = time.perf_counter(), time.process_time()
    uids = sorted(client.search("ALL"))
    for start in range(0, len(uids), BATCH):
        chunk = uids[start : start + BATCH]
        fetched = client.fetch(chunk, ["BODY.PEEK[]", "INTERNALDATE"])
        assert all(b"BODY[]" in fetched[uid] for uid in chunk)
        client.move(chunk, "Processed")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    client.select_folder("Processed")
    client.move(client.search("ALL"), "INBOX")  # put everything back for mailgate
    client.select_folder("INBOX")
    client.fetch(client.search("ALL"), ["FLAGS", "RFC822.SIZE"])  # indexed again, as above
    client.logout()
    return len(uids) / elapsed, cpu / len(uids), len(uids)


def drain_with_mailgate(dovecot: Dovecot, count: int, data_dir: Path) -> tuple[float, float]:
    settings = make_settings(data_dir, None, imap_url=dovecot.url, policy_dir=SOURCE / "policies")
    gate = Mailgate.open(settings)
    add_standard_tickets(gate)
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    done = threading.Event()
    stop = threading.Event()
    worker: MailboxWorker

    def progress(_decisions: object) -> None:
        if worker.health.decided >= count:
            done.set()

    worker = MailboxWorker(gate, ImapTarget.parse(dovecot.url), stop, on_batch=progress)
    started, cpu = time.perf_counter(), time.process_time()
    worker.start()
    assert done.wait(3600), worker.health
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    stop.set()
    worker.join(30)
    return count / elapsed, cpu / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout whose worker runs")
    args = parser.parse_args()
    dovecot = Dovecot()
    data_dir = Path(tempfile.mkdtemp(prefix="mailgate-imap-bench-"))
    try:
        fill(dovecot, args.messages)
        base_rate, base_cpu, seen = baseline(dovecot)
        assert seen == args.messages, seen
        gate_rate, gate_cpu = drain_with_mailgate(dovecot, args.messages, data_dir)
        assert dovecot.message_ids("INBOX") == []
    finally:
        dovecot.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    print(f"source: {SOURCE}")
    # CPU: this process's (all threads) per message while draining; less noisy than msg/s
    # on a busy machine, and it is what the Python between fetch and move costs.
    print(f"{'drain of ' + str(args.messages) + ' messages':<32}{'msg/s':>10}{'CPU ms/msg':>12}")
    print(f"{'imapclient fetch+MOVE (baseline)':<32}{base_rate:>10.0f}{base_cpu * 1e3:>12.2f}")
    print(f"{'mailgate (decide, commit, MOVE)':<32}{gate_rate:>10.0f}{gate_cpu * 1e3:>12.2f}")
    print(f"ratio mailgate/baseline: {gate_rate / base_rate:.2f}")


if __name__ == "__main__":
    main()
