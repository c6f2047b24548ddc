"""Helpers shared by the tests: paths, settings, envelopes, message editing, outbox files."""

from __future__ import annotations

import os
from datetime import datetime
from email import message_from_bytes
from email.policy import compat32
from pathlib import Path
from typing import Any

from worker.mail import Envelope
from worker.pipeline import Mailgate
from worker.settings import Settings, load_settings
from worker.tickets import TicketRecord, upsert

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
POLICIES = ROOT / "policies"
POLICY_DIR = POLICIES
CACHE = ROOT / ".cache"
PG_ADMIN_URL = os.environ.get(
    "MAILGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
SECRET = "test-secret-please-rotate-0123456789abcdef"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def with_headers(raw: bytes, **headers: str) -> bytes:
    """The message with headers replaced (``Message_ID`` for Message-ID); ``""`` removes."""
    message = message_from_bytes(raw, policy=compat32)
    for key, value in headers.items():
        name = key.replace("_", "-")
        del message[name]
        if value != "":
            message[name] = value
    return message.as_bytes()


def make_settings(tmp_path: Path, database_url: str | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "var",
        "policy_dir": POLICIES,
        "reply_secret": SECRET,
        "database_url": database_url,
        "http_listen": "off",  # tests that want the HTTP side ask for 127.0.0.1:0
        "smtp_listen": "127.0.0.1:0",  # never the default port, which a real serve may hold
    }
    values.update(overrides)
    return load_settings(**values)


def add_standard_tickets(gate: Mailgate) -> None:
    upsert(
        gate.engine,
        [
            TicketRecord(
                id="1001",
                kind="technical",
                participants=["bob@partner.example"],
                domains=["partner.example"],
            ),
            TicketRecord(id="2002", kind="customer_care", participants=["carla@customer.example"]),
            TicketRecord(
                id="3003",
                kind="technical",
                status="closed",
                closed_at=datetime.fromisoformat("2025-01-10T10:00:00+00:00"),
                participants=["bob@partner.example"],
            ),
        ],
    )


def envelope(
    mail_from: str, *rcpt: str, at: datetime | None = None, channel: str = "pipe"
) -> Envelope:
    from worker.clock import utcnow

    return Envelope(
        mail_from=mail_from,
        rcpt_tos=rcpt or ("support@wildix.com",),
        channel=channel,
        received_at=at or utcnow(),
    )


def outbox_files(gate: Mailgate) -> list[Path]:
    directory = gate.settings.outbox_dir
    return sorted(directory.glob("*.eml")) if directory.exists() else []


class RunningServer:
    """``mailgate serve``'s Server in a background thread, on ephemeral loopback ports."""

    def __init__(self, gate: Mailgate) -> None:
        import asyncio
        import threading

        from worker.serve import Server

        self.server = Server(gate)
        self.loop = asyncio.new_event_loop()
        started: asyncio.Future[list[str]] = self.loop.create_future()
        self.thread = threading.Thread(
            target=self.loop.run_until_complete,
            args=(self.server.run(install_signals=False, started=started),),
            daemon=True,
        )
        self.thread.start()
        self.listening = asyncio.run_coroutine_threadsafe(_wait(started), self.loop).result(10)

    def port(self, channel: str) -> int:
        url = next(u for u in self.listening if u.startswith(channel))
        return int(url.rsplit(":", 1)[1])

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.stopping.set)
        self.thread.join(15)
        assert not self.thread.is_alive()


async def _wait(future: Any) -> Any:
    return await future


