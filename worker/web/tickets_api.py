"""``/api/tickets``: the ticket directory over HTTP, for operators and for helpdesks' webhooks.

``GET /api/tickets[?status=…]`` and ``GET /api/tickets/{id}`` read it; ``PUT`` adds or
replaces a ticket (``POST /api/tickets`` too, the id in the body, for webhooks that can only
POST to a fixed URL) and ``DELETE`` removes one. A helpdesk's webhook cannot always send our
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
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from worker.clock import aware, utcnow
from worker.helpdesk.config import kind_of
from worker.ticket_directory import as_json, get_ticket, list_tickets, remove_ticket
from worker.tickets import TicketRecord, describe_error, upsert
from worker.web.inputs import json_document

Blocking = Callable[..., Awaitable[Any]]
REPLAY_WINDOW = 300  # seconds a signed Zendesk request stays valid


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
        stamp = headers.get("X-Zendesk-Webhook-Signature-Timestamp", "")
        mac = base64.b64encode(hmac.new(key, stamp.encode() + body, hashlib.sha256).digest())
        return hmac.compare_digest(zendesk.encode(), mac) and _fresh(stamp)
    return False


def _fresh(stamp: str) -> bool:
    """Zendesk signs its timestamp too: an old request replayed is refused."""
    try:
        sent = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return False
    return abs((utcnow() - aware(sent)).total_seconds()) <= REPLAY_WINDOW


def signed_write(request: web.Request, secret: str | None, body: bytes) -> bool:
    """A write to the directory (PUT/DELETE one ticket, POST one) with a valid signature."""
    if not secret or request.method not in ("PUT", "DELETE", "POST"):
        return False
    if request.path.rstrip("/") != "/api/tickets" and not request.path.startswith("/api/tickets/"):
        return False
    return signature_valid(secret, body, request.headers)


# A helpdesk's own words for its states (RT, Zammad, Zendesk, Znuny, Jira), as its payload
# template renders them.
_CLOSED = "closed|resolved|rejected|solved|done|merged|removed|deleted|closed successful"
_OPEN = "open|new|pending|stalled|hold|on-hold|in progress|to do|waiting for support"
CLOSED_STATES = frozenset(f"{_CLOSED}|closed unsuccessful|cancelled|canceled".split("|"))
OPEN_STATES = frozenset(f"{_OPEN}|waiting for customer|reopened".split("|"))


def directory_fields(body: dict[str, Any], kinds: dict[str, str]) -> dict[str, Any]:
    """A pushed ticket in the directory's terms: a helpdesk state word becomes open or
    closed, a ``queue`` (group, project) becomes a kind through MAILGATE_HELPDESK_KINDS."""
    # Zammad renders a value it does not have as "-".
    fields = {k: v for k, v in body.items() if v not in (None, "", "-")}
    state = str(fields.get("status", "open")).strip().lower()
    if state in CLOSED_STATES:
        fields["status"] = "closed"
    elif state in OPEN_STATES or state.startswith("pending"):
        fields["status"] = "open"
    if "queue" in fields:
        queue = str(fields.pop("queue"))
        fields.setdefault("kind", kind_of(kinds, queue))
    return fields


class TicketsApi:
    def __init__(self, engine: Any, blocking: Blocking, kinds: dict[str, str]) -> None:
        self.engine = engine
        self.blocking = blocking
        self.kinds = kinds

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/tickets", self.list),
            web.post("/api/tickets", self.put),
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
            body = json_document(await request.read())  # too deep: a 400, not a crash
            if not isinstance(body, dict):
                raise ValueError("bad JSON: expected a JSON object")
            if "id" in request.match_info:  # PUT names it in the path, POST in the body
                body["id"] = request.match_info["id"]
            record = TicketRecord.model_validate(directory_fields(body, self.kinds))
        except ValidationError as exc:
            return web.json_response({"error": describe_error(exc)}, status=400)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        await self.blocking(upsert, self.engine, [record], "api")
        return web.json_response(
            {"ticket": record.id, "kind": record.kind, "status": record.status}
        )

    async def delete(self, request: web.Request) -> web.Response:
        removed = await self.blocking(remove_ticket, self.engine, request.match_info["id"])
        if not removed:
            return web.json_response({"error": "no such ticket"}, status=404)
        return web.json_response({"ticket": request.match_info["id"].upper(), "removed": True})
