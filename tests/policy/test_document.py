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
