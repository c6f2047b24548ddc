"""A real Postfix of the test's own, started with ``postfix -c DIR`` and never the system's.

Each instance has its own config and queue directories under a fresh ``/tmp`` directory
(Postfix's daemons run as ``postfix`` and must traverse it; pytest's temp dirs are 0700),
listens on one free loopback port, logs to a file of its own (``maillog_file``), retries
every second, and cannot send anything anywhere: ``default_transport`` and
``relay_transport`` are ``error:``. Customers' domains are virtual mailbox domains delivered
to Maildirs under ``mail/``. A deploy recipe from ``deploy/postfix/`` is appended to
``main.cf`` / ``master.cf`` exactly as shipped, with its ``{{PLACEHOLDERS}}`` filled in, or a
recipe script (``*.sh``: ``postconf`` commands that add to what is there) is run against
this instance's ``MAIL_CONFIG`` with its variables in the environment.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from helpers import ROOT

RECIPES = ROOT / "deploy" / "postfix"
TEST_USER = "mailgate-test"  # Postfix never runs a pipe as root
MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
virtual   unix  - n n - - virtual
lmtp      unix  - - n - - lmtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""
MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.postfix-test.example
mydomain = postfix-test.example
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
maillog_file_prefixes = /tmp
maillog_file = {root}/log/postfix.log
# Retry at once: the tests flush the queue (postqueue -f) instead of sleeping.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
smtp_connect_timeout = 5s
lmtp_connect_timeout = 5s
# Nothing may leave this machine.
default_transport = error:no mail leaves the test instance
relay_transport = error:no mail leaves the test instance
virtual_mailbox_domains = {mailbox_domains}
virtual_mailbox_base = {root}/mail
virtual_mailbox_maps = inline:{{ {mailbox_map} }}
virtual_minimum_uid = 1
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
"""


def ensure_test_user() -> pwd.struct_passwd:
    """The unprivileged system user that runs pipes and owns the Maildirs (idempotent)."""
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER],
            check=False,
            capture_output=True,
        )
        return pwd.getpwnam(TEST_USER)


def render(name: str, values: dict[str, str]) -> str:
    """A recipe file with every ``{{NAME}}`` filled in; a placeholder left over fails."""
    text = (RECIPES / name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    missing = re.findall(r"\{\{[A-Z_]+\}\}", text)
    assert not missing, f"{name}: no value for {missing}"
    return text


class Postfix:
    """One running instance; ``mailboxes`` maps a domain to its Maildir name under mail/."""

    def __init__(
        self,
        port: int,
        mailboxes: dict[str, str],
        recipes: tuple[str, ...] = (),
        values: dict[str, str] | None = None,
    ) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mailgate-postfix-", dir="/tmp"))
        self.root.chmod(0o755)
        self.port = port
        self.config = self.root / "etc"
        self.user = ensure_test_user()
        for name in ("etc", "spool", "data", "log", "mail"):
            (self.root / name).mkdir(mode=0o755)
        shutil.chown(self.root / "data", "postfix")
        os.chown(self.root / "mail", self.user.pw_uid, self.user.pw_gid)
        self.write_config(mailboxes, recipes, values or {})

    def write_config(
        self, mailboxes: dict[str, str], recipes: tuple[str, ...], values: dict[str, str]
    ) -> None:
        main = MAIN_CF.format(
            root=self.root,
            mailbox_domains=", ".join(mailboxes),
            mailbox_map=", ".join(f"@{d}={box}/" for d, box in mailboxes.items()),
            uid=self.user.pw_uid,
            gid=self.user.pw_gid,
        )
        master = MASTER_CF.format(listen=f"127.0.0.1:{self.port}")
        for recipe in recipes:
            if recipe.endswith(".master.cf"):
                master += "\n" + render(recipe, values)
            elif recipe.endswith(".cf"):
                main += "\n" + render(recipe, values)
        (self.config / "main.cf").write_text(main)
        (self.config / "master.cf").write_text(master)
        for recipe in recipes:
            if recipe.endswith(".sh"):
                self.run_recipe(recipe, values)

    def run_recipe(self, recipe: str, values: dict[str, str]) -> None:
        """A ``postconf`` recipe script as an operator runs it, against this instance only
        (``MAIL_CONFIG``), with its variables in the environment."""
        env = {**os.environ, **values, "MAIL_CONFIG": str(self.config)}
        result = subprocess.run(
            ["sh", str(RECIPES / recipe)], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, (recipe, result.stderr)

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A Postfix command against this instance only (``-c``), never /etc/postfix."""
        env = {**os.environ, "MAIL_CONFIG": str(self.config)}
        return subprocess.run(
            [args[0], "-c", str(self.config), *args[1:]],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def start(self) -> None:
        configured = self.command("postconf", "-h", "config_directory").stdout.strip()
        assert configured == str(self.config), configured
        for step in (("postfix", "check"), ("postfix", "start")):
            result = self.command(*step)
            assert result.returncode == 0, (step, result.stderr, self.log())
        self.wait_for(lambda: "daemon started" in self.log(), "master started")

    def stop(self) -> None:
        """``postfix stop``, then wait (bounded) until the master process has exited."""
        pid_file = self.root / "spool" / "pid" / "master.pid"
        pid = int(pid_file.read_text().strip() or 0) if pid_file.exists() else 0
        self.command("postfix", "stop")
        if pid:
            self.wait_for(lambda: not Path(f"/proc/{pid}").exists(), "master exit", 20)

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def flush(self) -> None:
        """Retry the deferred queue now (``postqueue -f``) instead of waiting for it."""
        self.command("postqueue", "-f")

    def queue(self) -> str:
        return self.command("postqueue", "-p").stdout

    def log(self) -> str:
        path = self.root / "log" / "postfix.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def maildir(self, box: str) -> list[bytes]:
        """The messages delivered to a Maildir, oldest first."""
        new = self.root / "mail" / box / "new"
        files = sorted(new.iterdir(), key=lambda p: p.stat().st_mtime) if new.exists() else []
        return [path.read_bytes() for path in files]

    def wait_for(self, condition: Callable[[], object], what: str, timeout: float = 30) -> None:
        """Poll for a condition with a bounded deadline; fail with the log to read."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.log()[-4000:]}")
            time.sleep(0.05)
