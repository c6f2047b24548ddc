"""The schema check on open: a database already at the newest revision is recognised with
one SELECT, without importing alembic (a pipe process pays every import per message); an
empty or older one still goes through alembic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from worker.store.db import MIGRATIONS, head_revision, make_engine, migrate, schema_current


def test_head_revision_read_from_the_files_is_alembics_head() -> None:
    """The regex reading of the migration files agrees with alembic's own graph."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert head_revision() == ScriptDirectory.from_config(config).get_current_head()


def test_schema_current_only_at_the_head(tmp_path: Path) -> None:
    """New database: not current; migrated: current; stamped older: not current."""
    engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'mailgate.db'}")
    assert not schema_current(engine)
    migrate(engine)
    assert schema_current(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    assert not schema_current(engine)
    engine.dispose()


def test_opening_a_current_database_does_not_import_alembic(tmp_path: Path) -> None:
    """Second open of a migrated database: the fast path, alembic never imported."""
    url = f"sqlite:///{tmp_path / 'var' / 'mailgate.db'}"
    program = (
        "import sys\n"
        "from worker.store.db import make_engine, migrate\n"
        f"migrate(make_engine({url!r}))\n"
        "print('alembic' in sys.modules)\n"
    )
    runs = [
        subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
        for _ in range(2)
    ]
    assert [run.stdout.strip() for run in runs] == ["True", "False"]


def test_schema_current_on_postgresql(postgres_url: str) -> None:
    """The same one-SELECT check against PostgreSQL, where replicas share the schema."""
    engine = make_engine(postgres_url)
    migrate(engine)
    assert schema_current(engine)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '0001'"))
        assert not schema_current(engine)
    finally:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :head"),
                               {"head": head_revision()})  # fmt: skip
        engine.dispose()
