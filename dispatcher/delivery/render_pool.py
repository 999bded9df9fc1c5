"""Rendering in worker processes, so one core renders while the other sends.

Each process builds its own :class:`Renderer` once (compiling MJML and Jinja
there) from a picklable factory, e.g. ``functools.partial(Renderer, campaign,
root=..., sending=..., secret=..., campaign_id=...)``, then renders chunks of
recipients; only recipients and finished bytes cross the process boundary.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

from dispatcher.errors import DispatcherError
from dispatcher.render import Recipient, RenderedMessage, Renderer

_renderer: Renderer | None = None


def _start(factory: Callable[[], Renderer]) -> None:
    global _renderer
    _renderer = factory()


def _render(recipients: Sequence[Recipient]) -> list[RenderedMessage | str]:
    assert _renderer is not None
    out: list[RenderedMessage | str] = []
    for recipient in recipients:
        try:
            out.append(_renderer.render(recipient))
        except DispatcherError as exc:
            out.append(str(exc))
    return out


class RenderPool:
    def __init__(self, factory: Callable[[], Renderer], processes: int, chunk: int = 50) -> None:
        # "spawn" keeps the children free of the parent's threads, sockets and event loop.
        self.executor = ProcessPoolExecutor(
            processes, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start, initargs=(factory,))
        self.chunk = chunk

    async def render(self, recipients: Sequence[Recipient]) -> list[RenderedMessage | str]:
        loop = asyncio.get_running_loop()
        parts = [recipients[i:i + self.chunk] for i in range(0, len(recipients), self.chunk)]
        results = await asyncio.gather(*(loop.run_in_executor(self.executor, _render, part)
                                         for part in parts))
        return [item for part in results for item in part]

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
