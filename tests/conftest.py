"""Shared fixtures: the store on SQLite and PostgreSQL, a configured mailgate, real-world
mail corpora fetched at setup, and the rule that a skip fails in CI.

``MAILGATE_TEST_POSTGRES_URL`` points at the PostgreSQL server (default: the local one at
127.0.0.1:5432, database ``test``); each test session works in a database of its own.
With ``MAILGATE_TEST_FORBID_SKIPS=1`` (set by ``.ci/run``) any skipped test is a failure,
so a missing PostgreSQL server or corpus cannot turn the suite silently green.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import CACHE, PG_ADMIN_URL, add_standard_tickets, make_settings, reset_postgres

from worker.pipeline import Mailgate


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("MAILGATE_TEST_FORBID_SKIPS") == "1":
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped, but MAILGATE_TEST_FORBID_SKIPS=1: {reason}"


# -- PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    name = f"mailgate_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        # A new connection: the fault tests restart the server under this fixture.
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=10) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'var' / 'mailgate.db'}"
    url: str = request.getfixturevalue("postgres_url")
    reset_postgres(url)
    return url


# -- a configured mailgate ------------------------------------------------------------------


@pytest.fixture
def gate(tmp_path: Path, database_url: str) -> Iterator[Mailgate]:
    instance = Mailgate.open(make_settings(tmp_path, database_url))
    add_standard_tickets(instance)
    yield instance
    instance.engine.dispose()


# -- real-world corpora ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def flufl_bounces() -> list[Path]:
    """The 117 real bounces of the flufl.bounce 6.0.0 sdist, downloaded from PyPI once."""
    target = CACHE / "flufl_bounce-6.0.0"
    data = target / "tests" / "data"
    if not data.is_dir():
        CACHE.mkdir(exist_ok=True)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "flufl.bounce==6.0.0",
                "-d",
                str(CACHE),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        archives = list(CACHE.glob("flufl_bounce-6.0.0.tar.gz"))
        if not archives:
            pytest.skip(f"could not download the flufl.bounce sdist: {result.stderr[-300:]}")
        with tarfile.open(archives[0]) as archive:
            archive.extractall(CACHE, filter="data")
    files = sorted(p for p in data.iterdir() if p.suffix == ".txt")
    assert len(files) >= 100, f"expected the flufl.bounce corpus, found {len(files)} files"
    return files


@pytest.fixture(scope="session")
def cpython_email_corpus() -> list[Path]:
    """CPython's ``test/test_email/data`` messages, from this Python or Debian's testsuite."""
    candidates = [
        Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data",
        Path(f"/usr/lib/python{sys.version_info.major}.{sys.version_info.minor}")
        / "test"
        / "test_email"
        / "data",
    ]
    for directory in candidates:
        files = sorted(directory.glob("msg_*.txt"))
        if files:
            return files
    pytest.skip("CPython's test_email data not found (apt-get install libpython3.11-testsuite)")


# -- an RFC 3161 timestamp authority (openssl ts) --------------------------------------------


@pytest.fixture(scope="session")
def tsa() -> Iterator[Any]:
    """A real TSA on loopback with its own CA, for the anchoring and evidence-pack tests."""
    from tsa_server import TimestampAuthority

    authority = TimestampAuthority()
    yield authority
    authority.stop()
