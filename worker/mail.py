"""``InboundMail``: the parsed, typed view of one raw message, built for the decision path.

The raw bytes stay the source of truth; this view is rebuilt from them whenever needed. On
the hot path only the header block is parsed (with the lenient ``compat32`` rules, which
never refuse a header); the body is read only when a rule asks for ``body_text``
(``worker.mail_body``). Nothing here raises on bad input: a message that cannot be read becomes an
``InboundMail`` with ``parse_error`` set, and the quarantine rule decides it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from email import policy as email_policy
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parseaddr
from functools import cached_property, lru_cache

from worker.decision import Channel
from worker.language import LanguageGuess, identify, reply_text
from worker.mail_body import body_text

_MSGID = re.compile(r"<([^<>\s]{1,500}@[^<>\s]{1,255})>")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]+")
# A line ending followed by an empty line (CRLF, LF or CR, as the feed parser splits them):
# the end of the header block.
_BLANK_LINE = re.compile(rb"\r\n(?:\r\n|\r|\n)|\n(?:\r\n|\r|\n)|\r(?:\r\n|\r)")
NULL_SENDER_NAME = "mailer-daemon"


def clean_text(value: str, limit: int = 998) -> str:
    """Collapse control characters (CR, LF, NUL…) so a value can never start a new header."""
    return _CONTROL.sub(" ", value).strip()[:limit]


def undecodable(value: str | None) -> bool:
    """True when ``value`` holds octets that are not UTF-8, kept as surrogate escapes by the
    layer that read them off the wire (aiosmtpd, the milter packet, ``argv``). Such an
    address is no address (RFC 6531 wants UTF-8), and no digest, database or relay takes it."""
    if not value or value.isascii():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def printable(value: str) -> str:
    """``value`` safe to log or show: octets that are not UTF-8 become ``\\xff`` escapes."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@lru_cache(maxsize=4096)  # pure, and the same few senders and recipients come back
def normalize_address(value: str | None) -> str:
    """The one form addresses are compared and sent in, or ``""`` for the null or a broken one.

    ``local@domain`` with the local part lower-cased and in Unicode NFC (RFC 6532 allows
    UTF-8 there), and the domain as its IDNA A-label, so ``jörg@bücher.example`` written
    by one client and ``JÖRG@xn--bcher-kva.example`` by another are the same participant.
    """
    if not value or undecodable(value):
        return ""
    value = value.strip()
    if value in ("<>", ""):
        return ""
    _, addr = parseaddr(value)
    addr = unicodedata.normalize("NFC", clean_text(addr).strip("<>").lower())
    if addr.count("@") != 1 or " " in addr:
        return ""
    local, _, domain = addr.partition("@")
    domain = a_label(domain)
    if not local or not domain:
        return ""
    return f"{local}@{domain}"


def a_label(domain: str) -> str:
    """The domain in its ASCII (IDNA A-label) form; ``""`` when it cannot be one."""
    domain = domain.strip().rstrip(".").lower()
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return ""


def wire_address(address: str) -> str:
    """An address as sent in SMTP: the domain as an A-label (the local part as it is)."""
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        return address
    return f"{local}@{a_label(domain) or domain}"


def from_wire(value: str) -> str:
    """A header value read from bytes, with raw UTF-8 (RFC 6532) decoded as UTF-8.

    The header parser keeps non-ASCII octets as surrogate escapes; they are turned back into
    their bytes and read as UTF-8, or as Windows-1252 when they are not valid UTF-8 (the
    usual legacy 8-bit header).
    """
    if value.isascii():
        return value
    try:
        octets = value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:  # already text (a parsed str, not bytes)
        return value
    try:
        return octets.decode("utf-8")
    except UnicodeDecodeError:
        return octets.decode("cp1252", "replace")


