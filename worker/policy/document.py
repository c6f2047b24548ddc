"""The policy document schema and the set of versions loaded from ``MAILGATE_POLICY_DIR``.

A policy is data: one TOML file per version with its id, effective date, SLA source, portal
URL, matching patterns, windows, rule switches and reply templates. Loading validates every
file with pydantic and renders every template once, so a broken document is refused at
start-up with the file, the key and the problem, never at the first message. The version in
force for a message is the newest one whose ``effective_from`` is not after its receipt.
"""

from __future__ import annotations

import bisect
import hashlib
import re
import string
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from worker.catalogues import paragraphs
from worker.decision import (
    HOLD_TWINS,
    HOLDABLE_RULES,
    REJECTIONS,
    SWITCHABLE_RULES,
    DecisionName,
    RuleName,
)
from worker.errors import ConfigError
from worker.helpdesk.references import PRESETS, tag_pattern
from worker.policy.hint import REPLY_DECISIONS, TEMPLATE_FIELDS, Hint

DEFAULT_HOLD_DAYS = 7


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    document: str
    section: str
    updated: str
    url: str


class Matching(_Strict):
    signed_reply_address: bool = True
    signed_message_id: bool = True
    # A pattern with a (?P<ticket>…) group, or a preset's name (worker.helpdesk.references).
    subject_tag: str = r"\[Ticket#(?P<ticket>\d{1,12})\]"
    # More tags recognised besides ``subject_tag``: presets or patterns.
    subject_tags: list[str] = []
    reply_prefixes: list[str] = Field(min_length=1)

    @field_validator("subject_tag")
    @classmethod
    def _has_ticket_group(cls, value: str) -> str:
        return _check_tag(value)

    @field_validator("subject_tags")
    @classmethod
    def _have_ticket_groups(cls, value: list[str]) -> list[str]:
        return [_check_tag(tag) for tag in value]

    def tag_patterns(self, helpdesk_name: str | None = None) -> list[str]:
        """Every subject tag as a pattern, presets expanded."""
        return [tag_pattern(tag, helpdesk_name) for tag in (self.subject_tag, *self.subject_tags)]


def _check_tag(value: str) -> str:
    if value.lower() in PRESETS:
        return value
    try:
        pattern = re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    if "ticket" not in pattern.groupindex:
        raise ValueError(
            "needs a named group (?P<ticket>…) or a preset: " + ", ".join(sorted(PRESETS))
        )
    return value


class Tickets(_Strict):
    reopen_window_days: int = Field(ge=0)
    authorized_senders: Literal["participants", "participants_or_domains"]


class Language(_Strict):
    enabled: bool = False
    ticket_kinds: list[Literal["technical", "customer_care"]] = ["customer_care"]
    accepted: list[str] = ["en"]
    min_letters: int = Field(default=20, ge=1)
    min_confidence: float = Field(default=0.5, gt=0, le=1)


class HeldReply(_Strict):
    """``[replies.held]``: the one acknowledgement of a held message, whichever rule held it
    (a person will look at it; it never says whether the ticket exists)."""

    template: str


class Replies(_Strict):
    window_hours: float = Field(default=24, gt=0)
    # After this long without a successful hand-over an outbox row goes dead-letter.
    max_delivery_hours: float = Field(default=72, gt=0)
    from_name: str = "Support"
    # The desk's spam filter said spam (X-Spam-Flag, X-Spam-Status, rspamd): decide, no reply.
    suppress_on_spam_verdict: bool = True
    templates: dict[str, str]
    # MAILGATE_REJECT_MODE=smtp: the 550 text per rejection (``$portal_url`` is filled in).
    smtp_reject: dict[str, str] = Field(default_factory=dict)
    held: HeldReply | None = None

    @field_validator("templates")
    @classmethod
    def _known_decisions(cls, value: dict[str, str]) -> dict[str, str]:
        for decision in value:
            if decision not in REPLY_DECISIONS:
                raise ValueError(f"no reply is defined for decision {decision!r}")
        # Unknown and somebody else's ticket get one text: the reply is no oracle.
        twins = {value.get("rejected_unknown_ticket"), value.get("rejected_unauthorized_sender")}
        if len(twins) > 1:
            raise ValueError("rejected_unknown_ticket and rejected_unauthorized_sender differ")
        return value

    @field_validator("smtp_reject")
    @classmethod
    def _one_line_per_rejection(cls, value: dict[str, str]) -> dict[str, str]:
        for decision, text in value.items():
            if decision not in REJECTIONS or decision not in REPLY_DECISIONS:
                raise ValueError(f"{decision!r} is not a rejection")
            if not text.strip() or any(c in text for c in "\r\n") or not text.isascii():
                raise ValueError(f"{decision}: expected one line of ASCII text")
        # A stranger must not tell an unknown ticket from somebody else's.
        twins = {value.get("rejected_unknown_ticket"), value.get("rejected_unauthorized_sender")}
        if len(twins) > 1:
            raise ValueError("rejected_unknown_ticket and rejected_unauthorized_sender differ")
        return value


