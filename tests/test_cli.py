"""The ``mailgate`` command as an MTA or an operator runs it: a real subprocess each time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import FIXTURES, POLICIES, cli_env


def mailgate(
    tmp_path: Path, *args: str, stdin: bytes | None = None, **env_overrides: str
) -> subprocess.CompletedProcess[bytes]:
    env = cli_env(str(tmp_path / "var"))
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        input=stdin,
        capture_output=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )


def test_ingest_from_stdin_prints_the_decision_object(tmp_path: Path) -> None:
    """Pipe transport: stdin in, exit 0, the SPEC's decision object out."""
    raw = (FIXTURES / "new_ticket.eml").read_bytes()
    result = mailgate(tmp_path, "ingest", "-", "--json", stdin=raw)
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    for field in (
        "decision",
        "rule",
        "policy",
        "policy_sha256",
        "ticket",
        "reply",
        "message_id",
        "raw_sha256",
        "envelope_from",
        "recipients",
        "received_at",
        "channel",
        "trace",
    ):
        assert field in decision
    assert decision["decision"] == "rejected_new_ticket"
    assert decision["envelope_from"] == "alice@customer.example"  # from Return-Path
    assert decision["recipients"] == ["support@wildix.com"]  # To/Cc in the support domains
    assert decision["channel"] == "pipe"
    assert len(list((tmp_path / "var" / "outbox").glob("*.eml"))) == 1


def test_ingest_logs_one_canonical_json_line(tmp_path: Path) -> None:
    """Exactly one structured line per decision, carrying the decision fields."""
    result = mailgate(tmp_path, "ingest", str(FIXTURES / "new_ticket.eml"))
    lines = [json.loads(line) for line in result.stderr.decode().splitlines() if line.strip()]
    decisions = [line for line in lines if line.get("event") == "decision"]
    assert len(decisions) == 1
    assert decisions[0]["decision"] == "rejected_new_ticket"
    assert decisions[0]["raw_sha256"] and decisions[0]["trace"]


def test_ingest_null_sender_option(tmp_path: Path) -> None:
    """--sender '<>' is the null sender: decided, never answered."""
    result = mailgate(
        tmp_path, "ingest", str(FIXTURES / "new_ticket.eml"), "--sender", "<>", "--json"
    )
    assert result.returncode == 0
    assert json.loads(result.stdout)["reply"]["reason"] == "auto_generated"


def test_ingest_database_down_exits_75(tmp_path: Path) -> None:
    """Storage unavailable: EX_TEMPFAIL so the MTA keeps the message, one clear line."""
    result = mailgate(
        tmp_path,
        "ingest",
        str(FIXTURES / "new_ticket.eml"),
        MAILGATE_DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:9/none",
    )
    assert result.returncode == 75
    assert b"Traceback" not in result.stderr
    assert b"database unavailable" in result.stderr


def test_ingest_unwritable_data_dir_exits_75(tmp_path: Path) -> None:
    """A data dir that cannot be written is a transient failure too."""
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    result = mailgate(
        tmp_path, "ingest", str(FIXTURES / "new_ticket.eml"), MAILGATE_DATA_DIR=str(blocker / "var")
    )
    assert result.returncode == 75
    assert b"Traceback" not in result.stderr


def test_explain_writes_and_sends_nothing(tmp_path: Path) -> None:
    """Dry run: decision and full trace printed; no database row, no outbox file."""
    first = mailgate(tmp_path, "explain", str(FIXTURES / "new_ticket.eml"))
    assert first.returncode == 0, first.stderr
    out = first.stdout.decode()
    assert "rejected_new_ticket" in out and "new_ticket" in out and "auto_generated" in out
    assert "description" in out and "automated mail" in out, "each rule's description"
    assert not (tmp_path / "var" / "outbox").exists()
    decisions = mailgate(tmp_path, "decisions", "--format", "json")
    assert decisions.stdout.strip() == b""


