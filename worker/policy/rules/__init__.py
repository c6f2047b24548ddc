"""One policy rule per module: a predicate that answers hit or miss, with a reason.

A rule decides nothing and writes nothing; what a hit leads to is the chain table's business
(``worker.policy.chain``). Each rule's ``name`` is what traces, logs and metrics carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from worker.decision import RuleName
from worker.policy.context import RuleContext


@dataclass(frozen=True)
class Verdict:
    """A rule's answer: whether it hit, and why (what ``explain`` and the trace show)."""

    hit: bool
    reason: str

    @classmethod
    def hit_because(cls, reason: str) -> Verdict:
        return cls(True, reason)

    @classmethod
    def miss(cls, reason: str) -> Verdict:
        return cls(False, reason)


class Rule(Protocol):
    name: RuleName
    description: str

    def check(self, ctx: RuleContext) -> Verdict: ...
