"""The ``dispatcher`` command: global options, then every module of :mod:`dispatcher.commands`."""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import traceback
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from dispatcher import commands
from dispatcher.commands.common import EXIT_ERROR, EXIT_INTERRUPTED, State, errors
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
        _fail(escape(str(exc)))
    except SQLAlchemyError as exc:
        # The store went away or refused a statement: say which store, not a traceback.
        cause = getattr(exc, "orig", None) or exc
        _fail(escape(str(cause)), label="store error")
    except OSError as exc:
        # A file, folder or port the command was pointed at: its name and what the system said.
        where = f"{exc.filename}: " if exc.filename is not None else ""
        _fail(escape(f"{where}{exc.strerror or exc}"))
    except SystemExit as exc:
        if exc.code == EXIT_INTERRUPTED:  # typer's translation of KeyboardInterrupt
            errors.print("interrupted: what was done so far is kept; run the same command "
                         "again to go on", highlight=False)
        raise
    except Exception as exc:
        if os.environ.get("DISPATCHER_DEBUG"):
            raise
        # A bug, not bad input: no traceback for the user, but where in dispatcher to look.
        _fail(escape(f"unexpected {type(exc).__name__} at {_where(exc)}: {exc} (a bug in "
                     "dispatcher; DISPATCHER_DEBUG=1 shows the traceback)"),
              label="internal error")


def _where(exc: BaseException) -> str:
    """``dispatcher/smtp/relay.py:63``: the innermost frame of our own code."""
    package = Path(__file__).resolve().parent
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = Path(frame.filename).resolve()
        if path.is_relative_to(package):
            return f"{path.relative_to(package.parent)}:{frame.lineno}"
    return "?"


def _fail(message: str, *, label: str = "error") -> NoReturn:
    errors.print(f"[bold red]{label}:[/] {message}", markup=True, highlight=False)
    sys.exit(EXIT_ERROR)
