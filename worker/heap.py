"""The long-lived heap set aside from the garbage collector once ``serve`` has loaded it.

Everything loaded before the listeners open (modules, the policies, the language models,
the reply catalogues, SQLAlchemy's compiled statements) lives as long as the process.
The cyclic collector would still walk all of it at every full collection, a pause that
lands inside some client's DATA→250; ``gc.freeze()`` moves it to a generation the
collector never scans. Done before the workers fork, it also keeps the collector from
writing to those pages, so that forked workers keep sharing them.
"""

from __future__ import annotations

import gc


def settle() -> int:
    """Collect once, then freeze what remains; returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
