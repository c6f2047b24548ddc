"""mailgate behind a real Postfix, with the deploy/postfix recipes exactly as shipped.

Each test starts its own Postfix (``postfix.Postfix``) and mailgate, submits mail with
smtplib as a sending MTA would, and reads what the sender heard, what reached the Maildirs
and what mailgate recorded. The Postfix log lines of each path go to
``POSTFIX_LOG_LINES`` (when set) for the closing note of the issue.
"""

from __future__ import annotations

import json
import os
import re
import signal
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import POLICIES, SECRET, add_standard_tickets, fixture_bytes, free_port, with_headers
from postfix import Postfix
from postfix_mailgate import MailgateProcess, decisions, outbox_rows, service_wrapper

from worker.pipeline import Mailgate
from worker.settings import load_settings

SUPPORT = "wildix.com"
MAILBOXES = {"customer.example": "customer", "partner.example": "partner"}
RECIPE_VALUES = {
    "SUPPORT_DOMAIN": SUPPORT,
    "SUPPORT_DOMAINS": SUPPORT,
    "AUTHSERV_ID": "mx.postfix-test.example",
    "MESSAGE_SIZE_LIMIT": str(10 * 1024 * 1024),
}


def submit(port: int, sender: str, recipients: list[str], raw: bytes) -> tuple[int, str]:
    """One SMTP transaction as a sending MTA runs it; the first refusal, else DATA's answer."""
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.ehlo("mail.customer.example")
        code, text = client.mail(sender)
        if code >= 400:
            return code, text.decode()
        for recipient in recipients:
            code, text = client.rcpt(recipient)
            if code >= 400:
                return code, text.decode()
        code, text = client.data(raw)
        return code, text.decode()


def record_log(path: str, postfix: Postfix, pattern: str) -> None:
    """Keep the Postfix log lines of one path for the issue's closing note."""
    target = os.environ.get("POSTFIX_LOG_LINES")
    lines = [line for line in postfix.log().splitlines() if re.search(pattern, line)]
    assert lines, f"no log line for {path}: {pattern}"
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(f"## {path}\n" + "\n".join(lines) + "\n\n")


def prepare_data(data_dir: Path) -> None:
    """The data dir with the standard tickets (1001 is bob@partner.example's, open)."""
    settings = load_settings(
        data_dir=data_dir, policy_dir=POLICIES, reply_secret=SECRET, http_listen="off"
    )
    gate = Mailgate.open(settings)
    add_standard_tickets(gate)
    gate.engine.dispose()


@pytest.fixture
def milter_setup(tmp_path: Path) -> Iterator[tuple[Postfix, MailgateProcess]]:
    """Postfix with the milter recipe; the desk's domain is delivered to its Maildir."""
    milter_port = free_port()
    postfix = Postfix(
        free_port(),
        {**MAILBOXES, SUPPORT: "desk"},
        ("milter.sh",),
        {**RECIPE_VALUES, "MILTER_ADDRESS": f"127.0.0.1:{milter_port}"},
    )
    data = tmp_path / "var"
    prepare_data(data)
    mailgate = MailgateProcess(
        data,
        MAILGATE_SMTP_LISTEN="off",
        MAILGATE_MILTER_LISTEN=f"127.0.0.1:{milter_port}",
        MAILGATE_SUPPORT_DOMAINS=SUPPORT,
        MAILGATE_RELAY_URL=f"smtp://127.0.0.1:{postfix.port}",
    )
    try:
        postfix.start()
        mailgate.start()
        yield postfix, mailgate
    finally:
        mailgate.stop()
        postfix.stop()
        postfix.cleanup()


def test_milter_rejects_new_ticket_in_the_senders_session(
    milter_setup: tuple[Postfix, MailgateProcess],
) -> None:
    """New-ticket mail: 550 5.7.1 with the policy's text to the sender; no bounce, no reply."""
    postfix, mailgate = milter_setup
    raw = fixture_bytes("new_ticket.eml")
    code, text = submit(postfix.port, "alice@customer.example", ["support@wildix.com"], raw)
    assert code == 550 and text.startswith("5.7.1"), (code, text)
    assert "WMP" in text and "follow-ups on an existing ticket" in text
    [decision] = decisions(mailgate.data_dir)
    assert decision["decision"] == "rejected_new_ticket" and decision["channel"] == "milter"
    assert decision["reply_status"] == "smtp_rejected"
    assert outbox_rows(mailgate.data_dir) == []
    assert "Mail queue is empty" in postfix.queue()
    assert postfix.maildir("customer") == [] and postfix.maildir("desk") == []
    record_log("milter: rejected in the dialogue", postfix, r"milter-reject: END-OF-MESSAGE")


