"""The ``dispatcher`` command: global options, then the commands :mod:`.commands` lists."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError
from typer.core import MarkupMode, TyperCommand, TyperGroup

from dispatcher import commands
from dispatcher.commands import COMMANDS
from dispatcher.commands.common import EXIT_ERROR, EXIT_INTERRUPTED, State, errors
from dispatcher.errors import DispatcherError

if TYPE_CHECKING:
    # Typer 0.27+ carries its own copy of Click; only the annotations name its types.
    from typer._click import Command, Context


class LazyCommands(TyperGroup):
    """The commands of :data:`COMMANDS`; each imports its modules only when it runs.

    Importing every module to list the commands cost about a second at every start
    (the daemon's APScheduler, the web server's Starlette and uvicorn, the renderer's
    MJML and Jinja2, the SMTP libraries), whichever command was run.
    """

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        # Stand-ins carry what `dispatcher --help` lists; resolve_command swaps in the real one.
        self.commands.update({name: TyperCommand(name, help=entry.help)
                              for name, entry in COMMANDS.items()})
        self.unloaded = set(COMMANDS)

    def resolve_command(self, ctx: Context, args: list[str]
                        ) -> tuple[str | None, Command | None, list[str]]:
        if args and args[0] in self.unloaded:
            self.commands[args[0]] = load_command(args[0], self.rich_markup_mode)
            self.unloaded.discard(args[0])
        return super().resolve_command(ctx, args)


def load_command(name: str, markup: MarkupMode = "rich") -> Command:
    """The command ``name`` as its modules' ``register`` define it."""
    registry = typer.Typer(rich_markup_mode=markup)
    for module in COMMANDS[name].modules:
        importlib.import_module(f"{commands.__name__}.{module}").register(registry)
    return typer.main.get_group(registry).commands[name]


app = typer.Typer(
    name="dispatcher",
    help="Bulk newsletter dispatcher: import lists, check and send campaigns, watch them.",
    cls=LazyCommands,
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
