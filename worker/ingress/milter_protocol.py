"""The Sendmail milter wire protocol, version 6, as Postfix speaks it: framing and replies.

A packet is a 4-byte big-endian length, one command byte and its data; strings are
NUL-terminated. This module only reads packets off a stream and builds the replies mailgate
sends (continue, accept, discard, quarantine, reply code, add header, option negotiation);
what to answer is ``worker.ingress.milter``'s business. The constants carry the names of
libmilter's ``mfdef.h`` so they can be checked against Postfix's ``MILTER_README``.
"""

from __future__ import annotations

import asyncio
import struct

VERSION = 6
MAX_PACKET = 1024 * 1024  # Postfix sends body chunks of at most 64 KiB; anything bigger is noise

# Commands from the MTA (SMFIC_*).
OPTNEG = b"O"
MACRO = b"D"
CONNECT = b"C"
HELO = b"H"
MAIL = b"M"
RCPT = b"R"
DATA = b"T"
HEADER = b"L"
EOH = b"N"
BODY = b"B"
BODYEOB = b"E"
ABORT = b"A"
QUIT = b"Q"
QUIT_NC = b"K"
UNKNOWN = b"U"
# Commands the MTA expects no reply to.
NO_REPLY = frozenset({MACRO, ABORT, QUIT, QUIT_NC})

# Actions the milter may take at end of message (SMFIF_*).
ADD_HEADERS = 0x01
QUARANTINE_ACTION = 0x20

# Replies (SMFIR_*).
CONTINUE = b"c"
ACCEPT = b"a"
DISCARD = b"d"
TEMPFAIL = b"t"
QUARANTINE = b"q"
REPLY_CODE = b"y"
ADD_HEADER = b"h"


class ProtocolError(Exception):
    """The peer sent something that is not a milter packet."""


async def read_packet(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """The next ``(command, data)``, or None when the MTA closed the connection."""
    try:
        head = await reader.readexactly(4)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ProtocolError("truncated packet length") from None
        return None
    (length,) = struct.unpack("!I", head)
    if not 1 <= length <= MAX_PACKET:
        raise ProtocolError(f"bad packet length {length}")
    try:
        payload = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise ProtocolError("truncated packet") from None
    return payload[:1], payload[1:]


def packet(command: bytes, data: bytes = b"") -> bytes:
    return struct.pack("!I", len(data) + 1) + command + data


def strings(data: bytes) -> list[str]:
    """The NUL-terminated strings of a packet, decoded leniently (headers may be 8-bit)."""
    return [part.decode("utf-8", "surrogateescape") for part in data.split(b"\0")[:-1]]


def negotiate(offer: bytes) -> bytes:
    """Our SMFIC_OPTNEG answer: version 6, the actions we use, every step sent to us."""
    if len(offer) < 12:
        raise ProtocolError("short option negotiation")
    version, actions, _protocol = struct.unpack("!III", offer[:12])
    if version < 2:
        raise ProtocolError(f"milter protocol {version} too old")
    wanted = actions & (ADD_HEADERS | QUARANTINE_ACTION)
    return packet(OPTNEG, struct.pack("!III", min(version, VERSION), wanted, 0))


def reply_code(lines: list[str]) -> bytes:
    """SMFIR_REPLYCODE: ``550 5.7.1 text``; several lines become a multi-line reply."""
    return packet(REPLY_CODE, "\r\n".join(lines).encode("ascii", "replace") + b"\0")


def add_header(name: str, value: str) -> bytes:
    return packet(ADD_HEADER, name.encode() + b"\0" + value.encode() + b"\0")


def quarantine(reason: str) -> bytes:
    return packet(QUARANTINE, reason.encode("ascii", "replace") + b"\0")
