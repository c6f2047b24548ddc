"""The command line behaves as operators expect: closed pipes, one-line errors, real help.

A closed pipe, a database that is down and ``--config`` after the subcommand are run as
real processes (the pipe and the argument order only exist there); the rest run the typer
app in-process with click's runner over a real data directory, which costs no start-up.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import FIXTURES, cli_env
from typer.testing import CliRunner

from worker.cli import app
from worker.cli_args import hoist_config, plain_metavars
from worker.logs import configure_logging

# What typer prints in place of a metavar: `<str>`, `<list[str]>`, `<bool>`, `{ID}`.
PYTHON_TYPE = re.compile(r"<(str|bool|int|float|path|datetime|list\[\w+\])>|\{[A-Z_|]+\}")


def run_process(
    tmp_path: Path, *args: str, stdout: int | None = subprocess.PIPE, **env: str
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env={k: v for k, v in {**cli_env(str(tmp_path / "var")), **env}.items() if v},
        stdout=stdout,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        cwd=tmp_path,
        timeout=120,
    )


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """The app in-process, with the settings of a `mailgate` subprocess in the environment."""
    for name in [n for n in os.environ if n.startswith("MAILGATE_")]:
        monkeypatch.delenv(name)
    for name, value in cli_env(str(tmp_path / "var")).items():
        if name.startswith("MAILGATE_"):
            monkeypatch.setenv(name, value)
    plain_metavars()
    # Commands configure logging onto the runner's stderr, closed after each call: bind the
    # logs to this test's stream before and after, so that later tests log somewhere real.
    configure_logging()
    yield CliRunner()
    configure_logging()


def invoke(runner: CliRunner, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, hoist_config(list(args)), input=stdin)
    stderr = result.stderr if result.stderr_bytes is not None else ""
    return result.exit_code, result.stdout, stderr


def test_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`mailgate decisions --format csv | head -3` with the reader gone: exit 0, no noise.

    An empty log still writes the CSV header line, which meets the closed pipe."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # closed before the command writes: EPIPE on its first write
    try:
        result = run_process(tmp_path, "decisions", "--format", "csv", stdout=write_end)
    finally:
        os.close(write_end)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""


def test_database_down_is_one_line(tmp_path: Path) -> None:
    """psycopg's two-line "connection refused" text becomes one line, exit 75."""
    result = run_process(
        tmp_path,
        "decisions",
        MAILGATE_DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:9/none",
    )
    assert result.returncode == 75
    err = result.stderr.decode()
    assert err.count("\n") == 1 and err.startswith("mailgate: database unavailable"), err


def test_config_after_the_subcommand(tmp_path: Path) -> None:
    """`mailgate ingest --config FILE` reads FILE as `mailgate --config FILE ingest` does."""
    config = tmp_path / "mailgate.toml"
    config.write_text(f'data_dir = "{tmp_path / "elsewhere"}"\n')
    result = run_process(
        tmp_path,
        "ingest",
        str(FIXTURES / "new_ticket.eml"),
        "--config",
        str(config),
        MAILGATE_DATA_DIR="",  # unset: the file's data_dir, not the environment's
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "elsewhere" / "mailgate.db").exists()
    assert not (tmp_path / "var").exists()


def test_hoist_config_keeps_everything_else_in_order() -> None:
    argv = ["decisions", "--config=a.toml", "--since", "x", "--config", "b.toml", "--", "--config"]
    assert hoist_config(argv) == [
        "--config=a.toml",
        "--config",
        "b.toml",
        "decisions",
        "--since",
        "x",
        "--",
        "--config",
    ]


def test_launcher_hands_off_with_config_after_ingest() -> None:
    """The pipe's fast path reads `ingest - --config FILE` as the command line does."""
    from worker.launcher import IngestCall

    for argv in (["ingest", "-", "--config", "/c.toml"], ["ingest", "--config=/c.toml", "-"]):
        call = IngestCall.parse(argv)
        assert (call.config, call.positional) == ("/c.toml", ["-"]), argv


