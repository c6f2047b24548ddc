"""A policy's ``[hints.<name>]`` table: a paragraph added to a reply when the customer's
words match one of its patterns, written per language with English required, and the names
every reply template may use (``TEMPLATE_FIELDS``) and the decisions that have a reply.
A pattern that does not compile, a decision without a reply or an unknown placeholder is
refused at load, naming the key (``worker.policy.document`` reports it)."""

from __future__ import annotations

import re
import string

from pydantic import BaseModel, ConfigDict, field_validator

from worker.decision import REJECTIONS, DecisionName

REPLY_DECISIONS = frozenset({*REJECTIONS, DecisionName.ACCEPTED_FOLLOWUP})
TEMPLATE_FIELDS = (
    "portal_url",
    "source_title",
    "source_url",
    "policy_id",
    "ticket",
    "subject",
    "reference",
    "hints",
)


class Hint(BaseModel):
    """A paragraph added to a reply when the customer's words match (``[hints.<name>]``):
    a pattern list (none: every reply) and the paragraph per language, English required."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    patterns: list[str] = []
    decisions: list[str] = []  # empty: every reply whose template has a $hints slot
    text: dict[str, str]

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return value

    @field_validator("decisions")
    @classmethod
    def _replied_decisions(cls, value: list[str]) -> list[str]:
        for decision in value:
            if decision not in REPLY_DECISIONS:
                raise ValueError(f"no reply is defined for decision {decision!r}")
        return value

    @field_validator("text")
    @classmethod
    def _english_and_placeholders(cls, value: dict[str, str]) -> dict[str, str]:
        if "en" not in value:
            raise ValueError("needs an English text (en)")
        for language, paragraph in value.items():
            try:
                string.Template(paragraph).substitute({name: "x" for name in TEMPLATE_FIELDS})
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{language}: unknown placeholder {exc}") from None
        return value
