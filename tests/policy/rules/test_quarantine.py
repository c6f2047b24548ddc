"""``quarantine``: oversize, unparseable or suspicious mail hits; ordinary mail misses."""

from __future__ import annotations

from rule_context import context, message

from worker.policy.rules.quarantine import Quarantine


def test_oversize_hits() -> None:
    raw = message()
    verdict = Quarantine().check(context(raw, max_message_bytes=len(raw) - 1))
    assert verdict.hit
    assert verdict.reason == f"oversize: {len(raw)} bytes > {len(raw) - 1}"


def test_several_different_message_ids_hit() -> None:
    raw = message().replace(b"Date:", b"Message-ID: <other@x.example>\r\nDate:", 1)
    verdict = Quarantine().check(context(raw))
    assert (verdict.hit, verdict.reason) == (
        True,
        "suspicious: several different Message-ID headers",
    )


def test_several_from_headers_hit() -> None:
    raw = message().replace(b"Date:", b"From: mallory@evil.example\r\nDate:", 1)
    verdict = Quarantine().check(context(raw))
    assert (verdict.hit, verdict.reason) == (True, "suspicious: several From headers")


def test_the_same_message_id_twice_is_not_suspicious() -> None:
    raw = message().replace(b"Date:", b"Message-ID: <m1@mail.customer.example>\r\nDate:", 1)
    assert not Quarantine().check(context(raw)).hit


def test_ordinary_mail_misses() -> None:
    verdict = Quarantine().check(context())
    assert (verdict.hit, verdict.reason) == (False, "parseable and within limits")
