"""RFC 3834 automatic replies: when one is planned, its header set, and its rendered text."""

from __future__ import annotations

import shutil
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest
from rule_context import DOMAINS, message, policy

from worker.decision import ReplyPlan, ReplyStatus
from worker.mail import InboundMail
from worker.policy.document import PolicySet
from worker.replies import build_reply, plan_reply

INBOUND = message(
    subject="W-AIR handsets do not register",
    body="SECRET-BODY-LINE: two handsets are down since Monday.",
    References="<a@x.example> <b@x.example>",
)


def reply_to(
    raw: bytes, decision: str = "rejected_new_ticket", ticket: str | None = None
) -> EmailMessage:
    body, message_id = build_reply(
        decision=decision,
        mail=InboundMail.from_bytes(raw),
        recipient="alice@customer.example",
        policy=policy(),
        support_domains=DOMAINS,
        ticket=ticket,
    )
    parsed = message_from_bytes(body, policy=default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Message-ID"] == message_id
    return parsed


def text_of(reply: EmailMessage) -> str:
    part = reply.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    return part.get_content()


def test_rfc3834_header_set() -> None:
    """Auto-Submitted, suppression hint, threading, Auto: subject, From the support address."""
    reply = reply_to(INBOUND)
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["X-Auto-Response-Suppress"] == "All"
    assert reply["In-Reply-To"] == "<m1@mail.customer.example>"
    assert reply["References"].split() == [
        "<a@x.example>",
        "<b@x.example>",
        "<m1@mail.customer.example>",
    ]
    assert reply["Subject"] == "Auto: W-AIR handsets do not register"
    assert reply["From"].addresses[0].addr_spec == "support@wildix.com"
    assert reply["From"].addresses[0].display_name == "Wildix Support"
    assert reply["To"] == "Alice <alice@customer.example>", "the customer's display name kept"
    assert reply["Content-Language"] == "en"
    assert not [name for name in reply if name.lower().startswith("x-mailgate")]
    assert b"rejected_" not in reply.as_bytes(), "no internal decision name anywhere"


def test_every_reply_gets_a_fresh_message_id_in_our_domain() -> None:
    """Our own domain in the Message-ID is what lets a reply that comes back be seen as a loop."""
    first, second = reply_to(INBOUND), reply_to(INBOUND)
    assert first["Message-ID"] != second["Message-ID"]
    assert first["Message-ID"].endswith("@wildix.com>")
    assert first["Message-ID"] != "<m1@mail.customer.example>"


def test_never_quotes_the_inbound_body() -> None:
    text = text_of(reply_to(INBOUND))
    assert "SECRET-BODY-LINE" not in text and "two handsets" not in text


def test_template_is_rendered_with_the_policy_and_the_ticket() -> None:
    new_ticket = text_of(reply_to(INBOUND))
    assert "https://wmp.wildix.com" in new_ticket and "Help Desk tab" in new_ticket
    assert "$" not in new_ticket, "no placeholder left unrendered"
    closed = text_of(reply_to(INBOUND, "rejected_closed_ticket", ticket="3003"))
    assert "ticket 3003 is closed" in " ".join(closed.split()), "wrapped anywhere"


def test_missing_message_id_means_no_threading_headers() -> None:
    reply = reply_to(message(Message_ID=""))
    assert reply["In-Reply-To"] is None and reply["References"] is None


def test_malformed_references_are_left_out() -> None:
    reply = reply_to(message(References="<ok@x.example> <bad id@x> not-an-id"))
    assert reply["References"].split() == ["<ok@x.example>", "<m1@mail.customer.example>"]


def test_subject_cannot_add_a_header() -> None:
    """Control characters are stripped from the only inbound value that reaches a header."""
    raw = message().replace(b"Subject: my PBX is down", b"Subject: hi\rBcc: victim@x.example")
    reply = reply_to(raw)
    assert reply["Bcc"] is None
    assert reply["Subject"].startswith("Auto: hi")


def test_empty_subject_gets_a_neutral_one() -> None:
    assert reply_to(message(subject=""))["Subject"] == "Auto: your message to support"


def test_non_ascii_subject_and_body_are_encoded() -> None:
    raw = message(subject="=?utf-8?q?R=C3=A9clamation_facture?=")
    reply = reply_to(raw, "rejected_language", ticket="2002")
    assert reply["Subject"] == "Auto: Réclamation facture"
    assert reply.get_body(("plain",)).get_content_charset() == "utf-8"  # type: ignore[union-attr]


def plan(
    raw: bytes = INBOUND, decision: str = "rejected_new_ticket", **overrides: object
) -> ReplyPlan:
    arguments: dict[str, object] = {
        "decision": decision,
        "mail": InboundMail.from_bytes(raw),
        "envelope_from": "alice@customer.example",
        "recipients": ["support@wildix.com"],
        "policy": policy(),
        "support_domains": DOMAINS,
        "channel": "smtp",
    }
    arguments.update(overrides)
    return plan_reply(**arguments)  # type: ignore[arg-type]


def test_a_rejection_is_answered_to_the_envelope_sender() -> None:
    assert plan() == ReplyPlan(ReplyStatus.QUEUED, "rejected_new_ticket", "alice@customer.example")


@pytest.mark.parametrize(
    "decision,overrides,reason",
    [
        ("ignored_auto_generated", {}, "auto_generated"),
        ("duplicate", {}, "duplicate"),
        ("quarantined", {}, "quarantined"),
        ("accepted_followup", {}, "no_reply_for_decision"),
        ("rejected_new_ticket", {"policy": None}, "no_reply_for_decision"),
        ("rejected_new_ticket", {"channel": "replay"}, "replay"),
        ("rejected_new_ticket", {"envelope_from": ""}, "null_sender"),
        ("rejected_new_ticket", {"recipients": ["x@other.example"]}, "no_support_recipient"),
    ],
)
def test_when_no_reply_is_sent(decision: str, overrides: dict[str, object], reason: str) -> None:
    assert plan(INBOUND, decision, **overrides) == ReplyPlan(ReplyStatus.SUPPRESSED, reason)


def test_x_auto_response_suppress_is_honoured() -> None:
    raw = message(X_Auto_Response_Suppress="DR, AutoReply")
    assert plan(raw) == ReplyPlan(ReplyStatus.SUPPRESSED, "x_auto_response_suppress")


def test_blind_copies_are_not_answered() -> None:
    """RFC 5230 4.5: only mail that names us in its header gets a reply."""
    raw = message(To="team@customer.example")
    assert plan(raw) == ReplyPlan(ReplyStatus.SUPPRESSED, "not_addressed_to_support")


@pytest.mark.parametrize(
    "display,expected",
    [
        ('"Rossi, Mario (IT)" <alice@customer.example>', "Rossi, Mario (IT)"),
        ('"Eve \\"boss\\" <x@y>" <alice@customer.example>', 'Eve "boss" <x@y>'),
        ("=?utf-8?q?Bcc=3A_victim=40x=2Eexample=0D=0AX=3A?= <alice@customer.example>", None),
        ('"=?utf-8?q?not_decoded?=" <alice@customer.example>', None),
        ("Mallory <mallory@elsewhere.example>", ""),
    ],
)
def test_the_display_name_is_kept_and_cannot_add_a_header(
    display: str, expected: str | None
) -> None:
    """Only the name the sender gave the replied-to address, quoted or encoded as needed."""
    reply = reply_to(message(From=display))
    to = reply["To"].addresses
    assert [a.addr_spec for a in to] == ["alice@customer.example"]
    if expected is not None:
        assert to[0].display_name == expected
    assert reply["Bcc"] is None and reply["X"] is None
    assert all(line.startswith((" ", "\t")) or ":" in line for line in str(reply).split("\n")[:12])


def test_the_html_part_escapes_what_the_customer_wrote(tmp_path: Path) -> None:
    """A policy may quote the subject; both parts show it as text, the HTML escaped."""
    target = tmp_path / "policies"
    shutil.copytree(Path(__file__).parents[1] / "policies", target)
    template = target / "templates" / "new_ticket.txt"
    template.write_text(template.read_text() + "\nAbout: $subject\n")
    loaded = PolicySet.load(target).policies[-1]
    raw = message(subject='<img src="https://evil.example/x.png"> & <script>x</script>')
    body, _ = build_reply(
        decision="rejected_new_ticket",
        mail=InboundMail.from_bytes(raw),
        recipient="alice@customer.example",
        policy=loaded,
        support_domains=DOMAINS,
        ticket=None,
        language="it",
    )
    parsed = message_from_bytes(body, policy=default)
    assert isinstance(parsed, EmailMessage)
    html = parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "&lt;img src=" in html and "<img" not in html and "<script" not in html
    assert "&amp;" in html
    # A paragraph the catalogue does not know: the whole reply stays English.
    assert parsed["Content-Language"] == "en"
    assert "About: <img" in text_of(parsed)
