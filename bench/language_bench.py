"""Precision and recall of "is this English" for lingua configurations, with their cost.

One command: ``.venv/bin/python bench/language_bench.py``. The labelled corpus is built at
run time, never committed: Django's translation catalogues (the wheel is fetched from
PyPI with pip into ``.cache/corpora``): each ``msgid`` is English text written by people,
each ``msgstr`` the same sentence written by a translator, labelled by the catalogue's
language directory. Only sentence-like entries are kept (three words or more, at least
20 letters once placeholders and markup are removed), then a fixed, seeded sample per
language. The oracle is therefore the file a text came from, never a detector.

Each configuration runs in a fresh process and is judged the way the ``language`` rule
judges (``worker.policy.rules.language``): a text is taken as "not English" only when the
detector names another language with confidence at least 0.5 and the text has at least
20 letters; otherwise the rule lets it through. Printed per configuration: precision and
recall of "English" (what the rule accepts), how many foreign texts slip through, the
top-1 accuracy over all languages, build/load seconds, resident memory after loading, and
mean detection time per text.
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "corpora"
DJANGO = "django==5.2.19"
# Catalogue directory → ISO 639-1: languages support mail arrives in, plus a few it does not.
FOREIGN = {
    "de": "de", "fr": "fr", "it": "it", "es": "es", "pt": "pt", "nl": "nl", "pl": "pl",
    "ru": "ru", "uk": "uk", "cs": "cs", "sv": "sv", "tr": "tr", "hu": "hu", "ro": "ro",
    "fi": "fi", "el": "el", "id": "id", "vi": "vi",
}  # fmt: skip
PER_LANGUAGE, ENGLISH = 15, 150
FLOORS = (0.5, 0.7, 0.9)  # the policy's min_confidence (0.5 today) and stricter ones
CATALOGUES = ("django/conf/locale/", "django/contrib/admin/locale/", "django/contrib/auth/locale/")
CONFIGS = {
    "current: 32 languages, high accuracy, lazy": ("subset32", False, False),
    "32 languages, high accuracy, preloaded": ("subset32", False, True),
    "32 languages, low accuracy, preloaded": ("subset32", True, True),
    "all 75 languages, high accuracy, preloaded": ("all", False, True),
    "all 75 languages, low accuracy, preloaded": ("all", True, True),
}
_PLACEHOLDER = re.compile(r"%\([^)]*\)[sdr]|%[sdr]|\{[^}]*\}|<[^>]+>|&[a-z]+;")


def fetch_django() -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    wheels = sorted(CACHE.glob("django-5.2.19-*.whl"))
    if not wheels:
        command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", DJANGO]
        subprocess.run([*command, "--only-binary", ":all:", "-d", str(CACHE)], check=True)
        wheels = sorted(CACHE.glob("django-5.2.19-*.whl"))
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


def corpus() -> list[tuple[str, str]]:
    """(language, text) pairs: English msgids and each foreign catalogue's msgstrs."""
    found: dict[str, set[str]] = {"en": set()}
    with zipfile.ZipFile(fetch_django()) as wheel:
        for name in wheel.namelist():
            parts = name.split("/")
            if not name.endswith("django.po") or not name.startswith(CATALOGUES):
                continue
            language = FOREIGN.get(parts[-3])
            for msgid, msgstr in po_pairs(wheel.read(name).decode()):
                if (english := sentence(msgid)) is not None:
                    found["en"].add(english)
                if language and msgstr and (foreign := sentence(msgstr)) is not None:
                    found.setdefault(language, set()).add(foreign)
    rng = random.Random(14)
    sample = [("en", t) for t in rng.sample(sorted(found["en"]), ENGLISH)]
    for language in sorted(FOREIGN.values()):
        texts = sorted(found.get(language, ()))
        sample += [(language, t) for t in rng.sample(texts, min(PER_LANGUAGE, len(texts)))]
    return sample


def measure(name: str, items: list[tuple[str, str]]) -> dict[str, Any]:
    """Run in a fresh process: one configuration over the corpus."""
    from lingua import Language, LanguageDetectorBuilder

    from worker.language import LANGUAGES

    languages, low, preload = CONFIGS[name]
    started = time.perf_counter()
    if languages == "all":
        builder = LanguageDetectorBuilder.from_all_languages()
    else:
        builder = LanguageDetectorBuilder.from_languages(*(getattr(Language, n) for n in LANGUAGES))
    if low:
        builder = builder.with_low_accuracy_mode()
    if preload:
        builder = builder.with_preloaded_language_models()
    detector = builder.build()
    built = time.perf_counter() - started
    guesses = []
    started = time.perf_counter()
    for _, text in items:
        values = detector.compute_language_confidence_values(text)
        best = values[0] if values else None
        code = best.language.iso_code_639_1.name.lower() if best else None
        guesses.append((code, best.value if best else 0.0))
    detect = (time.perf_counter() - started) / len(items)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"guesses": guesses, "build_s": built, "detect_ms": detect * 1000, "rss_mib": rss}


def judged(items: list[tuple[str, str]], guesses: list[list[Any]], floor: float) -> dict[str, int]:
    """The rule's verdicts at confidence ``floor``, counted against the labels."""
    counts = {"tp": 0, "fp": 0, "fn": 0, "tn": 0, "top1": 0}
    for (language, _), (code, confidence) in zip(items, guesses, strict=True):
        counts["top1"] += code == language
        rejected = code not in (None, "en") and confidence >= floor
        english = language == "en"
        counts[("tp" if english else "fp") if not rejected else ("fn" if english else "tn")] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child process: one configuration
    args = parser.parse_args()
    items = corpus()
    if args.one:
        print(json.dumps(measure(args.one, items)))
        return
    languages = sorted({language for language, _ in items})
    english = sum(language == "en" for language, _ in items)
    print(f"corpus: {len(items)} texts, {english} English, {len(items) - english} in", end=" ")
    print(f"{len(languages) - 1} other languages ({', '.join(languages)}), from {DJANGO}")
    header = (
        "| configuration | floor | precision | recall | foreign let through | top-1 | build s |"
    )
    print(header + " RSS MiB | ms/text |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in CONFIGS:
        out = subprocess.run(
            [sys.executable, __file__, "--one", name], capture_output=True, text=True, check=True
        )
        result = json.loads(out.stdout)
        for floor in FLOORS:
            r = judged(items, result["guesses"], floor)
            precision = r["tp"] / max(r["tp"] + r["fp"], 1)
            recall = r["tp"] / max(r["tp"] + r["fn"], 1)
            print(
                f"| {name} | {floor} | {precision:.3f} | {recall:.3f} "
                f"| {r['fp']}/{r['fp'] + r['tn']} "
                f"| {r['top1'] / len(items):.3f} | {result['build_s']:.2f} "
                f"| {result['rss_mib']:.0f} | {result['detect_ms']:.2f} |"
            )


if __name__ == "__main__":
    main()