@pytest.mark.parametrize(
    "name,value,needle",
    [
        ("MAILGATE_MAX_MESSAGE_BYTES", "lots", "MAILGATE_MAX_MESSAGE_BYTES"),
        ("MAILGATE_REJECT_MODE", "bounce", "MAILGATE_REJECT_MODE"),
        ("MAILGATE_SMTP_LISTEN", "nowhere", "MAILGATE_SMTP_LISTEN"),
        ("MAILGATE_DATABASE_URL", "mysql://x/y", "MAILGATE_DATABASE_URL"),
        ("MAILGATE_SUPPORT_DOMAINS", "not a domain", "MAILGATE_SUPPORT_DOMAINS"),
    ],
)
def test_bad_setting_is_one_clear_line(tmp_path: Path, name: str, value: str, needle: str) -> None:
    """A bad setting: one line naming it, non-zero exit, no traceback, nothing written."""
    result = mailgate(tmp_path, "policy", "show", **{name: value})
    assert result.returncode != 0
    err = result.stderr.decode()
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err
    assert not (tmp_path / "var").exists()


def test_broken_policy_file_is_one_clear_line(tmp_path: Path) -> None:
    """A schema error names the file, the key and the problem."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "templates").mkdir()
    source = (POLICIES / "wildix-2018-06.toml").read_text()
    broken = source.replace("reopen_window_days = 14", "reopen_window_days = -3")
    (policies / "broken.toml").write_text(broken)
    result = mailgate(tmp_path, "policy", "check", MAILGATE_POLICY_DIR=str(policies))
    err = result.stderr.decode()
    assert result.returncode != 0
    assert "broken.toml" in err and "tickets.reopen_window_days" in err
    assert "greater than or equal to 0" in err and err.count("\n") == 1
    ingest = mailgate(
        tmp_path, "ingest", str(FIXTURES / "new_ticket.eml"), MAILGATE_POLICY_DIR=str(policies)
    )
    assert ingest.returncode == 75 and b"Traceback" not in ingest.stderr


def test_policy_check_and_show(tmp_path: Path) -> None:
    """Both shipped documents validate; the April 2022 revision is in force now."""
    check = mailgate(tmp_path, "policy", "check")
    assert check.returncode == 0
    assert b"wildix-2018-06" in check.stdout and b"wildix-2022-04" in check.stdout
    show = mailgate(tmp_path, "policy", "show")
    assert b"wildix-2022-04" in show.stdout and b"https://wmp.wildix.com" in show.stdout
    old = mailgate(tmp_path, "policy", "show", "--at", "2019-01-01")
    assert b"wildix-2018-06" in old.stdout


def test_tickets_token_round_trip(tmp_path: Path) -> None:
    """The printed reply address routes a stranger's mail onto the ticket."""
    assert mailgate(tmp_path, "tickets", "add", "77", "--kind", "technical").returncode == 0
    token = mailgate(tmp_path, "tickets", "token", "77").stdout.decode()
    address = token.split("Reply-To: ")[1].split()[0]
    message_id = token.split("Message-ID: ")[1].split()[0]
    assert address.startswith("support+77.") and message_id.startswith("<ticket.77.")
    raw = (
        (FIXTURES / "new_ticket.eml")
        .read_bytes()
        .replace(b"To: Wildix Support <support@wildix.com>", f"To: {address}".encode())
    )
    result = mailgate(tmp_path, "ingest", "-", "--json", stdin=raw)
    assert json.loads(result.stdout)["decision"] == "accepted_followup"


def test_decisions_formats(tmp_path: Path) -> None:
    """The decision log as JSON lines and CSV, filtered by decision."""
    mailgate(tmp_path, "ingest", str(FIXTURES / "new_ticket.eml"))
    mailgate(tmp_path, "ingest", str(FIXTURES / "dsn.eml"))
    as_json = mailgate(tmp_path, "decisions", "--format", "json").stdout.decode().splitlines()
    assert {json.loads(line)["decision"] for line in as_json} == {
        "rejected_new_ticket",
        "ignored_auto_generated",
    }
    as_csv = (
        mailgate(tmp_path, "decisions", "--format", "csv", "--decision", "ignored_auto_generated")
        .stdout.decode()
        .splitlines()
    )
    assert as_csv[0].startswith("seq,") and len(as_csv) == 2
    table = mailgate(tmp_path, "decisions")
    assert table.returncode == 0 and b"rejected_new_ticket" in table.stdout
    bad = mailgate(tmp_path, "decisions", "--decision", "nope")
    assert bad.returncode == 64 and b"unknown decision" in bad.stderr


