"""Offline language identification of the text a customer actually wrote.

Quoted history and signatures are cut off first (they are usually in the language of the
support desk and would make every reply look English). Identification uses lingua, whose
models ship inside the wheel: nothing is downloaded at run time. The detector is built once
per process, restricted to the languages support mail arrives in, in lingua's high
accuracy mode (``bench/language_bench.py``: the low accuracy mode needs a tenth of the
memory but took correct English for another language in 2 to 9 % of the texts).
``serve`` calls ``preload()`` before its listeners open and before it forks workers, so no
client waits for a model and the workers share its pages; one-shot commands (``ingest``,
``explain``) load lazily, and only when a message reaches the language rule.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

_QUOTE_HEADERS = re.compile(
    r"^\s*(?:"
    r"On .{0,200}wrote:|Le .{0,200}a écrit\s*:|Am .{0,200}schrieb .{0,100}:|"
    r"Il giorno .{0,200}ha scritto:|El .{0,200}escribió:|Em .{0,200}escreveu:|"
    r"Op .{0,200}schreef .{0,100}:|W dniu .{0,200}napisał.{0,20}:|"
    # Android and others: "02.04.2012 14:20 пользователь "Bob" <bob@…> написал:"
    r"\d{1,4}[./-]\d{1,2}[./-]\d{2,4}.{0,200}"
    r"(?:написал|написала|пишет|napsal|napísal|skrev|kirjoitti|wrote|schrieb)\S{0,4}\s*:|"
    r"-{2,}\s*Original Message\s*-{2,}|-{2,}\s*Messaggio originale\s*-{2,}|"
    r"-{2,}\s*Ursprüngliche Nachricht\s*-{2,}|-{2,}\s*Message d'origine\s*-{2,}|"
    r"_{10,}|"
    r"(?:From|Da|Von|De|Van|Od|Från|Fra):\s.*"
    r")\s*$",
    re.IGNORECASE,
)
_SIGNATURE = re.compile(r"^(?:-- ?|—|Sent from my .*|Inviato da .*|Von meinem .* gesendet)\s*$")

LANGUAGES = (
    "ENGLISH",
    "ITALIAN",
    "GERMAN",
    "FRENCH",
    "SPANISH",
    "PORTUGUESE",
    "DUTCH",
    "POLISH",
    "RUSSIAN",
    "UKRAINIAN",
    "CZECH",
    "SLOVAK",
    "HUNGARIAN",
    "ROMANIAN",
    "SWEDISH",
    "DANISH",
    "BOKMAL",
    "FINNISH",
    "TURKISH",
    "GREEK",
    "CROATIAN",
    "SLOVENE",
    "BULGARIAN",
    "CATALAN",
    "CHINESE",
    "JAPANESE",
    "KOREAN",
    "ARABIC",
    "HEBREW",
    "ESTONIAN",
    "LATVIAN",
    "LITHUANIAN",
)

_lock = threading.Lock()
_detector = None


def _quoting(line: str, following: str = "") -> bool:
    """A quoted line or a quote header, also one that a client wrapped onto two lines."""
    if line.lstrip().startswith(">") or _QUOTE_HEADERS.match(line):
        return True
    return bool(following) and bool(_QUOTE_HEADERS.match(f"{line} {following}"))


def reply_text(body: str) -> str:
    """The newest part of a reply: stops at the first quote header, quoted line or signature.

    A bottom-posted reply (the quote first, the answer below it) keeps the unquoted lines
    after the quote instead of nothing.
    """
    lines = body.replace("\r\n", "\n").split("\n")
    pairs = list(zip(lines, [*lines[1:], ""], strict=True))
    kept: list[str] = []
    for line, following in pairs:
        if _quoting(line, following) or _SIGNATURE.match(line):
            break
        kept.append(line)
    text = "\n".join(kept).strip()
    if text:
        return text
    below: list[str] = []
    for line, following in pairs:
        if _SIGNATURE.match(line) and below:
            break
        if not _quoting(line, following):
            below.append(line)
    return "\n".join(below).strip()


@dataclass(frozen=True)
class LanguageGuess:
    language: str | None  # ISO 639-1, lower case; None when undetermined
    confidence: float
    letters: int


def _get_detector(*, preloaded: bool = False):  # type: ignore[no-untyped-def]
    global _detector
    with _lock:
        if _detector is None:
            from lingua import Language, LanguageDetectorBuilder

            languages = [getattr(Language, name) for name in LANGUAGES]
            builder = LanguageDetectorBuilder.from_languages(*languages)
            if preloaded:
                builder = builder.with_preloaded_language_models()
            _detector = builder.build()
        return _detector


def preload() -> float:
    """Load every language model now (seconds taken); a no-op once a detector exists."""
    started = time.perf_counter()
    _get_detector(preloaded=True)
    return time.perf_counter() - started


def identify(text: str) -> LanguageGuess:
    letters = sum(1 for ch in text if ch.isalpha())
    if not text.strip():
        return LanguageGuess(None, 0.0, 0)
    detector = _get_detector()
    values = detector.compute_language_confidence_values(text[:4000])
    if not values:
        return LanguageGuess(None, 0.0, letters)
    best = values[0]
    code = best.language.iso_code_639_1.name.lower()
    return LanguageGuess(code, float(best.value), letters)
