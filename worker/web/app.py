"""The aiohttp application: ``/healthz``, ``/readyz``, ``/metrics``, ``/api`` and ``/``.

Every ``/api`` route needs ``Authorization: Bearer <token>`` of a named operator
(``worker.operators``: ``MAILGATE_OPERATORS_FILE``, and ``MAILGATE_API_TOKEN`` as ``admin``)
whose role the route allows (``worker.web.auth``); without any token the API is closed. A
state-changing request that a browser sends from another site is refused before it is
looked at (``worker.web.access``). Every response carries a strict Content-Security-Policy:
the console runs only its own script and stylesheet from ``static/``, loads nothing from
elsewhere, and cannot be framed. The page itself holds no data: it asks for the token and
reads the API. Database work runs in the server's thread pool, off the loop.
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, text
from sqlmodel import Session, col, select

from worker.access_log import record_content_read
from worker.clock import parse_when, utcnow
from worker.decision import DECISIONS, REJECTIONS, DecisionName, OutboxKind
from worker.errors import TransientError
from worker.helpdesk.config import parse_kinds
from worker.mail import InboundMail
from worker.operators import OperatorBook
from worker.pipeline import Mailgate
from worker.store.models import DecisionRow, OutboxRow
from worker.store.queries import DecisionFilter, find_decisions, next_cursor
from worker.store.repository import load_raw
from worker.web.access import cross_site
from worker.web.auth import OPERATOR_KEY, authenticate, needed_role, require, unauthorized
from worker.web.console_api import ConsoleApi
from worker.web.console_token import token_hint
from worker.web.held_api import HeldApi
from worker.web.inputs import authorization, bounded, row_id
from worker.web.labels import decision_label, labels_for_row, page_labels
from worker.web.metrics import registry_for
from worker.web.offload import SharedRun, encoded
from worker.web.tickets_api import TicketsApi, signed_write

log = structlog.get_logger("mailgate.web")
DASHBOARD = Path(__file__).parent / "dashboard.html"
STATIC = {
    name: (Path(__file__).parent / "static" / name, kind)
    for name, kind in (("console.js", "text/javascript"), ("console.css", "text/css"))
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
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


def dashboard_page(hint: str) -> str:
    """The console page: decision options from the one list of names, the labels as a JSON
    data block (never executed), and where the token is; every value HTML-escaped."""
    options = "".join(
        f'<option value="{name}">{html.escape(decision_label(name))}</option>'
        for name in DecisionName
    )
    rejections = " ".join(name for name in DecisionName if name in REJECTIONS)
    labels = json.dumps(page_labels()).replace("<", "\\u003c")
    page = DASHBOARD.read_text(encoding="utf-8")
    for key, value in (
        ("decision_options", options),
        ("rejections", rejections),
        ("labels", labels),
        ("token_hint", html.escape(hint)),
    ):
        page = page.replace("{{" + key + "}}", value)
    return page


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
        "acts_on": row.acts_on,
        "labels": labels_for_row(
            row.decision, row.rule, row.reply_status, row.reply_reason, delivery, row.trace
        ),
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
        self.page = dashboard_page(token_hint(gate.settings))  # rendered once
        self.operators = OperatorBook.from_settings(gate.settings)
        self.console = ConsoleApi(gate, self.blocking, self.checks)
        self.static = {name: (path.read_bytes(), kind) for name, (path, kind) in STATIC.items()}
        self.kinds = parse_kinds(gate.settings.helpdesk_kinds or "")  # pushed queue → kind
        self.scrape = SharedRun(partial(generate_latest, self.registry))

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
                *TicketsApi(self.gate.engine, self.blocking, self.kinds).routes(),
                web.get("/", self.dashboard),
                web.get("/static/{name}", self.static_file),
                *self.console.routes(),
                *HeldApi(self.gate, self.blocking).routes(),
            ]
        )
        app.on_response_prepare.append(self.secure_headers)
        return app

    async def secure_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.path.startswith("/api"):
            response.headers["Cache-Control"] = "no-store"

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        refused = cross_site(request)
        if refused is not None:
            log.warning("cross_site_refused", path=request.path, why=refused)
            return web.json_response(
                {"error": f"cross-site request refused ({refused})"}, status=403
            )
        if request.path.startswith("/api"):
            try:  # a header that is no text (``Bearer \xff\xfe``) is a 400, not a crash
                authorization(request.headers.get("Authorization", ""))
            except ValueError as exc:
                return web.json_response({"error": str(exc)}, status=400)
        # A helpdesk's webhook may sign its write instead of holding a bearer token.
        signed = request.path.startswith("/api/tickets") and signed_write(
            request, self.gate.settings.webhook_secret, await request.read()
        )
        try:
            if request.path.startswith("/api") and not signed:
                operator = authenticate(self.operators, request)
                if operator is None:
                    raise unauthorized()
                request[OPERATOR_KEY] = operator
                require(request, needed_role(request))
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

    async def checks(self) -> dict[str, Any]:
        checks = dict(self.readiness())
        try:
            # The loop's default pool: a probe never waits behind a flood of API requests.
            await asyncio.get_running_loop().run_in_executor(None, self._ping)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
        return checks

    async def readyz(self, request: web.Request) -> web.Response:
        checks = await self.checks()
        # "degraded: …" still serves (mail is decided and kept), but says what is wrong.
        degraded = sorted(k for k, v in checks.items() if str(v).startswith("degraded"))
        ready = all(
            v == "ok" or k in degraded or (isinstance(v, dict) and v.get("ready"))
            for k, v in checks.items()
        )
        body: dict[str, Any] = {"ready": ready, "status": "degraded" if degraded else "ok"}
        body["checks"] = checks
        if degraded:
            body["degraded"] = degraded
        return web.json_response(body, status=200 if ready else 503)

    def _ping(self) -> None:
        with self.gate.read_engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    async def metrics(self, request: web.Request) -> web.Response:
        body = await self.scrape(self.executor)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def dashboard(self, request: web.Request) -> web.Response:
        return web.Response(text=self.page, content_type="text/html", charset="utf-8")

    async def static_file(self, request: web.Request) -> web.Response:
        found = self.static.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        body, kind = found
        return web.Response(body=body, content_type=kind, headers={"Cache-Control": "no-cache"})

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
        # The console asks without headers: its message view records its own read.
        reader = None if request.query.get("headers") == "0" else request[OPERATOR_KEY].name
        found = await self.blocking(self._decision, wanted, reader)
        if found is None:
            return web.json_response({"error": "no such decision"}, status=404)
        return web.json_response(found)

    def _decision(self, decision_id: int, reader: str | None) -> dict[str, Any] | None:
        with Session(self.gate.read_engine) as session:
            row = session.get(DecisionRow, decision_id)
            if row is None:
                return None
            if reader is not None:
                record_content_read(self.gate.engine, reader, decision_id)  # its headers
            raw = load_raw(session, row.raw_sha256) if reader is not None else None
            outbox = session.scalars(
                select(OutboxRow).where(col(OutboxRow.decision_id) == decision_id)
            ).all()
        replies = [o.status for o in outbox if o.kind == OutboxKind.AUTO_REPLY]
        result = row_json(row, replies[0] if replies else None)
        result["trace"] = row.trace
        result["outbox"] = [
            {"kind": o.kind, "status": o.status, "attempts": o.attempts, "last_error": o.last_error}
            for o in outbox
        ]
        if reader is None:
            return result
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
        # What the console shows as a banner: every "degraded: …" readiness check.
        degraded = {k: v for k, v in self.readiness().items() if str(v).startswith("degraded")}
        return {"since": since.isoformat(), "counts": counts, "degraded": degraded}
