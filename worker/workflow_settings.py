"""The settings of the desk's workflow around the gate: the helpdesk, operators, evidence.

Like ``worker.setting_groups``, each class is one concern whose fields are flat attributes
of ``worker.settings.Settings`` named as their variables: the helpdesk connector and the
tickets it pushes (SPEC "Working with a helpdesk"), held mail and named operators ("Held
mail and operators"), and RFC 3161 anchoring of the audit chain ("Evidence for auditors").
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, Field, field_validator, model_validator

from worker.setting_groups import (
    MIN_API_TOKEN,
    _check_secret,
    _existing_file,
    _read_secret_file,
    _url,
)


class HelpdeskSettings(BaseModel):
    """The helpdesk that holds the tickets, and the webhooks of those that push them."""

    helpdesk: Literal["rt"] | None = None
    helpdesk_url: str | None = None
    helpdesk_token: str | None = None
    helpdesk_token_file: Path | None = None
    helpdesk_name: str | None = None  # RT's $rtname: its subject tags carry it
    helpdesk_kinds: str | None = None  # queue → kind: "General:technical,Billing:customer_care"
    helpdesk_sync_seconds: float = Field(default=60, gt=0)
    # Pushed tickets (PUT/DELETE /api/tickets/{id}) may be signed with this instead of a bearer.
    webhook_secret: str | None = None

    @model_validator(mode="after")
    def _check_helpdesk(self) -> Self:
        from worker.helpdesk.config import check_helpdesk_settings

        if self.helpdesk_token_file is not None:
            self.helpdesk_token = _read_secret_file(self.helpdesk_token_file, "HELPDESK_TOKEN")
        _check_secret(self.webhook_secret, "MAILGATE_WEBHOOK_SECRET", MIN_API_TOKEN)
        check_helpdesk_settings(self)
        return self


class HeldMailSettings(BaseModel):
    """Where held mail goes in a mailbox, and who may act on it."""

    imap_held: str = "Held"  # beside MAILGATE_IMAP_PROCESSED, _REJECTED, _QUARANTINE
    # Named operators with roles (worker.operators); MAILGATE_API_TOKEN stays the admin.
    operators_file: Path | None = None


class EvidenceSettings(BaseModel):
    """RFC 3161 anchoring of the audit chain head (worker.anchoring)."""

    tsa_url: str | None = None
    tsa_ca_file: Path | None = None
    anchor_seconds: float = Field(default=3600, gt=0)

    @field_validator("tsa_url")
    @classmethod
    def _check_tsa_url(cls, value: str | None) -> str | None:
        return _url(value, ("http", "https"), "expected the TSA's http(s):// RFC 3161 URL")

    @field_validator("tsa_ca_file")
    @classmethod
    def _check_ca_file(cls, value: Path | None) -> Path | None:
        return _existing_file(value)
