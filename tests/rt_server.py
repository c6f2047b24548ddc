"""A private Request Tracker 5 for the helpdesk tests, started once per session.

Debian's ``request-tracker5`` with ``rt5-db-sqlite`` (installed by scripts/test), run as an
instance of the tests' own: ``RT_SITE_CONFIG`` names a site config written here and
``RT_SITE_CONFIG_DIR`` an empty directory (else Debian's ``RT_SiteConfig.d`` is read too);
the config puts RT's var, Mason and session directories and the SQLite file under a
temporary directory and sends RT's mail through a script that writes each message to a
file. ``rt-setup-database-5`` initialises the database; a perl one-liner grants
``Everyone`` the rights a mail gateway needs, adds a ``Billing`` queue and mints an auth
token; ``rt-server`` serves it on loopback. ``$BcryptCost`` is lowered for this throw-away
instance: RT checks the auth token with bcrypt on every request (cost 12 by default, about
a second of RT's CPU per request on a busy 2-core machine). Its time zone is not UTC, so
the sync's cursor is shown not to depend on it. Nothing under /etc is touched. It is stopped
with SIGTERM, never SIGINT (as root, rt-server's SIGINT handler chowns
/var/lib/request-tracker5 to www-data). Readiness is polled, never slept for.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import free_port

RT_HOME = Path("/usr/share/request-tracker5")
RT_SERVER = RT_HOME / "libexec" / "rt-server"
RT_SETUP = "/usr/sbin/rt-setup-database-5"
RT_NAME = "mailgate-test"
RT_ORGANIZATION = "rt.example.test"

SITE_CONFIG = """
Set($rtname, '{name}');
Set($Organization, '{organization}');
Set($CorrespondAddress, 'support@wildix.com');
Set($CommentAddress, 'support-comment@wildix.com');
Set($WebPath, '');
Set($WebDomain, '127.0.0.1');
Set($WebPort, {port});
Set($WebBaseURL, 'http://127.0.0.1:{port}');
Set($Timezone, 'Europe/Berlin');
Set($BcryptCost, 4);
Set($DatabaseType, 'SQLite');
Set($DatabaseName, '{root}/rt.db');
Set($VarPath, '{root}/var');
Set($MasonDataDir, '{root}/var/mason');
Set($MasonSessionDir, '{root}/var/session');
Set($MailCommand, 'sendmailpipe');
Set($SendmailPath, '{root}/sendmail');
Set($SendmailArguments, '');
Set($LogToSyslog, undef);
Set($LogToSTDERR, 'error');
Set($LogToFile, 'info');
Set($LogDir, '{root}/log');
Set($LogToFileNamed, 'rt.log');
1;
"""
SENDMAIL = """#!/bin/sh
f="{root}/mail/$(date +%s%N)-$$"
cat > "$f.tmp" && mv "$f.tmp" "$f.eml"
"""
# Rights for the mail gateway's senders, a second queue, and a token for root.
PREPARE = """
my $g = RT::Group->new(RT->SystemUser); $g->LoadSystemInternalGroup("Everyone");
for my $right (qw(CreateTicket ReplyToTicket CommentOnTicket)) {
  my ($ok, $m) = $g->PrincipalObj->GrantRight(Right => $right, Object => $RT::System);
  die $m unless $ok;
}
my $q = RT::Queue->new(RT->SystemUser); my ($qid, $qm) = $q->Create(Name => "Billing");
die $qm unless $qid;
my $root = RT::User->new(RT->SystemUser); $root->Load("root");
my $t = RT::AuthToken->new(RT::CurrentUser->new($root));
my ($id, $msg, $token) = $t->Create(Owner => $root->Id, Description => "mailgate tests");
die $msg unless $id; print "$token\\n";
"""


class RequestTracker:
    """One RT instance on loopback; ``api`` is a REST 2.0 client holding the token."""

    def __init__(self) -> None:
        if not RT_SERVER.exists():
            pytest.skip("Request Tracker missing (Debian request-tracker5; scripts/test installs)")
        # On tmpfs when there is one: RT's SQLite commits each row of its initial data
        # with an fsync, seconds on a busy disk.
        shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        self.root = Path(tempfile.mkdtemp(prefix="mailgate-rt-", dir=shm))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        for sub in ("var/mason", "var/session", "log", "mail", "site.d"):
            (self.root / sub).mkdir(parents=True)
        (self.root / "RT_SiteConfig.pm").write_text(
            SITE_CONFIG.format(
                name=RT_NAME, organization=RT_ORGANIZATION, port=self.port, root=self.root
            )
        )
        sendmail = self.root / "sendmail"
        sendmail.write_text(SENDMAIL.format(root=self.root))
        sendmail.chmod(0o755)
        (self.root / "root-password").write_text("rt-root-password-for-tests")
        self.env = {
            **os.environ,
            "RT_SITE_CONFIG": str(self.root / "RT_SiteConfig.pm"),
            "RT_SITE_CONFIG_DIR": str(self.root / "site.d"),
        }
        self.token = ""

    def _run(self, *command: str) -> str:
        done = subprocess.run(
            command, env=self.env, cwd=self.root, capture_output=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stderr.decode()[-2000:]}")
        return done.stdout.decode()

    def setup(self) -> None:
        password = str(self.root / "root-password")
        self._run(RT_SETUP, "--action", "init", "--root-password-file", password)
        lib = f"-I{RT_HOME / 'lib'}"
        self.token = self._run("perl", lib, "-MRT=-init", "-e", PREPARE).strip().splitlines()[-1]
        self.api = httpx.Client(
            base_url=f"{self.url}/REST/2.0",
            headers={"Authorization": f"token {self.token}"},
            timeout=30,
        )

    def start(self, timeout: float = 60) -> None:
        command = [str(RT_SERVER), "--server", "Standalone", "--host", "127.0.0.1"]
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port)],
            env=self.env,
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "server.err", "ab"),  # noqa: SIM115 - the child owns it
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rt-server exited: {self.log_tail()}")
            try:
                if self.api.get("/rt", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # polling interval of the readiness check, not a synchronisation
        raise RuntimeError(f"rt-server not ready after {timeout} s: {self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM (never SIGINT, see the module docstring) to our own process."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self) -> str:
        parts = [self.root / "server.err", self.root / "log" / "rt.log"]
        return " | ".join(p.read_text()[-1500:] for p in parts if p.exists())

    # -- the helpdesk agent's side ------------------------------------------------------

    def create(self, queue: str, requestor: str, cc: str = "", subject: str = "help") -> str:
        body: dict[str, Any] = {"Queue": queue, "Subject": subject, "Requestor": requestor}
        if cc:
            body["Cc"] = cc
        body["Content"] = "The customer's first message."
        response = self.api.post("/ticket", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def update(self, ticket: str, **fields: Any) -> None:
        response = self.api.put(f"/ticket/{ticket}", json=fields)
        assert response.status_code == 200, response.text

    def merge(self, ticket: str, into: str) -> None:
        response = httpx.post(
            f"{self.url}/REST/1.0/ticket/{ticket}/merge/{into}",
            headers={"Authorization": f"token {self.token}"},
            timeout=30,
        )
        assert "Merge completed" in response.text, response.text

    def correspondence(self, ticket: str) -> list[dict[str, Any]]:
        """The ticket's Correspond transactions: author and Message-ID of each."""
        found = self.api.get(
            f"/ticket/{ticket}/history", params={"fields": "Type,Creator", "per_page": "100"}
        ).json()
        result = []
        for item in found["items"]:
            if item["Type"] != "Correspond":
                continue
            attachments = self.api.get(
                f"/transaction/{item['id']}/attachments",
                params={"fields": "MessageId,Content,Headers"},
            ).json()["items"]
            message_ids = [a.get("MessageId") for a in attachments if a.get("MessageId")]
            result.append({"creator": item["Creator"]["id"], "message_ids": message_ids})
        return result

    def ticket_count(self) -> int:
        found = self.api.get("/tickets", params={"query": "id > 0"}).json()
        return int(found["total"])

    def mail_to(self, address: str) -> list[bytes]:
        """What RT sent to ``address`` (its notifications), oldest first."""
        sent = [p.read_bytes() for p in sorted((self.root / "mail").glob("*.eml"))]
        return [m for m in sent if address.encode() in m.split(b"\n\n", 1)[0]]
