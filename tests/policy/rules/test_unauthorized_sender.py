"""``unauthorized_sender``: only participants (or, where allowed, their domains) or a valid
signed token may post to a ticket."""

from __future__ import annotations

from rule_context import TOKENS, MemoryDirectory, context, message, ticket

from worker.policy.rules.unauthorized_sender import UnauthorizedSender

TAGGED = message(subject="Re: [Ticket#1001] still broken")
PARTNER = MemoryDirectory((ticket(domains=("partner.example",)),))


def test_stranger_hits_under_participants_only() -> None:
    verdict = UnauthorizedSender().check(context(TAGGED, directory=PARTNER))
    assert (verdict.hit, verdict.reason) == (
        True,
        "sender is not a participant and no valid signed token was used",
    )


def test_participant_misses() -> None:
    raw = message(subject="Re: [Ticket#1001] x", From="bob@partner.example")
    verdict = UnauthorizedSender().check(
        context(raw, sender="bob@partner.example", directory=PARTNER)
    )
    assert (verdict.hit, verdict.reason) == (False, "sender is a participant")


def test_participant_match_ignores_case() -> None:
    raw = message(subject="Re: [Ticket#1001] x", From="Bob@Partner.example")
    directory = MemoryDirectory((ticket(participants=("BOB@partner.example",)),))
    verdict = UnauthorizedSender().check(context(raw, sender="", directory=directory))
    assert not verdict.hit


def test_organisation_domain_counts_only_where_the_policy_allows_it() -> None:
    """2018 allows the ticket's organisation domains; 2022 only participants."""
    raw = message(subject="Re: [Ticket#1001] x", From="dan@partner.example")
    older = context(
        raw, sender="dan@partner.example", directory=PARTNER, policy_id="wildix-2018-06"
    )
    newer = context(raw, sender="dan@partner.example", directory=PARTNER)
    assert not UnauthorizedSender().check(older).hit
    assert UnauthorizedSender().check(older).reason == (
        "sender belongs to an organisation domain of the ticket"
    )
    assert UnauthorizedSender().check(newer).hit


def test_signed_reply_address_authorises_a_stranger() -> None:
    address = TOKENS.reply_address("1001", "support", "wildix.com")
    raw = message(To=address)
    verdict = UnauthorizedSender().check(context(raw, rcpt=(address,), directory=PARTNER))
    assert (verdict.hit, verdict.reason) == (False, "signed reply_address authorises the sender")


def test_forged_tag_carries_no_authority() -> None:
    """An edited token still names the ticket but authorises nobody."""
    address = TOKENS.reply_address("1001", "support", "wildix.com")
    local, _, domain = address.partition("@")
    forged = local[:-1] + ("0" if local[-1] != "0" else "1") + "@" + domain
    verdict = UnauthorizedSender().check(
        context(message(To=forged), rcpt=(forged,), directory=PARTNER)
    )
    assert verdict.hit
