"""How real helpdesks write their ticket references, so that replies to them are recognised.

Each helpdesk puts its ticket number into the subject of every notification in a format of
its own; ``PRESETS`` holds each one's default (from its documentation and source), and a
policy's ``[matching]`` may name them instead of writing a pattern. Request Tracker also
threads by its own Message-IDs (``RT::Interface::Email::GenMessageId``:
``<rt-<version>-<pid>-<epoch>-<rand>.<ticket>-<scrip>-<n>@<Organization>>``) and its
``X-RT-Ticket: <rtname> #<id>`` header; with ``MAILGATE_HELPDESK=rt`` and
``MAILGATE_HELPDESK_NAME`` these are recognised without touching the policy. Like a subject
tag none of them is proof of anything: the sender must still belong to the ticket.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# {name} is the helpdesk's name where its tag carries one (RT's $rtname).
PRESETS: dict[str, str] = {
    # Wildix's own desk: [Ticket#123].
    "wildix": r"\[Ticket#(?P<ticket>\d{1,12})\]",
    # Request Tracker: "[$rtname #$id]" (RT::Interface::Email::AddSubjectTag, ParseTicketId).
    "rt": r"\[{name}\s+#(?P<ticket>\d{1,12})\s*\]",
    # Znuny / OTRS: Ticket::Hook "Ticket#", HookDivider "", the DateChecksum number
    # generator's 16 digits (date, SystemID, counter, checksum): [Ticket#2024010110000011].
    "znuny": r"\[Ticket#(?P<ticket>\d{1,20})\]",
    "otrs": r"\[Ticket#(?P<ticket>\d{1,20})\]",
    # Zammad: ticket_hook "Ticket#", ticket_hook_divider "" (older setups ": "), the
    # Increment generator's SystemID-prefixed number: [Ticket#31001].
    "zammad": r"\[Ticket#(?::\s?)?(?P<ticket>\d{1,20})\]",
    # osTicket: the templates' "[#%{ticket.number}]", number format "######" by default
    # (a format may add letters and dashes).
    "osticket": r"\[#(?P<ticket>[0-9A-Za-z][0-9A-Za-z-]{0,19})\]",
    # Freshdesk: "[#{{ticket.id}}]", optionally with the account's prefix ([#Acme-1234]).
    "freshdesk": r"\[#(?:[A-Za-z][0-9A-Za-z]*-)?(?P<ticket>\d{1,12})\]",
    # Jira (Service Management): the issue key, upper case as Jira writes it, e.g.
    # "[JIRA] (ABC-123) Summary" or "ABC-123: Summary"; case-sensitive so "covid-19" is none.
    "jira": r"(?-i:(?<![\w-])(?P<ticket>[A-Z][A-Z0-9_]{1,9}-[1-9][0-9]{0,8})(?![\w-]))",
}
ANY_RT_NAME = r"[^\]\[#]+?"
RT_MESSAGE_ID = re.compile(
    # The version holds "-", "+" and "~" on Debian (5.0.3+dfsg-3~deb12u2): greedy, then
    # the four numeric fields anchor it from the right.
    r"^<rt-(?P<version>.+)-(?P<pid>\d+)-(?P<epoch>\d+)-(?P<rand>\d+)\.(?P<ticket>\d+)"
    r"-(?P<scrip>\d+)-(?P<n>\d+)@(?P<domain>[^<>\s]+)>$",
    re.IGNORECASE,
)


def preset_pattern(preset: str, name: str | None = None) -> str:
    """The pattern of a preset; ``rt`` with a name matches that name only."""
    pattern = PRESETS[preset]
    return pattern.replace("{name}", re.escape(name) if name else ANY_RT_NAME)


def tag_pattern(value: str, name: str | None = None) -> str:
    """A ``subject_tag`` setting as a pattern: a preset's name, or a pattern of its own."""
    return preset_pattern(value.lower(), name) if value.lower() in PRESETS else value


def rt_ticket_in_message_id(message_id: str) -> str | None:
    """The ticket of one of RT's Message-IDs, or None."""
    match = RT_MESSAGE_ID.match(message_id.strip())
    return match["ticket"] if match and match["ticket"] != "0" else None


def rt_ticket_header(value: str, name: str) -> str | None:
    """The ticket of an ``X-RT-Ticket: <rtname> #<id>`` header naming our RT."""
    match = re.fullmatch(rf"\s*{re.escape(name)}\s+#(\d{{1,12}})\s*", value, re.IGNORECASE)
    return match[1] if match else None


@dataclass(frozen=True)
class HelpdeskReferences:
    """What the configured helpdesk adds to the policy's matching (nothing by default)."""

    subject_tags: tuple[str, ...] = ()
    rt_name: str | None = None
    rt_message_ids: bool = False

    @classmethod
    def for_helpdesk(cls, helpdesk: str | None, name: str | None) -> HelpdeskReferences:
        if helpdesk == "rt":
            return cls((preset_pattern("rt", name),), name, True)
        return cls()


def ticket_group(pattern: str) -> str:
    """The text of the ``(?P<ticket>…)`` group of a pattern (balanced, escapes skipped)."""
    start = pattern.index("(?P<ticket>") + len("(?P<ticket>")
    depth, index, in_class = 1, start, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return pattern[start:index]
        index += 1
    raise ValueError("unbalanced (?P<ticket>…) group")


def could_match(pattern: str, ticket: str) -> bool:
    """Whether a reference written with this pattern could ever carry this ticket id."""
    return re.fullmatch(ticket_group(pattern), ticket, re.IGNORECASE) is not None
