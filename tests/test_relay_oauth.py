"""The relay with SMTP AUTH XOAUTH2 (Microsoft 365): an aiosmtpd relay checks each token
against the same loopback OAuth server the IMAP tests use."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult
from helpers import add_standard_tickets, envelope, fixture_bytes, free_port, make_settings
from oauth_server import CLIENT_ID, CLIENT_SECRET, OAuthServer
from sqlmodel import Session, col, select

from worker.dispatcher import Dispatcher
from worker.oauth.manager import relay_credentials
from worker.pipeline import Mailgate
from worker.store.models import OutboxRow

RELAY_USER = "support"  # the OAuth server's tokens name this user


class OAuthRelay:
    """aiosmtpd on loopback offering only AUTH XOAUTH2, accepting mail once authenticated."""

    def __init__(self, oauth: OAuthServer) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.logins: list[str] = []
        relay = self

        class Handler:
            async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
                if len(args) > 1:
                    response = base64.b64decode(args[1])
                else:
                    answer = await server.challenge_auth("")
                    response = answer if isinstance(answer, bytes) else b""
                fields = dict(f.split("=", 1) for f in response.decode().split("\x01") if "=" in f)
                token = fields.get("auth", "").removeprefix("Bearer ")
                answer = oauth.introspect(token)
                if answer.get("active") and answer.get("username") == fields.get("user"):
                    relay.logins.append(fields["user"])
                    return AuthResult(success=True)
                error = json.dumps({"status": "401", "schemes": "bearer"})
                await server.challenge_auth(error)  # the client ends it with an empty line
                return AuthResult(success=False, handled=False)

            async def handle_MAIL(
                self, server: SMTP, session: Any, envelope: Any, address: str, options: Any
            ) -> str:
                if not session.authenticated:
                    return "530 5.7.0 Authentication required"
                envelope.mail_from = address
                return "250 OK"

            async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
                relay.messages.append((envelope.mail_from, envelope.original_content))
                return "250 2.0.0 OK"

        self.port = free_port()
        self.controller = Controller(
            Handler(), hostname="127.0.0.1", port=self.port, auth_require_tls=False
        )
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    server = OAuthServer()
    yield server
    server.close()


@pytest.fixture
def relay(oauth: OAuthServer) -> Iterator[OAuthRelay]:
    server = OAuthRelay(oauth)
    yield server
    server.stop()


def relayed(tmp_path: Path, oauth: OAuthServer, relay: OAuthRelay, secret: str) -> Mailgate:
    settings = make_settings(
        tmp_path,
        None,
        relay_url=f"smtp://{RELAY_USER}@127.0.0.1:{relay.port}",
        relay_auth="xoauth2",
        oauth_token_url=oauth.token_url,
        oauth_client_id=CLIENT_ID,
        oauth_client_secret=secret,
    )
    gate = Mailgate.open(settings)
    add_standard_tickets(gate)
    return gate


def reply_to(gate: Mailgate, number: int) -> None:
    raw = fixture_bytes("new_ticket.eml").replace(
        b"<20261123091158.4711@mail.customer.example>", f"<relay-{number}@x.example>".encode()
    )
    gate.ingest(raw, envelope(f"user{number}@customer.example"))


def outbox(gate: Mailgate) -> list[OutboxRow]:
    with Session(gate.engine) as session:
        return list(session.scalars(select(OutboxRow).order_by(col(OutboxRow.id))).all())


def test_relay_xoauth2_sends_and_renews_a_revoked_token(
    tmp_path: Path, oauth: OAuthServer, relay: OAuthRelay
) -> None:
    gate = relayed(tmp_path, oauth, relay, CLIENT_SECRET)
    dispatcher = Dispatcher(
        gate.engine,
        gate.settings.relay_url,
        b"k" * 32,
        relay_credentials=relay_credentials(gate.settings),
    )
    reply_to(gate, 0)
    assert dispatcher.run_once() == 1
    oauth.revoke_all()
    reply_to(gate, 1)
    assert dispatcher.run_once() == 1
    assert len(relay.messages) == 2
    assert relay.logins == [RELAY_USER, RELAY_USER]
    assert [i.active for i in oauth.introspections] == [True, False, True]
    assert len(oauth.issued) == 2
    assert {r.status for r in outbox(gate)} == {"sent"}


def test_relay_with_refused_client_secret_keeps_the_reply_for_retry(
    tmp_path: Path, oauth: OAuthServer, relay: OAuthRelay
) -> None:
    wrong = "wrong-relay-secret-7Kd"
    gate = relayed(tmp_path, oauth, relay, wrong)
    dispatcher = Dispatcher(
        gate.engine,
        gate.settings.relay_url,
        b"k" * 32,
        relay_credentials=relay_credentials(gate.settings),
    )
    reply_to(gate, 0)
    dispatcher.run_once()
    rows = outbox(gate)
    assert relay.messages == []
    assert [r.status for r in rows] == ["retry"]
    assert "invalid_client" in str(rows[0].last_error)
    assert wrong not in str(rows[0].last_error)
