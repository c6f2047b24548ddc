"""The desk's spam filter verdict (SpamAssassin, rspamd) suppresses the reply, never the
decision; a policy can turn it off."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import POLICIES, envelope, fixture_bytes, make_settings, outbox_files, with_headers

from worker.pipeline import Mailgate

VERDICTS = {
    "spamassassin flag": {"X_Spam_Flag": "YES"},
    "spamassassin status": {"X_Spam_Status": "Yes, score=12.3 required=5.0 tests=GTUBE"},
    "rspamd x-spam": {"X_Spam": "Yes"},
    "rspamd result": {"X_Spamd_Result": "default: True [15.20 / 15.00]; GTUBE(15.00)[]"},
}
NOT_SPAM = {
    "spamassassin no": {"X_Spam_Flag": "NO", "X_Spam_Status": "No, score=0.1 required=5.0"},
    "rspamd false": {"X_Spamd_Result": "default: False [0.50 / 15.00]; R_SPF_ALLOW(-0.2)[]"},
}


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Mailgate]:
    instance = Mailgate.open(make_settings(tmp_path))
    yield instance
    instance.engine.dispose()


@pytest.mark.parametrize("headers", VERDICTS.values(), ids=VERDICTS.keys())
def test_spam_verdict_is_decided_and_recorded_without_reply(
    gate: Mailgate, headers: dict[str, str]
) -> None:
    raw = with_headers(fixture_bytes("new_ticket.eml"), **headers)
    decision = gate.ingest(raw, envelope("alice@customer.example"))
    assert decision.decision == "rejected_new_ticket"
    assert decision.reply.as_dict() == {"status": "suppressed", "reason": "spam"}
    assert decision.id is not None and outbox_files(gate) == []


@pytest.mark.parametrize("headers", NOT_SPAM.values(), ids=NOT_SPAM.keys())
def test_ham_verdict_keeps_the_reply(gate: Mailgate, headers: dict[str, str]) -> None:
    raw = with_headers(fixture_bytes("new_ticket.eml"), **headers)
    decision = gate.ingest(raw, envelope("alice@customer.example"))
    assert decision.reply.status == "queued"
    assert len(outbox_files(gate)) == 1


def test_policy_can_turn_the_spam_verdict_off(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    current = policies / "wildix-2022-04.toml"
    text = current.read_text()
    assert "suppress_on_spam_verdict = true" in text
    current.write_text(
        text.replace("suppress_on_spam_verdict = true", "suppress_on_spam_verdict = false")
    )
    gate = Mailgate.open(make_settings(tmp_path, policy_dir=policies))
    raw = with_headers(fixture_bytes("new_ticket.eml"), X_Spam_Flag="YES")
    decision = gate.ingest(raw, envelope("alice@customer.example"))
    assert decision.reply.status == "queued"
