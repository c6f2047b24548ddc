"""One policy rule per module; the module name is the rule name used in traces and logs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from worker.policy.context import RuleContext


@dataclass(frozen=True)
class Verdict:
    """A rule's answer: ``hit`` ends the chain with ``decision``; a miss only explains."""

    hit: bool
    reason: str
    decision: str | None = None

    @classmethod
    def miss(cls, reason: str) -> Verdict:
        return cls(False, reason)


class Rule(Protocol):
    name: str
    description: str

    def check(self, ctx: RuleContext) -> Verdict: ...
