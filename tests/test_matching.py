"""Ticket references in subjects behind reply/forward prefixes of many languages."""

from __future__ import annotations

import pytest
from helpers import POLICY_DIR

from worker.matching import normalize_ticket_id, strip_reply_prefixes
from worker.policy.document import PolicySet

PREFIXES = PolicySet.load(POLICY_DIR).policies[-1].document.matching.reply_prefixes


@pytest.mark.parametrize(
    "subject",
    [
        "Re: [Ticket#1001] x",
        "RE: x",
        "AW: x",
        "WG: x",
        "SV: x",
        "VS: x",
        "Antw: x",
        "RV: x",
        "TR: x",
        "R: x",
        "RIF: x",
        "I: x",
        "RES: x",
        "ENC: x",
        "Odp: x",
        "PD: x",
        "YNT: x",
        "Fwd: x",
        "FW: x",
        "回复: x",
        "答复：x",
        "转发: x",
        "返信: x",
        "転送: x",
        "회신: x",
        "Re[2]: x",
        "Re^2: x",
        "Re: Re: AW: Fwd: x",
        "re : x",
    ],
)
def test_prefixes_are_stripped(subject: str) -> None:
    """Every listed prefix, in any case and repeated, comes off the front."""
    stripped = strip_reply_prefixes(subject, PREFIXES)
    assert stripped in ("x", "[Ticket#1001] x")


def test_words_that_only_start_like_a_prefix_stay() -> None:
    """'Return policy' is not a reply."""
    assert strip_reply_prefixes("Return policy: question", PREFIXES) == "Return policy: question"


def test_ticket_ids_ignore_leading_zeros() -> None:
    assert normalize_ticket_id("0042") == "42"
    assert normalize_ticket_id("AB-7") == "AB-7"
