"""The helpdesk's row in the store and its settings: the sync lease lets one replica sync
at a time, migration 0006 upper-cases existing ticket ids, a half-configured helpdesk is
one line naming the missing setting."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from worker.errors import ConfigError
from worker.helpdesk import state
from worker.settings import load_settings
from worker.store.db import MIGRATIONS, make_engine, migrate


def test_one_replica_holds_the_sync_lease(database_url: str) -> None:
    engine = make_engine(database_url, 5)
    migrate(engine)
    assert state.take_lease(engine, "rt", "host-a:1", timedelta(minutes=2))
    assert not state.take_lease(engine, "rt", "host-b:2", timedelta(minutes=2))
    assert state.take_lease(engine, "rt", "host-a:1", timedelta(minutes=2))  # renewed
    assert state.take_lease(engine, "rt", "host-a:1", timedelta(seconds=-1))  # now expired
    assert state.take_lease(engine, "rt", "host-b:2", timedelta(minutes=2))
    state.count_error(engine, "rt", "delivery", "RT unreachable: ConnectError")
    row = state.read(engine, "rt")
    assert row is not None and row.delivery_errors == 1 and row.sync_errors == 0
    assert row.last_error == "delivery: RT unreachable: ConnectError"
    engine.dispose()


def test_migration_0006_upper_cases_ticket_ids(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}", 5)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0005")
        for ticket in ("abc-1", "xyz-9", "XYZ-9"):
            connection.execute(
                text(
                    "INSERT INTO ticket (id, kind, status, participants, domains, updated_at) "
                    "VALUES (:id, 'technical', 'open', '[]', '[]', '2026-01-01')"
                ),
                {"id": ticket},
            )
        command.upgrade(config, "0006")
        ids = sorted(r[0] for r in connection.execute(text("SELECT id FROM ticket")))
        sources = {r[0] for r in connection.execute(text("SELECT source FROM ticket"))}
        connection.commit()
    # "xyz-9" would collide with "XYZ-9": it is left as it was, not lost.
    assert ids == ["ABC-1", "XYZ-9", "xyz-9"] and sources == {"manual"}
    engine.dispose()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"helpdesk": "rt"}, "MAILGATE_HELPDESK_URL is required with MAILGATE_HELPDESK=rt"),
        (
            {"helpdesk": "rt", "helpdesk_url": "https://rt.example.com"},
            "MAILGATE_HELPDESK_TOKEN or _FILE is required",
        ),
        ({"helpdesk_kinds": "General:billing"}, "MAILGATE_HELPDESK_KINDS: expected Queue:"),
        ({"helpdesk": "zendesk"}, "MAILGATE_HELPDESK"),
        ({"webhook_secret": "short"}, "MAILGATE_WEBHOOK_SECRET: 5 characters"),
    ],
)
def test_a_half_configured_helpdesk_is_one_clear_line(
    tmp_path: Path, values: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=r"^bad setting ") as raised:
        load_settings(data_dir=tmp_path, **values)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_synced_tickets_keep_operator_domains_and_follow_their_survivor(
    database_url: str,
) -> None:
    from datetime import UTC, datetime

    from worker.helpdesk.connector import RemoteTicket
    from worker.helpdesk.sync import apply_tickets
    from worker.ticket_directory import get_ticket
    from worker.tickets import TicketRecord, upsert

    engine = make_engine(database_url, 5)
    migrate(engine)
    upsert(engine, [TicketRecord(id="10", kind="technical", domains=["partner.example"])])
    kinds = {"Billing": "customer_care"}
    survivor = RemoteTicket("10", "Billing", "open", None, ("a@x.example",))
    merged = RemoteTicket("11", "General", "open", None, ("b@x.example",), merged_into="10")
    assert apply_tickets(engine, [merged, survivor], kinds, "rt") == 2
    ten, eleven = get_ticket(engine, "10"), get_ticket(engine, "11")
    assert ten and ten.domains == ["partner.example"] and ten.kind == "customer_care"
    assert eleven and eleven.merged_into == "10" and eleven.kind == "customer_care"
    assert set(eleven.participants) == {"a@x.example", "b@x.example"}
    closed_at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    apply_tickets(engine, [RemoteTicket("10", "Billing", "closed", closed_at, ())], kinds, "rt")
    eleven = get_ticket(engine, "11")
    assert eleven and eleven.status == "closed" and eleven.closed_at is not None
    engine.dispose()
