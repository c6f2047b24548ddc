"""What the gate records through: the ``Recorder`` of this process, or with ``serve
--workers`` the worker's link to the one writer process (``worker.serve.writer``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sqlmodel import Session

from worker.decision import Decision, Pending
from worker.reply_slots import ReplySlots


class Recording(Protocol):
    """Records pending decisions: one at a time, all or none, or an action on one."""

    reply_slots: ReplySlots

    def start(self) -> None: ...

    def record(self, pending: Pending) -> Decision: ...

    def record_many(self, pendings: list[Pending]) -> list[Decision]: ...

    def record_action(
        self,
        pending: Pending,
        acts_on: int,
        alongside: Callable[[Session], None] | None = None,
    ) -> Decision: ...
