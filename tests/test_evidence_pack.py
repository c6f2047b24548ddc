"""``mailgate audit pack``: an auditor unpacks it and verifies it with ``unzip``, ``sha256sum``,
``openssl ts -verify`` and the pack's own script under the system Python, without mailgate."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_inprocess import invoke
from helpers import add_standard_tickets, make_settings
from test_audit import fill
from tsa_server import TimestampAuthority

from worker.anchoring import anchor_now
from worker.clock import utcnow
from worker.pipeline import Mailgate

# Isolated, without site-packages: the script must need nothing but the standard library.
STDLIB_PYTHON = (sys.executable, "-I", "-S")


@pytest.fixture
def anchored_gate(tmp_path: Path, tsa: TimestampAuthority) -> Iterator[Mailgate]:
    settings = make_settings(tmp_path, tsa_url=tsa.url, tsa_ca_file=tsa.ca_file)
    gate = Mailgate.open(settings)
    add_standard_tickets(gate)
    yield gate
    gate.engine.dispose()


def run(*command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_pack_verifies_with_standard_tools(anchored_gate: Mailgate, tmp_path: Path) -> None:
    """The period's three decisions, extended to the anchor after them: every check passes;
    an edited record is named by the script, and a pack rewritten with valid links and
    sums fails only where it can: at the anchor's signature."""
    gate = anchored_gate
    since = utcnow()
    fill(gate, 3)
    until = utcnow()
    anchor_now(gate.engine, gate.settings, force=True)
    fill(gate, 1)
    pack = tmp_path / "evidence.zip"
    tsa = {
        "MAILGATE_TSA_URL": str(gate.settings.tsa_url),
        "MAILGATE_TSA_CA_FILE": str(gate.settings.tsa_ca_file),
    }
    made = invoke(gate, "audit", "pack", "--since", since.isoformat(),
                  "--until", until.isoformat(), "-o", str(pack), **tsa)  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "chain seq 1..4 (4 records, 1 anchors)" in made.stdout
    assert stat.S_IMODE(pack.stat().st_mode) == 0o600
    assert run("unzip", "-q", str(pack), cwd=tmp_path).returncode == 0
    unpacked = tmp_path / "mailgate-evidence"
    sums = run("sha256sum", "-c", "SHA256SUMS", cwd=unpacked)
    assert sums.returncode == 0 and "FAILED" not in sums.stdout, sums.stdout
    openssl = run("openssl", "ts", "-verify", "-data", "anchors/4.head", "-in", "anchors/4.tsr",
                  "-CAfile", "tsa-ca.pem", cwd=unpacked)  # fmt: skip
    assert openssl.returncode == 0 and "Verification: OK" in openssl.stdout, openssl.stderr
    script = run(*STDLIB_PYTHON, "verify_pack.py", ".", cwd=unpacked)
    assert script.returncode == 0, script.stdout
    assert "chain seq 1..4 links; 1 anchors match the chain (signatures verified" in script.stdout
    (policy,) = (unpacked / "policies").glob("*.toml")
    digest = hashlib.sha256(policy.read_bytes()).hexdigest()
    assert f"{digest}  policies/{policy.name}" in (unpacked / "README.txt").read_text()
    assert json.loads((unpacked / "report.json").read_text())["total"] == 3
    _edit_record(unpacked / "chain.jsonl", seq=2)
    edited = run(*STDLIB_PYTHON, "verify_pack.py", ".", cwd=unpacked)
    assert edited.returncode == 1
    assert "chain.jsonl: SHA-256 does not match" in edited.stdout
    assert "chain.jsonl seq 2: content does not match its digest" in edited.stdout
    rewritten = tmp_path / "rewritten"
    assert run("unzip", "-q", "-d", str(rewritten), str(pack), cwd=tmp_path).returncode == 0
    _rewrite_pack(rewritten / "mailgate-evidence")
    caught = run(*STDLIB_PYTHON, "verify_pack.py", ".", cwd=rewritten / "mailgate-evidence")
    assert caught.stdout.splitlines() == ["FAILED: anchor seq 4: openssl ts -verify refuses 4.tsr"]


def _rewrite_pack(pack: Path) -> None:
    """What an operator holding the database could do: change decision 2, recompute every
    link, the anchored head's bytes and SHA256SUMS. Only the TSA's signature is left."""
    from worker.verify_pack import EVENT, LINKED, digest

    lines = [json.loads(line) for line in (pack / "chain.jsonl").read_text().splitlines()]
    prev = last_decision = lines[0]["segment"]["prev_digest"]
    for record in lines[1:-1]:
        body = record.get("event", record)
        body["prev_digest"] = prev
        if "event" in record:
            body["digest"] = prev = digest(prev, {k: body[k] for k in EVENT}, prefix="event ")
            (pack / "anchors" / f"{body['seq']}.head").write_text(
                f"mailgate chain 3 {last_decision}\n"
            )
            continue
        if body["seq"] == 2:
            body["decision"] = "accepted_followup"
        payload = {k: body[k] for k in LINKED} | {"personal_sha256": body["personal_sha256"]}
        body["digest"] = prev = last_decision = digest(prev, payload)
    lines[-1]["head"]["digest"] = prev
    (pack / "chain.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    names = [line.split(None, 1)[1] for line in (pack / "SHA256SUMS").read_text().splitlines()]
    sums = [f"{hashlib.sha256((pack / n).read_bytes()).hexdigest()}  {n}\n" for n in names]
    (pack / "SHA256SUMS").write_text("".join(sums))


def _edit_record(path: Path, seq: int) -> None:
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines):
        record = json.loads(line)
        if record.get("seq") == seq:
            record["decision"] = "accepted_followup"
            lines[number] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
