"""The held-mail API: ``GET /api/held`` and ``POST /api/held/{public_id}/{action}``.

The queue lists held and quarantined messages nobody has acted on (no content: sender,
ticket, rule, times). An action (``release``, ``reject``, ``discard``) takes an optional
JSON body ``{"reason": "...", "add_participant": true}`` and answers the new chain record
with ``200``; ``404`` names no message, ``409`` a message already acted on (nothing was
changed), ``422`` an action that cannot apply. The operator's name comes from their
token (``worker.web.auth``); the route asks for the ``operator`` role.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from worker.errors import Conflict, InputError
from worker.held import HeldAction, NotFound, act, held_queue
from worker.operators import Role
from worker.pipeline import Mailgate
from worker.web.auth import require

Blocking = Callable[..., Awaitable[Any]]


class HeldApi:
    def __init__(self, gate: Mailgate, blocking: Blocking) -> None:
        self.gate = gate
        self.blocking = blocking

    def routes(self) -> list[web.RouteDef]:
        actions = "|".join(action.value for action in HeldAction)
        return [
            web.get("/api/held", self.queue),
            web.post(f"/api/held/{{public_id}}/{{action:(?:{actions})}}", self.action),
        ]

    async def queue(self, request: web.Request) -> web.Response:
        require(request, Role.VIEWER)
        items = await self.blocking(held_queue, self.gate)
        return web.json_response({"held": [item.as_dict() for item in items]})

    async def action(self, request: web.Request) -> web.Response:
        operator = require(request, Role.OPERATOR)
        try:
            reason, add_participant = _body(await request.text())
        except ValueError as exc:
            return web.json_response({"error": f"bad body: {exc}"}, status=400)
        action = HeldAction(request.match_info["action"])
        public_id = request.match_info["public_id"]
        try:
            decision = await self.blocking(
                act, self.gate, public_id, action, operator.name, reason, add_participant
            )
        except NotFound as exc:
            return web.json_response({"error": str(exc)}, status=404)
        except Conflict as exc:
            return web.json_response({"error": str(exc)}, status=409)
        except InputError as exc:
            return web.json_response({"error": str(exc)}, status=422)
        return web.json_response({"action": str(action), "record": decision.as_dict()})


def _body(text: str) -> tuple[str, bool]:
    """The action's reason and participant flag from an optional JSON object."""
    if not text.strip():
        return "", False
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg}") from None
    if not isinstance(body, dict) or set(body) - {"reason", "add_participant"}:
        raise ValueError('expected {"reason": "...", "add_participant": true|false}')
    reason, add = body.get("reason", ""), body.get("add_participant", False)
    if not isinstance(reason, str) or not isinstance(add, bool):
        raise ValueError("reason is a string, add_participant true or false")
    return reason, add
