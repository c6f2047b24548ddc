"""OAuth2 credentials for IMAP and the relay: token sources, an in-memory cache, SASL strings.

``credentials_for`` builds one ``TokenManager`` per mailbox user from the settings
(``MAILGATE_OAUTH_*``): a generic token endpoint (authlib), Microsoft Entra (msal) or Google
(google-auth, including service accounts with domain-wide delegation). The manager caches
the token in memory, renews it ahead of expiry, forgets it after a refused login, and keeps
the health that ``/readyz``, ``/metrics`` and ``mailgate imap check`` report.
"""

from worker.oauth.errors import TokenEndpointUnreachable, TokenError, TokenRefused
from worker.oauth.manager import CredentialHealth, TokenManager, credentials_for
from worker.oauth.providers import Token

__all__ = [
    "CredentialHealth",
    "Token",
    "TokenEndpointUnreachable",
    "TokenError",
    "TokenManager",
    "TokenRefused",
    "credentials_for",
]
