"""Running the web app in a background thread (tests; `dispatcher serve` beside the scheduler)."""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette

from dispatcher.errors import ConfigError


@dataclass
class RunningServer:
    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, or a :class:`ConfigError` saying why it cannot be.

    Binding here, before uvicorn starts, turns a busy port into one clear line
    instead of uvicorn's log record and its own exit code.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except (OSError, OverflowError) as exc:
        sock.close()
        # asyncio words a busy port at length; the system's short text says it all.
        reason = (os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno
                  and exc.errno > 0 else getattr(exc, "strerror", None) or str(exc))
        raise ConfigError(f"cannot listen on {host}:{port}: {reason}") from None
    return sock


def start_server(app: Starlette, *, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve ``app`` on ``host:port`` (0: a free port) in a daemon thread; wait until it listens."""
    sock = listen(host, port)
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="dispatcher-web")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    return RunningServer(server, thread, host, sock.getsockname()[1])
