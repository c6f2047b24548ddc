"""Exit codes of the ``mailgate`` command: every error a command raises becomes one line and
a sysexits(3) code, decided here once instead of in each command.

``exits()`` wraps a command: ``ConfigError`` → 78 (EX_CONFIG), ``TransientError`` → 75
(EX_TEMPFAIL), bad input data → 65, arguments that do not fit → 64, a missing input file
→ 66, an output that cannot be created → 73, a disk error → 74, and anything unexpected →
75 with the traceback in the log only. ``ingest`` runs under the ``PIPE`` table instead: an
MTA reads only 0, 64, 65 and 75, and a configuration slip must never read as permanent,
or the MTA would bounce the customer's mail. ``run()`` gives click's usage errors 64
rather than click's 2, which a pipe transport would read as a permanent failure.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import typer

from worker.errors import (
    CannotCreateError,
    ConfigError,
    FileIOError,
    InputError,
    MailgateError,
    NoInputError,
    TransientError,
    UsageProblem,
)

EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_CANTCREAT = 73
EX_IOERR = 74
EX_TEMPFAIL = 75
EX_CONFIG = 78

Command = TypeVar("Command", bound=Callable[..., Any])


@dataclass(frozen=True)
class ExitCodes:
    """The exit code of each kind of failure, for one kind of caller."""

    config: int = EX_CONFIG
    no_input: int = EX_NOINPUT
    cannot_create: int = EX_CANTCREAT
    io_error: int = EX_IOERR
    transient_hint: str = ""

    def code_for(self, error: MailgateError) -> int:
        if isinstance(error, ConfigError):
            return self.config
        if isinstance(error, NoInputError):
            return self.no_input
        if isinstance(error, CannotCreateError):
            return self.cannot_create
        if isinstance(error, FileIOError):
            return self.io_error
        if isinstance(error, UsageProblem):
            return EX_USAGE
        if isinstance(error, InputError):
            return EX_DATAERR
        return EX_TEMPFAIL  # TransientError and whatever else: the caller may retry


OPERATOR = ExitCodes()
# Postfix and sendmail read 64 and 65 as "bounce", 75 as "keep and retry"; nothing else.
PIPE = ExitCodes(
    config=EX_TEMPFAIL,
    no_input=EX_DATAERR,
    cannot_create=EX_TEMPFAIL,
    io_error=EX_TEMPFAIL,
    transient_hint="not decided, retry later: ",
)
# A replay stopped half-way is run again: what it decided comes back as duplicates.
REPLAY = ExitCodes(
    transient_hint="replay interrupted, rerun to continue "
    "(decided messages are skipped as duplicates): "
)


def failure(error: Exception, codes: ExitCodes) -> tuple[str, int]:
    """The one line and the exit code a command that raised ``error`` ends with."""
    if isinstance(error, TransientError):
        return f"{codes.transient_hint}{error}", EX_TEMPFAIL
    if isinstance(error, MailgateError):
        return str(error), codes.code_for(error)
    return f"{codes.transient_hint}internal error {type(error).__name__}", EX_TEMPFAIL


def fail(message: str, code: int) -> NoReturn:
    # One line, whatever a driver put in its text (psycopg adds "\n\tIs the server running").
    line = " ".join(part.strip() for part in message.strip().splitlines() if part.strip())
    sys.stderr.write(f"mailgate: {line}\n")
    raise typer.Exit(code)


def exits(codes: ExitCodes = OPERATOR) -> Callable[[Command], Command]:
    """Decorate a command so that each failure ends it with one line and its exit code."""

    def decorate(command: Command) -> Command:
        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return command(*args, **kwargs)
            except (typer.Exit, typer.Abort, typer.TyperException):
                raise  # typer's own signals: an exit code already chosen, or a usage error
            except BrokenPipeError:
                closed_pipe()
            except Exception as exc:
                # A bug: the caller may still retry. An MTA's pipe keeps stderr as the bounce
                # or deferral text: there the one line below says it all, without frames.
                if not isinstance(exc, MailgateError) and codes is not PIPE:
                    import structlog  # only here: a command that works never pays for it

                    log = structlog.get_logger("mailgate")
                    log.exception("command_failed", command=_name(run))
                fail(*failure(exc, codes))

        return run  # type: ignore[return-value]

    return decorate


def _name(function: Callable[..., Any]) -> str:
    return getattr(function, "__name__", "?").replace("_", " ")


def closed_pipe() -> NoReturn:
    """The reader went away (``mailgate decisions | head -3``): what it wanted, it has.

    Standard output is pointed at /dev/null so that the interpreter's last flush finds no
    pipe to complain about, and the command ends quietly with 0, as ``cat`` would be
    killed quietly by SIGPIPE (which Python ignores).
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    raise SystemExit(EX_OK)


def run(app: Callable[..., Any]) -> NoReturn:
    """Run the command line; a usage error prints click's text and exits 64 (EX_USAGE)."""
    try:
        code = app(standalone_mode=False)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
    except BrokenPipeError:
        closed_pipe()
    except typer.TyperException as exc:  # click's usage errors, vendored by typer
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            sys.stderr.write(f"mailgate: {exc.format_message()}\n")
        sys.exit(EX_USAGE)
    except typer.Abort:
        sys.stderr.write("mailgate: interrupted\n")
        sys.exit(EX_TEMPFAIL)
    sys.exit(code if isinstance(code, int) else EX_OK)
