"""The reference and the ticket, resolved once before the chain (the ``ticket_reference`` step)."""

from __future__ import annotations

from datetime import UTC, datetime

from helpers import envelope
from rule_context import DOMAINS, TOKENS, MemoryDirectory, message, policy, ticket

from worker.mail import InboundMail
from worker.policy.reference import resolve
from worker.store.tickets_view import TicketInfo

TAGGED = InboundMail.from_bytes(message(subject="Re: [Ticket#1001] thanks"))


class CountingDirectory(MemoryDirectory):
    def __init__(self) -> None:
        super().__init__((ticket(),))
        self.lookups: list[str] = []

    def ticket(self, ticket_id: str) -> TicketInfo | None:
        self.lookups.append(ticket_id)
        return super().ticket(ticket_id)


def test_reference_and_ticket_are_found_with_one_lookup() -> None:
    directory = CountingDirectory()
    found = resolve(TAGGED, envelope("bob@partner.example"), policy(), directory, TOKENS, DOMAINS)
    assert found.reference is not None and found.reference.method == "subject_tag"
    assert found.ticket == ticket()
    assert directory.lookups == ["1001"]
    assert found.step["rule"] == "ticket_reference" and found.step["hit"] is False
    assert found.step["reason"].startswith("unverified reference to ticket 1001 by subject_tag")


def test_a_reference_to_a_missing_ticket_keeps_the_reference() -> None:
    """unknown_ticket judges this: the reference stays, the ticket is None."""
    found = resolve(
        TAGGED, envelope("bob@partner.example"), policy(), MemoryDirectory(), TOKENS, DOMAINS
    )
    assert found.reference is not None and found.ticket is None


def test_no_reference_lists_every_method_tried() -> None:
    mail = InboundMail.from_bytes(message())
    found = resolve(mail, envelope("a@x.example"), policy(), MemoryDirectory(), TOKENS, DOMAINS)
    assert (found.reference, found.ticket) == (None, None)
    assert found.step["reason"] == (
        "no reference: reply_address: none; message_id: none; subject_tag: none"
    )


def test_without_a_policy_nothing_is_looked_up() -> None:
    directory = CountingDirectory()
    at = datetime(2017, 1, 1, tzinfo=UTC)
    found = resolve(
        TAGGED, envelope("bob@partner.example", at=at), None, directory, TOKENS, DOMAINS
    )
    assert found.reference is None and directory.lookups == []
    assert found.step["reason"] == "no policy in force: references not looked up"
