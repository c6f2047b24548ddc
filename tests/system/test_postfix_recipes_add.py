"""The deploy/postfix recipes add to a Postfix that already has a milter and a header check.

An MX rarely starts empty: OpenDKIM or rspamd is in ``smtpd_milters`` and the site has
``header_checks`` of its own. Here the test's own Postfix already runs another milter (a
second mailgate, the desk of ``otherdesk.example``) and a header check that refuses
``X-Blocked-By-Site``; the milter recipe is then run exactly as shipped. Afterwards both
milters decide their own domains, the site's header check still refuses, the recipe's own
header check strips a forged ``Authentication-Results``, and running the recipe a second
time changes nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import fixture_bytes, free_port
from postfix import Postfix
from postfix_mailgate import MailgateProcess, decisions
from test_postfix import MAILBOXES, RECIPE_VALUES, SUPPORT, prepare_data, submit

OTHER = "otherdesk.example"
SITE_CHECK = "regexp:{ {/^X-Blocked-By-Site:/ REJECT refused by the site's own header check} }"


def settle(postfix: Postfix) -> None:
    """Date main.cf two seconds back. Postfix reads a main.cf written within the last second
    only after waiting for that second to pass (a guard against reading a file half-way
    through an edit); every postconf call after a write would otherwise wait ~1 s."""
    main = postfix.config / "main.cf"
    then = time.time() - 2
    os.utime(main, (then, then))


@dataclass
class MX:
    postfix: Postfix
    other_data: Path
    ours_data: Path
    other_milter: str
    our_milter: str


@pytest.fixture(scope="module")
def mx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MX]:
    """Postfix with another milter and a header check, then the milter recipe on top."""
    base = tmp_path_factory.mktemp("recipes")
    other_port, ours_port = free_port(), free_port()
    postfix = Postfix(free_port(), {**MAILBOXES, SUPPORT: "desk", OTHER: "otherdesk"})
    already = (
        f"smtpd_milters = {{ inet:127.0.0.1:{other_port}, default_action=tempfail }}",
        f"header_checks = {SITE_CHECK}",
    )
    for line in already:
        assert postfix.command("postconf", "-e", line).returncode == 0
    settle(postfix)
    values = {**RECIPE_VALUES, "MILTER_ADDRESS": f"127.0.0.1:{ours_port}"}
    postfix.run_recipe("milter.sh", values)
    settle(postfix)
    before = postfix.command("postconf", "-n").stdout
    postfix.run_recipe("milter.sh", values)  # a second run must change nothing
    settle(postfix)
    assert postfix.command("postconf", "-n").stdout == before

    other_data, ours_data = base / "other", base / "ours"
    prepare_data(ours_data)
    processes = [
        MailgateProcess(
            data,
            MAILGATE_SMTP_LISTEN="off",
            MAILGATE_MILTER_LISTEN=f"127.0.0.1:{port}",
            MAILGATE_SUPPORT_DOMAINS=domain,
            MAILGATE_RELAY_URL=f"smtp://127.0.0.1:{postfix.port}",
            MAILGATE_LANGUAGE_PRELOAD="false",  # no message here needs the models
        )
        for data, port, domain in ((other_data, other_port, OTHER), (ours_data, ours_port, SUPPORT))
    ]
    try:
        postfix.start()
        with ThreadPoolExecutor(len(processes)) as pool:  # both start at once
            list(pool.map(MailgateProcess.start, processes))
        yield MX(
            postfix, other_data, ours_data, f"127.0.0.1:{other_port}", f"127.0.0.1:{ours_port}"
        )
    finally:
        for process in processes:
            process.stop()
        postfix.stop()
        postfix.cleanup()


def test_recipe_appends_after_what_was_there(mx: MX) -> None:
    """The existing milter and header check come first; ours follow, nothing was replaced."""
    milters = mx.postfix.command("postconf", "-h", "smtpd_milters").stdout
    checks = mx.postfix.command("postconf", "-h", "header_checks").stdout
    assert 0 <= milters.index(mx.other_milter) < milters.index(mx.our_milter), milters
    assert "default_action=tempfail" in milters.split(mx.our_milter)[1], milters
    assert checks.startswith(SITE_CHECK) and "Authentication-Results" in checks, checks
    assert mx.postfix.command("postconf", "-h", "non_smtpd_milters").stdout.strip() == ""


def test_both_milters_decide_their_own_desks(mx: MX) -> None:
    """New-ticket mail to each desk is refused by that desk's mailgate, in the dialogue."""
    postfix, other_data, ours_data = mx.postfix, mx.other_data, mx.ours_data
    raw = fixture_bytes("new_ticket.eml")
    for desk, data in ((f"support@{OTHER}", other_data), (f"support@{SUPPORT}", ours_data)):
        code, text = submit(postfix.port, "alice@customer.example", [desk], raw)
        assert code == 550 and text.startswith("5.7.1"), (desk, code, text)
        assert [d["decision"] for d in decisions(data)][-1] == "rejected_new_ticket", desk


def test_site_header_check_still_refuses(mx: MX) -> None:
    """The site's own header check is still applied after the recipe's was added."""
    postfix = mx.postfix
    raw = b"X-Blocked-By-Site: yes\r\n" + fixture_bytes("followup_subject_tag.eml")
    code, text = submit(postfix.port, "bob@partner.example", [f"support@{SUPPORT}"], raw)
    assert code >= 500 and "refused by the site's own header check" in text, (code, text)


def test_recipe_header_check_strips_forged_authentication_results(
    mx: MX,
) -> None:
    """An accepted follow-up reaches the desk without the forged header, with ours added."""
    postfix = mx.postfix
    raw = fixture_bytes("followup_subject_tag.eml").replace(
        b"Subject:",
        b"Authentication-Results: mx.postfix-test.example; spf=pass smtp.mailfrom=forged\n"
        b"Message-ID: <recipes-add-1@partner.example>\nSubject:",
        1,
    )
    raw = raw.replace(b"Message-ID: <CAF1001-reply-1@mail.partner.example>\n", b"", 1)
    code, text = submit(postfix.port, "bob@partner.example", [f"support@{SUPPORT}"], raw)
    assert code == 250, (code, text)
    postfix.wait_for(lambda: postfix.maildir("desk"), "delivery to the desk")
    [delivered] = postfix.maildir("desk")
    assert b"X-Mailgate-Decision: accepted_followup" in delivered
    assert b"mx.postfix-test.example; spf=pass" not in delivered
