"""Who is asking: the operator behind an API request, and whether their role allows it.

The ``/api`` guard (``worker.web.app``) calls ``authenticate`` for every request and keeps
the operator in ``request[OPERATOR_KEY]``; it asks for ``viewer`` on reads, ``operator`` for
the held-mail actions and ``admin`` for every other change (``needed_role``). A handler
that needs more than its route's role (the raw message: ``operator``) calls
``require(request, Role.OPERATOR)``, and one that shows a message's content calls
``worker.access_log.record_content_read(engine, operator.name, decision_id, what)`` first::

    operator = require(request, Role.VIEWER)
    record_content_read(gate.engine, operator.name, row.id, ContentRead.MESSAGE)
"""

from __future__ import annotations

import json

from aiohttp import web

from worker.operators import Operator, OperatorBook, Role

OPERATOR_KEY = web.RequestKey("operator", Operator)


def authenticate(book: OperatorBook, request: web.Request) -> Operator | None:
    """The operator whose ``Authorization: Bearer`` token the request carries, or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return book.authenticate(token.strip())


def needed_role(request: web.Request) -> Role:
    """The role a route asks for by default: reads for viewers, held actions for operators."""
    if request.method in ("GET", "HEAD"):
        return Role.VIEWER
    if request.method == "POST" and request.path.startswith("/api/held/"):
        return Role.OPERATOR
    return Role.ADMIN


def require(request: web.Request, role: Role) -> Operator:
    """The request's operator when their role allows ``role``; else a 401 or 403 answer."""
    operator = request.get(OPERATOR_KEY)
    if not isinstance(operator, Operator):
        raise unauthorized()
    if not operator.may(role):
        raise web.HTTPForbidden(
            text=json.dumps({"error": f"forbidden: needs the {role} role"}),
            content_type="application/json",
        )
    return operator


def unauthorized() -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(
        text=json.dumps({"error": "unauthorized"}),
        content_type="application/json",
        headers={"WWW-Authenticate": "Bearer"},
    )