def envelope_sender(value: str) -> str:
    """An envelope sender as an MTA passes it on a command line: ``""`` for the null sender.

    Postfix's pipe expands the null sender to ``MAILER-DAEMON`` (its ``null_sender``
    default), so that bare name is the null sender too, never an address to answer.
    """
    bare = value.strip().strip("<>").strip()
    if bare.lower() == NULL_SENDER_NAME:
        return ""
    return normalize_address(value)


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def message_ids(value: str | None) -> list[str]:
    """Every ``<id@host>`` token of a Message-ID, In-Reply-To or References header."""
    if not value:
        return []
    return [f"<{m}>" for m in _MSGID.findall(value)]


@dataclass(frozen=True)
class Envelope:
    """What the transport knows beside the bytes: SMTP envelope, channel, receipt time."""

    mail_from: str  # "" is the null sender <>
    rcpt_tos: tuple[str, ...]
    channel: Channel
    received_at: datetime

    @classmethod
    def from_headers(
        cls,
        mail: InboundMail,
        channel: Channel,
        received_at: datetime,
        rcpt_tos: tuple[str, ...] = (),
    ) -> Envelope:
        """The envelope of a message that arrived without one (pipe, replay, IMAP).

        The sender is the Return-Path the delivering MTA wrote (``<>`` for a bounce), else
        the From address; recipients, when none are given, are chosen later by the pipeline.
        """
        path = mail.return_path
        sender = path if path is not None else mail.from_address
        return cls(mail_from=sender, rcpt_tos=rcpt_tos, channel=channel, received_at=received_at)


