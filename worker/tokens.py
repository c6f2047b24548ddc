"""Signed ticket references: reply addresses and Message-IDs that prove knowledge of a ticket.

The tag is HMAC-SHA256 of the ticket id under ``MAILGATE_REPLY_SECRET``, truncated and
hex-encoded. It is checked statelessly and in constant time, so a reply address or a
``References`` entry minted for ticket 42 cannot be bent to ticket 43, and a truncated or
altered tag simply does not verify. Whoever holds a valid tag was sent it by the ticket
system, which is why a valid tag authorises its sender.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from worker.ticket_ids import normalize_ticket_id

TAG_LENGTH = 16  # hex characters: 64 bits, enough against online guessing

_ADDRESS = re.compile(r"^(?P<local>[^+@]+)\+(?P<ticket>[0-9A-Za-z_-]{1,64})\.(?P<tag>[0-9a-f]+)@")
_MSGID = re.compile(
    r"^<ticket\.(?P<ticket>[0-9A-Za-z_-]{1,64})\.(?P<nonce>[0-9a-z]{1,64})\."
    r"(?P<tag>[0-9a-f]+)@(?P<domain>[^<>\s]+)>$"
)


@dataclass(frozen=True)
class SignedReference:
    """A ticket id found in a signed form, and whether its tag verified."""

    ticket: str
    valid: bool
    source: str  # "reply_address" or "message_id"


class ReplyTokens:
    """Mints and verifies the tags for one secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def tag(self, ticket: str) -> str:
        """The tag of a ticket id as written; ``verify`` accepts either case of it."""
        digest = hmac.new(self._secret, f"ticket:{ticket}".encode(), hashlib.sha256)
        return digest.hexdigest()[:TAG_LENGTH]

    def verify(self, ticket: str, tag: str) -> bool:
        """Whether ``tag`` was minted for this id in its canonical (upper) case, or in lower
        case as tags minted before ids compared case-insensitively were."""
        if len(tag) != TAG_LENGTH:
            return False
        upper = hmac.compare_digest(self.tag(normalize_ticket_id(ticket)), tag)
        lower = hmac.compare_digest(self.tag(ticket.lower()), tag)
        return upper or lower

    def reply_address(self, ticket: str, local_part: str, domain: str) -> str:
        ticket = normalize_ticket_id(ticket)
        return f"{local_part}+{ticket}.{self.tag(ticket)}@{domain}"

    def message_id(self, ticket: str, domain: str, nonce: str | None = None) -> str:
        nonce = nonce or secrets.token_hex(6)
        ticket = normalize_ticket_id(ticket)
        return f"<ticket.{ticket}.{nonce}.{self.tag(ticket)}@{domain}>"

    def parse_address(self, address: str) -> SignedReference | None:
        match = _ADDRESS.match(address.lower())
        if not match:
            return None
        ticket = normalize_ticket_id(match["ticket"])
        return SignedReference(ticket, self.verify(match["ticket"], match["tag"]), "reply_address")

    def parse_message_id(self, message_id: str, domains: list[str]) -> SignedReference | None:
        match = _MSGID.match(message_id.strip().lower())
        if not match or match["domain"] not in domains:
            return None
        ticket = normalize_ticket_id(match["ticket"])
        return SignedReference(ticket, self.verify(match["ticket"], match["tag"]), "message_id")
