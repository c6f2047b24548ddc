"""OAuth2 credentials: settings, renewal timing, secrets read once and never in messages,
and a Google service account with domain-wide delegation against the loopback server."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

import pytest
from helpers import make_settings
from oauth_server import CLIENT_ID, CLIENT_SECRET, JWT_BEARER, OAuthServer

from worker.clock import utcnow
from worker.errors import ConfigError
from worker.oauth import TokenManager, TokenRefused, credentials_for
from worker.oauth.providers import GoogleSource, MicrosoftSource, Token
from worker.oauth.sasl import oauthbearer, xoauth2


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    server = OAuthServer()
    yield server
    server.close()


def test_oauth_settings_are_checked_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MAILGATE_OAUTH_TOKEN_URL or MAILGATE_OAUTH_PROVIDER"):
        make_settings(tmp_path, imap_auth="xoauth2")
    with pytest.raises(ConfigError, match="MAILGATE_OAUTH_TENANT is required"):
        make_settings(tmp_path, imap_auth="xoauth2", oauth_provider="microsoft")
    with pytest.raises(ConfigError, match="MAILGATE_IMAP_AUTH"):
        make_settings(tmp_path, imap_auth="cram-md5")
    with pytest.raises(ConfigError, match=r"MAILGATE_OAUTH_CLIENT_SECRET_FILE: .*no such file"):
        make_settings(tmp_path, oauth_client_secret_file=tmp_path / "missing")
    with pytest.raises(ConfigError, match="MAILGATE_OAUTH_SECRET_EXPIRES"):
        make_settings(tmp_path, oauth_secret_expires="next spring")


def test_renewal_ahead_of_expiry_scales_with_lifetime() -> None:
    now = utcnow()
    hour = Token("a", now + timedelta(hours=1), now)
    short = Token("b", now + timedelta(seconds=4), now)
    assert TokenManager._renew_at(hour) == now + timedelta(minutes=55)
    assert TokenManager._renew_at(short) == now + timedelta(seconds=3)


def test_secret_file_is_read_once_and_never_echoed(tmp_path: Path, oauth: OAuthServer) -> None:
    secret_file = tmp_path / "client-secret"
    secret_file.write_text(CLIENT_SECRET + "\n")
    settings = make_settings(
        tmp_path,
        imap_auth="xoauth2",
        oauth_token_url=oauth.token_url,
        oauth_client_id=CLIENT_ID,
        oauth_client_secret_file=secret_file,
    )
    credentials = credentials_for(settings, "support")
    first = credentials.token()
    secret_file.write_text("changed-on-disk")
    credentials.invalidate()
    assert credentials.token() != first, "a new token, with the secret read at start-up"
    assert len(oauth.issued) == 2

    wrong = "Wrong-Secret-9fJ2"
    secret_file.write_text(wrong)
    refused = credentials_for(settings, "support")
    with pytest.raises(TokenRefused) as caught:
        refused.token()
    assert caught.value.code == "invalid_client"
    assert wrong not in str(caught.value)
    assert refused.health.refused == "invalid_client"


def test_google_service_account_with_domain_wide_delegation(
    tmp_path: Path, oauth: OAuthServer
) -> None:
    """google-auth signs a JWT for the mailbox user (``sub``) with the mail scope."""
    key_file = tmp_path / "service-account.json"
    key_file.write_text(oauth.service_account())
    settings = make_settings(
        tmp_path,
        imap_auth="xoauth2",
        oauth_provider="google",
        oauth_client_secret_file=key_file,
    )
    credentials = credentials_for(settings, "support@desk.example")
    assert isinstance(credentials.source, GoogleSource)
    token = credentials.token()
    issued = oauth.issued[0]
    assert issued.token == token and issued.grant == JWT_BEARER
    assert issued.claims is not None
    assert issued.claims["sub"] == "support@desk.example"
    assert issued.claims["scope"] == "https://mail.google.com/"
    assert issued.claims["iss"] == "mailgate@project.iam.gserviceaccount.com"
    assert credentials.health.grant == "service_account"


def test_microsoft_source_uses_the_tenant_and_exchange_scope(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        imap_auth="xoauth2",
        oauth_provider="microsoft",
        oauth_tenant="contoso.onmicrosoft.com",
        oauth_client_id=CLIENT_ID,
        oauth_client_secret=CLIENT_SECRET,
    )
    source = credentials_for(settings, "support@contoso.com").source
    assert isinstance(source, MicrosoftSource)
    assert source.authority == "https://login.microsoftonline.com/contoso.onmicrosoft.com"
    assert source.scopes == ["https://outlook.office365.com/.default"]
    assert source.grant == "client_credentials"


def test_sasl_strings() -> None:
    assert xoauth2("a@b.example", "T") == "user=a@b.example\x01auth=Bearer T\x01\x01"
    assert oauthbearer("a,b=c", "T") == "n,a=a=2Cb=3Dc,\x01auth=Bearer T\x01\x01"


def self_signed(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A certificate for 127.0.0.1, so that msal (https only) can reach the test server."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


def test_microsoft_client_credentials_through_msal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """msal against an Entra-like authority: a token, then a refused secret named AADSTS."""
    context, cert_file = self_signed(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert_file))
    server = OAuthServer(tls=context)
    try:
        tokens = []
        for secret in (CLIENT_SECRET, "Wrong-Entra-Secret-4r"):
            settings = make_settings(
                tmp_path,
                imap_auth="xoauth2",
                oauth_provider="microsoft",
                oauth_tenant="contoso",
                oauth_client_id=CLIENT_ID,
                oauth_client_secret=secret,
            )
            credentials = credentials_for(settings, "support@contoso.com")
            source = credentials.source
            assert isinstance(source, MicrosoftSource)
            source.authority = f"{server.base_url}/contoso"  # instead of login.microsoftonline.com
            source.instance_discovery = False
            tokens.append(credentials)
        first = tokens[0].token()
        tokens[0].invalidate()
        assert tokens[0].token() != first, "msal's own cache does not hand back the old token"
        with pytest.raises(TokenRefused) as caught:
            tokens[1].token()
    finally:
        server.close()
    assert [i.grant for i in server.issued] == ["client_credentials", "client_credentials"]
    assert caught.value.code == "invalid_client"
    assert caught.value.description == "AADSTS7000215"
    assert "Wrong-Entra-Secret-4r" not in str(caught.value)
