"""Test fixtures for OAuth2: a small authorization server and a Dovecot that asks it.

``OAuthServer`` is an aiohttp app on loopback in its own thread: ``/token`` issues short-lived
opaque tokens for the client credentials and refresh-token grants, ``/introspect`` answers
RFC 7662 (Dovecot 2.3 posts ``token``, ``client_id`` and ``client_secret`` as a form), and
``revoke_all`` makes every token issued so far inactive. It records what it issued and what
it was asked, and notifies a condition so tests wait on events rather than sleep.
``OAuthDovecot`` is the helpers' throw-away Dovecot with ``passdb { driver = oauth2 }`` for
XOAUTH2/OAUTHBEARER in front of the password database the test helpers log in with.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BasicAuth, web
from helpers import Dovecot

CLIENT_ID, CLIENT_SECRET = "mailgate-app", "client-secret-Qx7vW2pL9zR4"
REFRESH_TOKEN = "refresh-Hk3mN8bV1cX6"
DOVECOT_ID, DOVECOT_SECRET = "dovecot", "dovecot-introspection-secret"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Issued:
    token: str
    grant: str
    expires: float  # time.monotonic()
    revoked: bool = False
    claims: dict[str, Any] | None = None  # of the JWT assertion (service accounts)


@dataclass
class Introspection:
    token: str
    active: bool
    at: float = field(default_factory=time.monotonic)


class OAuthServer:
    def __init__(self, lifetime: float = 3600, user: str = Dovecot.user, tls: Any = None) -> None:
        self.lifetime = lifetime
        self.tls = tls  # an ssl.SSLContext: serve https (msal accepts nothing else)
        self.user = user
        self.issued: list[Issued] = []
        self.refused: list[str] = []  # error codes answered by /token
        self.introspections: list[Introspection] = []
        self.service_account_key: bytes | None = None  # public key PEM, see service_account()
        self.changed = threading.Condition()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(15), "oauth server did not start"

    # -- the server thread ---------------------------------------------------------------

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.add_routes(
            [
                web.post("/token", self._token),
                web.post("/introspect", self._introspect),
                web.get("/{tenant}/v2.0/.well-known/openid-configuration", self._discovery),
            ]
        )
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.tls)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        self.loop.run_forever()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    async def _discovery(self, request: web.Request) -> web.Response:
        """The OpenID configuration msal reads from an Entra-like authority."""
        tenant = request.match_info["tenant"]
        return web.json_response(
            {
                "token_endpoint": self.token_url,
                "authorization_endpoint": f"{self.base_url}/{tenant}/authorize",
                "issuer": f"{self.base_url}/{tenant}/v2.0",
            }
        )

    @property
    def introspection_url(self) -> str:
        return f"{self.base_url}/introspect"

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") == JWT_BEARER:
            return self._issue(JWT_BEARER, self._assertion(str(form.get("assertion"))))
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if "Authorization" in request.headers:
            basic = BasicAuth.decode(request.headers["Authorization"])
            client_id, client_secret = basic.login, basic.password
        if (client_id, client_secret) != (CLIENT_ID, CLIENT_SECRET):
            return self._error("invalid_client", "client authentication failed", 401)
        grant = str(form.get("grant_type"))
        if grant == "refresh_token" and form.get("refresh_token") != REFRESH_TOKEN:
            return self._error("invalid_grant", "refresh token unknown or revoked", 400)
        if grant not in ("client_credentials", "refresh_token"):
            return self._error("unsupported_grant_type", grant, 400)
        return self._issue(grant)

    def _issue(self, grant: str, claims: dict[str, Any] | None = None) -> web.Response:
        issued = Issued(secrets.token_urlsafe(24), grant, time.monotonic() + self.lifetime)
        issued.claims = claims
        with self.changed:
            self.issued.append(issued)
            self.changed.notify_all()
        return web.json_response(
            {"access_token": issued.token, "token_type": "Bearer", "expires_in": self.lifetime}
        )

    def _assertion(self, assertion: str) -> dict[str, Any]:
        """The claims of a service account's JWT (google-auth signs it with the test key)."""
        from google.auth import crypt, jwt

        assert self.service_account_key is not None, "no service account configured"
        verifier = crypt.RSAVerifier.from_string(self.service_account_key)
        signed, signature = assertion.rsplit(".", 1)
        assert verifier.verify(signed.encode(), _b64(signature)), "bad assertion signature"
        claims: dict[str, Any] = jwt.decode(assertion, verify=False)
        return claims

    def _error(self, code: str, description: str, status: int) -> web.Response:
        with self.changed:
            self.refused.append(code)
            self.changed.notify_all()
        answer: dict[str, Any] = {"error": code, "error_description": description}
        if code == "invalid_client":
            answer["error_codes"] = [7000215]  # what Entra adds: AADSTS7000215
        return web.json_response(answer, status=status)

    async def _introspect(self, request: web.Request) -> web.Response:
        form = await request.post()
        if (form.get("client_id"), form.get("client_secret")) != (DOVECOT_ID, DOVECOT_SECRET):
            return web.json_response({"error": "invalid_client"}, status=401)
        return web.json_response(self.introspect(str(form.get("token", ""))))

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662 for ``token`` (also what the test relay asks)."""
        found = next((i for i in self.issued if i.token == token), None)
        remaining = found.expires - time.monotonic() if found else 0
        active = found is not None and not found.revoked and remaining > 0
        with self.changed:
            self.introspections.append(Introspection(token, active))
            self.changed.notify_all()
        if not active:
            return {"active": False}
        return {"active": True, "username": self.user, "exp": int(time.time() + remaining)}

    # -- what tests do -------------------------------------------------------------------

    def service_account(self, user: str = "mailgate@project.iam.gserviceaccount.com") -> str:
        """A Google service-account key (JSON) whose token_uri is this server."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.service_account_key = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return json.dumps(
            {
                "type": "service_account",
                "project_id": "project",
                "private_key_id": "test-key",
                "private_key": private.decode(),
                "client_email": user,
                "client_id": "1234567890",
                "token_uri": self.token_url,
            }
        )

    def revoke_all(self) -> None:
        with self.changed:
            for issued in self.issued:
                issued.revoked = True

    def wait_for(self, predicate: Any, timeout: float = 30, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"timed out waiting for {what}"
                # Bounded waits: a predicate on the clock (token expiry) gets no notify.
                self.changed.wait(min(remaining, 0.1))


OAUTH2_PASSDB = """
auth_mechanisms = plain login xoauth2 oauthbearer
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/dovecot-oauth2.conf.ext
}}
"""
OAUTH2_CONF = f"""
introspection_mode = post
introspection_url = {{url}}
client_id = {DOVECOT_ID}
client_secret = {DOVECOT_SECRET}
username_attribute = username
active_attribute = active
active_value = true
"""


class OAuthDovecot(Dovecot):
    """Dovecot whose XOAUTH2 and OAUTHBEARER logins are checked against ``oauth``."""

    def __init__(self, oauth: OAuthServer) -> None:
        self.oauth = oauth
        super().__init__()

    def start(self) -> None:
        text = self.config.read_text()
        if "driver = oauth2" not in text:
            (self.root / "dovecot-oauth2.conf.ext").write_text(
                OAUTH2_CONF.format(url=self.oauth.introspection_url)
            )
            text = text.replace("auth_mechanisms = plain login\n", "")
            text = text.replace("passdb {", OAUTH2_PASSDB.format(root=self.root) + "passdb {", 1)
            text = text.replace(
                f"args = scheme=PLAIN username_format=%u {self.root}/passwd",
                f"args = scheme=PLAIN username_format=%u {self.root}/passwd\n"
                "  mechanisms = plain login",
            )
            self.config.write_text(text)
        super().start()

    @property
    def oauth_url(self) -> str:
        return f"imap://{self.user}@127.0.0.1:{self.port}/INBOX"

    def kick(self) -> None:
        """End the user's sessions from the server side, as Exchange Online does."""
        subprocess.run(
            ["doveadm", "-c", str(self.config), "kick", self.user],
            check=True,
            capture_output=True,
            timeout=30,
        )

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""
