"""Which language a reply is written in (SPEC "Replies in the customer's language").

First the language of what the customer wrote in this message, judged by the identifier
the ``language`` rule uses, with the policy's thresholds (letters, confidence), and only
when every sentence long enough to judge agrees: a mixed text, two words or a bare
signature are unclear (a text without a line of four words has no sentence to judge).
Then the first shipped language the message's ``Content-Language`` or
``Accept-Language`` names. Else English. The choice and why is one trace step.
"""

from __future__ import annotations

import re

from worker.catalogues import DEFAULT, SHIPPED
from worker.decision import ReplyLanguage
from worker.language import LanguageGuess, identify
from worker.mail import InboundMail
from worker.policy.document import Language, Policy

# A sentence shorter than this is not judged on its own when looking for a second language.
_SENTENCE_LETTERS = 25
# A second language holding this share of the judged letters makes the text mixed.
_MIX = 0.3
_MAX_SENTENCES = 40
# A text with no line of this many words is a greeting or a signature, not a sentence.
_SENTENCE_WORDS = 4
_SENTENCES = re.compile(r"(?<=[.!?;])\s+|\n+")
_QUALITY = re.compile(r"q\s*=\s*([01](?:\.\d{1,3})?)")


def _from_text(
    text: str, settings: Language, guess: LanguageGuess | None = None
) -> tuple[str | None, str]:
    """The text's language when it is clear, else None; and what was found."""
    if not any(len(line.split()) >= _SENTENCE_WORDS for line in text.splitlines()):
        # Greetings, a name, a signature block: words, but not a sentence to judge.
        return None, "no sentence to judge"
    if guess is None:
        guess = identify(text)
    if guess.language is None or guess.letters < settings.min_letters:
        return None, f"text too short to judge ({guess.letters} letters)"
    if guess.confidence < settings.min_confidence:
        return None, f"text unclear: {guess.language} at {guess.confidence:.2f}"
    others = _other_languages(text, guess.language, settings)
    if others:
        return None, f"text mixes {guess.language} and {', '.join(sorted(others))}"
    return guess.language, f"text in {guess.language} ({guess.confidence:.2f})"


def _other_languages(text: str, language: str, settings: Language) -> set[str]:
    """Other languages that whole sentences are confidently written in, when they hold a
    good share of the text (a one-line English disclaimer under Italian is not a mix)."""
    letters: dict[str, int] = {}
    # As much as the identifier reads of the whole, and a bounded number of sentences.
    for sentence in _SENTENCES.split(text[:4000])[:_MAX_SENTENCES]:
        count = sum(map(str.isalpha, sentence))
        if count < _SENTENCE_LETTERS:
            continue
        guess = identify(sentence)
        sure = guess.confidence >= max(settings.min_confidence, 0.8)
        judged = str(guess.language) if guess.language and sure else language
        letters[judged] = letters.get(judged, 0) + count
    total = sum(letters.values()) or 1
    return {name for name, count in letters.items() if name != language and count / total >= _MIX}


def _from_headers(mail: InboundMail) -> tuple[str | None, str]:
    """The first shipped language named by Content-Language, then by Accept-Language
    (highest q first)."""
    for header in ("Content-Language", "Accept-Language"):
        value = mail.header(header) or ""
        tags: list[tuple[float, int, str]] = []
        for position, part in enumerate(value.split(",")):
            tag, _, params = part.strip().partition(";")
            quality = 1.0
            match = _QUALITY.search(params)
            if match:
                quality = float(match.group(1))
            primary = tag.strip().lower().split("-")[0]
            if primary in SHIPPED and quality > 0:
                tags.append((-quality, position, primary))
        if tags:
            chosen = min(tags)[2]
            return chosen, f"{header}: {chosen}"
    return None, ""


def choose(mail: InboundMail, policy: Policy | None) -> ReplyLanguage:
    """The language of the reply to ``mail``, and why."""
    settings = policy.document.language if policy is not None else Language()
    language, found = _from_text(mail.written_text, settings, mail.written_language)
    if language in SHIPPED:
        return ReplyLanguage(str(language), found)
    if language is not None:
        found = f"{found}, not shipped"
    named, header = _from_headers(mail)
    if named is not None:
        return ReplyLanguage(named, f"{found}; {header}")
    return ReplyLanguage(DEFAULT, f"{found}; English by default", by_default=True)
