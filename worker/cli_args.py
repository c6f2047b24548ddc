"""The command line's manners typer does not have: ``--config`` anywhere, plain metavars.

``--config FILE`` is an option of ``mailgate`` itself, so click takes it only before the
subcommand; operators write ``mailgate decisions --config /etc/mailgate/mailgate.toml`` as
often as not, so ``hoist_config`` moves it to the front (up to a ``--`` that ends the
options). typer (0.2x) prints every option's Python type in its help (``<str>``,
``<bool>`` for a flag, ``{ID}`` for a required argument); ``plain_metavars`` makes the help
read as Unix help does: an option's metavar (``--since TIME``), nothing after a flag, and
an argument by its name (``[FILE]`` when optional). Where typer's internals differ (other
versions), it changes nothing.
"""

from __future__ import annotations

from typing import Any

CONFIG = "--config"


def hoist_config(argv: list[str]) -> list[str]:
    """``argv`` with every ``--config FILE`` / ``--config=FILE`` moved to the front."""
    front: list[str] = []
    rest: list[str] = []
    words = iter(argv)
    for word in words:
        if word == "--":
            rest.append(word)
            rest.extend(words)
            break
        if word == CONFIG:
            front.append(word)
            following = next(words, None)
            if following is not None:
                front.append(following)
        elif word.startswith(CONFIG + "="):
            front.append(word)
        else:
            rest.append(word)
    return front + rest


def plain_metavars() -> None:
    """Make typer's help show metavars instead of Python types (idempotent)."""
    from typer import core

    option: Any = getattr(core, "TyperOption", None)
    argument: Any = getattr(core, "TyperArgument", None)
    if option is None or argument is None or getattr(option, "_mailgate_plain", False):
        return
    if not hasattr(option, "display_type_rich") or not hasattr(argument, "_usage_display_name"):
        return

    def option_type(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False) or getattr(self, "count", False):
            return None
        if self.metavar is not None:
            return str(self.metavar)
        return str(self.name or "value").upper()  # an option someone forgot to name

    def argument_type(self: Any, ctx: Any) -> str | None:
        return None  # the name column already says it

    def usage_name(self: Any) -> str:
        name = str(self.display_name_raw)
        if self.nargs != 1 and not name.endswith("..."):
            name += "..."
        return name if self.required else f"[{name}]"

    option.display_type_rich = option_type
    argument.display_type_rich = argument_type
    argument._usage_display_name = usage_name
    option._mailgate_plain = True
