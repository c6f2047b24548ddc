"""Typo guard for settings: an unknown ``MAILGATE_`` variable or TOML key stops start-up.

pydantic-settings silently ignores environment variables it has no field for, so a
mistyped ``MAILGATE_FORWARD_TO`` would leave follow-ups going nowhere, unnoticed. Before
the settings are built, every ``MAILGATE_*`` variable and every key of the ``--config``
file is looked up in the fields of the settings model itself (never a hand-kept list, so a
setting added to the model is known here at once); an unknown one is one line naming it,
where it came from, and the nearest known name (difflib). Variables under the reserved
prefixes of ``RESERVED_PREFIXES`` belong to the test suite and the benches
(``MAILGATE_TEST_FORBID_SKIPS``, ``MAILGATE_TEST_POSTGRES_URL``, ``MAILGATE_FUZZ_EXAMPLES``):
CI exports them for the whole run, every ``mailgate`` the tests start inherits them, and
no setting will ever be named so; they are passed over, not refused.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from worker.errors import ConfigError

PREFIX = "MAILGATE_"
# Never settings: the test suite's and the benches' own knobs (see the docstring).
RESERVED_PREFIXES = ("MAILGATE_TEST_", "MAILGATE_BENCH_", "MAILGATE_FUZZ_")


def known_names(model: Any) -> frozenset[str]:
    """The setting names (lower case, no prefix) of a pydantic settings model class."""
    names = set(model.model_fields)
    for field in model.model_fields.values():
        if isinstance(field.alias, str):
            names.add(field.alias.lower())
    return frozenset(names)


def check_environment(environ: Mapping[str, str], known: frozenset[str]) -> None:
    """Refuse the first ``MAILGATE_*`` variable that names no setting (case as pydantic)."""
    for variable in sorted(environ):
        upper = variable.upper()
        if not upper.startswith(PREFIX) or upper.startswith(RESERVED_PREFIXES):
            continue
        name = upper[len(PREFIX) :].lower()
        if name not in known:
            hint = _nearest(name, known, lambda n: PREFIX + n.upper())
            raise ConfigError(f"unknown setting {variable} (from the environment){hint}")


def check_file(values: Mapping[str, Any], path: Path, known: frozenset[str]) -> None:
    """Refuse the first key of the TOML file ``path`` that names no setting."""
    for key in values:
        name = file_key(key)
        if name not in known:
            hint = _nearest(name, known, str)
            raise ConfigError(f"unknown setting {key!r} in {path}{hint}")


def file_key(key: str) -> str:
    """A TOML key as a setting name: lower case, an optional ``MAILGATE_`` prefix dropped."""
    return key.lower().removeprefix(PREFIX.lower())


def source_of(name: str, environ: Mapping[str, str], file_keys: Iterable[str]) -> str:
    """Where a bad value came from, for its error line: the variable, or the file's key."""
    variable = PREFIX + name.upper()
    if any(key.upper() == variable for key in environ):
        return variable
    for key in file_keys:
        if file_key(key) == name:
            return repr(key)
    return variable


def _nearest(name: str, known: frozenset[str], spell: Any) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean {spell(close[0])}?" if close else "; no setting has a similar name"
