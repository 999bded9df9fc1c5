"""Rendering claimed deliveries into wire-ready messages: here, or in worker processes.

A chunk of recipients becomes, in order, messages whose ``data`` is already
the DATA payload (:func:`prepare_data`: CRLF, dot-stuffed, ending
``CRLF.CRLF``), or an error string for a recipient whose personalisation
failed (that recipient only). Preparing the payload where the message is
rendered takes it off the sending process when a pool renders.

In a :class:`RenderPool` each process builds its own :class:`Renderer` once
(compiling MJML and Jinja there) from a picklable factory, e.g.
``functools.partial(Renderer, campaign, root=..., sending=..., secret=...,
campaign_id=...)``; only recipients and finished bytes cross the process
boundary.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

from dispatcher.errors import DispatcherError
from dispatcher.render import Recipient, RenderedMessage, Renderer
from dispatcher.smtp.client import prepare_data

Rendered = list[RenderedMessage | str]

_renderer: Renderer | None = None


def render_chunk(renderer: Renderer, recipients: Sequence[Recipient]) -> Rendered:
    out: Rendered = []
    for recipient in recipients:
        try:
            message = renderer.render(recipient)
        except DispatcherError as exc:
            out.append(str(exc))
            continue
        out.append(replace(message, data=prepare_data(message.data, crlf=True)))
    return out


def _start(factory: Callable[[], Renderer]) -> None:
    global _renderer
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()
    _renderer = factory()


def _exit_with(sentinel: int) -> None:
    # A sender killed with SIGKILL never shuts its pool down: its workers would wait for
    # work forever, holding its memory and its output pipes (a caller reading those until
    # EOF would hang). The parent's sentinel becomes readable when the parent is gone.
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def _render(recipients: Sequence[Recipient]) -> Rendered:
    assert _renderer is not None
    return render_chunk(_renderer, recipients)


def _ready() -> bool:
    return True


class RenderPool:
    def __init__(self, factory: Callable[[], Renderer], processes: int) -> None:
        # "spawn" keeps the children free of the parent's threads, sockets and event loop.
        self.executor = ProcessPoolExecutor(
            processes, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start, initargs=(factory,))
        self.processes = processes
        # A spawned process imports everything anew (~1 s): until one has, render here.
        self.ready = asyncio.wrap_future(self.executor.submit(_ready))

    def render(self, recipients: Sequence[Recipient]) -> asyncio.Future[Rendered]:
        return asyncio.wrap_future(self.executor.submit(_render, recipients))

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
