"""``dispatcher campaign pause|resume|cancel|retry-failed NAME``."""

from __future__ import annotations

from typing import Annotated

import typer

from dispatcher.commands.common import console, group, state
from dispatcher.delivery.control import retry_failed, set_status

Name = Annotated[str, typer.Argument(help="The campaign's name (as in its YAML).")]


def pause(ctx: typer.Context, name: Name) -> None:
    """Stop sending; workers give back what they claimed. `resume` continues."""
    console.print(f"campaign {name!r} is {set_status(state(ctx).store, name, 'pause')}")


def resume(ctx: typer.Context, name: Name) -> None:
    """Continue a paused campaign (run `send` or keep a `worker` running)."""
    console.print(f"campaign {name!r} is {set_status(state(ctx).store, name, 'resume')}")


def cancel(ctx: typer.Context, name: Name) -> None:
    """Stop for good: every delivery not yet sent is skipped."""
    console.print(f"campaign {name!r} is {set_status(state(ctx).store, name, 'cancel')}")


def retry(ctx: typer.Context, name: Name) -> None:
    """Queue again only the deliveries that failed (not bounced, not sent)."""
    count = retry_failed(state(ctx).store, name)
    console.print(f"campaign {name!r}: {count} failed deliveries queued again")


def register(app: typer.Typer) -> None:
    sub = group(app, "campaign", "Check and manage campaigns.")
    sub.command("pause")(pause)
    sub.command("resume")(resume)
    sub.command("cancel")(cancel)
    sub.command("retry-failed")(retry)