def test_milter_followup_reaches_the_desk_with_headers(
    milter_setup: tuple[Postfix, MailgateProcess],
) -> None:
    """An accepted follow-up is delivered to the desk with X-Mailgate-Decision and -Ticket;
    a forged Authentication-Results with our authserv-id is stripped, others are kept."""
    postfix, mailgate = milter_setup
    raw = fixture_bytes("followup_subject_tag.eml").replace(
        b"Subject:",
        b"Authentication-Results: mx.postfix-test.example; spf=pass smtp.mailfrom=forged\n"
        b"Authentication-Results: mx.other.example; spf=fail\nSubject:",
        1,
    )
    code, _ = submit(postfix.port, "bob@partner.example", ["support@wildix.com"], raw)
    assert code == 250
    postfix.wait_for(lambda: postfix.maildir("desk"), "delivery to the desk")
    [delivered] = postfix.maildir("desk")
    assert b"X-Mailgate-Decision: accepted_followup" in delivered
    assert b"X-Mailgate-Ticket: 1001" in delivered
    assert b"mx.postfix-test.example; spf=pass" not in delivered
    assert b"Authentication-Results: mx.other.example; spf=fail" in delivered
    assert [d["decision"] for d in decisions(mailgate.data_dir)] == ["accepted_followup"]
    record_log("milter: accepted", postfix, r"status=sent \(delivered to maildir\)")


def test_milter_decides_several_recipients_once_and_ignores_other_domains(
    milter_setup: tuple[Postfix, MailgateProcess],
) -> None:
    """Two desk recipients: one decision naming both; mail for others passes unrecorded."""
    postfix, mailgate = milter_setup
    raw = fixture_bytes("followup_subject_tag.eml")
    rcpts = ["support@wildix.com", "sales@wildix.com", "carla@customer.example"]
    assert submit(postfix.port, "bob@partner.example", rcpts, raw)[0] == 250
    other = with_headers(fixture_bytes("new_ticket.eml"), Message_ID="<other@customer.example>")
    assert (
        submit(postfix.port, "alice@customer.example", ["carla@customer.example"], other)[0] == 250
    )
    postfix.wait_for(lambda: len(postfix.maildir("customer")) == 2, "customer deliveries")
    postfix.wait_for(lambda: len(postfix.maildir("desk")) == 2, "desk deliveries")
    [decision] = decisions(mailgate.data_dir)
    assert decision["recipients"] == ["support@wildix.com", "sales@wildix.com"]
    untouched = [m for m in postfix.maildir("customer") if b"other@customer.example" in m]
    assert untouched and b"X-Mailgate" not in untouched[0]


def test_milter_quarantine_goes_to_the_hold_queue(
    milter_setup: tuple[Postfix, MailgateProcess],
) -> None:
    """Suspicious mail (two From headers) is held by Postfix for a human, not delivered."""
    postfix, mailgate = milter_setup
    raw = fixture_bytes("new_ticket.eml").replace(
        b"From: Alice", b"From: mallory@evil.example\nFrom: Alice", 1
    )
    assert submit(postfix.port, "alice@customer.example", ["support@wildix.com"], raw)[0] == 250
    postfix.wait_for(lambda: "!" in postfix.queue(), "the message in the hold queue")
    assert [d["decision"] for d in decisions(mailgate.data_dir)] == ["quarantined"]
    assert postfix.maildir("desk") == [] and postfix.maildir("customer") == []
    record_log("milter: quarantined (hold)", postfix, r"milter-hold: END-OF-MESSAGE")


def test_milter_down_gives_the_sender_a_temporary_failure(
    milter_setup: tuple[Postfix, MailgateProcess],
) -> None:
    """mailgate not answering: Postfix's milter_default_action = tempfail, the sender gets 4xx."""
    postfix, mailgate = milter_setup
    mailgate.kill()
    raw = fixture_bytes("new_ticket.eml")
    code, text = submit(postfix.port, "alice@customer.example", ["support@wildix.com"], raw)
    assert 400 <= code < 500, (code, text)
    assert "Mail queue is empty" in postfix.queue()
    record_log("milter: mailgate down, tempfail", postfix, r"milter|451 4\.")


