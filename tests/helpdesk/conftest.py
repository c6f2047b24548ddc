"""The Request Tracker the helpdesk tests share: set up and started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rt_server import RequestTracker


@pytest.fixture(scope="session")
def rt() -> Iterator[RequestTracker]:
    instance = RequestTracker()
    try:
        instance.setup()
        instance.start()
        yield instance
    finally:
        instance.close()
