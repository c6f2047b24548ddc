"""Who is asking, and whether the request may act: the console's two gates.

``viewer_for`` names the holder of a bearer token (the ``MAILGATE_API_TOKEN`` holder is the
``admin`` named ``admin``, compared in constant time). ``cross_site`` refuses a
state-changing request a browser sent on behalf of another site: the bearer token already
keeps a forged form from acting, and this check keeps it so if a token ever travels in a
cookie. Scripts and ``curl`` send neither header and are judged by their token alone.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from aiohttp import web

from worker.settings import Settings

Role = Literal["viewer", "operator", "admin"]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What each role may do beyond reading decisions; reading content is recorded for all.
MAY_READ_RAW: frozenset[str] = frozenset({"operator", "admin"})
MAY_ACT: frozenset[str] = frozenset({"operator", "admin"})


@dataclass(frozen=True)
class Viewer:
    name: str
    role: Role

    @property
    def may_read_raw(self) -> bool:
        return self.role in MAY_READ_RAW

    @property
    def may_act(self) -> bool:
        return self.role in MAY_ACT


def viewer_for(settings: Settings, authorization: str) -> Viewer | None:
    """The named holder of ``Authorization: Bearer …``, or None."""
    scheme, _, offered = authorization.partition(" ")
    if scheme.lower() != "bearer" or not offered:
        return None
    token = settings.api_token
    if token and hmac.compare_digest(offered.strip().encode(), token.encode()):
        return Viewer("admin", "admin")
    return None


def cross_site(request: web.Request) -> str | None:
    """Why a state-changing request looks cross-site, or None when it may go on."""
    if request.method in SAFE_METHODS:
        return None
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site: {fetch_site}"
    origin = request.headers.get("Origin")
    # Host, not scheme: behind a TLS-terminating proxy the page is https, the request http.
    if origin is not None and urlsplit(origin).netloc != request.host:
        return f"Origin {origin} is not this console"
    return None
