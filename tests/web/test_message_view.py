"""The message view turns hostile mail into text and sanitised HTML, and never crashes."""

from __future__ import annotations

from helpers import fixture_bytes
from hostile_mail import HTML_BODY, IMG_NAME, SCRIPT_SUBJECT, html_message, svg_only_message

from worker.decision import DecisionName, OutboxStatus, ReplyReason, RuleName
from worker.web import labels
from worker.web.message_view import message_view, sanitise_html


def test_sanitised_html_keeps_text_and_safe_links_only() -> None:
    clean = sanitise_html(HTML_BODY)
    tags = [
        "script",
        "img",
        "svg",
        "style",
        "iframe",
        "form",
        "meta",
        "base",
        "link",
        "object",
        "embed",
        "video",
        "math",
    ]
    words = [
        "javascript:",
        "expression(",
        "onclick",
        "onerror",
        "onload",
        "style=",
        "remote.example",
        "data:",
    ]
    for needle in ["<" + tag for tag in tags] + words:
        assert needle not in clean.lower(), needle
    assert "Please verify your account." in clean and "<td>cell</td>" in clean
    assert 'rel="noopener noreferrer nofollow"' in clean
    assert '<a href="https://desk.example/t/1"' in sanitise_html(
        '<a href="https://desk.example/t/1" onmouseover="x()">ticket</a>'
    )


def test_names_subjects_and_attachments_are_decoded_to_text() -> None:
    view = message_view(html_message(7))
    headers = dict(view.headers)
    assert headers["Subject"] == SCRIPT_SUBJECT, "an encoded word decodes to text"
    assert view.sender.startswith(IMG_NAME)
    assert view.sender_address == "billing7@paypa1.example"
    assert any("support@wildix.com" in w for w in view.warnings), "a name posing as an address"
    assert [(a.name, a.size) for a in view.attachments] == [
        ("invoice<U+202E>fdp.exe", 12),  # the override written out: it does not read as .pdf
        (IMG_NAME + ".svg", 68),
    ]
    assert view.text.startswith("<script>alert('text')</script>")
    assert view.html is not None and "<script" not in view.html
    assert view.links == [], "javascript: and data: links lose their href"
    link = message_view(
        b"Content-Type: text/html\r\n\r\n"
        b'<a href="https://paypa1.example/login?a=1&amp;b=2">https://www.paypal.com</a>'
    )
    assert link.links == ["https://paypa1.example/login?a=1&b=2"], "where it goes, as text"


def test_an_html_only_svg_message_and_binary_garbage_do_not_crash() -> None:
    svg = message_view(svg_only_message())
    assert svg.text == "" and "<svg" not in (svg.html or "") and "iframe" not in (svg.html or "")
    garbage = message_view(fixture_bytes("binary_garbage.eml"))
    assert garbage.size > 0  # shown as far as it can be read, with no exception


def test_every_decision_and_rule_has_a_label_for_people() -> None:
    assert set(DecisionName) <= set(labels.DECISIONS)
    assert set(RuleName) <= set(labels.RULES)
    assert set(OutboxStatus) == set(labels.DELIVERY)
    assert set(ReplyReason) == set(labels.NO_REPLY) | labels.QUEUED_REASONS
    assert labels.reply_label("queued", "rejected_new_ticket", "spooled") == (
        "Reply written to the outbox folder"
    )
    assert labels.reply_label("suppressed", "rate_limited", None) == "No reply: one sent recently"
    assert labels.decision_group("rejected_language") == "rejected"
    step = {"operator": "ana", "action": "reject", "reason": "rejected by ana: a: b (record #3)"}
    assert labels.why("operator", [step]) == "rejected by ana: a: b"
    assert labels.why("operator", [{**step, "reason": "x"}]) == "rejected by ana"
