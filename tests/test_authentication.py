"""Backscatter guard: with MAILGATE_TRUSTED_AUTHSERV_ID, reply only to authenticated senders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import envelope, fixture_bytes, make_settings, with_headers

from worker.pipeline import Mailgate

OURS = "mx.wildix.com"


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Mailgate]:
    gate = Mailgate.open(make_settings(tmp_path, None, trusted_authserv_id=OURS))
    yield gate
    gate.engine.dispose()


@pytest.mark.parametrize(
    "header,status",
    [
        (f"{OURS}; spf=pass smtp.mailfrom=alice@customer.example", "queued"),
        (f"{OURS}; spf=pass smtp.mailfrom=customer.example", "queued"),
        (
            f"{OURS}; spf=fail smtp.mailfrom=customer.example; "
            "dmarc=pass header.from=customer.example",
            "queued",
        ),
        (f"{OURS.upper()}; dmarc=pass header.from=customer.example", "queued"),
        (f"{OURS}; spf=pass smtp.mailfrom=other.example", "suppressed"),
        (f"{OURS}; spf=softfail smtp.mailfrom=customer.example; dmarc=fail", "suppressed"),
        ("evil.example; spf=pass smtp.mailfrom=customer.example; dmarc=pass", "suppressed"),
        (f"{OURS}; ;;; ===", "suppressed"),
        ("", "suppressed"),
    ],
)
def test_reply_only_when_our_mta_vouched(guarded: Mailgate, header: str, status: str) -> None:
    raw = with_headers(fixture_bytes("new_ticket.eml"), Authentication_Results=header)
    decision = guarded.ingest(raw, envelope("alice@customer.example"))
    assert decision.decision == "rejected_new_ticket"
    assert decision.reply.status == status
    if status == "suppressed":
        assert decision.reply.reason == "unauthenticated_sender"


def test_without_the_setting_no_check(tmp_path: Path) -> None:
    gate = Mailgate.open(make_settings(tmp_path, None))
    decision = gate.ingest(fixture_bytes("new_ticket.eml"), envelope("alice@customer.example"))
    assert decision.reply.status == "queued"
