"""The evidence commands (SPEC "Evidence for auditors"): ``audit anchor``, ``audit pack``,
``erase`` and ``whatif``. ``worker.cli`` merges them in with ``register``; the work is in
``worker.anchoring``, ``worker.evidence_pack``, ``worker.erasure`` and ``worker.whatif``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from worker.errors import UsageProblem
from worker.exits import exits
from worker.startup import open_gate

commands = typer.Typer()
audit_commands = typer.Typer()


_cli: dict[str, Callable[..., Any]] = {}


def register(app: typer.Typer, audit_app: typer.Typer, settings: Callable[[], Any],
             when: Callable[[str | None, str], datetime | None]) -> None:  # fmt: skip
    """Add these commands to ``mailgate`` and ``mailgate audit``, reading settings and
    times as ``worker.cli`` does (passed in: this module imports nothing of it)."""
    _cli.update(settings=settings, when=when)
    app.add_typer(commands)
    audit_app.add_typer(audit_commands)


def _settings() -> Any:
    return _cli["settings"]()


def _parse(text: str | None, option: str) -> datetime | None:
    when: datetime | None = _cli["when"](text, option)
    return when


@audit_commands.command("anchor")
@exits()
def audit_anchor() -> None:
    """Have MAILGATE_TSA_URL timestamp the chain head now (RFC 3161); stored in the chain."""
    from worker.anchoring import anchor_now
    from worker.console import out

    gate = open_gate(_settings())
    event = anchor_now(gate.engine, gate.settings, force=True)
    assert event is not None  # forced: never skipped
    body = event.body
    out.print(f"anchored chain seq {body['seq']} at {body['time']} (record seq {event.seq})")


@audit_commands.command("pack")
@exits()
def audit_pack(
    since: Annotated[str, typer.Option(help="From this time (ISO 8601).")],
    until: Annotated[str, typer.Option(help="Before this time (ISO 8601).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The zip file to write.")],
) -> None:
    """An evidence pack for an auditor: chain segment, anchors, policies, report, README."""
    from worker.console import out
    from worker.evidence_pack import write_pack

    start, end = _parse(since, "--since"), _parse(until, "--until")
    assert start is not None and end is not None  # both options are required
    done = write_pack(open_gate(_settings()), start, end, output)
    out.print(
        f"evidence pack {output}: chain seq {done.first}..{done.last} "
        f"({done.records} records, {done.anchors} anchors), {done.files} files"
    )


@commands.command()
@exits()
def erase(
    address: Annotated[str, typer.Option(help="The person's email address.")],
    before: Annotated[
        str | None, typer.Option(help="Only mail received before this time (ISO 8601).")
    ] = None,
    operator: Annotated[
        str | None, typer.Option(help="Who erases (kept in the chain); default: login name.")
    ] = None,
) -> None:
    """Erase a person's mail, texts and replies; the chain and the report counts still hold."""
    import getpass

    from worker.console import out
    from worker.erasure import erase as erase_address

    if "@" not in address or len(address.strip()) < 3:
        raise UsageProblem("--address: expected an email address")
    gate = open_gate(_settings())
    who = operator or getpass.getuser()
    done = erase_address(gate, address, _parse(before, "--before"), who)
    out.print(
        f"erased {len(done.decisions)} decisions ({done.raw_messages} raw messages, "
        f"{done.replies} replies, {done.files} spooled files, {done.tickets} tickets); "
        f"erasure record seq {done.record_seq}"
    )


@commands.command()
@exits()
def whatif(
    policy: Annotated[Path, typer.Option(help="The policy file to decide under.")],
    since: Annotated[str | None, typer.Option(help="From this time (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (ISO 8601).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="text, json or html")] = "text",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write here.")] = None,
) -> None:
    """Decide the stored messages again under another policy; writes nothing to the store."""
    import sys

    from worker.console import out
    from worker.files import read_bytes, write_text
    from worker.whatif import render_html, render_json, render_text
    from worker.whatif import whatif as decide_again

    renderers = {"text": render_text, "json": render_json, "html": render_html}
    if fmt not in renderers:
        raise UsageProblem(f"--format: expected one of {', '.join(renderers)}, got {fmt!r}")
    read_bytes(policy)  # a missing file is no input (66)
    start, end = _parse(since, "--since"), _parse(until, "--until")
    text = renderers[fmt](decide_again(open_gate(_settings()), policy, start, end))
    if output is None:
        sys.stdout.write(text)
        return
    write_text(output, text)
    out.print(f"whatif written to {output}")
