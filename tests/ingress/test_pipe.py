"""The pipe transport as Postfix's pipe(8) drives it: its arguments, its envelope, one reply.

The exit codes of ``mailgate ingest`` itself are tested in ``tests/test_cli.py`` through a
real subprocess; here the transport's own steps run in-process against the real store.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import fixture_bytes, outbox_files

from worker.errors import UsageProblem
from worker.ingress.pipe import PipeDelivery, deliver
from worker.pipeline import Mailgate

SUPPORT = "support@wildix.com"
SALES = "sales@wildix.com"


def test_expanded_recipients_become_recipients() -> None:
    """``--recipient ${recipient}`` with two recipients: the second arrives positional."""
    delivery = PipeDelivery.from_arguments(["-", SALES], "alice@customer.example", [SUPPORT])
    assert delivery.source == "-"
    assert delivery.recipients == (SUPPORT, SALES)


def test_file_defaults_to_standard_input() -> None:
    """Without ``-`` an expanded recipient is still a recipient, never a file name."""
    delivery = PipeDelivery.from_arguments([SALES], None, [SUPPORT])
    assert delivery.source == "-"
    assert delivery.recipients == (SUPPORT, SALES)


def test_an_existing_file_named_like_an_address_is_the_message(tmp_path: Path) -> None:
    message = tmp_path / "alice@customer.example"
    message.write_bytes(fixture_bytes("new_ticket.eml"))
    delivery = PipeDelivery.from_arguments([str(message)], None, [])
    assert delivery.source == str(message)
    assert delivery.recipients == ()


def test_two_files_are_a_usage_problem() -> None:
    with pytest.raises(UsageProblem, match="one message per call"):
        PipeDelivery.from_arguments(["a.eml", "b.eml"], None, [])


def test_mailer_daemon_sender_is_ignored_as_auto_generated(gate: Mailgate) -> None:
    """Postfix's pipe writes the null sender as MAILER-DAEMON: decided, never answered."""
    raw = fixture_bytes("new_ticket.eml")
    delivery = PipeDelivery.from_arguments(["-"], "MAILER-DAEMON", [SUPPORT])
    decision = deliver(gate, raw, delivery)
    assert decision.envelope_from == ""
    assert decision.decision == "ignored_auto_generated"
    assert decision.reply.status != "queued"
    assert outbox_files(gate) == []


def test_several_recipients_in_one_call_are_decided_once(gate: Mailgate) -> None:
    """One message for two support addresses: one decision naming both, one reply."""
    raw = fixture_bytes("new_ticket.eml")
    delivery = PipeDelivery.from_arguments(["-", SALES], "alice@customer.example", [SUPPORT])
    decision = deliver(gate, raw, delivery)
    assert decision.decision == "rejected_new_ticket"
    assert sorted(decision.recipients) == sorted([SUPPORT, SALES])
    assert decision.reply.status == "queued"
    assert len(outbox_files(gate)) == 1


def test_one_call_per_recipient_still_gives_one_reply(gate: Mailgate) -> None:
    """``mailgate_destination_recipient_limit = 1``: the second call is a duplicate."""
    raw = fixture_bytes("new_ticket.eml")
    first = deliver(
        gate, raw, PipeDelivery.from_arguments(["-"], "alice@customer.example", [SUPPORT])
    )
    second = deliver(
        gate, raw, PipeDelivery.from_arguments(["-"], "alice@customer.example", [SALES])
    )
    assert first.decision == "rejected_new_ticket"
    assert second.decision == "duplicate"
    assert second.reply.status != "queued"
    assert len(outbox_files(gate)) == 1