@pytest.fixture
def lmtp_postfix() -> Iterator[tuple[Postfix, int]]:
    """Postfix with the LMTP recipe; mailgate's LMTP port is chosen before it runs."""
    lmtp_port = free_port()
    postfix = Postfix(
        free_port(),
        MAILBOXES,
        ("lmtp.sh",),
        {**RECIPE_VALUES, "LMTP_ADDRESS": f"127.0.0.1:{lmtp_port}"},
    )
    try:
        postfix.start()
        yield postfix, lmtp_port
    finally:
        postfix.stop()
        postfix.cleanup()


def lmtp_mailgate(data: Path, postfix: Postfix, lmtp_port: int) -> MailgateProcess:
    return MailgateProcess(
        data,
        MAILGATE_SMTP_LISTEN="off",
        MAILGATE_LMTP_LISTEN=f"127.0.0.1:{lmtp_port}",
        MAILGATE_SUPPORT_DOMAINS=SUPPORT,
        MAILGATE_RELAY_URL=f"smtp://127.0.0.1:{postfix.port}",
    )


def test_lmtp_reply_comes_back_through_postfix(
    lmtp_postfix: tuple[Postfix, int], tmp_path: Path
) -> None:
    """New-ticket mail gets the WMP reply in the customer's Maildir; a follow-up is accepted."""
    postfix, lmtp_port = lmtp_postfix
    data = tmp_path / "var"
    prepare_data(data)
    mailgate = lmtp_mailgate(data, postfix, lmtp_port)
    try:
        mailgate.start()
        raw = fixture_bytes("new_ticket.eml")
        assert submit(postfix.port, "alice@customer.example", ["support@wildix.com"], raw)[0] == 250
        follow = fixture_bytes("followup_subject_tag.eml")
        assert submit(postfix.port, "bob@partner.example", ["support@wildix.com"], follow)[0] == 250
        postfix.wait_for(lambda: postfix.maildir("customer"), "the reply to alice")
        postfix.wait_for(lambda: len(decisions(data)) == 2, "two decisions")
    finally:
        mailgate.stop()
    [reply] = postfix.maildir("customer")
    assert b"Auto-Submitted: auto-replied" in reply and b"WMP" in reply
    # Postfix delivers its queue in no promised order: which decision, not which first.
    decided = sorted(d["decision"] for d in decisions(data))
    assert decided == ["accepted_followup", "rejected_new_ticket"]
    assert postfix.maildir("partner") == []
    record_log("lmtp: accepted by mailgate", postfix, rf"\]:{lmtp_port}, .*status=sent")


def test_lmtp_mailgate_down_defers_and_redelivers(
    lmtp_postfix: tuple[Postfix, int], tmp_path: Path
) -> None:
    """mailgate down: Postfix defers; after mailgate starts, a flush redelivers, nothing lost."""
    postfix, lmtp_port = lmtp_postfix
    data = tmp_path / "var"
    prepare_data(data)
    raw = fixture_bytes("new_ticket.eml")
    assert submit(postfix.port, "alice@customer.example", ["support@wildix.com"], raw)[0] == 250
    postfix.wait_for(lambda: "status=deferred" in postfix.log(), "the deferral")
    assert decisions(data) == []
    mailgate = lmtp_mailgate(data, postfix, lmtp_port)
    try:
        mailgate.start()
        postfix.flush()
        postfix.wait_for(lambda: postfix.maildir("customer"), "the reply after redelivery")
    finally:
        mailgate.stop()
    assert [d["decision"] for d in decisions(data)] == ["rejected_new_ticket"]
    assert "Mail queue is empty" in postfix.queue()
    record_log("lmtp: deferred while mailgate is down", postfix, r"status=deferred")
    record_log("lmtp: redelivered after restart", postfix, rf"\]:{lmtp_port}, .*status=sent")


@pytest.fixture
def bare_postfix() -> Iterator[Postfix]:
    """A Postfix not yet started; the test writes its recipe, the fixture cleans up."""
    postfix = Postfix(free_port(), MAILBOXES)
    try:
        yield postfix
    finally:
        postfix.stop()
        postfix.cleanup()


def pipe_install(postfix: Postfix) -> tuple[Path, Path, Path]:
    """As an operator installs for the pipe: a data dir owned by the service user, a
    settings file for --config, and a mailgate executable that user can run."""
    user = postfix.user
    data = postfix.root / "var"
    data.mkdir(mode=0o700)
    prepare_data(data)
    for path in (data, *data.iterdir()):
        os.chown(path, user.pw_uid, user.pw_gid)
    config = postfix.root / "mailgate.toml"
    config.write_text(
        f'data_dir = "{data}"\npolicy_dir = "{POLICIES}"\nreply_secret = "{SECRET}"\n'
        f'support_domains = "{SUPPORT}"\nrelay_url = "smtp://127.0.0.1:{postfix.port}"\n'
        'smtp_listen = "off"\nhttp_listen = "off"\n'
    )
    return data, config, service_wrapper(postfix.root, user.pw_name)


