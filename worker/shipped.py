"""Files that ship inside the package: the policies and their reply templates.

``pip install mailgate`` gives no ``./policies`` to read, so the policies are package data
(``worker/shipped_policies``, in the source tree a link to the top-level ``policies/``),
and ``MAILGATE_POLICY_DIR`` unset means these; a desk with policies of its own sets it.
Gettext catalogues ride along the same way under ``worker/locale/``.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def shipped_policy_dir() -> Path:
    """The policies installed with this copy of mailgate (``MAILGATE_POLICY_DIR``'s default)."""
    return (PACKAGE / "shipped_policies").resolve()
