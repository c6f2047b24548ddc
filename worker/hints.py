"""The policy's hints: paragraphs added to a reply when the customer's words call for them.

A hint (``[hints.<name>]`` in the policy) names patterns, matched case-insensitively
against the subject and what the customer wrote in this message (quoted history and
signature removed), and its paragraph per language. A hint without patterns goes into
every reply whose template has the ``$hints`` slot. The paragraphs are written as
conditions ("If your system is down…"): a pattern is a guess, never a fact about the
customer. Hints come in the order the policy lists them. Patterns run on the ``regex``
module in its ``re``-compatible mode (V0): same syntax and matches as ``re``, but a few
dozen case-insensitive alternatives over a 4 KB text cost 0.7 ms instead of 2.1 ms, which
was the biggest single cost of deciding a new-ticket message (bench/RESULTS.md, issue 24).
"""

from __future__ import annotations

import functools

import regex

from worker.mail import InboundMail
from worker.policy.document import Hint, Policy


@functools.lru_cache(maxsize=256)
def _compiled(patterns: tuple[str, ...]) -> regex.Pattern[str] | None:
    if not patterns:
        return None
    return regex.compile("|".join(f"(?:{p})" for p in patterns), regex.IGNORECASE | regex.V0)


def _applies(hint: Hint, decision: str, words: str) -> bool:
    if hint.decisions and decision not in hint.decisions:
        return False
    pattern = _compiled(tuple(hint.patterns))
    return pattern is None or pattern.search(words) is not None


def matching(policy: Policy, decision: str, mail: InboundMail) -> list[Hint]:
    """The hints that apply to this reply, in the policy's order."""
    hints = policy.document.hints
    if not hints:
        return []
    words = f"{mail.subject}\n{mail.written_text}"[:20_000]
    return [hint for hint in hints.values() if _applies(hint, decision, words)]


def paragraph(hint: Hint, language: str) -> str:
    """The hint in ``language``, English when the policy gives none in it."""
    return hint.text.get(language) or hint.text["en"]
