"""The few exception types mailgate raises across module boundaries.

Each maps to exactly one answer at the edge: ``ConfigError`` to one clear line and a
non-zero exit before anything starts, ``TransientError`` to ``451 4.3.0`` / exit 75 so the
sender retries. Everything else that escapes a transport is treated as transient too.
"""


class MailgateError(Exception):
    """Base of every error mailgate raises on purpose."""


class ConfigError(MailgateError):
    """A bad setting or policy document: start-up stops with this one-line message."""


class TransientError(MailgateError):
    """Storage or another dependency failed; the message must be retried later."""


class InputError(MailgateError):
    """Bad operator input (an import file, a command argument): reported, nothing changed."""


class Conflict(InputError):
    """An operator action on a message already acted on (HTTP 409): nothing was changed."""


class UsageProblem(MailgateError):
    """Command-line arguments that make no sense together (EX_USAGE)."""


class FileProblem(MailgateError):
    """A file the operator named cannot be used; the message names the path."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")


class NoInputError(FileProblem):
    """An input file is missing, unreadable, or a directory (EX_NOINPUT)."""


class CannotCreateError(FileProblem):
    """An output file cannot be created where it was asked for (EX_CANTCREAT)."""


class FileIOError(FileProblem):
    """Reading or writing a file failed part-way: a disk error, a full disk (EX_IOERR)."""
