"""The aiohttp application: ``/healthz``, ``/readyz``, ``/metrics``, ``/api`` and ``/``.

Every ``/api`` route needs ``Authorization: Bearer $MAILGATE_API_TOKEN`` (compared in
constant time; without a configured token the API is closed). The dashboard page itself
holds no data: it asks for the token and reads the API, so message headers and traces are
never shown without it. Database work runs in the server's thread pool, off the loop.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from sqlalchemy import func, text
from sqlmodel import Session, col, select

from worker.clock import parse_when, utcnow
from worker.decision import DECISIONS, REJECTIONS, DecisionName
from worker.errors import TransientError
from worker.mail import InboundMail
from worker.pipeline import Mailgate
from worker.store.models import DecisionRow, OutboxRow
from worker.store.queries import DecisionFilter, find_decisions, next_cursor
from worker.store.repository import load_raw
from worker.tickets import TicketRecord, describe_error, upsert
from worker.web.inputs import authorization, bounded, json_document, row_id
from worker.web.metrics import registry_for
from worker.web.offload import SharedRun, encoded

log = structlog.get_logger("mailgate.http")
DASHBOARD = Path(__file__).parent / "dashboard.html"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SHOWN_HEADERS = (
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Return-Path",
    "Auto-Submitted",
    "Precedence",
    "List-Id",
)


def dashboard_page() -> str:
    """The dashboard with its decision options taken from the one list of names."""
    options = "".join(f"<option>{name}</option>" for name in DecisionName)
    rejections = " ".join(name for name in DecisionName if name in REJECTIONS)
    page = DASHBOARD.read_text(encoding="utf-8")
    return page.replace("{{decision_options}}", options).replace("{{rejections}}", rejections)


def row_json(row: DecisionRow, delivery: str | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "seq": row.seq,
        "decision": row.decision,
        "rule": row.rule,
        "policy": row.policy,
        "policy_sha256": row.policy_sha256,
        "ticket": row.ticket,
        "reply": {"status": row.reply_status, "reason": row.reply_reason, "delivery": delivery},
        "message_id": row.message_id,
        "raw_sha256": row.raw_sha256,
        "envelope_from": row.envelope_from,
        "recipients": row.recipients,
        "received_at": row.received_at.isoformat(),
        "decided_at": row.decided_at.isoformat(),
        "channel": row.channel,
        "duplicate_of": row.duplicate_of,
        "public_id": row.public_id,
    }


def decision_filter(query: Mapping[str, str]) -> DecisionFilter:
    """``GET /api/decisions`` parameters; a bad one raises ValueError naming it."""
    decision = query.get("decision") or None
    if decision and decision not in DECISIONS:
        raise ValueError(f"unknown decision {decision!r}")
    since = parse_when(query["since"]) if query.get("since") else None
    until = parse_when(query["until"]) if query.get("until") else None
    before = row_id(query["before"], "before") if query.get("before") else None
    limit = bounded(query.get("limit") or "100", "limit", 1, 1000)
    return DecisionFilter(
        since=since,
        until=until,
        decision=decision,
        rule=query.get("rule") or None,
        sender=query.get("sender") or None,
        ticket=query.get("ticket") or None,
        channel=query.get("channel") or None,
        limit=limit,
        public_id=query.get("id") or None,
        rejected=query.get("rejected", "") in ("1", "true", "yes"),
        before=before,
    )


class Web:
    def __init__(
        self,
        gate: Mailgate,
        executor: Executor,
        readiness: Callable[[], dict[str, Any]],
        imap_lag: Callable[[], dict[str, int]],
    ) -> None:
        self.gate = gate
        self.executor = executor
        self.readiness = readiness
        self.registry = registry_for(gate.read_engine, imap_lag)
        self.scrape = SharedRun(partial(generate_latest, self.registry))
        self.page = dashboard_page()  # rendered once, not per request

    async def blocking(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    async def blocking_json(self, function: Callable[..., Any], *args: Any) -> web.Response:
        """``function``'s result as a JSON response, encoded off the event loop."""
        body = await self.blocking(encoded, function, *args)
        return web.Response(body=body, content_type="application/json")

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self.guard])
        app.add_routes(
            [
                web.get("/healthz", self.healthz),
                web.get("/readyz", self.readyz),
                web.get("/metrics", self.metrics),
                web.get("/api/decisions", self.decisions),
                web.get("/api/decisions/{id:\\d+}", self.decision),
                web.get("/api/summary", self.summary),
                web.put("/api/tickets/{id}", self.put_ticket),
                web.get("/", self.dashboard),
            ]
        )
        return app

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/api"):
            token = self.gate.settings.api_token
            try:
                offered = authorization(request.headers.get("Authorization", ""))
            except ValueError as exc:
                return web.json_response({"error": str(exc)}, status=400)
            expected = f"Bearer {token}" if token else ""
            if not token or not hmac.compare_digest(offered, expected.encode()):
                return web.json_response(
                    {"error": "unauthorized"}, status=401, headers={"WWW-Authenticate": "Bearer"}
                )
        try:
            return await handler(request)
        except TransientError:
            return web.json_response({"error": "database unavailable"}, status=503)
        except web.HTTPException:
            raise  # aiohttp's own answers (404, 405, 413 ...)
        except Exception as exc:  # a bug: one line in the log, no traceback, no detail out
            log.error("http_request_failed", path=request.path, error_type=type(exc).__name__)
            return web.json_response({"error": "internal error"}, status=500)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        checks = dict(self.readiness())
        try:
            # The loop's default pool: a probe never waits behind a flood of API requests.
            await asyncio.get_running_loop().run_in_executor(None, self._ping)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
        ready = all(v == "ok" or (isinstance(v, dict) and v.get("ready")) for v in checks.values())
        return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)

    def _ping(self) -> None:
        with self.gate.read_engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    async def metrics(self, request: web.Request) -> web.Response:
        body = await self.scrape(self.executor)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def dashboard(self, request: web.Request) -> web.Response:
        return web.Response(text=self.page, content_type="text/html", charset="utf-8")

    # -- API -----------------------------------------------------------------------------

    async def decisions(self, request: web.Request) -> web.Response:
        try:
            wanted = decision_filter(request.query)
        except ValueError as exc:
            return web.json_response({"error": f"bad query: {exc}"}, status=400)
        return await self.blocking_json(self._decisions, wanted)

    def _decisions(self, wanted: DecisionFilter) -> dict[str, Any]:
        with Session(self.gate.read_engine) as session:
            found = find_decisions(session, wanted)
            return {
                "decisions": [row_json(row, delivery) for row, delivery in found],
                "next": next_cursor(found, wanted),
            }

    async def decision(self, request: web.Request) -> web.Response:
        try:
            wanted = row_id(request.match_info["id"], "decision id")
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        found = await self.blocking(self._decision, wanted)
        if found is None:
            return web.json_response({"error": "no such decision"}, status=404)
        return web.json_response(found)

    def _decision(self, decision_id: int) -> dict[str, Any] | None:
        with Session(self.gate.read_engine) as session:
            row = session.get(DecisionRow, decision_id)
            if row is None:
                return None
            raw = load_raw(session, row.raw_sha256)
            outbox = session.scalars(
                select(OutboxRow).where(col(OutboxRow.decision_id) == decision_id)
            ).all()
        result = row_json(row)
        result["trace"] = row.trace
        result["outbox"] = [
            {"kind": o.kind, "status": o.status, "attempts": o.attempts, "last_error": o.last_error}
            for o in outbox
        ]
        headers: dict[str, list[str]] = {}
        if raw is not None:
            mail = InboundMail.from_bytes(raw)
            for name in SHOWN_HEADERS:
                values = mail.header_all(name)
                if values:
                    headers[name] = values
        result["headers"] = headers
        result["raw_kept"] = raw is not None
        return result

    async def summary(self, request: web.Request) -> web.Response:
        return await self.blocking_json(self._summary)

    def _summary(self) -> dict[str, Any]:
        since = utcnow() - timedelta(hours=24)
        with Session(self.gate.read_engine) as session:
            counts = dict(
                session.execute(
                    select(DecisionRow.decision, func.count())
                    .where(col(DecisionRow.received_at) >= since)
                    .group_by(DecisionRow.decision)
                ).all()
            )
        return {"since": since.isoformat(), "counts": counts}

    async def put_ticket(self, request: web.Request) -> web.Response:
        try:
            body = json_document(await request.read())
            if not isinstance(body, dict):
                raise ValueError("bad JSON: expected a JSON object")
            body["id"] = request.match_info["id"]
            record = TicketRecord.model_validate(body)
        except ValidationError as exc:
            return web.json_response({"error": describe_error(exc)}, status=400)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        await self.blocking(upsert, self.gate.engine, [record])
        return web.json_response(
            {"ticket": record.id, "kind": record.kind, "status": record.status}
        )