class RelaySink:
    """A test relay: an aiosmtpd server on loopback that records what it is sent.

    ``answer`` sets the reply to DATA ("250 OK", "451 ...", "550 ..."); ``arrived`` is set
    on every accepted message so tests wait on an event rather than sleep.
    """

    def __init__(self, *, smtputf8: bool = False) -> None:
        import threading

        from aiosmtpd.controller import Controller

        self.messages: list[tuple[str, list[str], bytes]] = []
        self.answer = "250 2.0.0 OK"
        self.arrived = threading.Event()
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                if sink.answer.startswith("250"):
                    sink.messages.append(
                        (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
                    )
                    sink.arrived.set()
                return sink.answer

        self.port = free_port()
        self.controller = Controller(
            Handler(), hostname="127.0.0.1", port=self.port, enable_SMTPUTF8=smtputf8
        )
        self.controller.start()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def wait_for(self, count: int, timeout: float = 20) -> None:
        import time

        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"relay got {len(self.messages)} of {count} messages"
            self.arrived.clear()
            if len(self.messages) < count:
                self.arrived.wait(remaining)

    def stop(self) -> None:
        self.controller.stop()


def free_port() -> int:
    """A loopback port nobody listens on right now (aiosmtpd's Controller cannot use 0)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


DOVECOT_CONF = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
instance_name = mailgate-test-{port}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 8
mail_location = maildir:{root}/home/%u/Maildir
{capability}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid=mail gid=mail home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""
NO_MOVE_CAPABILITY = (
    "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT LITERAL+ UIDPLUS"
)


class Dovecot:
    """A throw-away Dovecot on loopback, started and stopped by the tests (its PID only)."""

    user, password = "support", "secret"

    def __init__(self, without_move: bool = False) -> None:
        import shutil
        import tempfile

        if shutil.which("dovecot") is None:
            import pytest

            pytest.skip("dovecot missing (Debian package dovecot-imapd; scripts/test installs it)")
        # Not under pytest's tmp_path: that is mode 0700 and Dovecot's mail processes run
        # as the unprivileged 'mail' user.
        self.root = Path(tempfile.mkdtemp(prefix="mailgate-dovecot-"))
        self.root.chmod(0o755)
        self.port = free_port()
        (self.root / "passwd").write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        for sub in ("run", "state", "home"):
            (self.root / sub).mkdir()
        shutil.chown(self.root / "home", "mail", "mail")
        capability = NO_MOVE_CAPABILITY if without_move else ""
        self.config = self.root / "dovecot.conf"
        self.config.write_text(
            DOVECOT_CONF.format(root=self.root, port=self.port, capability=capability)
        )
        self.process: Any = None
        self.start()

    @property
    def url(self) -> str:
        return f"imap://{self.user}:{self.password}@127.0.0.1:{self.port}/INBOX"

    def start(self) -> None:
        import socket
        import subprocess
        import time

        self.process = subprocess.Popen(
            ["dovecot", "-F", "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while True:  # readiness probe: the port accepts connections
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                assert self.process.poll() is None, "dovecot exited at start-up"
                assert time.monotonic() < deadline, "dovecot did not start listening"
                time.sleep(0.05)

    def stop(self) -> None:
        import signal

        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(15)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        import shutil

        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def client(self) -> Any:
        from imapclient import IMAPClient

        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=30)
        client.login(self.user, self.password)
        return client

    def append(self, raw: bytes, folder: str = "INBOX", flags: tuple[bytes, ...] = ()) -> None:
        client = self.client()
        try:
            client.append(folder, raw, flags=flags)
        finally:
            client.logout()

    def message_ids(self, folder: str) -> list[str]:
        """Message-ID headers of the messages in ``folder`` ([] if it does not exist)."""
        client = self.client()
        try:
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            if not uids:
                return []
            data = client.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
            found = []
            for uid in uids:
                entry = data.get(uid) or {}
                header = next((v for k, v in entry.items() if k.startswith(b"BODY")), None)
                if header is None:
                    continue  # moved away between SEARCH and FETCH: a drain is running
                found.append(header.decode().partition(":")[2].strip())
            return found
        finally:
            client.logout()


def reset_postgres(url: str) -> None:
    """Empty every table of the session's PostgreSQL database, chain head back at 0."""
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(url)
    with engine.begin() as connection:
        tables = [t for t in inspect(connection).get_table_names() if t != "alembic_version"]
        if tables:
            connection.execute(
                text(
                    "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
                )
            )
            connection.execute(
                text("INSERT INTO chain_head (id, seq, digest) VALUES (1, 0, :d)"), {"d": "0" * 64}
            )
            connection.execute(text("INSERT INTO ticket_version (id, version) VALUES (1, 0)"))
    engine.dispose()


def cli_env(data_dir: Path | str, **settings: str) -> dict[str, str]:
    """The environment for a `mailgate` subprocess: ours, minus any MAILGATE_* of the caller.

    ``data_dir`` is MAILGATE_DATA_DIR; ``settings`` are further MAILGATE_* values by full
    name. The HTTP side is off unless asked for, so no test takes the default port.
    """
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILGATE_")}
    env.update(
        {
            "MAILGATE_DATA_DIR": str(data_dir),
            "MAILGATE_POLICY_DIR": str(POLICIES),
            "MAILGATE_REPLY_SECRET": SECRET,
            "MAILGATE_HTTP_LISTEN": "off",
            # The language preload stays on as in production: since CLD2 and fastText it
            # costs a tenth of a second, not the ten lingua's models took.
        }
    )
    env.update(settings)
    return env


class ServeProcess:
    """`mailgate serve` as a subprocess with ``env``: start (until its start-up line),
    SIGKILL, or SIGTERM and its exit code. Its later stderr is drained, never read."""

    stop_seconds = 30.0

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process: Any = None

    def start(self) -> None:
        import json
        import subprocess
        import sys
        import threading

        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker", "serve"], env=self.env, stderr=subprocess.PIPE
        )
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if json.loads(line).get("event") == "mailgate_started":
                threading.Thread(target=self.process.stderr.read, daemon=True).start()
                return
        raise AssertionError(f"serve did not start: {self.process.wait()}")

    def kill(self) -> None:
        import signal

        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        import signal

        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return int(self.process.wait(self.stop_seconds))
