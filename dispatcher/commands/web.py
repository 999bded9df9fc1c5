"""``dispatcher web``: the unsubscribe and tracking endpoints, served by uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from dispatcher.commands.common import console, state
from dispatcher.web.app import create_app


def web(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on (behind a TLS proxy).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
) -> None:
    """Serve one-click unsubscribe (RFC 8058), the preference page and open/click tracking."""
    st = state(ctx)
    app = create_app(st.store, st.workspace.config.sending.unsubscribe_url)
    console.print(f"serving unsubscribe and tracking on http://{host}:{port}")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    app.command("web")(web)
