"""``store_raw`` on both databases: small messages bound as a parameter, large ones (on
SQLite through a spool file and blob I/O); the bytes read back are the bytes stored."""

from __future__ import annotations

import hashlib
import os
import zlib
from pathlib import Path

import pytest
from helpers import make_settings
from sqlmodel import select

from worker.pipeline import Mailgate
from worker.store.db import transaction
from worker.store.models import RawMessage
from worker.store.repository import SPOOL_ABOVE, compress, load_raw, store_raw


@pytest.mark.parametrize("size", [3_000, SPOOL_ABOVE + 1, 5 * SPOOL_ABOVE + 12_345])
def test_raw_bytes_come_back_intact_and_are_stored_once(gate: Mailgate, size: int) -> None:
    """Stored twice (a redelivery): one row, its size, and exactly the bytes."""
    raw = bytearray(os.urandom(size // 2) + b"line of text\r\n" * (size // 28))
    raw += b"x" * (size - len(raw))
    sha = hashlib.sha256(raw).hexdigest()
    for _ in range(2):
        with transaction(gate.engine) as session:
            store_raw(session, sha, raw)
    with transaction(gate.engine) as session:
        rows = session.scalars(select(RawMessage)).all()
        assert [(r.sha256, r.size) for r in rows] == [(sha, size)]
        assert load_raw(session, sha) == raw


def test_large_store_leaves_no_spool_file_beside_the_database(tmp_path: Path) -> None:
    """The spool file (SQLite's path only) is unlinked from the start and closed after."""
    gate = Mailgate.open(make_settings(tmp_path, f"sqlite:///{tmp_path / 'var' / 'm.db'}"))
    try:
        with transaction(gate.engine) as session:  # the WAL and lock files exist from here
            store_raw(session, "0" * 64, b"small")
        before = sorted(os.listdir(tmp_path / "var"))
        raw = os.urandom(2 * SPOOL_ABOVE)
        with transaction(gate.engine) as session:
            store_raw(session, hashlib.sha256(raw).hexdigest(), raw)
        assert sorted(os.listdir(tmp_path / "var")) == before
        with transaction(gate.engine) as session:
            assert load_raw(session, hashlib.sha256(raw).hexdigest()) == raw
    finally:
        gate.engine.dispose()


def test_compress_is_zlib_compress_level_6() -> None:
    raw = os.urandom(300_000) + b"compressible " * 200_000
    assert bytes(compress(raw)) == zlib.compress(raw, 6)
