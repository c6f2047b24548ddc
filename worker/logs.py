"""structlog set-up: JSON lines on stderr, one canonical ``decision`` line per message.

Logs carry no customer data. Exceptions are rendered as type, message and a plain list of
frames (file, line, function) — never the frames' local variables, which on the decision
path hold the raw message, the envelope and the decision. Only the canonical ``decision``
line names addresses. Third-party loggers go through the same renderer, but keep only their
fixed message text: their arguments are where aiosmtpd puts peers and unrecognised command
lines, aiohttp request paths with query strings, imapclient the commands it sends.
"""

from __future__ import annotations

import logging
import re
import sys

import structlog
from structlog.tracebacks import ExceptionDictTransformer

_configured = False
# Frames without locals; a deep SQLAlchemy stack stays readable.
_exceptions = structlog.processors.ExceptionRenderer(
    ExceptionDictTransformer(show_locals=False, max_frames=30)
)
_PLACEHOLDER = re.compile(r"%(\([^)]*\))?[-#0 +]*\d*(\.\d+)?[srdifxXeEgGcaor%]")
# Loggers that at INFO or DEBUG write what mailgate must not keep: aiosmtpd whole dialogues
# and envelope addresses, aiohttp every request line, imapclient commands, SQLAlchemy
# statement parameters.
_QUIET = ("mail.log", "aiohttp.access", "imapclient", "sqlalchemy", "alembic", "asyncio")


_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"']+@[^\s<>()\[\],;:\"']+")


def without_addresses(text: str) -> str:
    """``text`` (a relay's answer, say) with every email address replaced by ``<address>``."""
    return _ADDRESS.sub("<address>", text)


class DropArguments(logging.Filter):
    """Keep a third-party record's fixed text and drop its arguments (``%r`` → ``?``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = _PLACEHOLDER.sub("?", str(record.msg))
            record.args = ()
        return True


def configure_logging(level: str = "info") -> None:
    global _configured
    numeric = getattr(logging, level.upper(), logging.INFO)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, _exceptions, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(DropArguments())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _exceptions,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    if not _configured:
        root.addHandler(handler)
    root.setLevel(max(numeric, logging.INFO))
    for noisy in _QUIET:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _configured = True
