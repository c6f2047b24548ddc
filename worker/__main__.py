"""Allows ``python -m worker`` as an alias of the ``mailgate`` console script."""

from worker.cli import main

main()
