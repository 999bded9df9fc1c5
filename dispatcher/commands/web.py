"""``dispatcher web``: the unsubscribe and tracking endpoints, served by uvicorn."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer
import uvicorn

from dispatcher.commands.common import console, state
from dispatcher.web.app import create_app
from dispatcher.web.server import listen


def web(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on (behind a TLS proxy).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8080,
) -> None:
    """Serve one-click unsubscribe (RFC 8058), the preference page and open/click tracking."""
    st = state(ctx)
    app = create_app(st.store, st.workspace.config.sending.unsubscribe_url)
    sock = listen(host, port)
    console.print(f"serving unsubscribe and tracking on http://{host}:{sock.getsockname()[1]}")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    # Ctrl-C is how a foreground server is stopped: uvicorn has shut down cleanly by then.
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])


def register(app: typer.Typer) -> None:
    app.command("web")(web)
