"""What an HTTP client sent, checked before anything uses it: one ``ValueError`` line each.

A path id or a cursor is a database row id: digits, at most a signed 64-bit integer (a
longer one overflowed the driver, a 5,000-digit one ``int()`` itself). A JSON body nested
deeper than the parser's recursion limit is bad JSON, like any other. A bearer token is
ASCII; anything else in the ``Authorization`` header is a bad request, never a comparison
that raises.
"""

from __future__ import annotations

import json
from typing import Any

MAX_ROW_ID = 2**63 - 1
_DIGITS = len(str(MAX_ROW_ID))


def row_id(text: str, name: str) -> int:
    """``text`` as a row id, or a ValueError naming ``name``."""
    value = int(text) if text.isascii() and text.isdigit() and len(text) <= _DIGITS else 0
    if not 1 <= value <= MAX_ROW_ID:
        raise ValueError(f"{name}: expected a whole number from 1 to {MAX_ROW_ID}")
    return value


def bounded(text: str, name: str, low: int, high: int) -> int:
    """``text`` as a whole number from ``low`` to ``high``, or a ValueError naming ``name``."""
    digits = text.removeprefix("-")
    if not (text.isascii() and digits.isdigit() and len(digits) <= 6 and low <= int(text) <= high):
        raise ValueError(f"{name}: expected {low} to {high}")
    return int(text)


def json_document(raw: bytes) -> Any:
    """The parsed body; ValueError (with the parser's reason) when it is not JSON."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("bad JSON: nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"bad JSON: {exc}") from None


def authorization(header: str) -> bytes:
    """The ``Authorization`` value as bytes to compare; ValueError when it is not ASCII."""
    if not header.isascii():
        raise ValueError("bad Authorization header: not ASCII")
    return header.encode("ascii")
