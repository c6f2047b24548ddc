"""Ticket ids in one canonical form, so that every comparison ignores case.

Helpdesks write their ids in upper case where they have letters (Jira's ``ABC-1``) and mail
clients, MTAs and people lower-case them freely (an address's local part, a typed subject),
so every id is stored, looked up, signed and compared upper-cased; numeric ids also drop
their leading zeros.
"""

from __future__ import annotations


def normalize_ticket_id(value: str) -> str:
    """The canonical form of a ticket id: stripped, upper case, no leading zeros if numeric."""
    value = value.strip()
    return (value.lstrip("0") or "0") if value.isdigit() else value.upper()
