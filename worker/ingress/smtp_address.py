"""The address of ``MAIL FROM`` and ``RCPT TO``, read as aiosmtpd reads it, minus a class.

aiosmtpd 1.4.6's ``SMTP._getaddr`` defines a ``typing.Protocol`` class inside the method,
so every MAIL and RCPT command builds a class (``ABCMeta.__new__``): 3% of ``serve``'s CPU
under ``bench/smtp_bench.py`` (issue 24). This is the same parse without it: the stdlib's
RFC 5322 angle-address or addr-spec reader, ``None`` for what it cannot read, and the
local-part limit aiosmtpd applies.
"""

from __future__ import annotations

from email._header_value_parser import get_addr_spec, get_angle_addr
from email.errors import HeaderParseError
from typing import Any


class AddressReader:
    """Mixed into the SMTP/LMTP protocol classes ahead of aiosmtpd's ``SMTP``."""

    local_part_limit: int

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        if not arg:
            return "", ""
        address: Any
        try:
            if arg.lstrip().startswith("<"):
                address, rest = get_angle_addr(arg)
            else:
                address, rest = get_addr_spec(arg)
        except HeaderParseError:
            return None, None
        addr = str(address.addr_spec)
        localpart = addr.rpartition("@")[0]
        if self.local_part_limit and len(localpart) > self.local_part_limit:
            return None, None
        return addr, rest
