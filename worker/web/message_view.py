"""A stored message made safe to look at: headers, text, sanitised HTML, attachments.

Every byte of a message is the sender's, and senders include phishers and people testing
XSS. This module turns a raw message into plain data the console only ever puts on the page
as text (``textContent``), except the HTML body, which first passes ammonia (through nh3)
with a short list of tags: no script, style, SVG, MathML, forms, images or frames, no event
handlers or ``style`` attributes, and links only to ``http``, ``https`` and ``mailto``.
Nothing remote survives, so opening a message loads nothing from its sender. Bidirectional
control characters, which make ``invoice\u202efdp.exe`` read as a PDF, are shown as their
code points wherever a name is displayed.
"""

from __future__ import annotations

import html
import re
from dataclasses import asdict, dataclass, field
from email import policy as email_policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import Any

import nh3

from worker.mail import InboundMail

SHOWN_HEADERS = (
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Return-Path",
    "Auto-Submitted",
    "Precedence",
    "List-Id",
    "Content-Language",
)
MAX_TEXT = 200_000  # characters of a body shown; the raw message holds the rest
MAX_PARTS = 200
MAX_LINKS = 50
# Tags a support mail needs to be read; everything else is stripped (its text kept).
SAFE_TAGS = frozenset(
    {"a", "b", "i", "u", "s", "em", "strong", "small", "sub", "sup", "code", "pre", "kbd"}
    | {"p", "div", "span", "br", "hr", "blockquote", "q", "cite", "center", "font"}
    | {"h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "dl", "dt", "dd"}
    | {"table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption", "col", "colgroup"}
)
# Whose content is code or a second document, not text: dropped with the tag.
DROPPED_WITH_CONTENT = frozenset(
    {"script", "style", "title", "svg", "math", "template", "noscript", "iframe", "object"}
)
SAFE_ATTRIBUTES = {
    "a": {"href", "title"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align"},
    "*": {"lang", "dir"},
}
LINK_SCHEMES = frozenset({"http", "https", "mailto"})
# Left-to-right/right-to-left marks, embeddings, overrides and isolates.
_HREF = re.compile(r'<a [^>]*href="([^"]*)"')
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """``text`` with its bidirectional controls written out, so a name reads as stored."""
    return _BIDI.sub(lambda found: f"<U+{ord(found.group()):04X}>", text)


def sanitise_html(html: str) -> str:
    """Ammonia's parse and clean with the console's short lists (see the module docstring)."""
    return nh3.clean(
        html[: MAX_TEXT * 2],
        tags=set(SAFE_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in SAFE_ATTRIBUTES.items()},
        url_schemes=set(LINK_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


@dataclass
class Attachment:
    name: str
    content_type: str
    size: int


@dataclass
class MessageView:
    headers: list[tuple[str, str]] = field(default_factory=list)
    sender: str = ""  # the From field decoded, whole: what a mail client would show
    sender_address: str = ""
    warnings: list[str] = field(default_factory=list)
    text: str = ""
    html: str | None = None  # sanitised
    links: list[str] = field(default_factory=list)  # where the HTML's links go, as text
    attachments: list[Attachment] = field(default_factory=list)
    size: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def message_view(raw: bytes) -> MessageView:
    """What the console shows of ``raw``: every field already text or sanitised HTML."""
    view = MessageView(size=len(raw))
    _read_headers(view, InboundMail.from_bytes(raw))
    try:
        message = BytesParser(policy=email_policy.default).parsebytes(raw)
    except Exception:  # the stdlib parser has known crashes on hostile input
        view.warnings.append("the body could not be parsed; only the raw message shows it")
        return view
    _read_body(view, message)
    return view


def _read_headers(view: MessageView, mail: InboundMail) -> None:
    for name in SHOWN_HEADERS:
        for value in mail.header_all(name):
            view.headers.append((name, visible(value)))
    sender = mail.header("From") or ""
    view.sender = visible(sender)
    view.sender_address = visible(mail.from_address)
    # "support@wildix.com <billing@paypa1.example>": the name shows one address, mail
    # goes to another.
    named = {a.lower() for a in _ADDRESS.findall(sender)} - {mail.from_address.lower()}
    if named:
        view.warnings.append("the sender's name holds another address: " + ", ".join(sorted(named)))
    if _BIDI.search(sender + mail.subject):
        view.warnings.append("the sender's name or subject holds text-direction controls")


def _read_body(view: MessageView, message: Message) -> None:
    texts: list[str] = []
    htmls: list[str] = []
    for count, part in enumerate(message.walk()):
        if count >= MAX_PARTS:
            view.warnings.append(f"more than {MAX_PARTS} parts: the rest are not listed")
            break
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        name = _part_name(part)
        kind = part.get_content_type()
        if disposition != "attachment" and name is None and kind in ("text/plain", "text/html"):
            (texts if kind == "text/plain" else htmls).append(_part_text(part))
        else:
            size = len(part.get_payload(decode=True) or b"")
            view.attachments.append(Attachment(visible(name or "(no name)"), kind, size))
    view.text = "\n".join(texts)[:MAX_TEXT]
    if htmls:
        view.html = sanitise_html("\n".join(htmls))
        # A phishing link hides behind its text: show where each one goes.
        found = (html.unescape(href) for href in _HREF.findall(view.html))
        view.links = list(dict.fromkeys(visible(link) for link in found))[:MAX_LINKS]


def _part_name(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        return "(unreadable name)"
    return None if name is None else str(name)


def _part_text(part: Message) -> str:
    """A text part decoded by its charset; a lying or unknown charset falls back to UTF-8."""
    try:
        if isinstance(part, EmailMessage):
            return str(part.get_content())
    except Exception:
        pass
    payload = part.get_payload(decode=True) or b""
    return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
