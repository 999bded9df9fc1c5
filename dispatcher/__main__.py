"""``python -m dispatcher``: the same as the ``dispatcher`` command."""

from __future__ import annotations

from dispatcher.cli import main

main()
