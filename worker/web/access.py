"""Whether a state-changing request came from this console or from another site.

Who is asking, and what their role allows, is ``worker.web.auth``'s; this is the other gate.
The bearer token already keeps a forged form from acting (a browser never adds it by
itself), and this check keeps it so if a token ever travels in a cookie: a request the
browser marks as sent from another site (``Sec-Fetch-Site``), or whose ``Origin`` names
another host, is refused whatever it carries. Scripts and ``curl`` send neither header and
are judged by their token alone.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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
