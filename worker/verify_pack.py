#!/usr/bin/env python3
"""Verify a mailgate evidence pack without mailgate: ``python3 verify_pack.py [DIR]``.

Standard library only, so an auditor can read all of it. In the unpacked pack DIR it checks
1. every file against SHA256SUMS (as ``sha256sum -c SHA256SUMS`` does);
2. chain.jsonl: each record's digest from the previous one (chain format 2), from the
   segment's first ``prev_digest`` to its last record, and each decision's personal fields
   against their salted digest (erased rows keep only the digest);
3. each anchor: ``anchors/<seq>.head`` is exactly the text the TSA timestamped for the digest
   recomputed here, ``anchors/<seq>.tsr`` is the token in the chain, and, when ``openssl``
   is on the PATH and ``tsa-ca.pem`` is present, ``openssl ts -verify`` accepts it;
4. every policy a decision names is in ``policies/`` with that SHA-256.
Exit 0 when all hold; 1 and one line per problem otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

# The decision fields a link covers besides personal_sha256 (mailgate's worker/audit.py).
LINKED = ("seq", "decision", "rule", "policy", "policy_sha256", "ticket", "reply_status",
          "reply_reason", "raw_sha256", "received_at", "decided_at", "channel",
          "duplicate_of")  # fmt: skip
PERSONAL = ("dedup_key", "message_id", "envelope_from", "recipients", "trace")
EVENT = ("seq", "kind", "at", "body")


def digest(prev: str, payload: dict, prefix: str = "") -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev}\n{prefix}{text}".encode()).hexdigest()


def check_sums(pack: Path) -> list[str]:
    problems = []
    for line in (pack / "SHA256SUMS").read_text().splitlines():
        expected, name = line.split(None, 1)
        path = pack / name.lstrip("*")
        if not path.is_file():
            problems.append(f"{name}: listed in SHA256SUMS but missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != expected:
            problems.append(f"{name}: SHA-256 does not match SHA256SUMS")
    return problems


def check_record(record: dict, prev: str) -> tuple[str | None, str]:
    """A problem or None, and the record's digest as recomputed."""
    if "event" in record:
        event = record["event"]
        computed = digest(prev, {k: event[k] for k in EVENT}, prefix="event ")
        problem = None if computed == event["digest"] else "content does not match its digest"
        return problem, computed
    payload = {k: record[k] for k in LINKED}
    payload["personal_sha256"] = record["personal_sha256"]
    computed = digest(prev, payload)
    if computed != record["digest"]:
        return "content does not match its digest", computed
    salt = record.get("personal_salt")
    if salt and digest(salt, {k: record[k] for k in PERSONAL}) != record["personal_sha256"]:
        return "personal fields do not match their digest", computed
    return None, computed


def check_chain(pack: Path) -> tuple[list[str], dict[int, str], list[dict]]:
    """Problems, the recomputed digest of every seq, and the anchor records."""
    lines = [json.loads(line) for line in (pack / "chain.jsonl").read_text().splitlines() if line]
    segment, records = lines[0]["segment"], lines[1:-1]
    prev, expected = segment["prev_digest"], segment["from_seq"]
    digests: dict[int, str] = {expected - 1: prev}
    anchors: list[dict] = []
    problems: list[str] = []
    for record in records:
        body = record.get("event", record)
        where = f"chain.jsonl seq {body['seq']}"
        if body["seq"] != expected or body["prev_digest"] != prev:
            return [f"{where}: not the next record (deleted or reordered)"], digests, anchors
        problem, prev = check_record(record, prev)
        if problem:  # the first broken record: what follows cannot link to it
            return [f"{where}: {problem}"], digests, anchors
        digests[body["seq"]], expected = prev, expected + 1
        if body.get("kind") == "anchor":
            anchors.append(body)
    end = lines[-1]["head"]
    if end["seq"] != expected - 1 or end["digest"] != prev:
        problems.append("chain.jsonl: the last line does not match the last record")
    return problems, digests, anchors


def openssl_command() -> str | None:
    """``openssl`` when it is on the PATH (the tokens' signatures are its job)."""
    return shutil.which("openssl")


def check_anchors(pack: Path, digests: dict[int, str], anchors: list[dict]) -> list[str]:
    problems = []
    openssl = openssl_command() if (pack / "tsa-ca.pem").is_file() else None
    for anchor in anchors:
        seq, body = anchor["seq"], anchor["body"]
        head, token = pack / "anchors" / f"{seq}.head", pack / "anchors" / f"{seq}.tsr"
        text = f"mailgate chain {body['seq']} {digests.get(body['seq'])}\n".encode()
        if not head.is_file() or head.read_bytes() != text:
            problems.append(f"anchor seq {seq}: {head.name} is not the recomputed chain head")
        if not token.is_file() or token.read_bytes() != base64.b64decode(body["token"]):
            problems.append(f"anchor seq {seq}: {token.name} is not the token in the chain")
        elif openssl:
            verify = [openssl, "ts", "-verify", "-data", str(head), "-in", str(token),
                      "-CAfile", str(pack / "tsa-ca.pem")]  # fmt: skip
            if subprocess.run(verify, capture_output=True).returncode != 0:
                problems.append(f"anchor seq {seq}: openssl ts -verify refuses {token.name}")
    return problems


def check_policies(pack: Path) -> list[str]:
    have = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (pack / "policies").glob("*")}
    named = set()
    for line in (pack / "chain.jsonl").read_text().splitlines()[1:-1]:
        record = json.loads(line)
        if "event" not in record and record.get("policy_sha256"):
            named.add((record["policy"], record["policy_sha256"]))
    missing = sorted((pid, sha) for pid, sha in named if sha not in have)
    return [f"policy {pid} ({sha[:16]}…) is not in policies/" for pid, sha in missing]


def main(argv: list[str]) -> int:
    pack = Path(argv[1] if len(argv) > 1 else ".")
    problems = check_sums(pack)
    chain_problems, digests, anchors = check_chain(pack)
    problems += chain_problems + check_anchors(pack, digests, anchors) + check_policies(pack)
    for problem in problems:
        print(f"FAILED: {problem}")
    if problems:
        return 1
    signed = "signatures NOT checked (no openssl or tsa-ca.pem)"
    if openssl_command() and (pack / "tsa-ca.pem").is_file():
        signed = "signatures verified by openssl ts -verify"
    print(f"OK: files match SHA256SUMS; chain seq {min(digests) + 1}..{max(digests)} links; "
          f"{len(anchors)} anchors match the chain ({signed}); policies present")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
