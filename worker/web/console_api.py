"""The console's own API: the message view, the raw message, health cards and the chart.

``GET /api/messages/{public_id}`` is the safe view (``message_view``); ``…/raw`` is the
message as received, for ``operator`` and ``admin`` only, served as inert text with its own
sandboxing policy. Every read of a message's content is recorded in the access log
(``worker.access_log``) before the content leaves.
``GET /api/health`` gathers the cards, ``GET /api/timeline`` the decisions per hour,
``GET /api/me`` tells the page who it is talking for (to hide what the role may not do).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlmodel import Session, col, select

from worker.access_log import ContentRead, record_content_read
from worker.operators import Operator, Role
from worker.pipeline import Mailgate
from worker.public_id import looks_like
from worker.store.models import DecisionRow
from worker.store.repository import load_raw
from worker.web.auth import OPERATOR_KEY, require
from worker.web.health import helpdesk_card, oauth_card, readiness_cards, store_cards
from worker.web.labels import decision_label
from worker.web.message_view import message_view
from worker.web.timeline import decisions_per_hour

RAW_HEADERS = {
    "Content-Disposition": "attachment; filename=message.eml",
    "Content-Security-Policy": "sandbox; default-src 'none'",
}
Blocking = Callable[..., Awaitable[Any]]


class ConsoleApi:
    def __init__(
        self,
        gate: Mailgate,
        blocking: Blocking,
        checks: Callable[[], Any],
    ) -> None:
        self.gate = gate
        self.blocking = blocking  # the server's thread pool, off the loop
        self.checks = checks  # the /readyz checks, database included (a coroutine function)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/me", self.me),
            web.get("/api/health", self.health),
            web.get("/api/timeline", self.timeline),
            web.get("/api/messages/{public_id}", self.message),
            web.get("/api/messages/{public_id}/raw", self.raw),
        ]

    async def me(self, request: web.Request) -> web.Response:
        operator: Operator = request[OPERATOR_KEY]
        return web.json_response(
            {
                "name": operator.name,
                "role": str(operator.role),
                "may_act": operator.may(Role.OPERATOR),
                "may_read_raw": operator.may(Role.OPERATOR),
            }
        )

    async def health(self, request: web.Request) -> web.Response:
        checks = await self.checks()
        cards = readiness_cards(checks)
        cards += await self.blocking(store_cards, self.gate.read_engine, self.gate.settings)
        cards.append(oauth_card(self.gate.settings, checks, datetime.now(UTC).date()))
        cards.append(helpdesk_card(checks))
        return web.json_response({"cards": [card.as_dict() for card in cards]})

    async def timeline(self, request: web.Request) -> web.Response:
        try:
            hours = int(request.query.get("hours") or "24")
        except ValueError:
            return web.json_response({"error": "bad query: hours: expected a number"}, status=400)
        return web.json_response(
            await self.blocking(decisions_per_hour, self.gate.read_engine, hours)
        )

    async def message(self, request: web.Request) -> web.Response:
        operator = require(request, Role.VIEWER)
        found = await self.blocking(self._message, request.match_info["public_id"], operator)
        if found is None:
            return web.json_response({"error": "no such message"}, status=404)
        return web.json_response(found)

    def _message(self, public_id: str, operator: Operator) -> dict[str, Any] | None:
        row, raw = self._load(public_id)
        if row is None:
            return None
        result: dict[str, Any] = {
            "public_id": row.public_id,
            "decision": row.decision,
            "rule": row.rule,
            "ticket": row.ticket,
            "envelope_from": row.envelope_from,
            "received_at": row.received_at.isoformat(),
            "label": decision_label(row.decision),
            "raw_kept": raw is not None,
            "may_read_raw": operator.may(Role.OPERATOR) and raw is not None,
        }
        if raw is not None and row.id is not None:
            record_content_read(self.gate.engine, operator.name, row.id, ContentRead.MESSAGE)
            result["message"] = message_view(raw).as_dict()
        return result

    async def raw(self, request: web.Request) -> web.Response:
        operator = require(request, Role.OPERATOR)
        row, raw = await self.blocking(self._load, request.match_info["public_id"])
        if row is None or raw is None or row.id is None:
            return web.json_response({"error": "no such message"}, status=404)
        await self.blocking(
            record_content_read, self.gate.engine, operator.name, row.id, ContentRead.RAW
        )
        return web.Response(
            body=raw, content_type="text/plain", charset="utf-8", headers=RAW_HEADERS
        )

    def _load(self, public_id: str) -> tuple[DecisionRow | None, bytes | None]:
        if not looks_like(public_id):
            return None, None
        with Session(self.gate.read_engine) as session:
            row = session.scalars(
                select(DecisionRow).where(col(DecisionRow.public_id) == public_id.lower())
            ).first()
            if row is None:
                return None, None
            return row, load_raw(session, row.raw_sha256)
