"""`mailgate ingest` handing its message to a running `serve` over the ingest socket.

Real processes throughout: a `serve` subprocess listening on its socket, and `ingest` run
as `python -m worker` (the launcher) exactly as the MTA's pipe runs it. With `serve` there
the message is decided once, by `serve`, and `ingest` prints what it would have printed
in-process; without it `ingest` decides by itself; a connection that breaks after the
message was sent is exit 75, never a second decision. The launcher finds the socket by the
same rule as the settings.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import typer
from helpers import FIXTURES, ServeProcess, cli_env, fixture_bytes, with_headers

from worker.launcher import IngestCall, NotForHandoff
from worker.settings import load_settings

SENDER = "alice@customer.example"


def ingest(
    env: dict[str, str], *args: str, stdin: bytes = b"", cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "worker", "ingest", *args],
        input=stdin,
        capture_output=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def logged(stderr: bytes) -> list[str]:
    """The events of the JSON log lines on stderr (an in-process decision logs one)."""
    return [json.loads(line)["event"] for line in stderr.splitlines() if line.startswith(b"{")]


def message(number: str) -> bytes:
    return with_headers(fixture_bytes("new_ticket.eml"), Message_ID=f"<handoff-{number}@c.ex>")


@contextmanager
def short_data_dir() -> Iterator[Path]:
    """A data dir whose socket path surely fits sun_path (108 bytes), removed afterwards."""
    root = tempfile.mkdtemp(prefix="mg-")
    try:
        yield Path(root) / "var"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def data() -> Iterator[Path]:
    with short_data_dir() as path:
        yield path


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[dict[str, str], Path]]:
    """A `serve` on the default socket of its data dir, where a crashed one left its own."""
    with short_data_dir() as data:
        yield from _serve(data)


def _serve(data: Path) -> Iterator[tuple[dict[str, str], Path]]:
    data.mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(data / "ingest.sock"))
    stale.close()  # bound, never listening: what a SIGKILLed serve leaves
    env = cli_env(data, MAILGATE_SMTP_LISTEN="off")
    process = ServeProcess(env)
    process.start()
    try:
        yield env, data
    finally:
        assert process.stop() == 0
        assert not (data / "ingest.sock").exists()  # removed at stop


def test_handed_off_message_is_decided_once_by_serve(
    served: tuple[dict[str, str], Path],
) -> None:
    """The decision object comes from serve (no log line of the pipe's own); the socket is
    0600; a replay is a duplicate; `mailgate decisions` shows both, channel pipe."""
    env, data = served
    assert stat.S_IMODE((data / "ingest.sock").stat().st_mode) == 0o600
    raw = message("once")
    first = ingest(env, "-", "--sender", SENDER, "--json", stdin=raw)
    assert first.returncode == 0, first.stderr
    assert first.stderr == b""  # decided in serve: its log, not the pipe's, has the line
    decision = json.loads(first.stdout)
    assert decision["decision"] == "rejected_new_ticket" and decision["channel"] == "pipe"
    again = ingest(env, "-", "--sender", SENDER, "--json", stdin=raw)
    assert again.returncode == 0 and json.loads(again.stdout)["decision"] == "duplicate"
    shown = subprocess.run(
        [sys.executable, "-m", "worker", "decisions", "--format", "json"],
        capture_output=True,
        env=env,
        timeout=120,
    )
    rows = [json.loads(line) for line in shown.stdout.splitlines()]
    mine = [r for r in rows if r["message_id"] == "<handoff-once@c.ex>"]
    assert [(r["decision"], r["channel"]) for r in mine] == [
        ("duplicate", "pipe"),
        ("rejected_new_ticket", "pipe"),
    ]


@pytest.mark.parametrize(
    "args",
    [
        ("-", "--sender", SENDER),
        ("-", "--sender", "MAILER-DAEMON", "--recipient", "support@wildix.com", "help@wildix.com"),
        (str(FIXTURES / "new_ticket.eml"), "--sender=<>"),
        (str(FIXTURES / "missing.eml"),),
        (str(FIXTURES / "new_ticket.eml"), str(FIXTURES / "dsn.eml")),
        ("-", "--bogus"),
    ],
    ids=["summary", "postfix-args", "file", "missing-file", "two-files", "unknown-option"],
)
def test_same_output_and_exit_code_as_in_process(
    served: tuple[dict[str, str], Path], tmp_path: Path, args: tuple[str, ...]
) -> None:
    """Handed off or decided in-process (a data dir of its own, no serve): the same stdout,
    exit code and error line."""
    env, _ = served
    case = tmp_path.name  # one sender per case: the shared serve limits replies per sender
    args = tuple(f"{case}@customer.example" if arg == SENDER else arg for arg in args)
    raw = message(case)
    handed = ingest(env, *args, stdin=raw)
    alone = ingest(cli_env(tmp_path / "var"), *args, stdin=raw)
    assert (handed.returncode, handed.stdout) == (alone.returncode, alone.stdout)
    errors = [line for line in alone.stderr.splitlines() if not line.startswith(b"{")]
    assert handed.stderr.splitlines() == errors
    assert handed.returncode != 0 or "decision" in logged(alone.stderr)  # it ran in-process


def test_without_serve_ingest_decides_in_process(data: Path) -> None:
    """No socket at all, or one nobody listens on: the pipe decides by itself."""
    env = cli_env(data)
    first = ingest(env, "-", "--sender", SENDER, stdin=message("alone-1"))
    assert first.returncode == 0 and "decision" in logged(first.stderr)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(data / "ingest.sock"))
    dead.close()
    second = ingest(env, "-", "--sender", SENDER, stdin=message("alone-2"))
    assert second.returncode == 0 and "decision" in logged(second.stderr)
    assert second.stdout.startswith(b"rejected_new_ticket (rule new_ticket")


class FakeServe:
    """A socket that takes the call like serve, then breaks the connection at ``cut``:
    ``"header"`` right after the arguments, ``"body"`` after the message bytes."""

    def __init__(self, path: Path, cut: str) -> None:
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.cut = cut
        self.received = b""
        self.thread = threading.Thread(target=self.serve_one, daemon=True)
        self.thread.start()

    def serve_one(self) -> None:
        connection, _ = self.listener.accept()
        with connection, connection.makefile("rwb") as stream:
            stream.readline()
            if self.cut == "body":
                stream.write(b'{"read": "-"}\n')
                stream.flush()
                length = int(stream.readline())
                self.received = stream.read(length)

    def close(self) -> None:
        self.thread.join(30)
        self.listener.close()


def test_connection_broken_after_the_message_was_sent_exits_75(data: Path) -> None:
    """serve gone between the bytes and its answer: 75 and one line, nothing decided here."""
    data.mkdir(mode=0o700)
    fake = FakeServe(data / "ingest.sock", "body")
    raw = message("broken")
    result = ingest(cli_env(data), "-", "--sender", SENDER, stdin=raw)
    fake.close()
    assert fake.received == raw
    assert result.returncode == 75 and result.stdout == b""
    [line] = result.stderr.decode().splitlines()
    assert line.startswith("mailgate: not answered, retry later: ") and "ingest.sock" in line
    assert not (data / "mailgate.db").exists()  # no in-process decision


def test_connection_broken_before_the_message_decides_in_process(data: Path) -> None:
    """Nothing read from standard input yet: the pipe still decides it by itself."""
    data.mkdir(mode=0o700)
    fake = FakeServe(data / "ingest.sock", "header")
    result = ingest(cli_env(data), "-", "--sender", SENDER, stdin=message("early"))
    fake.close()
    assert result.returncode == 0 and "decision" in logged(result.stderr)


def serve_refusal(env: dict[str, str]) -> tuple[int, list[str]]:
    process = subprocess.run(
        [sys.executable, "-m", "worker", "serve"], capture_output=True, env=env, timeout=120
    )
    return process.returncode, [
        line for line in process.stderr.decode().splitlines() if not line.startswith("{")
    ]


def test_serve_refuses_a_socket_path_it_cannot_use(tmp_path: Path) -> None:
    """No such directory, a file in the way, or a path too long: exit 78 and one line
    naming MAILGATE_INGEST_SOCKET."""
    blocker = tmp_path / "file"
    blocker.write_text("not a socket")
    for where in (tmp_path / "missing" / "in.sock", blocker, Path("/tmp") / ("x" * 120)):
        env = cli_env(tmp_path / "var", MAILGATE_SMTP_LISTEN="off")
        env["MAILGATE_INGEST_SOCKET"] = str(where)
        code, lines = serve_refusal(env)
        assert code == 78 and len(lines) == 1 and "MAILGATE_INGEST_SOCKET" in lines[0], lines
    assert blocker.read_text() == "not a socket"


def test_workers_share_the_ingest_socket(data: Path) -> None:
    """`--workers 2`: the parent binds once, every hand-off is answered, removed at stop."""
    env = cli_env(data, MAILGATE_SMTP_LISTEN="off")
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", "serve", "--workers", "2"],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if json.loads(line).get("event") == "mailgate_started":
                break
        threading.Thread(target=process.stderr.read, daemon=True).start()
        for index in range(4):
            result = ingest(env, "-", "--sender", SENDER, stdin=message(f"workers-{index}"))
            assert result.returncode == 0 and result.stderr == b"", result.stderr
    finally:
        process.terminate()
        assert process.wait(60) == 0
    assert not (data / "ingest.sock").exists()


@pytest.mark.parametrize(
    ("environment", "config"),
    [
        ({}, None),
        ({"MAILGATE_DATA_DIR": "/srv/a"}, None),
        ({}, 'data_dir = "/srv/b"\n'),
        ({"MAILGATE_DATA_DIR": "/srv/a"}, 'MAILGATE_DATA_DIR = "/srv/b"\n'),
        ({"mailgate_data_dir": "rel/dir"}, None),
        ({}, 'data_dir = "/srv/b"\ningest_socket = "/run/mg.sock"\n'),
        ({"MAILGATE_INGEST_SOCKET": ""}, 'data_dir = "/srv/b"\n'),
        ({"MAILGATE_INGEST_SOCKET": "off"}, 'data_dir = "/srv/b"\n'),
        # The default path beyond a socket address's 107 bytes: off on both sides.
        ({"MAILGATE_DATA_DIR": "/srv/" + "d" * 100}, None),
    ],
)
def test_launcher_finds_the_socket_the_settings_name(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    environment: dict[str, str],
    config: str | None,
) -> None:
    """The launcher reads environment, --config and the default as Settings does."""
    for name in list(os.environ):
        if name.lower().startswith("mailgate_"):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    argv = ["ingest", "-"]
    config_file = None
    if config is not None:
        config_file = tmp_path / "mailgate.toml"
        config_file.write_text(config)
        argv = ["--config", str(config_file), *argv]
    expected = load_settings(config_file).ingest_socket_path
    try:
        found: Path | None = Path(IngestCall.parse(argv).socket(dict(os.environ)))
    except NotForHandoff:
        found = None
    assert found == expected


def test_serve_runs_without_the_socket_when_its_default_path_is_too_long(tmp_path: Path) -> None:
    """A long data dir turns the default socket off (one field in the start line), never
    a refusal to start over a setting nobody wrote."""
    data = tmp_path / ("d" * 100)
    env = cli_env(data, MAILGATE_SMTP_LISTEN="off", MAILGATE_LMTP_LISTEN="127.0.0.1:0")
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", "serve"], env=env, stderr=subprocess.PIPE
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            started = json.loads(line)
            if started.get("event") == "mailgate_started":
                break
        threading.Thread(target=process.stderr.read, daemon=True).start()
        assert started["ingest_socket"] is None
    finally:
        process.terminate()
        assert process.wait(60) == 0


# One table of argument lists, read by the launcher and by the command line's own (click)
# parser: (config, positional, sender, recipients, json), or None for anything that is not
# a plain ingest call (help, a usage error, another command), which typer answers.
INGEST_ARGUMENTS: list[tuple[list[str], Any]] = [
    (["ingest"], (None, [], None, [], False)),
    (
        ["--config=/c", "ingest", "-", "--sender", "", "--recipient=a@b.c", "d@e.f", "--json"],
        ("/c", ["-", "d@e.f"], "", ["a@b.c"], True),
    ),
    (["--config", "/c", "ingest", "m.eml"], ("/c", ["m.eml"], None, [], False)),
    (["ingest", "--sender", "--json", "--", "--json"], (None, ["--json"], "--json", [], False)),
    (
        ["ingest", "--recipient", "a@b.c", "--recipient", "d@e.f", "-"],
        (None, ["-"], None, ["a@b.c", "d@e.f"], False),
    ),
    (["ingest", "--help"], None),
    (["--help"], None),
    (["ingest", "-", "--sender"], None),
    (["ingest", "--verbose"], None),
    (["decisions"], None),
    (["--config", "/c", "serve"], None),
]


def launcher_reads(argv: list[str]) -> Any:
    try:
        call = IngestCall.parse(list(argv))
    except NotForHandoff:
        return None
    return (call.config, call.positional, call.sender, call.recipients, call.json)


def click_reads(argv: list[str]) -> Any:
    """What the typer app's own parser makes of ``argv`` for ``ingest``, without running it."""
    from typer.main import get_command

    from worker.cli import app

    group = get_command(app)
    try:
        with group.make_context("mailgate", list(argv)) as context:
            rest = [*context._protected_args, *context.args]
            name, command, words = group.resolve_command(context, rest)  # type: ignore[attr-defined]
            if name != "ingest" or command is None:
                return None
            params = command.make_context(name, words, parent=context).params
    except (typer.Exit, typer.TyperException):  # help printed, or a usage error
        return None
    config = context.params["config"]
    return (
        None if config is None else str(config),
        params["arguments"] or [],
        params["sender"],
        params["recipient"] or [],
        params["as_json"],
    )


@pytest.mark.parametrize(("argv", "expected"), INGEST_ARGUMENTS)
def test_launcher_reads_ingest_arguments_as_click_does(argv: list[str], expected: Any) -> None:
    """Only a plain ingest call is handed off; help, errors and other commands go to typer."""
    assert launcher_reads(argv) == expected


@pytest.mark.parametrize(("argv", "expected"), INGEST_ARGUMENTS)
def test_click_reads_the_table_as_the_launcher_does(argv: list[str], expected: Any) -> None:
    """The same table through the command line's parser: the launcher repeats it exactly."""
    assert click_reads(argv) == expected


def test_ingest_help_is_still_typers() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "worker", "ingest", "--help"], capture_output=True, timeout=120
    )
    assert result.returncode == 0 and b"Usage:" in result.stdout and b"--recipient" in result.stdout
