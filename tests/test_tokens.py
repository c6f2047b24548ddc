"""Signed reply addresses and Message-IDs verify exactly, statelessly, per ticket."""

from __future__ import annotations

from worker.tokens import TAG_LENGTH, ReplyTokens

TOKENS = ReplyTokens(b"k1")


def test_reply_address_round_trip() -> None:
    """The minted address parses back to its ticket, verified."""
    address = TOKENS.reply_address("1001", "support", "wildix.com")
    parsed = TOKENS.parse_address(address)
    assert parsed is not None and parsed.ticket == "1001" and parsed.valid


def test_other_secret_does_not_verify() -> None:
    """A tag made with another installation's secret is worthless here."""
    address = ReplyTokens(b"k2").reply_address("1001", "support", "wildix.com")
    parsed = TOKENS.parse_address(address)
    assert parsed is not None and not parsed.valid


def test_truncated_and_cross_ticket_tags_fail() -> None:
    """Shortened tags and tags of another ticket are refused."""
    tag = TOKENS.tag("1001")
    assert len(tag) == TAG_LENGTH
    assert not TOKENS.verify("1001", tag[:-1])
    assert not TOKENS.verify("1002", tag)
    assert not TOKENS.verify("1001", tag.upper())


def test_message_id_round_trip_only_in_our_domains() -> None:
    """Minted Message-IDs verify in our domains and are ignored elsewhere."""
    minted = TOKENS.message_id("42", "wildix.com")
    parsed = TOKENS.parse_message_id(minted, ["wildix.com"])
    assert parsed is not None and parsed.valid and parsed.ticket == "42"
    assert TOKENS.parse_message_id(minted, ["example.com"]) is None
    assert TOKENS.parse_message_id("<random@wildix.com>", ["wildix.com"]) is None
