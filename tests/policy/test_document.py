"""Policy documents load, validate with precise errors, and are chosen by effective date."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import POLICY_DIR

from worker.errors import ConfigError
from worker.policy.document import PolicySet


def test_shipped_policies_and_their_dates() -> None:
    policies = PolicySet.load(POLICY_DIR)
    assert [p.id for p in policies.policies] == ["wildix-2018-06", "wildix-2022-04"]
    assert policies.in_force(datetime(2018, 5, 31, 23, 59, tzinfo=UTC)) is None
    assert policies.in_force(datetime(2018, 6, 1, tzinfo=UTC)).id == "wildix-2018-06"  # type: ignore[union-attr]
    assert policies.in_force(datetime(2022, 3, 31, 23, 59, tzinfo=UTC)).id == "wildix-2018-06"  # type: ignore[union-attr]
    assert policies.in_force(datetime(2022, 4, 1, tzinfo=UTC)).id == "wildix-2022-04"  # type: ignore[union-attr]


def test_templates_carry_the_wmp_steps() -> None:
    policy = PolicySet.load(POLICY_DIR).policies[-1]
    body = policy.render("rejected_new_ticket")
    assert body is not None
    for needle in (
        "credentials",
        "Help Desk tab",
        "Add in the upper-right corner",
        "Tech Support or Customer Care",
        "serial number",
        "Billing, CLASSOUND",
        "Feature request",
        "WMS version",
        "firmware",
        "invoices",
        "Submit",
        "same working day",
        "one business day",
        policy.document.source.url,
    ):
        assert needle in body, needle


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(POLICY_DIR, target)
    return target


@pytest.mark.parametrize(
    "old,new,message",
    [
        ('portal_url = "https://wmp.wildix.com"', 'portal_url = "wmp"', "key portal_url"),
        (
            "reopen_window_days = 14",
            'reopen_window_days = "two weeks"',
            "key tickets.reopen_window_days",
        ),
        (
            'authorized_senders = "participants"',
            'authorized_senders = "anyone"',
            "key tickets.authorized_senders",
        ),
        (
            "subject_tag = '\\[Ticket#(?P<ticket>\\d{1,12})\\]'",
            "subject_tag = '[Ticket#'",
            "key matching.subject_tag",
        ),
        (
            'rejected_language = "templates/language.txt"',
            'rejected_language = "templates/x.txt"',
            "cannot read templates/x.txt",
        ),
        ("[language]", "unknown_key = 1\n[language]", "key tickets.unknown_key"),
        ('id = "wildix-2022-04"', 'id = "wildix-2018-06"', "already used"),
        (
            "effective_from = 2022-04-01T00:00:00Z",
            "effective_from = 2018-06-01T00:00:00Z",
            "key effective_from: same date",
        ),
        ("[tickets]", "[tickets\n", "not valid TOML"),
        ("[actions]\n", '[actions]\nnew_ticket = "off"\n', "key actions.new_ticket"),
        ("[actions]\n", '[actions]\nduplicate = "off"\n', "cannot be switched off"),
        ("[actions]\n", '[actions]\nno_such_rule = "off"\n', "key actions.no_such_rule"),
        ("[actions]\n", '[actions]\nlanguage = "maybe"\n', "key actions.language"),
        # Held mail (SPEC "Held mail and operators").
        ("[actions]\n", '[actions]\nnew_ticket = "hold"\n', "new_ticket cannot be held"),
        ('unauthorized_sender = "hold"', 'unauthorized_sender = "on"', "held together"),
        ('unknown_ticket = "hold"', 'unknown_ticket = "on"', "key actions.unknown_ticket"),
        ("hold_days = 7", "hold_days = 0", "key actions.hold_days"),
        ('template = "templates/held.txt"', 'template = "templates/no.txt"', "replies.held"),
        ("'\\b(?:down|outage)\\b',", "'(unclosed',", "key hints.urgent.patterns"),
        ("[hints.partner]\ntext.en =", "[hints.partner]\ntext.xx =", "needs an English text"),
        ('text.en = "If you', 'text.en = "$nobody If you', "key hints.partner.text"),
        (
            "[hints.partner]\n",
            '[hints.partner]\ndecisions = ["followed_up"]\n',
            "hints.partner.decisions",
        ),
    ],
)
def test_errors_name_file_key_and_problem(
    policy_copy: Path, old: str, new: str, message: str
) -> None:
    path = policy_copy / "wildix-2022-04.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError) as error:
        PolicySet.load(policy_copy)
    assert "wildix-2022-04.toml" in str(error.value) and message in str(error.value)


def test_unknown_template_placeholder(policy_copy: Path) -> None:
    (policy_copy / "templates" / "language.txt").write_text("Hello $customer_name\n")
    with pytest.raises(ConfigError, match=r"unknown placeholder 'customer_name'"):
        PolicySet.load(policy_copy)


def test_missing_directory() -> None:
    with pytest.raises(ConfigError, match="MAILGATE_POLICY_DIR"):
        PolicySet.load(Path("/nonexistent/policies"))


def test_switchable_rule_may_be_switched_off(policy_copy: Path) -> None:
    """A policy may switch off the actions the SPEC lets it; the others stay on."""
    path = policy_copy / "wildix-2022-04.toml"
    path.write_text(
        path.read_text().replace(
            "[actions]\n", '[actions]\nlanguage = "off"\nclosed_ticket = "on"\n', 1
        )
    )
    policy = PolicySet.load(policy_copy).by_id("wildix-2022-04")
    assert policy is not None
    assert policy.document.switched_off() == {"language"}


def test_shipped_2022_policy_holds_the_twins_and_rejects_english_only() -> None:
    """The 2022 policy holds references that are not the sender's follow-up, with one
    acknowledgement; the Customer Care language rule stays a rejection."""
    policy = PolicySet.load(POLICY_DIR).by_id("wildix-2022-04")
    assert policy is not None
    assert policy.document.held_rules() == {"unknown_ticket", "unauthorized_sender"}
    assert policy.document.hold_days == 7
    body = policy.render("held", subject="x")
    assert body is not None and "a person" in body and "ticket" in body
    assert "$" not in body
    older = PolicySet.load(POLICY_DIR).by_id("wildix-2018-06")
    assert older is not None and older.document.held_rules() == frozenset()


def test_reply_windows_default_to_the_schema() -> None:
    """Without a policy in force the windows are the schema's defaults, not literals."""
    from datetime import timedelta

    from worker.policy.document import Replies, reply_windows

    defaults = Replies.model_fields
    assert reply_windows(None) == (
        timedelta(hours=defaults["window_hours"].default),
        timedelta(hours=defaults["max_delivery_hours"].default),
    )
    policy = PolicySet.load(POLICY_DIR).policies[-1]
    assert reply_windows(policy) == (timedelta(hours=24), timedelta(hours=72))