def test_decisions_filters_and_delivery(tmp_path: Path) -> None:
    """Filters by rule, sender, ticket and channel; the reply's delivery state is shown."""
    mailgate(
        tmp_path,
        "tickets",
        "add",
        "1001",
        "--kind",
        "technical",
        "--participant",
        "bob@partner.example",
    )
    mailgate(tmp_path, "ingest", str(FIXTURES / "new_ticket.eml"))
    mailgate(tmp_path, "ingest", str(FIXTURES / "followup_subject_tag.eml"))

    def rows(*filters: str) -> list[dict[str, object]]:
        result = mailgate(tmp_path, "decisions", "--format", "json", *filters)
        return [json.loads(line) for line in result.stdout.decode().splitlines()]

    assert [r["decision"] for r in rows("--rule", "new_ticket")] == ["rejected_new_ticket"]
    assert rows("--rule", "new_ticket")[0]["delivery"] == "spooled"
    assert [r["ticket"] for r in rows("--sender", "bob@partner.example")] == ["1001"]
    assert [r["decision"] for r in rows("--ticket", "1001")] == ["accepted_followup"]
    assert len(rows("--channel", "pipe")) == 2 and rows("--channel", "smtp") == []
    assert rows("--until", "2020-01-01") == []


# -- exit codes (sysexits) and file errors ---------------------------------------------------


def one_line_naming(result: subprocess.CompletedProcess[bytes], path: Path | str) -> bool:
    """The whole of stderr is one line, it names the path, and no traceback came with it."""
    err = result.stderr.decode()
    return err.count("\n") == 1 and str(path) in err and "Traceback" not in err


def test_ingest_usage_errors_exit_64_never_2(tmp_path: Path) -> None:
    """An unknown option or two message files: EX_USAGE, which no MTA reads as 'bounce 2'."""
    raw = (FIXTURES / "new_ticket.eml").read_bytes()
    unknown = mailgate(tmp_path, "ingest", "-", "--bogus", stdin=raw)
    assert unknown.returncode == 64 and b"--bogus" in unknown.stderr
    two_files = mailgate(
        tmp_path, "ingest", str(FIXTURES / "new_ticket.eml"), str(FIXTURES / "dsn.eml")
    )
    assert two_files.returncode == 64 and b"one message per call" in two_files.stderr
    assert mailgate(tmp_path, "decisions", "--bogus").returncode == 64
    assert not (tmp_path / "var" / "outbox").exists()


def test_ingest_expanded_recipients_are_decided_once_with_one_reply(tmp_path: Path) -> None:
    """Postfix expands ``--recipient ${recipient}`` into two arguments: one decision, one reply."""
    raw = (FIXTURES / "new_ticket.eml").read_bytes()
    args = ["ingest", "-", "--sender", "alice@customer.example", "--json", "--recipient"]
    result = mailgate(tmp_path, *args, "support@wildix.com", "sales@wildix.com", stdin=raw)
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert decision["recipients"] == ["support@wildix.com", "sales@wildix.com"]
    assert decision["decision"] == "rejected_new_ticket"
    again = mailgate(tmp_path, *args, "sales@wildix.com", stdin=raw)
    assert again.returncode == 0 and json.loads(again.stdout)["decision"] == "duplicate"
    assert len(list((tmp_path / "var" / "outbox").glob("*.eml"))) == 1


def test_ingest_mailer_daemon_sender_is_the_null_sender(tmp_path: Path) -> None:
    """Postfix's ``${sender}`` of a bounce is MAILER-DAEMON: ignored, never answered."""
    raw = (FIXTURES / "new_ticket.eml").read_bytes()
    result = mailgate(tmp_path, "ingest", "-", "--sender", "MAILER-DAEMON", "--json", stdin=raw)
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert decision["envelope_from"] == "" and decision["decision"] == "ignored_auto_generated"
    assert not list((tmp_path / "var" / "outbox").glob("*.eml"))