def test_pipe_as_service_user_with_dispatch_alone(bare_postfix: Postfix) -> None:
    """Postfix's pipe runs `mailgate ingest` as a non-root user; only `dispatch` sends."""
    postfix = bare_postfix
    data, config, wrapper = pipe_install(postfix)
    values = {
        **RECIPE_VALUES,
        "MAILGATE_USER": postfix.user.pw_name,
        "MAILGATE_BIN": str(wrapper),
        "MAILGATE_CONFIG": str(config),
    }
    postfix.write_config(MAILBOXES, ("pipe.master.cf", "pipe.sh"), values)
    dispatch = MailgateProcess(data, ("dispatch",), argv=[str(wrapper), "--config", str(config)])
    dispatch.user = postfix.user.pw_uid
    dispatch.env = {k: v for k, v in dispatch.env.items() if not k.startswith("MAILGATE_")}
    try:
        postfix.start()
        assert dispatch.start()["listening"] == []
        raw = fixture_bytes("new_ticket.eml")
        rcpts = ["support@wildix.com", "help@wildix.com"]
        assert submit(postfix.port, "alice@customer.example", rcpts, raw)[0] == 250
        postfix.wait_for(lambda: postfix.maildir("customer"), "the reply sent by dispatch")
        postfix.wait_for(lambda: len(decisions(data)) == 2, "both pipe deliveries decided")
    finally:
        dispatch.stop()
    rows = decisions(data)
    assert [(d["decision"], d["channel"]) for d in rows] == [
        ("rejected_new_ticket", "pipe"),
        ("duplicate", "pipe"),
    ]
    assert len(postfix.maildir("customer")) == 1  # the second recipient: no second reply
    record_log("pipe: delivered to mailgate ingest", postfix, r"relay=mailgate, .*status=sent")


def test_pipe_hands_off_to_serve_as_the_service_user(bare_postfix: Postfix) -> None:
    """With `serve` running as the pipe's user, each `mailgate ingest` hands its message over
    the ingest socket: serve decides both deliveries and sends the one reply."""
    postfix = bare_postfix
    data, config, wrapper = pipe_install(postfix)
    values = {
        **RECIPE_VALUES,
        "MAILGATE_USER": postfix.user.pw_name,
        "MAILGATE_BIN": str(wrapper),
        "MAILGATE_CONFIG": str(config),
    }
    postfix.write_config(MAILBOXES, ("pipe.master.cf", "pipe.sh"), values)
    serve = MailgateProcess(data, ("serve",), argv=[str(wrapper), "--config", str(config)])
    serve.user = postfix.user.pw_uid
    serve.env = {k: v for k, v in serve.env.items() if not k.startswith("MAILGATE_")}
    try:
        postfix.start()
        assert serve.start()["ingest_socket"] == str(data / "ingest.sock")
        raw = fixture_bytes("new_ticket.eml")
        rcpts = ["support@wildix.com", "help@wildix.com"]
        assert submit(postfix.port, "alice@customer.example", rcpts, raw)[0] == 250
        postfix.wait_for(lambda: postfix.maildir("customer"), "the reply sent by serve")
        postfix.wait_for(lambda: len(decisions(data)) == 2, "both pipe deliveries decided")
        assert serve.process is not None and serve.process.stderr is not None
        serve.process.send_signal(signal.SIGTERM)
        assert serve.process.wait(60) == 0
        log = [json.loads(line) for line in serve.process.stderr if line.startswith(b"{")]
    finally:
        serve.stop()
    # serve's own log has both decisions: neither pipe process decided by itself
    assert [r["decision"] for r in log if r["event"] == "decision"] == [
        "rejected_new_ticket",
        "duplicate",
    ]
    assert [(d["decision"], d["channel"]) for d in decisions(data)] == [
        ("rejected_new_ticket", "pipe"),
        ("duplicate", "pipe"),
    ]
    assert len(postfix.maildir("customer")) == 1
    assert not (data / "ingest.sock").exists()
    record_log("pipe: handed to serve", postfix, r"relay=mailgate, .*status=sent")
