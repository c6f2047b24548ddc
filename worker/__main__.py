"""Allows ``python -m worker`` as an alias of the ``mailgate`` console script."""

from worker.launcher import main

main()
