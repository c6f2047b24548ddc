"""Our milter driven by OpenDKIM's ``miltertest`` (Debian ``miltertest``), a milter client
nobody here wrote (issue 25, finding 8): accept, reject and discard, one Lua script each.

Before, ``miltertest`` 2.11 aborted ("stack smashing detected") on our 20-line, 1.4 KB
``550``: it fails on replies above about 1,000 bytes. The reject text is now the policy's
short one, in a few lines.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import RunningServer, add_standard_tickets, make_settings
from sqlalchemy import text

from worker.clock import utcnow
from worker.pipeline import Mailgate
from worker.reject_text import reject_lines

SCRIPTS = Path(__file__).parent / "miltertest"


@pytest.fixture
def milter(tmp_path: Path) -> Iterator[tuple[Mailgate, int]]:
    gate = Mailgate.open(make_settings(tmp_path, smtp_listen="off", milter_listen="127.0.0.1:0"))
    add_standard_tickets(gate)
    server = RunningServer(gate)
    yield gate, server.port("milter")
    server.stop()
    gate.engine.dispose()


def miltertest(script: str, port: int, sender: str, subject: str, *extra: str) -> str:
    binary = shutil.which("miltertest")
    if binary is None:
        pytest.skip("miltertest missing (Debian package miltertest; scripts/test installs it)")
    defines = [f"PORT={port}", f"DIR={SCRIPTS}", f"SENDER={sender}", f"SUBJECT={subject}", *extra]
    command = [binary, *(f"-D{define}" for define in defines), "-s", str(SCRIPTS / script)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, (script, result.returncode, result.stdout, result.stderr)
    return result.stdout


def test_miltertest_sees_accept_reject_and_discard(milter: tuple[Mailgate, int]) -> None:
    gate, port = milter
    assert "accept ok" in miltertest("accept.lua", port, "bob@partner.example", "Re: [Ticket#1001]")
    policy = gate.policies.in_force(utcnow())
    lines = reject_lines(policy, "rejected_new_ticket", "en")
    assert lines and sum(len(line) for line in lines) < 400
    # The milter's 550 is one line: the clauses joined as the policy wrote them.
    whole = f"TEXT={'; '.join(lines)}"
    reject = miltertest("reject.lua", port, "alice@customer.example", "PBX down", whole)
    assert "reject ok" in reject
    assert "discard ok" in miltertest(
        "discard.lua", port, "dario@customer.example", "Out of office", "AUTO=1"
    )
    with gate.engine.connect() as connection:
        rows = connection.execute(text("SELECT decision FROM decision ORDER BY seq")).scalars()
        assert list(rows) == ["accepted_followup", "rejected_new_ticket", "ignored_auto_generated"]
