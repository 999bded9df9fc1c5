"""What every command needs: the workspace, the store, consoles and honest exit codes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from dispatcher.config import Workspace
from dispatcher.errors import StoreError
from dispatcher.store import Store

if TYPE_CHECKING:
    from dispatcher.core.campaign import Campaign

# Campaign, list and file names, SMTP replies and subscriber data are printed all the
# time: they are text, not Rich markup ("sale [/b]" must not stop `status`). A message
# that styles itself says so with markup=True and escapes what it quotes.
console = Console(markup=False)
# Error lines carry file paths and line numbers: never break them at the terminal width.
errors = Console(stderr=True, soft_wrap=True, markup=False)

# Exit codes: 0 done, 1 an error stopped the command, 2 bad usage (click's own),
# 3 the command ran but some recipients were not delivered, 130 Ctrl-C (typer's).
EXIT_ERROR = 1
EXIT_UNDELIVERED = 3
EXIT_INTERRUPTED = 130


@dataclass
class State:
    """Global options, carried on the Typer context; the store opens on first use."""

    workspace_dir: Path | None = None
    database: str | None = None
    _workspace: Workspace | None = field(default=None, repr=False)
    _store: Store | None = field(default=None, repr=False)

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            self._workspace = Workspace.load(self.workspace_dir)
        return self._workspace

    @property
    def store(self) -> Store:
        if self._store is None:
            url = self.workspace.database_url(self.database)
            try:
                self._store = Store.open(url)
            except StoreError:
                raise
            except (SQLAlchemyError, ImportError) as exc:
                # Not a database file, an unknown URL scheme, a driver that is not
                # installed: all of them are "this store URL cannot be used".
                cause = getattr(exc, "orig", None) or exc
                raise StoreError(f"cannot open the store at {hide_password(url)}: "
                                 f"{cause}") from exc
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def hide_password(url: str) -> str:
    """A store or mailbox URL as it may be shown: ``user:***@host``."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    if not isinstance(obj, State):
        obj = State()
        ctx.find_root().obj = obj
    return obj


def campaign_path(ws: Workspace, file: Path) -> Path:
    """A campaign file as given, or relative to the workspace when that is where it is."""
    if file.exists() or file.is_absolute():
        return file
    return ws.root / file


def load(ctx: typer.Context, file: Path) -> tuple[State, Campaign, Path]:
    # Imported here: the campaign loader (its models, Jinja2) cost the commands that read
    # no campaign (lists, import, export, subscriber) ~0.1 s at every start.
    from dispatcher.campaigns.loader import load_campaign

    st = state(ctx)
    path = campaign_path(st.workspace, file)
    # With the workspace, a missing template is reported at its line in the campaign.
    return st, load_campaign(path, root=st.workspace.root), path


def group(app: typer.Typer, name: str, help: str) -> typer.Typer:
    """The sub-command group ``name`` (``dispatcher campaign ...``), shared by several modules."""
    for info in app.registered_groups:
        if info.name == name and info.typer_instance is not None:
            return info.typer_instance
    sub = typer.Typer(help=help, no_args_is_help=True)
    app.add_typer(sub, name=name)
    return sub