def test_help_shows_metavars_not_python_types(cli: CliRunner) -> None:
    """No `<str>`, `<bool>` or `{ID}` in any help; options show what they take."""
    for command in (["decisions"], ["tickets", "add"], ["explain"], ["ingest"], ["report"]):
        code, out, _ = invoke(cli, *command, "--help")
        assert code == 0
        assert not PYTHON_TYPE.search(out), out
    _, out, _ = invoke(cli, "tickets", "add", "--help")
    assert "tickets add [OPTIONS] ID" in " ".join(out.split())
    _, out, _ = invoke(cli, "report", "--help")
    assert "--since TIME" in " ".join(out.split())


@pytest.mark.parametrize(
    "args",
    [
        ("report", "--since", "2026-12-06", "--until", "2026-12-01"),
        ("decisions", "--since", "2026-12-06T10:00", "--until", "2026-12-06T09:00"),
        ("tickets", "add", "7001", "--kind", "technical", "--closed-at", "2026-01-01"),
    ],
)
def test_contradicting_arguments_are_refused(cli: CliRunner, args: tuple[str, ...]) -> None:
    """A period ending before it starts, a closing time on an open ticket: exit 64, one line."""
    code, out, err = invoke(cli, *args)
    assert code == 64, (out, err)
    assert err.count("\n") == 1 and ("--since" in err or "--closed-at" in err), err


def test_replay_of_one_message_file(cli: CliRunner) -> None:
    """`replay one.eml` decides that message instead of reading an empty mbox."""
    code, out, err = invoke(cli, "replay", str(FIXTURES / "new_ticket.eml"))
    assert code == 0, err
    assert "rejected_new_ticket" in out
    assert "total │ 1 " in " ".join(out.split())


def test_explain_id_shows_the_stored_trace(cli: CliRunner) -> None:
    """After a message is decided, `explain --id` shows its recorded trace, not `duplicate`."""
    code, out, err = invoke(
        cli, "ingest", "--json", stdin=(FIXTURES / "new_ticket.eml").read_bytes()
    )
    assert code == 0, err
    public_id = out.split('"public_id": "')[1].split('"')[0]
    code, out, err = invoke(cli, "explain", "--id", public_id)
    assert code == 0, err
    assert "decision: rejected_new_ticket" in out and "new_ticket" in out and "HIT" in out
    assert "duplicate" not in out.split("policy:")[0]
    code, out, err = invoke(cli, "explain", "--id", "nosuchid")
    assert code == 64 and "no decision" in err


def test_empty_message_is_quarantined(cli: CliRunner) -> None:
    """An empty message says nothing, not "I am a robot": kept for review."""
    code, out, err = invoke(cli, "ingest", "--json", stdin=b"")
    assert code == 0, err
    assert '"decision": "quarantined"' in out and "no header fields" in out


PROBE = """
import sys
from worker.cli import main
sys.argv = ["mailgate", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
loaded = {name for name in sys.modules}
print(" ".join(sorted(m for m in {MODULES} if m in loaded)), file=sys.__stderr__)
"""


def imported(tmp_path: Path, modules: set[str], *args: str) -> set[str]:
    """Which of ``modules`` a `mailgate ARGS` process had imported when it ended."""
    program = PROBE.replace("{MODULES}", repr(modules))
    result = subprocess.run(
        [sys.executable, "-c", program, *args],
        env=cli_env(str(tmp_path / "var")),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return set(result.stderr.split("\n")[-2].split())


def test_commands_import_only_what_they_use(tmp_path: Path) -> None:
    """--help loads no settings model, store or log library; a CSV query loads no pipeline,
    no policies (which each query would otherwise pay for at every start)."""
    heavy = {"pydantic_settings", "sqlalchemy", "structlog", "worker.pipeline", "worker.policy"}
    assert imported(tmp_path, heavy, "--help") == set()
    query = imported(tmp_path, heavy, "decisions", "--format", "csv")
    assert query == {"pydantic_settings", "sqlalchemy", "structlog"}, query
