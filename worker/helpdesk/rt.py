"""Best Practical Request Tracker 5 as the helpdesk: tickets over REST 2.0, follow-ups
through its mail gateway.

Sync reads ``GET /REST/2.0/tickets`` with TicketSQL, oldest change first, keyset-paged on
``LastUpdated`` so a ticket changed while we page cannot shift another out of sight. Dates
in TicketSQL are read in the RT user's time zone, so the cursor is sent as "N seconds ago",
N measured on RT's own clock (its ``Date`` header), never ours. Naming ``EffectiveId`` in
the query keeps merged tickets in the results, each pointing to its survivor.

A follow-up goes in through ``/REST/1.0/NoAuth/mail-gateway`` (what ``rt-mailgate`` posts
to), not REST 2.0's ``correspond``: the gateway records the customer as the author and
stores the message as received (headers, attachments, threading), where ``correspond``
records the token's owner and takes a body. It is given the ticket explicitly (RT's
``Gateway`` only falls back to the subject tag when no ticket is passed) and a queue that
does not exist, so a ticket RT cannot find is a temporary failure instead of a new ticket.
The gateway answers 200 with ``not ok`` on failure, so the body is read, not the status.
Before posting, the message's Message-ID is looked up among the ticket's attachments: a
retry after a timeout finds the first attempt's transaction and posts nothing.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from worker.helpdesk.connector import (
    Changes,
    DeliveryResult,
    FollowUp,
    HelpdeskRefused,
    HelpdeskUnavailable,
    RemoteTicket,
)

PAGE = 100  # RT's largest page
TIMEOUT = httpx.Timeout(15.0, connect=5.0)
NO_QUEUE = "mailgate: no such queue"  # see the module docstring
CLOSED = {"resolved", "rejected", "deleted"}
NEVER = "1970-01-01T00:00:00Z"
FIELDS = {
    "fields": "Status,Queue,Requestor,Cc,Resolved,LastUpdated,EffectiveId",
    "fields[Queue]": "Name",
    "fields[Requestor]": "EmailAddress",
    "fields[Cc]": "EmailAddress",
    "orderby": "LastUpdated",
    "order": "ASC",
    "per_page": str(PAGE),
}
SETTLE_SECONDS = 5
MERGE_BATCH = 50
MESSAGE_ID_COLUMN = 160  # RT's Attachments.MessageId is varchar(160)


class RequestTracker:
    """The connector for one RT instance (``MAILGATE_HELPDESK_URL``, an auth token)."""

    name = "rt"

    def __init__(self, url: str, token: str, *, timeout: httpx.Timeout = TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.client = httpx.Client(
            base_url=f"{self.url}/REST/2.0",
            headers={"Authorization": f"token {token}"},
            timeout=timeout,
        )
        self.rt_now: datetime | None = None  # RT's clock, from its last Date header

    # -- the REST 2.0 calls -------------------------------------------------------------

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        try:
            response = self.client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise HelpdeskUnavailable(f"RT unreachable: {type(exc).__name__}") from exc
        self._clock(response)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise HelpdeskUnavailable(f"RT answered HTTP {response.status_code} for {path}")
        return response.json()

    def _clock(self, response: httpx.Response) -> None:
        if date := response.headers.get("Date"):
            self.rt_now = parsedate_to_datetime(date)

    def health(self) -> None:
        if self._get("/rt") is None:
            raise HelpdeskUnavailable("RT has no REST 2.0 API at this URL")

    # -- sync ---------------------------------------------------------------------------

    def changes(self, cursor: str | None) -> Changes:
        """Every ticket changed at or after ``cursor`` (all tickets when None)."""
        tickets: dict[str, RemoteTicket] = {}
        start, page, newest = cursor, 1, cursor
        while True:
            items = self._page(start, page)
            for item in items:
                ticket = to_ticket(item)
                tickets[ticket.id] = ticket
                newest = max(newest or "", str(item.get("LastUpdated") or ""))
            if len(items) < PAGE:
                break
            last = str(items[-1]["LastUpdated"])
            # Keyset: start again from the newest change seen; offset only within one second.
            page = page + 1 if last == start else 1
            start = last
        survivors = [t.id for t in tickets.values() if t.merged_into is None]
        for merged in self._merged_into(survivors):
            tickets[merged.id] = merged
        # A change committed late may carry an earlier second: the last few are read again.
        settled = self._now_cursor(-SETTLE_SECONDS)
        return Changes(list(tickets.values()), min(newest, settled) if newest else settled)

    def _merged_into(self, survivors: list[str]) -> list[RemoteTicket]:
        """Tickets merged into these: a merge changes the survivor, not the merged ticket's
        LastUpdated, so they are asked for by their EffectiveId."""
        merged: list[RemoteTicket] = []
        for start in range(0, len(survivors), MERGE_BATCH):
            ids = survivors[start : start + MERGE_BATCH]
            query = " OR ".join(f"EffectiveId = {int(i)}" for i in ids)
            params = {**FIELDS, "query": query, "per_page": str(PAGE)}
            page, pages = 1, 1
            while page <= pages:
                found = self._get("/tickets", {**params, "page": str(page)}) or {}
                tickets = [to_ticket(item) for item in found.get("items", [])]
                merged += [t for t in tickets if t.merged_into is not None]
                pages, page = int(found.get("pages") or 1), page + 1
        return merged

    def _page(self, cursor: str | None, page: int) -> list[dict[str, Any]]:
        query = "EffectiveId > 0"
        if cursor is not None:
            query = f"LastUpdated >= '{self._seconds_since(cursor)} seconds ago' AND {query}"
        found = self._get("/tickets", {"query": query, "page": str(page), **FIELDS})
        items: list[dict[str, Any]] = (found or {}).get("items", [])
        return items

    def _seconds_since(self, cursor: str) -> int:
        if self.rt_now is None:
            self.health()  # one request for RT's clock
        assert self.rt_now is not None
        since = datetime.fromisoformat(cursor.replace("Z", "+00:00"))
        return max(math.ceil((self.rt_now - since).total_seconds()) + 2, 1)

    def _now_cursor(self, offset: float = 0) -> str:
        now = (self.rt_now or datetime.now(UTC)) + timedelta(seconds=offset)
        return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # -- delivery -----------------------------------------------------------------------

    def deliver(self, follow_up: FollowUp) -> DeliveryResult:
        ticket = self._get(f"/ticket/{follow_up.ticket}")
        if ticket is None:
            raise HelpdeskRefused(f"RT has no ticket {follow_up.ticket}")
        survivor = _ref_id(ticket.get("EffectiveId")) or str(ticket["id"])
        if self._holds(survivor, follow_up.message_id):
            return "already_there"
        self._post_to_gateway(survivor, follow_up.raw)
        return "delivered"

    def _holds(self, survivor: str, message_id: str) -> bool:
        """Whether a transaction of this ticket (or one merged into it) has the message."""
        stripped = message_id.strip().removeprefix("<").removesuffix(">")[:MESSAGE_ID_COLUMN]
        query = json.dumps([{"field": "MessageId", "value": stripped}])
        found = self._get("/attachments", {"query": query, "fields": "TransactionId"}) or {}
        for item in found.get("items", []):
            transaction = self._get(f"/transaction/{_ref_id(item.get('TransactionId'))}")
            holder = _ref_id((transaction or {}).get("Object"))
            if holder == survivor:
                return True
            other = self._get(f"/ticket/{holder}") if holder else None
            if other and (_ref_id(other.get("EffectiveId")) or holder) == survivor:
                return True
        return False

    def _post_to_gateway(self, ticket: str, raw: bytes) -> None:
        try:
            response = httpx.post(
                f"{self.url}/REST/1.0/NoAuth/mail-gateway",
                data={"queue": NO_QUEUE, "action": "correspond", "ticket": ticket},
                # No file name: RT reads the part as the "message" form field.
                files={"message": (None, raw, "application/octet-stream")},
                timeout=self.client.timeout,
            )
        except httpx.HTTPError as exc:
            raise HelpdeskUnavailable(f"RT mail gateway unreachable: {type(exc).__name__}") from exc
        answer = response.text.strip().splitlines()[0] if response.text.strip() else ""
        if response.status_code != 200 or answer != "ok":
            raise HelpdeskUnavailable(
                f"RT mail gateway answered HTTP {response.status_code}: {answer[:100]!r}"
            )


def _ref_id(value: Any) -> str | None:
    """An id from REST 2.0, which writes references as objects and some ids as strings."""
    if isinstance(value, dict):
        value = value.get("id")
    return None if value in (None, "", "0") else str(value)


def to_ticket(item: dict[str, Any]) -> RemoteTicket:
    """One search result as a directory ticket."""
    ticket_id = str(item["id"])
    survivor = _ref_id(item.get("EffectiveId"))
    status = str(item.get("Status", "")).lower()
    closed_at = None
    if status in CLOSED:
        when = item.get("Resolved") if item.get("Resolved") not in (None, NEVER) else None
        when = when or item.get("LastUpdated")
        closed_at = datetime.fromisoformat(str(when).replace("Z", "+00:00")) if when else None
    people = [*item.get("Requestor", []), *item.get("Cc", [])]
    addresses = dict.fromkeys(
        str(p["EmailAddress"]).lower()
        for p in people
        if isinstance(p, dict) and p.get("EmailAddress")
    )
    queue = item.get("Queue")
    return RemoteTicket(
        id=ticket_id,
        queue=str(queue.get("Name", "")) if isinstance(queue, dict) else str(queue or ""),
        status="closed" if status in CLOSED else "open",
        closed_at=closed_at,
        participants=tuple(addresses),
        merged_into=survivor if survivor and survivor != ticket_id else None,
    )
