"""``dispatcher subscriber show|unsubscribe|delete EMAIL``: one person at a time."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from dispatcher.commands.common import console, state
from dispatcher.lists import admin

subscriber_app = typer.Typer(help="One subscriber: show, unsubscribe, delete (GDPR erasure).",
                             no_args_is_help=True)


@subscriber_app.command("show")
def show(ctx: typer.Context, email: str,
         as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """Everything stored about EMAIL: status, attributes, lists, recent events."""
    info = admin.show_subscriber(state(ctx).store, email)
    if as_json:
        print(json.dumps(info, ensure_ascii=False))
        return
    table = Table(title=info["email"], show_header=False)
    for key in ("name", "status", "created_at", "updated_at"):
        table.add_row(key, str(info[key]))
    for key, value in info["attributes"].items():
        table.add_row(f"attributes.{key}", json.dumps(value, ensure_ascii=False)
                      if not isinstance(value, str) else value)
    for name, status in info["lists"].items():
        table.add_row(f"list {name}", status)
    for event in info["events"]:
        table.add_row(f"event {event['at']}", f"{event['kind']} ({event['source']}) "
                      f"{event['detail']}".strip())
    console.print(table)


@subscriber_app.command("unsubscribe")
def unsubscribe(ctx: typer.Context, email: str, list_name: Annotated[str | None, typer.Option(
        "--list", "-l", help="Only from this list (default: from everything).")] = None) -> None:
    """Unsubscribe EMAIL from all mail, or from one list."""
    changed = admin.unsubscribe(state(ctx).store, email, list_name)
    where = f"list {list_name!r}" if list_name else "all mail"
    console.print(f"{email} unsubscribed from {where}" if changed
                  else f"{email} was already unsubscribed from {where}")


@subscriber_app.command("delete")
def delete(ctx: typer.Context, email: str,
           yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False) -> None:
    """Erase EMAIL (GDPR): personal data deleted, a hashed suppression kept so it is never
    mailed or imported again."""
    if not yes:
        typer.confirm(f"erase {email} and everything stored about them?", abort=True)
    admin.erase(state(ctx).store, email)
    console.print(f"{email} erased; its SHA-256 stays in the suppression list")


def register(app: typer.Typer) -> None:
    app.add_typer(subscriber_app, name="subscriber")
