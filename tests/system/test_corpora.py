"""Real-world mail: every message of two public corpora is decided, none crashes, and no
bounce, DSN, MDN, vacation notice or list message ever gets an automatic reply.

The corpora are fetched at setup (flufl.bounce's sdist from PyPI; CPython's test_email data
from the interpreter or Debian's testsuite package) and never committed. Each message is
addressed to the support address so that a reply *would* go out if mailgate misjudged it.
"""

from __future__ import annotations

import re
from email import message_from_bytes
from email.policy import compat32
from pathlib import Path

from helpers import envelope, outbox_files

from worker.clock import utcnow
from worker.ingress.pipe import PipeDelivery
from worker.mail import Envelope, InboundMail
from worker.pipeline import Mailgate

# Messages of the bounce corpus that are not automated mail at all, with the reason.
HUMAN_MESSAGES_IN_BOUNCE_CORPUS = {
    "groupwise_03.txt": "a person's Outlook reply (In-Reply-To, X-Mailer), not a bounce",
}


def as_support_mail(raw: bytes) -> bytes:
    """The message re-addressed To the support desk, everything else untouched."""
    message = message_from_bytes(raw, policy=compat32)
    del message["To"]
    message["To"] = "support@wildix.com"
    return message.as_bytes()


def is_automated(raw: bytes) -> bool:
    """An independent oracle: the structural marks of a DSN/MDN/ARF, list or auto-reply."""
    message = message_from_bytes(raw, policy=compat32)
    types = {part.get_content_type() for part in message.walk()}
    if types & {
        "message/delivery-status",
        "message/disposition-notification",
        "message/feedback-report",
        "multipart/report",
    }:
        return True
    if (message.get("Precedence") or "").strip().lower() in ("bulk", "list", "junk"):
        return True
    if any(name.lower().startswith("list-") for name in message):
        return True
    auto = (message.get("Auto-Submitted") or "no").strip().lower()
    return not auto.startswith("no") or (message.get("Return-Path") or "").strip() == "<>"


def decide_all(gate: Mailgate, files: list[Path]) -> dict[str, tuple[str, str]]:
    results = {}
    for path in files:
        raw = as_support_mail(path.read_bytes())
        env = PipeDelivery("-", None, ("support@wildix.com",)).envelope(raw)
        decision = gate.ingest(raw, env)
        results[path.name] = (decision.decision, decision.reply.status)
    return results


def test_flufl_bounce_corpus_gets_no_reply(tmp_path: Path, flufl_bounces: list[Path]) -> None:
    """117 real bounces from many MTAs: all ignored as auto-generated, zero replies."""
    from helpers import make_settings

    gate = Mailgate.open(make_settings(tmp_path))
    results = decide_all(gate, flufl_bounces)
    assert len(results) == len(flufl_bounces) >= 100
    wrongly_answered = [
        name
        for name, (_, reply) in results.items()
        if reply == "queued" and name not in HUMAN_MESSAGES_IN_BOUNCE_CORPUS
    ]
    assert wrongly_answered == []
    not_ignored = [
        name
        for name, (decision, _) in results.items()
        if decision not in ("ignored_auto_generated", "duplicate")
        and name not in HUMAN_MESSAGES_IN_BOUNCE_CORPUS
    ]
    assert not_ignored == []


def test_cpython_email_corpus_is_decided_without_replying_to_automated_mail(
    tmp_path: Path, cpython_email_corpus: list[Path]
) -> None:
    """CPython's 48+ odd, broken and multipart messages: each decided; automated ones unanswered."""
    from helpers import make_settings

    gate = Mailgate.open(make_settings(tmp_path))
    results = decide_all(gate, cpython_email_corpus)
    assert len(results) == len(cpython_email_corpus) >= 40
    automated = [
        p.name for p in cpython_email_corpus if is_automated(as_support_mail(p.read_bytes()))
    ]
    assert len(automated) >= 3, "the oracle should recognise the corpus' DSNs"
    for name in automated:
        assert results[name][1] != "queued", f"{name} is automated but got a reply"
    # Ordinary mail in the corpus is still answered: the filter is not simply "never reply".
    assert any(reply == "queued" for _, reply in results.values())
    assert len(outbox_files(gate)) == sum(r == "queued" for _, r in results.values())


def test_every_corpus_message_is_decided_over_both_stores(
    gate: Mailgate, flufl_bounces: list[Path], cpython_email_corpus: list[Path]
) -> None:
    """Same corpora on SQLite and PostgreSQL: every message yields exactly one decision."""
    files = flufl_bounces[:40] + cpython_email_corpus
    for path in files:
        gate.ingest(path.read_bytes(), envelope("", "support@wildix.com"))
    from sqlmodel import Session, select

    from worker.store.models import DecisionRow

    with Session(gate.engine) as session:
        assert len(session.scalars(select(DecisionRow.id)).all()) == len(files)


def test_both_corpora_over_smtp_get_no_reply_to_automated_mail(
    tmp_path: Path, flufl_bounces: list[Path], cpython_email_corpus: list[Path]
) -> None:
    """The same corpora delivered over SMTP to `serve`: bounces, DSNs, MDNs, vacation and
    list mail get no reply; the listener takes every message."""
    import smtplib

    from helpers import RunningServer, make_settings
    from sqlmodel import Session, select

    from worker.store.models import DecisionRow

    gate = Mailgate.open(make_settings(tmp_path, None, smtp_listen="127.0.0.1:0"))
    running = RunningServer(gate)
    automated: set[str] = set()
    refused: list[str] = []
    try:
        for path in [*flufl_bounces, *cpython_email_corpus]:
            raw = as_support_mail(path.read_bytes())
            env = Envelope.from_headers(InboundMail.from_bytes(raw), "smtp", utcnow())
            message_id = InboundMail.from_bytes(raw).dedup_key
            is_bounce = path in flufl_bounces and path.name not in (HUMAN_MESSAGES_IN_BOUNCE_CORPUS)
            if is_bounce or is_automated(raw):
                automated.add(message_id)
            # A connection per message, as MTAs deliver: a refusal cannot desync the next.
            with smtplib.SMTP("127.0.0.1", running.port("smtp"), timeout=60) as smtp:
                try:
                    # On the wire lines end in CRLF (smtplib leaves bytes as they are).
                    wire = re.sub(rb"\r?\n", b"\r\n", raw)
                    smtp.sendmail(env.mail_from, ["support@wildix.com"], wire)
                except smtplib.SMTPDataError as error:
                    # RFC 5321 4.5.3.1.6: lines over 998 octets are refused in the dialogue.
                    assert error.smtp_code == 500 and b"Line too long" in error.smtp_error
                    refused.append(path.name)
    finally:
        running.stop()
    with Session(gate.engine) as session:
        rows = session.scalars(select(DecisionRow)).all()
    assert len(rows) == len(flufl_bounces) + len(cpython_email_corpus) - len(refused)
    assert len(refused) <= 3, refused
    wrongly_answered = [
        r.message_id for r in rows if r.reply_status == "queued" and r.dedup_key in automated
    ]
    assert wrongly_answered == []
    assert len(automated) >= 110
