"""The SMTP/LMTP ``DATA`` phase read into one growing buffer instead of a list of lines.

aiosmtpd's ``smtp_DATA`` keeps every line as its own ``bytearray`` in a list (about 56
bytes of object for a 78-byte line) and joins them at the end: a 25 MB message peaks at
about 4× its size before the handler sees it (``bench/big_message_bench.py``). This
``smtp_DATA`` is aiosmtpd 1.4's, step for step (the same replies, the ``.`` terminator,
dot-unstuffing, the 552 size limit counted on the wire bytes, the line-length limit, both
reported only after the terminator; not the deprecated ``process_message`` handler API,
which mailgate's handler does not use), except that each line is appended to one
``bytearray``, which is handed on as it is: ``envelope.original_content`` is that buffer, and
nothing downstream copies it into a ``bytes``.
"""

from __future__ import annotations

import asyncio
import enum
from typing import TYPE_CHECKING

from aiosmtpd.smtp import MISSING, SMTP, syntax

# The mixin sits before aiosmtpd's SMTP in the MRO; the checker sees it as one.
if TYPE_CHECKING:
    _Base = SMTP
else:
    _Base = object

TERMINATOR = b".\r\n"


class _State(enum.Enum):
    NOMINAL = enum.auto()
    TOO_LONG = enum.auto()
    TOO_MUCH = enum.auto()


class OneBufferData(_Base):
    """Mixed in before aiosmtpd's ``SMTP``/``LMTP``: replaces ``smtp_DATA`` only."""

    @syntax("DATA")  # HELP lists only commands that carry their syntax text
    async def smtp_DATA(self, arg: str) -> None:
        if not await self._data_allowed(arg):
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        content, state = await self._read_content()
        if state is _State.TOO_LONG:
            await self.push("500 Line too long (see RFC5321 4.5.3.1.6)")
        elif state is _State.TOO_MUCH:
            await self.push("552 Error: Too much mail data")
        if state is not _State.NOMINAL:
            self._set_post_data_state()
            return
        if not await self._set_content(content):
            return
        status = await self._call_handler_hook("DATA") if "DATA" in self._handle_hooks else MISSING
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    async def _data_allowed(self, arg: str) -> bool:
        """aiosmtpd's checks before ``354``, in its order and with its replies."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return False
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return False
        if arg:
            await self.push("501 Syntax: DATA")
            return False
        return True

    async def _read_content(self) -> tuple[bytearray, _State]:
        """Lines up to the lone ``.``, unstuffed into one buffer; oversize is read and dropped.

        An over-long or over-size message is still read to its terminator (RFC 5321 4.2.5:
        the reply comes after the data), but its bytes are dropped as soon as that is known.
        """
        content = bytearray()
        limit = self.data_size_limit
        received = 0
        state = _State.NOMINAL
        in_line = False  # the last read ended inside a line longer than the stream limit
        while self.transport is not None:  # eof_received cancels us: no IncompleteReadError
            try:
                line = await self._reader.readuntil(b"\r\n")
            except asyncio.CancelledError:  # the connection went away during DATA
                self._writer.close()
                raise
            except asyncio.LimitOverrunError as error:
                if state is _State.NOMINAL:
                    state = _State.TOO_LONG
                    content = bytearray()
                line = await self._reader.read(error.consumed)
            if not in_line and line == TERMINATOR:
                break
            received += len(line)
            if state is _State.NOMINAL and limit and received > limit:
                state = _State.TOO_MUCH
                content = bytearray()
            in_line = not line.endswith(b"\r\n")
            # Only a NOMINAL state has whole lines: any fragment already made it TOO_LONG.
            if state is not _State.NOMINAL or in_line:
                continue
            if len(line) > self.line_length_limit:  # the separator just past the limit
                state = _State.TOO_LONG
                content = bytearray()
            elif line.startswith(b"."):  # dot-unstuffing, RFC 5321 4.5.2
                content += memoryview(line)[1:]
            else:
                content += line
        return content, state

    async def _set_content(self, content: bytearray) -> bool:
        """The envelope's ``original_content`` and ``content``, as aiosmtpd sets them."""
        assert self.envelope is not None
        if not self._decode_data:  # mailgate's case: the buffer itself, no copy
            # A bytearray where aiosmtpd's Envelope says bytes: the handler reads it as a buffer.
            self.envelope.content = content  # type: ignore[assignment]
            self.envelope.original_content = content  # type: ignore[assignment]
            return True
        original = bytes(content)  # kept so that the class stays aiosmtpd's with decode_data
        decoded: str
        if self.enable_SMTPUTF8:
            decoded = original.decode("utf-8", errors="surrogateescape")
        else:
            try:
                decoded = original.decode("ascii", errors="strict")
            except UnicodeDecodeError:
                await self.push("500 Error: strict ASCII mode")
                return False
        self.envelope.content, self.envelope.original_content = decoded, original
        return True