@dataclass
class InboundMail:
    """A raw message and the header fields the policy rules read."""

    raw: bytes | bytearray  # the SMTP reader hands its buffer on uncopied
    headers: Message | None = None
    parse_error: str | None = None
    defects: list[str] = field(default_factory=list)
    # The rules ask for the same few fields over and over (a follow-up's From is read by a
    # dozen of them): each header's values and each address list are worked out once.
    _memo: dict[tuple[str, ...], list[str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def from_bytes(cls, raw: bytes | bytearray) -> InboundMail:
        mail = cls(raw=raw)
        try:
            parser = BytesHeaderParser(policy=email_policy.compat32)
            mail.headers = parser.parsebytes(header_block(raw))
            mail.defects = [type(d).__name__ for d in mail.headers.defects]
            if not any(True for _ in mail.headers):
                mail.parse_error = "no header fields"
        except Exception as exc:  # the stdlib parser has known crashes on hostile input
            mail.parse_error = f"unreadable header block: {type(exc).__name__}"
        return mail

    @cached_property
    def raw_sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    def header(self, name: str) -> str | None:
        """The first value of a header, decoded from RFC 2047 and stripped of CR/LF."""
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        key = ("decoded", name.lower())
        if key not in self._memo:
            self._memo[key] = [_decode(v) for v in self.header_raw_all(name)]
        return list(self._memo[key])

    def header_raw_all(self, name: str) -> list[str]:
        """Every value of a header as text, encoded words still encoded.

        Address headers are split on this form: a display name such as
        ``=?UTF-8?B?Rm9vLCBCYXI=?=`` ("Foo, Bar") holds a comma once decoded.
        """
        if self.headers is None:
            return []
        wanted = name.lower()
        key = ("raw", wanted)
        if key not in self._memo:
            try:
                values = [from_wire(v) for v in self._raw_index.get(wanted, ())]
            except Exception:
                values = []
            self._memo[key] = values
        return list(self._memo[key])

    @cached_property
    def _raw_index(self) -> dict[str, list[str]]:
        """Raw header values by lower-cased name, in order: one pass over the fields."""
        index: dict[str, list[str]] = {}
        if self.headers is not None:
            for name, value in self.headers.raw_items():
                index.setdefault(name.lower(), []).append(value)
        return index

    def has_header(self, name: str) -> bool:
        return self.headers is not None and name.lower() in self._raw_index

    def header_names(self) -> list[str]:
        if self.headers is None:
            return []
        return [str(k) for k in self.headers]

    @cached_property
    def subject(self) -> str:
        return clean_text(self.header("Subject") or "")

    @cached_property
    def message_id(self) -> str | None:
        ids = message_ids(self.header("Message-ID"))
        return ids[0] if ids else None

    @cached_property
    def dedup_key(self) -> str:
        """Message-ID when present (the MTA's identity of a message), else the raw digest."""
        if self.message_id:
            return "mid:" + self.message_id.lower()
        return "sha256:" + self.raw_sha256

    @cached_property
    def from_address(self) -> str:
        found = self.addresses("From")
        return found[0] if found else ""

    @cached_property
    def from_name(self) -> str:
        """The From display name, decoded (split from the address first, then decoded)."""
        pairs = getaddresses([clean_text(v, 10_000) for v in self.header_raw_all("From")[:1]])
        return _decode(pairs[0][0]) if pairs else ""

    @cached_property
    def return_path(self) -> str | None:
        """The Return-Path address; ``""`` for ``<>``; ``None`` when the header is absent."""
        values = self.header_raw_all("Return-Path")
        if not values:
            return None
        return normalize_address(clean_text(values[0]))

    @cached_property
    def references(self) -> list[str]:
        return message_ids(self.header("In-Reply-To")) + message_ids(self.header("References"))

    def addresses(self, *names: str) -> list[str]:
        """The addresses of address-list headers (From, Sender, Reply-To, Resent-*, To…).

        Split before any encoded word is decoded: only the display names are encoded, and a
        decoded name may hold the comma that separates addresses.
        """
        key = ("addresses", *(name.lower() for name in names))
        if key not in self._memo:
            found: list[str] = []
            for name in names:
                for value in self.header_raw_all(name):
                    found += _addresses_of(clean_text(value, 10_000))
            self._memo[key] = found
        return list(self._memo[key])

    @cached_property
    def content_type(self) -> str:
        if self.headers is None:
            return "text/plain"
        try:
            return self.headers.get_content_type()
        except Exception:
            return "text/plain"

    @cached_property
    def body_text(self) -> str:
        """The plain-text body (HTML stripped to text when there is no plain part), or ""
        when it cannot be read, so that the language rule abstains (``worker.mail_body``)."""
        headers = None if self.parse_error else self.headers
        return body_text(self.raw, headers, len(header_block(self.raw)))

    @cached_property
    def written_text(self) -> str:
        """What the sender wrote in this message: the body without quoted history and
        signature (``worker.language.reply_text``), cut once for every rule and reply."""
        return reply_text(self.body_text)

    @cached_property
    def written_language(self) -> LanguageGuess:
        """The identifier's guess for ``written_text``, made once per message: the language
        rule and the reply's language both read it."""
        return identify(self.written_text)


def header_block(raw: bytes | bytearray) -> bytes | bytearray:
    """The raw bytes up to and including the first empty line (all of them when none).

    The header parser still reads the whole body it is given (into a text copy, a UCS-4
    buffer, and the payload it keeps): for a 25 MB message that was ~7 times its size.
    Everything it would read as headers ends at or before the first empty line.
    """
    found = _BLANK_LINE.search(raw)
    return raw if found is None else raw[: found.end()]


def _addresses_of(value: str) -> list[str]:
    """The addresses of one header value, split first; a value whose addresses hide inside
    an encoded word (against RFC 2047, but some senders do it) is read decoded instead."""
    found = [a for a in (normalize_address(addr) for _, addr in getaddresses([value])) if a]
    if found or "=?" not in value:
        return found
    decoded = (normalize_address(addr) for _, addr in getaddresses([_decode(value)]))
    return [a for a in decoded if a]


def _decode(value: object) -> str:
    text = str(value)
    if "=?" not in text:
        return clean_text(text, 10_000) if ("\r" in text or "\n" in text) else text
    try:
        return clean_text(str(make_header(decode_header(text))), 10_000)
    except Exception:  # a broken encoded-word: keep the raw text, still without CR/LF
        return clean_text(text, 10_000)
