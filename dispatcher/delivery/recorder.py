"""Outcomes on their way to the store: written in the background, never more than a window.

Sessions hand every reply over (:meth:`Recorder.add`) and go on sending; a
writer task records them in batches (``record``, one transaction in a
thread) once half a batch waits or the oldest is ``flush_seconds`` old. A
delivery leaves ``claimed`` only in such a write, after its relay answered.

What a ``kill -9`` can cost is the answered-but-unwritten outcomes: sessions
wait (:meth:`Recorder.wait_for_room`) before sending while ``limit`` of them
are in the write under way or waiting for the next. One send completes at
most two messages (the one it sends and the one whose content it carried,
see ``session.py``), so with ``limit`` = batch - sessions at most batch +
sessions are ever in that state: the run's ``in_flight_window``. Writing
half the limit at a time keeps the next write ready before the limit is
reached, so sessions do not stop for the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from dispatcher.delivery.queue import Outcome, record
from dispatcher.store.database import Store


class Recorder:
    def __init__(self, store: Store, campaign_id: int, *, limit: int, flush_seconds: float,
                 clock: Callable[[], datetime]) -> None:
        self.store, self.campaign_id, self.clock = store, campaign_id, clock
        self.limit = self.size = 1
        self.bound(limit)
        self.flush_seconds = flush_seconds
        self.waiting: list[Outcome] = []
        self.writing = 0
        self.error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._room = asyncio.Event()
        self._room.set()

    def bound(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.size = max(1, self.limit // 2)

    @property
    def full(self) -> bool:
        return len(self.waiting) + self.writing >= self.limit

    def add(self, outcome: Outcome) -> None:
        self.waiting.append(outcome)
        if self._task is None and len(self.waiting) >= self.size:
            self._start()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.flush_seconds,
                                                                 self._on_timer)

    async def wait_for_room(self) -> None:
        while self.full and self.error is None:
            self._room.clear()
            await self._room.wait()
        if self.error is not None:
            raise self.error

    async def close(self) -> None:
        """Write everything still waiting; raises what a background write raised."""
        while self._task is not None:
            await asyncio.shield(self._task)
        if self.waiting and self.error is None:
            self._start()
            if self._task is not None:
                await asyncio.shield(self._task)
        if self._timer is not None:
            self._timer.cancel()
        if self.error is not None:
            raise self.error

    def _on_timer(self) -> None:
        self._timer = None
        if self._task is None and self.waiting:
            self._start()

    def _start(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        chunk, self.waiting = self.waiting, []
        self.writing = len(chunk)
        self._task = asyncio.get_running_loop().create_task(self._write(chunk))

    async def _write(self, chunk: list[Outcome]) -> None:
        try:
            await asyncio.to_thread(record, self.store, self.campaign_id, chunk, relay="",
                                    now=self.clock())
        except Exception as exc:  # re-raised to the sessions and by close()
            self.error = exc
        finally:
            self.writing = 0
            self._task = None
            self._room.set()
        if self.error is None and len(self.waiting) >= self.size:
            self._start()
        elif self.waiting and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.flush_seconds,
                                                                self._on_timer)
