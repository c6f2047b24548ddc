"""``/api/tickets``: the ticket directory over HTTP, for operators and for helpdesks' webhooks.

``GET /api/tickets[?status=…]`` and ``GET /api/tickets/{id}`` read it; ``PUT`` adds or
replaces a ticket and ``DELETE`` removes one. A helpdesk's webhook cannot always send our
bearer token, so ``PUT`` and ``DELETE`` also accept an HMAC-SHA256 of the body under
``MAILGATE_WEBHOOK_SECRET`` in one of the headers helpdesks sign with (Zammad's
``X-Hub-Signature: sha1=…``, ``X-Mailgate-Signature: sha256=…``, Zendesk's base64
``X-Zendesk-Webhook-Signature`` over timestamp + body). The body is the directory's own
JSON (``kind``, ``status``, ``participants``, ``domains``, ``closed_at``); a helpdesk that
cannot shape it renders it from the payload template its recipe in ``deploy/helpdesks/``
gives.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from worker.ticket_directory import as_json, get_ticket, list_tickets, remove_ticket
from worker.tickets import TicketRecord, describe_error, upsert

Blocking = Callable[..., Awaitable[Any]]


def signature_valid(secret: str, body: bytes, headers: Any) -> bool:
    """Whether one of the signature headers helpdesks use matches ``body`` under ``secret``."""
    key = secret.encode()
    offered = {
        "X-Mailgate-Signature": ("sha256=", hashlib.sha256, body),
        "X-Hub-Signature-256": ("sha256=", hashlib.sha256, body),
        "X-Hub-Signature": ("sha1=", hashlib.sha1, body),
    }
    for header, (prefix, digest, signed) in offered.items():
        value = headers.get(header, "")
        if value.startswith(prefix):
            expected = prefix + hmac.new(key, signed, digest).hexdigest()
            if hmac.compare_digest(value.encode(), expected.encode()):
                return True
    zendesk = headers.get("X-Zendesk-Webhook-Signature", "")
    if zendesk:
        stamp = headers.get("X-Zendesk-Webhook-Signature-Timestamp", "").encode()
        mac = base64.b64encode(hmac.new(key, stamp + body, hashlib.sha256).digest())
        return hmac.compare_digest(zendesk.encode(), mac)
    return False


def signed_write(request: web.Request, secret: str | None, body: bytes) -> bool:
    """A PUT/DELETE on one ticket carrying a valid webhook signature."""
    if not secret or request.method not in ("PUT", "DELETE"):
        return False
    if not request.path.startswith("/api/tickets/"):
        return False
    return signature_valid(secret, body, request.headers)


class TicketsApi:
    def __init__(self, engine: Any, blocking: Blocking) -> None:
        self.engine = engine
        self.blocking = blocking

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/tickets", self.list),
            web.get("/api/tickets/{id}", self.show),
            web.put("/api/tickets/{id}", self.put),
            web.delete("/api/tickets/{id}", self.delete),
        ]

    async def list(self, request: web.Request) -> web.Response:
        status = request.query.get("status") or None
        if status not in (None, "open", "closed"):
            return web.json_response({"error": "status: expected open or closed"}, status=400)
        rows = await self.blocking(list_tickets, self.engine, status)
        return web.json_response({"tickets": [as_json(row) for row in rows]})

    async def show(self, request: web.Request) -> web.Response:
        row = await self.blocking(get_ticket, self.engine, request.match_info["id"])
        if row is None:
            return web.json_response({"error": "no such ticket"}, status=404)
        return web.json_response(as_json(row))

    async def put(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
            body = {k: v for k, v in body.items() if v not in (None, "")}
            body["id"] = request.match_info["id"]
            record = TicketRecord.model_validate(body)
        except ValidationError as exc:
            return web.json_response({"error": describe_error(exc)}, status=400)
        except (ValueError, UnicodeDecodeError) as exc:
            return web.json_response({"error": f"bad JSON: {exc}"}, status=400)
        await self.blocking(upsert, self.engine, [record], "api")
        return web.json_response(
            {"ticket": record.id, "kind": record.kind, "status": record.status}
        )

    async def delete(self, request: web.Request) -> web.Response:
        removed = await self.blocking(remove_ticket, self.engine, request.match_info["id"])
        if not removed:
            return web.json_response({"error": "no such ticket"}, status=404)
        return web.json_response({"ticket": request.match_info["id"].upper(), "removed": True})
