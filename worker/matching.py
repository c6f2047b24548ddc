"""Finding the ticket a message refers to: signed addresses, minted Message-IDs, subject tags.

The methods are tried in the SPEC's order and the first verified hit wins. A signed reference
whose tag does not verify carries no authority: it still names a ticket, but like a subject
tag it then needs a sender who belongs to the ticket, so nobody reaches a ticket by guessing
its number or by editing a token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from worker.helpdesk.references import (
    HelpdeskReferences,
    rt_ticket_header,
    rt_ticket_in_message_id,
)
from worker.mail import InboundMail, domain_of
from worker.policy.document import Matching
from worker.ticket_ids import normalize_ticket_id
from worker.tokens import ReplyTokens

__all__ = ["TicketReference", "find_reference", "normalize_ticket_id", "strip_reply_prefixes"]


@dataclass(frozen=True)
class TicketReference:
    """A ticket id and how it was found; ``signed`` means a verified HMAC tag."""

    ticket: str
    method: str  # reply_address | message_id | subject_tag | helpdesk_message_id
    signed: bool
    detail: str


@lru_cache(maxsize=32)
def _prefix_pattern(prefixes: tuple[str, ...]) -> re.Pattern[str]:
    words = "|".join(re.escape(p) for p in sorted(set(prefixes), key=len, reverse=True))
    # "Re:", "RE :", "Re[2]:", "Re^2:", "Re(2):", full-width colon; repeated any number of times.
    return re.compile(
        rf"^(?:\s*(?:{words})\s*(?:\[\d+\]|\^\d+|\(\d+\))?\s*[:：])+\s*", re.IGNORECASE
    )


def strip_reply_prefixes(subject: str, prefixes: list[str]) -> str:
    """The subject without its leading reply/forward prefixes (``Re: AW: Fwd:`` …)."""
    return _prefix_pattern(tuple(prefixes)).sub("", subject, count=1)


@lru_cache(maxsize=32)
def _tag_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def find_reference(
    mail: InboundMail,
    recipients: list[str],
    matching: Matching,
    tokens: ReplyTokens,
    support_domains: list[str],
    helpdesk: HelpdeskReferences | None = None,
) -> tuple[TicketReference | None, list[str]]:
    """The first reference found, and a note for each method tried (for the trace).

    A verified reference wins at once; an unverified one is kept in case nothing better
    follows, so that it still names its ticket (for ``unauthorized_sender`` to judge).
    """
    notes: list[str] = []
    unverified: TicketReference | None = None
    if matching.signed_reply_address:
        found, bad, note = _by_reply_address(mail, recipients, tokens, support_domains)
        notes.append(note)
        if found:
            return found, notes
        unverified = bad
    if matching.signed_message_id:
        found, bad, note = _by_message_id(mail, tokens, support_domains)
        notes.append(note)
        if found:
            return found, notes
        unverified = unverified or bad
    helpdesk = helpdesk or HelpdeskReferences()
    found, note = _by_subject_tag(mail, matching, helpdesk)
    notes.append(note)
    if found is None and helpdesk.rt_message_ids:
        found, note = _by_helpdesk_message_id(mail, helpdesk)
        notes.append(note)
    return found or unverified, notes


_Found = tuple[TicketReference | None, TicketReference | None, str]


def _by_reply_address(
    mail: InboundMail, recipients: list[str], tokens: ReplyTokens, support_domains: list[str]
) -> _Found:
    """A signed ``support+<ticket>.<tag>@`` address among the envelope and header recipients."""
    unverified = None
    candidates = [*recipients, *mail.addresses("To", "Cc", "Delivered-To", "X-Original-To")]
    for address in candidates:
        if domain_of(address) not in support_domains:
            continue
        signed = tokens.parse_address(address)
        if signed is None:
            continue
        if signed.valid:
            found = TicketReference(signed.ticket, "reply_address", True, address)
            return found, None, f"reply_address: valid signed address for ticket {found.ticket}"
        unverified = unverified or TicketReference(
            normalize_ticket_id(signed.ticket), "reply_address", False, f"bad tag in {address}"
        )
    if unverified is None:
        return None, None, "reply_address: none"
    return None, unverified, f"reply_address: tag does not verify for ticket {unverified.ticket}"


def _by_message_id(mail: InboundMail, tokens: ReplyTokens, support_domains: list[str]) -> _Found:
    """A Message-ID we minted for a ticket, in In-Reply-To or References."""
    bad = None
    for message_id in mail.references:
        signed = tokens.parse_message_id(message_id, support_domains)
        if signed is None:
            continue
        if signed.valid:
            found = TicketReference(signed.ticket, "message_id", True, message_id)
            return found, None, f"message_id: minted Message-ID for ticket {signed.ticket}"
        bad = bad or TicketReference(signed.ticket, "message_id", False, "bad tag")
    if bad is None:
        return None, None, "message_id: none"
    return None, bad, f"message_id: tag does not verify for ticket {bad.ticket}"


def _by_subject_tag(
    mail: InboundMail, matching: Matching, helpdesk: HelpdeskReferences
) -> tuple[TicketReference | None, str]:
    """The policy's subject tags (and the helpdesk's) behind any reply prefixes; never
    proof of who sent it."""
    subject = strip_reply_prefixes(mail.subject, matching.reply_prefixes)
    for pattern in (*matching.tag_patterns(helpdesk.rt_name), *helpdesk.subject_tags):
        match = _tag_pattern(pattern).search(subject)
        if match:
            ticket = normalize_ticket_id(match["ticket"])
            found = TicketReference(ticket, "subject_tag", False, match.group(0))
            return found, f"subject_tag: ticket {ticket}"
    return None, "subject_tag: none"


def _by_helpdesk_message_id(
    mail: InboundMail, helpdesk: HelpdeskReferences
) -> tuple[TicketReference | None, str]:
    """RT's own Message-IDs in In-Reply-To/References, or its ``X-RT-Ticket`` header:
    a reply to RT's notification without the tag; unsigned, like a subject tag."""
    for message_id in mail.references:
        ticket = rt_ticket_in_message_id(message_id)
        if ticket is not None:
            found = TicketReference(ticket, "helpdesk_message_id", False, message_id)
            return found, f"helpdesk_message_id: RT Message-ID for ticket {ticket}"
    if helpdesk.rt_name:
        for value in mail.header_all("X-RT-Ticket"):
            ticket = rt_ticket_header(value, helpdesk.rt_name)
            if ticket is not None:
                found = TicketReference(ticket, "helpdesk_message_id", False, "X-RT-Ticket")
                return found, f"helpdesk_message_id: X-RT-Ticket for ticket {ticket}"
    return None, "helpdesk_message_id: none"
