"""The ``dispatcher`` command: global options, then every module of :mod:`dispatcher.commands`."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from dispatcher import commands
from dispatcher.commands.common import EXIT_ERROR, State, errors
from dispatcher.errors import DispatcherError

app = typer.Typer(
    name="dispatcher",
    help="Bulk newsletter dispatcher: import lists, check and send campaigns, watch them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@app.callback()
def _options(
    ctx: typer.Context,
    workspace: Annotated[Path | None, typer.Option(
        "--workspace", "-w", help="Workspace folder (default: the current directory).",
        envvar="DISPATCHER_WORKSPACE", file_okay=False)] = None,
    database: Annotated[str | None, typer.Option(
        "--database", help="Store URL, e.g. postgresql://host/db (default: "
        "DISPATCHER_DATABASE_URL, dispatcher.toml, then dispatcher.db in the workspace).")] = None,
) -> None:
    st = State(workspace_dir=workspace, database=database)
    ctx.obj = st
    ctx.call_on_close(st.close)


def _register_all() -> None:
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name == "common":
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(app)


_register_all()


def main() -> None:
    try:
        app()
    except DispatcherError as exc:
        errors.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(EXIT_ERROR)
    except SQLAlchemyError as exc:
        # The store went away or refused a statement: say which store, not a traceback.
        cause = getattr(exc, "orig", None) or exc
        errors.print(f"[bold red]store error:[/] {escape(str(cause))}", highlight=False)
        sys.exit(EXIT_ERROR)
