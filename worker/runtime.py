"""The runtime a gate works in, opened once: data directory, database, policies, secret.

``Runtime.open`` does, in this order, what every command needs before the first message:
load and validate the policies, make the data directory private (before anything in it is
opened), open the database and migrate its schema, and resolve the reply secret —
generating the per-installation one on first use, here and nowhere else. The gate itself
(``worker.pipeline.Mailgate``) opens nothing: it is built over a runtime, so deciding and
wiring stay apart and every part that needs the secret (tokens, webhook signatures, the
``tickets token`` command) reads the same bytes.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

from sqlalchemy import Engine

from worker.errors import TransientError
from worker.policy.document import PolicySet
from worker.private import FILE_MODE, private_directory, tighten
from worker.settings import Settings
from worker.store.db import TRANSIENT_DB_ERRORS, make_engine, migrate

SECRET_FILE = "reply-secret"


@dataclass(frozen=True)
class Runtime:
    """Settings with everything opened from them."""

    settings: Settings
    policies: PolicySet
    engine: Engine
    secret: bytes

    @classmethod
    def open(cls, settings: Settings, *, migrate_schema: bool = True) -> Runtime:
        policies = PolicySet.load(settings.policy_dir)
        tighten(settings.data_dir)  # before anything in it is opened
        engine = make_engine(settings.effective_database_url, settings.db_busy_timeout)
        if migrate_schema:
            try:
                migrate(engine)
            except TRANSIENT_DB_ERRORS as exc:
                raise TransientError(f"database unavailable: {exc.orig}") from exc
        return cls(settings, policies, engine, reply_secret(settings))


def reply_secret(settings: Settings) -> bytes:
    """The HMAC key: the setting, else a per-installation key kept in the data dir.

    Generating one on first use keeps the embedded quick start working; replicas must
    share ``MAILGATE_REPLY_SECRET`` so that each verifies the others' tokens.
    """
    if settings.reply_secret:
        return settings.reply_secret.encode()
    path = settings.data_dir / SECRET_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        private_directory(settings.data_dir)
        key = secrets.token_hex(32).encode()
        try:
            # Created 0600 whatever the umask: O_EXCL with an explicit mode.
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            return path.read_bytes().strip()
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(key)
        return key
