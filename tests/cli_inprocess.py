"""``mailgate`` run in the test process (typer's runner): the same commands, arguments, exit
codes and output as the subprocess, without a second of interpreter start-up each."""

from __future__ import annotations

from dataclasses import dataclass

from helpers import cli_env

from worker.pipeline import Mailgate


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def invoke(gate: Mailgate, *args: str, **settings: str) -> Ran:
    from typer.testing import CliRunner

    from worker.cli import app

    env = cli_env(
        gate.settings.data_dir,
        MAILGATE_DATABASE_URL=gate.settings.effective_database_url,
        **settings,
    )
    import structlog

    # The command configures logging onto the runner's captured stderr, closed afterwards.
    saved = structlog.get_config()
    try:
        result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    finally:
        structlog.configure(**saved)
    return Ran(result.exit_code, result.stdout, result.stderr)
