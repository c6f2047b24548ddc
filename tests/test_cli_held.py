"""What ``mailgate held show`` lets through to a terminal, and whose name a CLI action carries."""

from __future__ import annotations

import pytest

from worker.cli_held import _operator, _safe
from worker.errors import UsageProblem


def test_hostile_text_cannot_drive_the_terminal() -> None:
    """Escape sequences, carriage returns and bidi overrides go; lines and letters stay."""
    hostile = "Hi\x1b]0;owned\x07 \x1b[2J\rthere\u202egnp.exe\x9b31m\nsecond Grüße"
    shown = _safe(hostile, keep_lines=True)
    assert "\x1b" not in shown and "\x07" not in shown and "\r" not in shown
    assert "\u202e" not in shown and "\x9b" not in shown
    assert shown.splitlines() == ["Hi]0;owned [2Jtheregnp.exe31m", "second Grüße"]
    assert "\n" not in _safe("a\nb")


def test_operator_names_are_what_the_operators_file_accepts() -> None:
    assert _operator("olga.k@desk") == "olga.k@desk"
    with pytest.raises(UsageProblem, match="--operator"):
        _operator("olga\nforged: line")
