"""Why a token could not be had: the endpoint refused (an OAuth2 error code) or was unreachable.

The two call for different waits: a refusal (a wrong or expired client secret, a revoked
refresh token) will not heal by itself, so the mailbox retries slowly and ``/readyz`` says
not ready; an unreachable endpoint is a network hiccup and gets the usual reconnect backoff.
Messages never carry the secret: sources redact it before raising.
"""

from __future__ import annotations


class TokenError(Exception):
    """No token was obtained."""


class TokenRefused(TokenError):
    """The token endpoint answered with an OAuth2 error (RFC 6749 section 5.2)."""

    def __init__(self, code: str, description: str = "") -> None:
        super().__init__(f"{code}: {description}" if description else code)
        self.code = code
        self.description = description


class TokenEndpointUnreachable(TokenError):
    """The token endpoint could not be reached or answered nonsense."""
