"""The pure heart of dispatcher: rules and arithmetic, no I/O.

Nothing in here opens a socket, a database, a file or a screen; an
import-linter contract in ``pyproject.toml`` keeps it that way, so every
module here is tested with plain values.
"""
