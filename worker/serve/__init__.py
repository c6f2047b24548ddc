"""``mailgate serve``: the listeners, the outbox worker, periodic jobs and a clean shutdown.

One module per job: ``server`` (one process: start its listeners, run, stop cleanly),
``listeners`` (the table of listeners and how each opens), ``jobs`` (the outbox loop and
the table of periodic jobs), ``supervisor`` (``serve()`` itself: forked ``--workers``,
stop signals from the first instant), ``health`` (what ``/readyz`` asks), ``preflight``
(what start-up refuses, loads and announces).
"""

from worker.serve.server import Server
from worker.serve.supervisor import EarlyStop, serve

__all__ = ["EarlyStop", "Server", "serve"]
