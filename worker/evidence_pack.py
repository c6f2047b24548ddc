"""``mailgate audit pack``: one zip an auditor verifies with standard tools, not with mailgate.

The pack holds the chain segment written in the period (``chain.jsonl``: a segment line
with the digest before it, the records, the segment's last digest), extended to the next
anchor so its end is anchored; each anchor's token (``anchors/<seq>.tsr``) beside the exact
bytes it timestamped (``anchors/<seq>.head``); every policy the segment's decisions were
decided under, byte for byte (their SHA-256 is the digest the decisions name); the period's
report (JSON and HTML); the TSA's CA certificate when one is configured; ``SHA256SUMS``;
``verify_pack.py`` (standard library only); and a README saying how to check each part with
``sha256sum``, ``openssl ts -verify`` and the script.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session

from worker.audit import anchored_bytes, export_record, is_event
from worker.clock import aware
from worker.errors import CannotCreateError, UsageProblem
from worker.report import build_report, render_html, render_json

SCRIPT = Path(__file__).with_name("verify_pack.py")
README = """\
mailgate evidence pack
======================

Period: {since} to {until} (chain records written then).
Chain segment: records seq {first}..{last} of the decision chain, extended to the first
anchor after the period when there is one. Anchors in the segment: {anchors}.

Files
  chain.jsonl       line 1: the segment (first seq, the digest before it); then one record
                    per line (decisions; "event" records: anchor, erasure, relink); last line:
                    the segment's last seq and digest.
  anchors/N.tsr     RFC 3161 timestamp reply of anchor record N (DER), from {tsa}.
  anchors/N.head    the exact bytes that TSA timestamped: "mailgate chain SEQ DIGEST".
  policies/         every policy in force for the segment's decisions, byte for byte; a
                    decision's policy_sha256 is its file's SHA-256:
{policies}
  report.json/.html the period's report (counts by decision, rule, policy, day).
  tsa-ca.pem        the TSA's CA certificate, as configured at the operator. Prefer the copy
                    the TSA publishes: this one came from the operator.
  verify_pack.py    a short Python 3 script (standard library only) checking all of it.
  SHA256SUMS        SHA-256 of every other file.

How to verify (in the unpacked directory)
  1. sha256sum -c SHA256SUMS
  2. for each anchor N (the TSA's CA from the TSA itself, or tsa-ca.pem):
       openssl ts -verify -data anchors/N.head -in anchors/N.tsr -CAfile tsa-ca.pem
     and read its time:  openssl ts -reply -in anchors/N.tsr -text
  3. python3 verify_pack.py .
     recomputes every link of chain.jsonl (SHA-256 over the previous digest and the
     record's canonical JSON), checks that each anchors/N.head is the recomputed digest
     at the anchored seq and that each token is the one in the chain, runs step 2 when
     openssl is there, and checks that every policy named is in policies/.

What it proves: the records between two anchors cannot have been changed after the later
anchor's time without the TSA's signature failing. Erased decisions keep their digests but
not their personal fields (an erasure record lists them); they still link.
"""


@dataclass
class PackSummary:
    first: int
    last: int
    records: int
    anchors: int
    files: int


def _segment(session: Session, since: datetime, until: datetime) -> list[Any]:
    """The records written in [since, until), then on to the next anchor."""
    from worker.chain_store import iter_records

    chosen: list[Any] = []
    for record in iter_records(session):
        when = _written(record)
        if when < since:
            continue
        if when >= until and (not chosen or _anchored(chosen)):
            break
        chosen.append(record)
    if chosen and not _anchored(chosen):  # no anchor after the period yet: the period only
        chosen = [r for r in chosen if _written(r) < until]
    return chosen


def _written(record: Any) -> datetime:
    return aware(record.at if is_event(record) else record.decided_at)


def _anchored(records: list[Any]) -> bool:
    return is_event(records[-1]) and records[-1].kind == "anchor"


def _chain_lines(records: list[Any], since: datetime, until: datetime) -> str:
    first, last = records[0], records[-1]
    segment = {
        "from_seq": first.seq,
        "to_seq": last.seq,
        "prev_digest": first.prev_digest,
        "since": since.isoformat(),
        "until": until.isoformat(),
    }
    lines = [{"segment": segment}, *(export_record(r) for r in records)]
    lines.append({"head": {"seq": last.seq, "digest": last.digest}})
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)


def _policies(gate: Any, records: list[Any]) -> dict[str, bytes]:
    named = {(r.policy, r.policy_sha256) for r in records if not is_event(r) and r.policy}
    files: dict[str, bytes] = {}
    by_digest = {p.sha256: p for p in gate.policies.policies}
    for _, sha256 in sorted(named):
        policy = by_digest.get(sha256)
        if policy is not None:  # a policy missing here is named by verify_pack.py
            files[f"policies/{policy.path.name}"] = policy.path.read_bytes()
    return files


def pack_files(gate: Any, since: datetime, until: datetime) -> tuple[dict[str, bytes], Any]:
    """Every file of the pack by name, and the segment's records."""
    with Session(gate.read_engine) as session:
        records = _segment(session, since, until)
    if not records:
        raise UsageProblem(f"no chain records written between {since} and {until}")
    files: dict[str, bytes] = {"chain.jsonl": _chain_lines(records, since, until).encode()}
    anchors = [r for r in records if is_event(r) and r.kind == "anchor"]
    for anchor in anchors:
        body = anchor.body
        files[f"anchors/{anchor.seq}.tsr"] = base64.b64decode(body["token"])
        files[f"anchors/{anchor.seq}.head"] = anchored_bytes(body["seq"], body["digest"])
    policies = _policies(gate, records)
    files.update(policies)
    listed = "\n".join(
        f"                      {hashlib.sha256(data).hexdigest()}  {name}"
        for name, data in sorted(policies.items())
    )
    report = build_report(gate.read_engine, since, until)
    files["report.json"] = render_json(report).encode()
    files["report.html"] = render_html(report).encode()
    if gate.settings.tsa_ca_file:
        files["tsa-ca.pem"] = Path(gate.settings.tsa_ca_file).read_bytes()
    files["verify_pack.py"] = SCRIPT.read_bytes()
    tsa = anchors[0].body.get("tsa", "the TSA") if anchors else "(no anchor yet)"
    files["README.txt"] = README.format(
        since=since.isoformat(), until=until.isoformat(), first=records[0].seq,
        last=records[-1].seq, anchors=len(anchors), tsa=tsa, policies=listed or "(none)",
    ).encode()  # fmt: skip
    sums = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items())
    )
    files["SHA256SUMS"] = sums.encode()
    return files, records


def write_pack(gate: Any, since: datetime, until: datetime, output: Path) -> PackSummary:
    """Build the pack and write it to ``output`` (``0600``: it holds personal data)."""
    files, records = pack_files(gate, since, until)
    try:
        descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise CannotCreateError(output, exc.strerror or str(exc)) from None
    with os.fdopen(descriptor, "wb") as handle, zipfile.ZipFile(handle, "w") as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(f"mailgate-evidence/{name}", date_time=(2000, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o755 if name.endswith(".py") else 0o644) << 16
            archive.writestr(info, data)
    anchors = sum(1 for r in records if is_event(r) and r.kind == "anchor")
    return PackSummary(records[0].seq, records[-1].seq, len(records), anchors, len(files))