class PolicyDocument(_Strict):
    """One policy version exactly as its TOML file states it."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$")
    title: str
    effective_from: datetime
    source: Source
    portal_url: str = Field(pattern=r"^https://\S+$")
    support_domains: list[str] = Field(min_length=1)
    support_local_part: str = Field(default="support", pattern=r"^[a-z0-9._-]+$")
    matching: Matching
    tickets: Tickets
    language: Language = Language()
    replies: Replies
    # Paragraphs that help, chosen by what the customer wrote (SPEC "[hints]").
    hints: dict[str, Hint] = {}
    # Per-rule actions: ``rule = "off"`` keeps the rule in the trace but never lets it decide;
    # ``rule = "hold"`` keeps its hits for an operator (``hold_days``, written in ``[actions]``).
    actions: dict[RuleName, Literal["on", "off", "hold"]] = {}
    hold_days: float = Field(default=DEFAULT_HOLD_DAYS, gt=0)

    def switched_off(self) -> frozenset[str]:
        return frozenset(rule for rule, action in self.actions.items() if action == "off")

    def held_rules(self) -> frozenset[str]:
        return frozenset(rule for rule, action in self.actions.items() if action == "hold")

    @model_validator(mode="before")
    @classmethod
    def _hold_days_in_actions(cls, data: Any) -> Any:
        # ``hold_days`` is written beside the rules it concerns; it is no rule itself.
        if isinstance(data, dict) and isinstance(data.get("actions"), dict):
            actions = dict(data["actions"])
            if "hold_days" in actions:
                data = {**data, "actions": actions, "hold_days": actions.pop("hold_days")}
        return data

    @field_validator("effective_from")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Policy:
    """A loaded version: the document, its file digest, and its rendered-ready templates."""

    document: PolicyDocument
    path: Path
    sha256: str
    templates: dict[str, string.Template]

    @property
    def id(self) -> str:
        return self.document.id

    def smtp_reject_text(self, decision: str) -> str | None:
        """The 550 text for ``decision`` in MAILGATE_REJECT_MODE=smtp, or None."""
        text = self.document.replies.smtp_reject.get(decision)
        if text is None:
            return None
        return string.Template(text).safe_substitute(portal_url=self.document.portal_url)

    def render(self, decision: str, **values: str) -> str | None:
        """The decision's template in English, one line per paragraph or list item (the
        reply wraps them: ``worker.reply_body``)."""
        template = self.templates.get(decision)
        if template is None:
            return None
        text = "\n\n".join(paragraphs(template.template))
        return string.Template(text).substitute(self.fields(**values))

    def fields(self, **values: str) -> dict[str, str]:
        """Every placeholder's value: the policy's own, then ``values``."""
        doc = self.document
        fields = {
            "portal_url": doc.portal_url,
            "source_title": f'{doc.source.document}, section "{doc.source.section}" '
            f"(updated {doc.source.updated})",
            "source_url": doc.source.url,
            "policy_id": doc.id,
            "ticket": "",
            "subject": "",
            "reference": "",
            "hints": "",
        }
        fields.update(values)
        return fields


def reply_windows(policy: Policy | None) -> tuple[timedelta, timedelta]:
    """The reply rate-limit window and the outbox delivery limit, the schema's defaults
    when no policy is in force."""
    if policy is not None:
        replies = policy.document.replies
        return timedelta(hours=replies.window_hours), timedelta(hours=replies.max_delivery_hours)
    fields = Replies.model_fields
    window, max_delivery = fields["window_hours"].default, fields["max_delivery_hours"].default
    return timedelta(hours=window), timedelta(hours=max_delivery)


def _check_actions(path: Path, document: PolicyDocument) -> None:
    for rule in sorted(document.switched_off() - SWITCHABLE_RULES):
        switchable = ", ".join(sorted(SWITCHABLE_RULES))
        raise ConfigError(
            f"policy {path}: key actions.{rule}: rule {rule} cannot be switched off "
            f"(only {switchable} can)"
        )
    held = document.held_rules()
    for rule in sorted(held - HOLDABLE_RULES):
        holdable = ", ".join(sorted(HOLDABLE_RULES))
        raise ConfigError(
            f"policy {path}: key actions.{rule}: rule {rule} cannot be held (only {holdable} can)"
        )
    if held & HOLD_TWINS and not held >= HOLD_TWINS:
        missing = sorted(HOLD_TWINS - held)[0]
        raise ConfigError(
            f"policy {path}: key actions.{missing}: unknown_ticket and unauthorized_sender "
            "must be held together (holding only one tells a stranger whether a ticket exists)"
        )


def _template_files(document: PolicyDocument) -> dict[str, str]:
    """Every reply template the policy names, by the decision it answers."""
    files = dict(document.replies.templates)
    if document.replies.held is not None:
        files[DecisionName.HELD] = document.replies.held.template
    return files


def _describe(path: Path, error: ValidationError) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(document)"
    key = "actions.hold_days" if key == "hold_days" else key  # where the file writes it
    return f"policy {path}: key {key}: {first['msg']}"


def load_policy(path: Path) -> Policy:
    """Load and validate one policy file; raise ``ConfigError`` naming file, key, problem."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"policy {path}: cannot read: {exc.strerror}") from None
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"policy {path}: not valid TOML: {exc}") from None
    try:
        document = PolicyDocument.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(path, exc)) from None
    _check_actions(path, document)
    templates: dict[str, string.Template] = {}
    for decision, relative in _template_files(document).items():
        key = "replies.held.template" if decision == "held" else f"replies.templates.{decision}"
        template_path = (path.parent / relative).resolve()
        try:
            text = template_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise ConfigError(f"policy {path}: key {key}: cannot read {relative}") from None
        template = string.Template(text)
        try:
            template.substitute({name: "x" for name in TEMPLATE_FIELDS})
        except (KeyError, ValueError) as exc:
            raise ConfigError(
                f"policy {path}: key {key}: template {relative} uses "
                f"unknown placeholder {exc}; known: {', '.join(TEMPLATE_FIELDS)}"
            ) from None
        templates[decision] = template
    return Policy(document, path, hashlib.sha256(data).hexdigest(), templates)


