"""Anchoring the chain head outside the operator's reach: RFC 3161 timestamps from a TSA.

``anchor_now`` asks ``MAILGATE_TSA_URL`` (RFC 3161's HTTP transport: a DER
``application/timestamp-query`` POSTed, an ``application/timestamp-reply`` back) to timestamp
``anchored_bytes(seq, digest)`` of the current head, checks the reply against the TSA's CA
certificate, and appends it to the chain as an ``anchor`` record. ``anchor_loop`` does that
every ``MAILGATE_ANCHOR_SECONDS`` in ``serve``; a replica that finds a fresh anchor (checked
again under the chain-head lock) stores none, so the chain gets one anchor per interval
whatever the number of replicas. Requests, replies and verification are ``rfc3161-client``'s.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from worker.audit import AnchorCheck, VerifyResult, anchored_bytes
from worker.clock import aware, utcnow
from worker.errors import ConfigError, TransientError
from worker.periodic import every
from worker.store.db import transaction
from worker.store.models import ChainEvent, ChainHead
from worker.store.repository import lock_chain_head

log = structlog.get_logger("mailgate.anchoring")
TSA_TIMEOUT = 20.0  # seconds for one TSA round trip
QUERY, REPLY = "application/timestamp-query", "application/timestamp-reply"


def load_ca(path: Path) -> list[Any]:
    """The PEM certificates in ``path`` (the TSA's root, and intermediates if any)."""
    from cryptography import x509

    try:
        certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"TSA CA file {path}: not readable PEM certificates ({exc})") from None
    return list(certificates)


def _trusting(builder: Any, certificates: list[Any]) -> Any:
    """``builder`` (an rfc3161-client ``VerifierBuilder``) with these CA certificates as roots."""
    for certificate in certificates:
        builder = builder.add_root_certificate(certificate)
    return builder


def token_checker(certificates: list[Any]) -> AnchorCheck:
    """An ``AnchorCheck`` against these CA certificates; without any, the imprint only."""
    from rfc3161_client import VerificationError, VerifierBuilder, decode_timestamp_response

    def check(token: bytes, message: bytes) -> tuple[str | None, datetime | None]:
        try:
            response = decode_timestamp_response(token)
        except ValueError as exc:
            return f"not a timestamp reply ({exc})", None
        when = response.tst_info.gen_time
        if not certificates:
            import hashlib

            if response.tst_info.message_imprint.message != hashlib.sha256(message).digest():
                return "its imprint is not the anchored head", when
            return None, when
        try:
            _trusting(VerifierBuilder(), certificates).build().verify_message(response, message)
        except (VerificationError, ValueError) as exc:
            return str(exc), when
        return None, when

    return check


def request_token(url: str, message: bytes, certificates: list[Any]) -> bytes:
    """A TSA's DER reply timestamping ``message``, checked (nonce included) before use."""
    import requests
    from rfc3161_client import (
        HashAlgorithm,
        TimestampRequestBuilder,
        VerificationError,
        VerifierBuilder,
        decode_timestamp_response,
    )

    query = TimestampRequestBuilder().data(message).hash_algorithm(HashAlgorithm.SHA256).build()
    try:
        reply = requests.post(
            url, data=query.as_bytes(), headers={"Content-Type": QUERY}, timeout=TSA_TIMEOUT
        )
    except requests.RequestException as exc:
        raise TransientError(f"TSA {url} unreachable: {type(exc).__name__}") from None
    if reply.status_code != 200 or reply.headers.get("Content-Type", "").split(";")[0] != REPLY:
        raise TransientError(f"TSA {url} answered HTTP {reply.status_code}, not a timestamp")
    try:
        response = decode_timestamp_response(reply.content)
        if certificates:
            verifier = _trusting(VerifierBuilder.from_request(query), certificates).build()
            verifier.verify_message(response, message)
        elif response.tst_info.nonce != query.nonce:  # no CA to check against: the nonce
            raise ValueError("nonce mismatch")
    except (VerificationError, ValueError) as exc:
        raise TransientError(f"TSA {url} reply does not verify: {exc}") from None
    return reply.content


def _latest_anchor(session: Session) -> ChainEvent | None:
    statement = select(ChainEvent).where(col(ChainEvent.kind) == "anchor")
    return session.scalars(statement.order_by(col(ChainEvent.seq).desc()).limit(1)).first()


