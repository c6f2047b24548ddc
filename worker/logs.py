"""structlog set-up: JSON lines on stderr, one canonical ``decision`` line per message.

Third-party loggers go through the same renderer. aiosmtpd's ``mail.log`` is pinned
to WARNING because at DEBUG it logs whole SMTP dialogues (data included) and at INFO every
envelope address, which the canonical line already records once.
"""

from __future__ import annotations

import logging
import sys

import structlog

_configured = False


def configure_logging(level: str = "info") -> None:
    global _configured
    numeric = getattr(logging, level.upper(), logging.INFO)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    if not _configured:
        root.addHandler(handler)
    root.setLevel(max(numeric, logging.INFO) if numeric < logging.INFO else numeric)
    # aiosmtpd logs whole dialogues at DEBUG and every envelope address at INFO; the
    # canonical decision line already says what ops need, without the chatter.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    for noisy in ("alembic", "sqlalchemy"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _configured = True
