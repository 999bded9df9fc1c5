"""The functions APScheduler calls, by ``"module:function"`` reference.

Jobs in the SQLAlchemy job store are pickled, so they name an importable
function and plain arguments, never a closure; the function finds the
daemon of this process through :func:`install`.
"""

from __future__ import annotations

from dispatcher.scheduler.daemon import Daemon

_daemon: Daemon | None = None

TICK = "dispatcher.scheduler.jobs:tick"
HOUSEKEEPING = "dispatcher.scheduler.jobs:housekeeping"
FIRE_CRON = "dispatcher.scheduler.jobs:fire_cron"


def install(daemon: Daemon | None) -> None:
    global _daemon
    _daemon = daemon


def _current() -> Daemon:
    if _daemon is None:
        raise RuntimeError("no dispatcher daemon runs in this process")
    return _daemon


async def tick() -> None:
    await _current().tick()


async def housekeeping() -> None:
    await _current().housekeeping()


async def fire_cron(name: str) -> None:
    await _current().fire_cron(name)