class PolicySet:
    """Every version found in a directory, ordered by ``effective_from``."""

    def __init__(self, policies: list[Policy]) -> None:
        self.policies = sorted(policies, key=lambda p: p.document.effective_from)
        self._starts = [p.document.effective_from for p in self.policies]

    @classmethod
    def load(cls, directory: Path) -> PolicySet:
        if not directory.is_dir():
            raise ConfigError(f"policy directory {directory} not found (MAILGATE_POLICY_DIR)")
        files = sorted(directory.glob("*.toml"))
        if not files:
            raise ConfigError(f"policy directory {directory} holds no *.toml policy")
        policies = [load_policy(path) for path in files]
        seen: dict[str, Path] = {}
        starts: dict[datetime, Path] = {}
        for policy in policies:
            if policy.id in seen:
                raise ConfigError(
                    f"policy {policy.path}: key id: {policy.id!r} already used by {seen[policy.id]}"
                )
            when = policy.document.effective_from
            if when in starts:
                raise ConfigError(
                    f"policy {policy.path}: key effective_from: same date as {starts[when]}"
                )
            seen[policy.id] = policy.path
            starts[when] = policy.path
        return cls(policies)

    def in_force(self, at: datetime) -> Policy | None:
        index = bisect.bisect_right(self._starts, at)
        return self.policies[index - 1] if index else None

    def by_id(self, policy_id: str) -> Policy | None:
        return next((p for p in self.policies if p.id == policy_id), None)
