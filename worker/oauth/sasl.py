"""SASL initial responses for XOAUTH2 (Google, Microsoft) and OAUTHBEARER (RFC 7628).

OAUTHBEARER carries the user in its GS2 header (``a=``) because servers such as Dovecot
map the token's subject to that user; XOAUTH2 carries it in ``user=``. The strings hold a
bearer token: they are built right before AUTHENTICATE and never logged.
"""

from __future__ import annotations

from typing import Literal

Mechanism = Literal["xoauth2", "oauthbearer"]


def xoauth2(user: str, token: str) -> str:
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def oauthbearer(user: str, token: str, host: str = "", port: int = 0) -> str:
    fields = [f"auth=Bearer {token}"]
    if host:
        fields[:0] = [f"host={host}", f"port={port}"]
    return f"n,a={_saslname(user)},\x01" + "\x01".join(fields) + "\x01\x01"


def _saslname(user: str) -> str:
    # RFC 5801: ',' and '=' in the authorization identity are escaped.
    return user.replace("=", "=3D").replace(",", "=2C")