def _fresh(anchor: ChainEvent | None, now: datetime, seconds: float) -> bool:
    """Whether a replica anchored recently enough that this round stores nothing."""
    if anchor is None:
        return False
    return now - aware(anchor.at) < timedelta(seconds=seconds * 0.9)


def anchor_now(engine: Engine, settings: Any, *, force: bool = False) -> ChainEvent | None:
    """Timestamp the head and append the anchor; None when a fresh one is there already."""
    if not settings.tsa_url:
        raise ConfigError("MAILGATE_TSA_URL is not set")
    certificates = load_ca(settings.tsa_ca_file) if settings.tsa_ca_file else []
    with Session(engine) as session:
        if not force and _fresh(_latest_anchor(session), utcnow(), settings.anchor_seconds):
            return None
        head = session.get(ChainHead, 1)
        assert head is not None  # written by the first migration
        seq, digest = head.seq, head.digest
    token = request_token(settings.tsa_url, anchored_bytes(seq, digest), certificates)
    from rfc3161_client import decode_timestamp_response

    when = decode_timestamp_response(token).tst_info.gen_time
    from worker.chain_store import append_event

    with transaction(engine) as session:
        lock_chain_head(session)  # the freshness check below is serialised across replicas
        now = utcnow()
        if not force and _fresh(_latest_anchor(session), now, settings.anchor_seconds):
            return None
        body = {
            "seq": seq,
            "digest": digest,
            "time": when.isoformat(),
            "tsa": settings.tsa_url,
            "token": base64.b64encode(token).decode(),
        }
        event = append_event(session, "anchor", body, now)
    log.info("chain_anchored", seq=seq, record=event.seq, time=body["time"])
    return event


async def anchor_loop(engine: Engine, settings: Any, stopping: asyncio.Event) -> None:
    """Anchor at once (unless a replica just did), then every ``anchor_seconds``, until
    ``stopping`` is set. The first round runs even when it already is: a short-lived
    process still anchors what it decided."""
    # The TSA or the database may be away; the warning says which (the TSA's own words).
    round_ = partial(anchor_now, engine, settings)
    await every(settings.anchor_seconds, stopping, round_, "chain_anchor_failed", _reason)


def _reason(exc: Exception) -> str:
    return str(exc)[:200]


@dataclass
class Verified:
    """What ``audit verify`` found, and against what."""

    result: VerifyResult
    head: str = ""
    where: str = ""  # " in FILE" for an export
    signed: bool = False  # anchors checked against a CA certificate, not only their imprint


def verify_command(
    settings: Callable[[], Any], export: Path | None, ca_file: Path | None
) -> Verified:
    """``audit verify``: the database's chain or an export's, anchors checked offline."""
    from worker.audit import verify_export
    from worker.files import opened_for_reading

    cfg = settings()
    ca_path = ca_file or cfg.tsa_ca_file
    check = token_checker(load_ca(ca_path) if ca_path else [])
    if export is not None:
        with opened_for_reading(export) as handle:
            return Verified(verify_export(handle, check), "", f" in {export}", bool(ca_path))
    from worker.chain_store import verify_database
    from worker.startup import open_gate

    result, head = verify_database(open_gate(cfg).read_engine, check)
    return Verified(result, head, "", bool(ca_path))


def print_verified(verified: Verified) -> None:
    from worker.console import out

    result = verified.result
    what = "audit export intact" if verified.where else "audit chain intact"
    extra = f", head {verified.head[:16]}…" if verified.head else ""
    out.print(f"{what}: {result.rows} decisions, {result.records} records{extra}")
    if result.erased:
        out.print(f"erased: {result.erased} decisions keep only their digests")
    if not result.anchors:
        out.print("not anchored: no RFC 3161 timestamp in the chain (mailgate audit anchor)")
        return
    when = result.anchored_at.isoformat() if result.anchored_at else "?"
    out.print(
        f"anchored up to record seq {result.anchored_seq} at {when} "
        f"({result.anchors} anchors, {result.records - result.anchored_seq} records after)"
    )
    if not verified.signed:
        out.print("TSA signatures not checked: no CA certificate (MAILGATE_TSA_CA_FILE or --ca)")
