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
