"""``dispatcher dashboard``: watch and steer every campaign in a terminal UI."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from dispatcher.commands.common import state


def dashboard(
    ctx: typer.Context,
    database: Annotated[str | None, typer.Option(
        "--database", help="Store URL to watch (default: the workspace's store).")] = None,
    interval: Annotated[float, typer.Option(
        "--interval", min=0.2, help="Seconds between refreshes.")] = 1.0,
    light: Annotated[bool, typer.Option("--light", help="Start in the light theme.")] = False,
) -> None:
    """Open the live dashboard: campaigns, throughput, relays, domains, events."""
    from dispatcher.dashboard import DashboardApp, StoreSource  # Textual loads only when used

    st = state(ctx)
    if database:
        st.database = database
    store = st.store
    location = make_url(str(store.engine.url)).render_as_string(hide_password=True)
    app = DashboardApp(StoreSource(store), location=location, interval=interval,
                       theme="textual-light" if light else "textual-dark")
    app.run()


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)
