"""The opaque reference of a decision: what a sender sees instead of the row id.

``250 2.0.0 Ok: rejected_unknown_ticket #42`` told a stranger probing ``[Ticket#N]`` which
tickets exist and how many decisions the desk makes. The public id is 80 random bits from
``secrets`` in lower-case base32 (16 characters): it names one decision for ops, and
says nothing about the decision, its order or the count. ``looks_like`` keeps search input
to that alphabet.
"""

from __future__ import annotations

import base64
import re
import secrets

LENGTH = 16
_SHAPE = re.compile(r"^[a-z2-7]{16}$")


def new_public_id() -> str:
    return base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()


def looks_like(value: str) -> bool:
    return bool(_SHAPE.match(value.strip().lower()))
