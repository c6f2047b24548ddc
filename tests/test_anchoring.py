"""RFC 3161 anchors of the chain head, against a real TSA (``openssl ts``) on loopback:
``audit anchor`` stores them in the chain, ``audit verify`` checks them offline against the
TSA's CA, a chain rewritten from the start is caught at the first anchor, and ``serve``
replicas sharing a database store one anchor per interval."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from cli_inprocess import invoke
from helpers import RunningServer, make_settings, reset_postgres
from test_audit import fill
from tsa_server import TimestampAuthority

from worker.anchoring import load_ca, request_token, token_checker
from worker.audit import anchored_bytes, event_digest, row_digest
from worker.pipeline import Mailgate
from worker.store.models import ChainEvent, DecisionRow


def tsa_env(tsa: TimestampAuthority) -> dict[str, str]:
    return {"MAILGATE_TSA_URL": tsa.url, "MAILGATE_TSA_CA_FILE": str(tsa.ca_file)}


def anchor(gate: Mailgate, tsa: TimestampAuthority) -> str:
    result = invoke(gate, "audit", "anchor", **tsa_env(tsa))
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_anchor_is_stored_in_the_chain_and_verified_offline(
    gate: Mailgate, tsa: TimestampAuthority
) -> None:
    """``audit verify`` names the record and the TSA's time the chain is anchored up to."""
    fill(gate, 3)
    assert "anchored chain seq 3" in anchor(gate, tsa)
    fill(gate, 1)
    result = invoke(gate, "audit", "verify", **tsa_env(tsa))
    assert result.returncode == 0, result.stderr
    assert "anchored up to record seq 3 at 20" in result.stdout
    assert "(1 anchors, 2 records after)" in result.stdout


def _rewrite_from_start(gate: Mailgate) -> None:
    """Change decision 2 and recompute every link after it, events and head included."""
    from sqlmodel import Session, select

    from worker.chain_store import iter_records

    with Session(gate.engine) as session:
        records = list(iter_records(session))
        digest = "0" * 64
        for record in records:
            if isinstance(record, DecisionRow):
                if record.seq == 2:
                    record.decision, record.rule = "accepted_followup", "followup"
                record.prev_digest = digest
                record.digest = digest = row_digest(digest, record.model_dump())
            else:
                record.prev_digest = digest
                record.digest = digest = event_digest(digest, record.model_dump())
            session.add(record)
        session.execute(sa.text("UPDATE chain_head SET digest = :d"), {"d": digest})
        session.commit()
        assert session.scalars(select(ChainEvent)).all()


def test_chain_rewritten_from_the_start_is_caught_at_the_first_anchor(
    gate: Mailgate, tsa: TimestampAuthority
) -> None:
    """Every link valid, head matching: only the anchor, out of the operator's reach, sees it."""
    fill(gate, 3)
    anchor(gate, tsa)
    fill(gate, 2)
    anchor(gate, tsa)
    _rewrite_from_start(gate)
    result = invoke(gate, "audit", "verify", **tsa_env(tsa))
    assert result.returncode == 1
    assert "anchor record seq 4" in result.stderr
    assert "rewritten at or before seq 3" in result.stderr


def test_a_token_from_another_tsa_does_not_verify(gate: Mailgate, tsa: TimestampAuthority) -> None:
    """A rogue TSA's timestamp of the same head fails against the real TSA's CA."""
    fill(gate, 2)
    anchor(gate, tsa)
    rogue = TimestampAuthority("rogue TSA")
    try:
        forged = request_token(rogue.url, anchored_bytes(2, _head_at(gate, 2)), [])
    finally:
        rogue.stop()
    check = token_checker(load_ca(tsa.ca_file))
    anchored = anchored_bytes(2, _head_at(gate, 2))
    problem, _ = check(forged, anchored)
    assert problem is not None, "a rogue TSA's token must not verify"
    with gate.engine.connect() as connection:
        body = connection.execute(sa.text("SELECT body FROM chain_event")).scalar_one()
    stored = base64.b64decode((json.loads(body) if isinstance(body, str) else body)["token"])
    assert check(stored, anchored) == (None, check(stored, anchored)[1])


def _head_at(gate: Mailgate, seq: int) -> str:
    with gate.engine.connect() as connection:
        return str(
            connection.execute(
                sa.text("SELECT digest FROM decision WHERE seq = :s"), {"s": seq}
            ).scalar_one()
        )


@pytest.fixture
def postgres_only(postgres_url: str) -> str:
    reset_postgres(postgres_url)
    return postgres_url


def test_serve_replicas_store_one_anchor_per_interval(
    tmp_path: Path, postgres_only: str, tsa: TimestampAuthority
) -> None:
    """Two ``serve`` replicas on one database both run their anchoring round at start:
    the chain gets one anchor, not two."""
    settings = {"tsa_url": tsa.url, "tsa_ca_file": tsa.ca_file, "anchor_seconds": 3600}
    gates = [
        Mailgate.open(make_settings(tmp_path / name, postgres_only, **settings))
        for name in ("a", "b")
    ]
    servers = [RunningServer(gate) for gate in gates]
    for server in servers:
        server.stop()  # returns once its anchoring round has finished
    with gates[0].engine.connect() as connection:
        kinds = connection.execute(sa.text("SELECT kind FROM chain_event")).scalars().all()
    for gate in gates:
        gate.engine.dispose()
    assert kinds == ["anchor"]


def test_a_tsa_that_refuses_is_a_retry_later_and_stores_nothing(
    gate: Mailgate, tsa: TimestampAuthority
) -> None:
    """HTTP 503 from the TSA: exit 75 with one line naming it, and no anchor record."""
    fill(gate, 1)
    tsa.refuse = True
    try:
        result = invoke(gate, "audit", "anchor", **tsa_env(tsa))
    finally:
        tsa.refuse = False
    assert result.returncode == 75
    assert "answered HTTP 503" in result.stderr and result.stderr.count("\n") == 1
    with gate.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM chain_event")).scalar() == 0


@pytest.mark.parametrize(
    ("setting", "value"),
    [("tsa_url", "ftp://tsa.example"), ("tsa_ca_file", "/nonexistent/tsa-ca.pem")],
)
def test_a_bad_tsa_setting_is_named_at_start_up(setting: str, value: str) -> None:
    """A TSA URL that is not http(s), or a CA file that is not there, stops start-up."""
    from worker.errors import ConfigError
    from worker.settings import load_settings

    with pytest.raises(ConfigError, match=f"MAILGATE_{setting.upper()}"):
        load_settings(**{setting: value})