def test_ingest_missing_file_exits_65_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "gone.eml"
    result = mailgate(tmp_path, "ingest", str(missing))
    assert result.returncode == 65 and one_line_naming(result, missing)


def test_ingest_read_error_exits_75(tmp_path: Path) -> None:
    """A disk error while reading is not the message's fault: the MTA retries."""
    result = mailgate(tmp_path, "ingest", "/proc/self/mem")
    assert result.returncode == 75 and one_line_naming(result, "/proc/self/mem")


def test_ingest_reads_settings_from_config_file_without_environment(tmp_path: Path) -> None:
    """An MTA's pipe passes no environment: ``--config`` alone is enough to decide."""
    config = tmp_path / "mailgate.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "var"}"\n'
        f'policy_dir = "{POLICIES}"\n'
        'reply_secret = "a-secret-that-is-long-enough-for-tokens-0123"\n'
        'http_listen = "off"\n'
    )
    env = {k: v for k, v in cli_env(tmp_path).items() if not k.startswith("MAILGATE_")}
    result = subprocess.run(
        [sys.executable, "-m", "worker", "--config", str(config), "ingest", "-", "--json"],
        input=(FIXTURES / "new_ticket.eml").read_bytes(),
        capture_output=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["decision"] == "rejected_new_ticket"
    assert len(list((tmp_path / "var" / "outbox").glob("*.eml"))) == 1


def test_ingest_unusable_config_file_exits_75_in_one_line(tmp_path: Path) -> None:
    """A config path that is a directory is a configuration slip: 75, never a bounce."""
    result = mailgate(
        tmp_path, "--config", str(tmp_path), "ingest", str(FIXTURES / "new_ticket.eml")
    )
    assert result.returncode == 75 and one_line_naming(result, tmp_path)


def test_report_output_that_cannot_be_created_exits_73(tmp_path: Path) -> None:
    """``report -o`` into a missing directory, or onto a directory: one line, EX_CANTCREAT."""
    nowhere = tmp_path / "no-such-dir" / "report.html"
    result = mailgate(tmp_path, "report", "--format", "html", "-o", str(nowhere))
    assert result.returncode == 73 and one_line_naming(result, nowhere)
    onto_directory = mailgate(tmp_path, "report", "-o", str(tmp_path))
    assert onto_directory.returncode == 73 and one_line_naming(onto_directory, tmp_path)
    export = mailgate(tmp_path, "audit", "export", str(nowhere))
    assert export.returncode == 73 and one_line_naming(export, nowhere)


def test_missing_input_exits_66_in_one_line(tmp_path: Path) -> None:
    """Every command that reads a named file: EX_NOINPUT, naming the file, no traceback."""
    missing = tmp_path / "missing"
    for args in (
        ("explain", str(missing)),
        ("tickets", "import", str(missing)),
        ("audit", "verify", "--export", str(missing)),
        ("policy", "check", str(missing)),
        ("replay", str(missing)),
    ):
        result = mailgate(tmp_path, *args)
        assert result.returncode == 66 and one_line_naming(result, missing), args


def test_read_error_exits_74(tmp_path: Path) -> None:
    result = mailgate(tmp_path, "explain", "/proc/self/mem")
    assert result.returncode == 74 and one_line_naming(result, "/proc/self/mem")


def test_decisions_channel_choices_come_from_the_channel_names(tmp_path: Path) -> None:
    """`--channel` help lists every channel (milter too); another value is a usage error."""
    from worker.decision import CHANNELS

    shown = mailgate(tmp_path, "decisions", "--help", COLUMNS="200")
    assert shown.returncode == 0
    assert all(channel in shown.stdout.decode() for channel in CHANNELS)
    result = mailgate(tmp_path, "decisions", "--channel", "fax")
    assert result.returncode == 64
    assert result.stderr.decode().strip() == (
        "mailgate: --channel: unknown channel 'fax'; one of " + ", ".join(CHANNELS)
    )
