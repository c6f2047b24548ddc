"""The ``mailgate policy`` commands (``check``: validate policy documents; ``show``: the
version in force) and ``mailgate imap check`` (what each configured mailbox offers): the
commands that look at configuration rather than at decided mail. ``register`` adds them to
the CLI's groups with the CLI's way to read settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from worker.clock import option_time, utcnow
from worker.errors import ConfigError
from worker.exits import exits, fail

if TYPE_CHECKING:
    from worker.settings import Settings

_settings: list[Callable[[], Settings]] = []  # the CLI's reader, given to register()


def settings() -> Settings:
    return _settings[0]()


def policy_check(
    file: Annotated[
        Path | None, typer.Argument(metavar="FILE", help="One policy file; default: all.")
    ] = None,
) -> None:
    """Validate policy documents; a problem names the file, the key and what is wrong."""
    from worker.console import out
    from worker.files import read_bytes
    from worker.policy.document import PolicySet, load_policy

    cfg = settings()
    if file is not None:
        read_bytes(file)  # a missing file is no input (66), not a broken policy (1)
    try:
        policies = (
            [load_policy(file)] if file is not None else PolicySet.load(cfg.policy_dir).policies
        )
    except ConfigError as exc:
        fail(str(exc), 1)
    for policy in policies:
        out.print(
            f"ok  {policy.id}  effective {policy.document.effective_from.date()}  {policy.path}"
        )


def policy_show(
    at: Annotated[
        str | None, typer.Option(metavar="TIME", help="In force at this time instead of now.")
    ] = None,
) -> None:
    """Which policy version is in force now (or at --at)."""
    from worker.console import print_policy
    from worker.policy.document import PolicySet

    cfg = settings()
    policies = PolicySet.load(cfg.policy_dir)
    when = option_time(at, "--at") or utcnow()
    policy = policies.in_force(when)
    if policy is None:
        fail(f"no policy in force at {when.isoformat()}", 1)
    print_policy(policy, cfg.support_domains)


def imap_check() -> None:
    """Connect to each MAILGATE_IMAP_URL mailbox and say what is there; changes nothing."""
    from worker.console import out
    from worker.ingress.imap_check import print_mailbox_checks

    if print_mailbox_checks(settings(), out.print):
        raise typer.Exit(1)


def register(
    policy_app: typer.Typer, imap_app: typer.Typer, read_settings: Callable[[], Settings]
) -> None:
    """Add ``policy check``, ``policy show`` and ``imap check``."""
    _settings[:] = [read_settings]
    policy_app.command("check")(exits()(policy_check))
    policy_app.command("show")(exits()(policy_show))
    imap_app.command("check")(exits()(imap_check))
