"""``dispatcher export``: subscribers out as CSV, to a file or standard output."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from dispatcher.commands.common import console, state
from dispatcher.errors import InputError
from dispatcher.lists.exporter import STATUSES, ExportOptions, export_csv


def export(
    ctx: typer.Context,
    output: Annotated[str, typer.Option("--output", "-o", help="File to write, or - for stdout.")],
    list_name: Annotated[str | None, typer.Option("--list", "-l", help="Only this list.")] = None,
    status: Annotated[str, typer.Option(
        help="Only subscribers in this state: " + ", ".join(STATUSES) + ".")] = "all",
    where: Annotated[str | None, typer.Option(
        help="Filter over attributes, as a campaign's audience.where "
        "(e.g. \"plan == 'pro' and age >= 18\").")] = None,
    attributes_json: Annotated[bool, typer.Option(
        "--attributes-json", help="One JSON 'attributes' column instead of one column per "
        "key.")] = False,
) -> None:
    """Export subscribers as UTF-8 CSV with a header, streamed (constant memory)."""
    st = state(ctx)
    options = ExportOptions(list_name=list_name, status=status, where=where,
                            attributes_json=attributes_json)
    if output == "-":
        export_csv(st.store, sys.stdout, options=options)
        return
    target = Path(output)
    if target.is_dir():
        raise InputError("is a folder: give a file name, e.g. -o subscribers.csv", path=output)
    partial = target.with_name(target.name + ".partial")
    try:
        with partial.open("w", newline="", encoding="utf-8") as out:
            count = export_csv(st.store, out, options=options)
        # Written aside and renamed, so a failed export never leaves half a file under the name.
        partial.replace(target)
    except OSError as exc:
        _remove(partial)
        folder = target.parent
        reason = (f"the folder {folder} does not exist" if not folder.exists()
                  else f"cannot write: {exc.strerror}")
        raise InputError(reason, path=output) from None
    except BaseException:
        # A store error or Ctrl-C half way: no half file left beside the real one.
        _remove(partial)
        raise
    console.print(f"exported {count} subscribers to {output}")


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):  # never there, or its folder is not one
        path.unlink()


def register(app: typer.Typer) -> None:
    app.command("export")(export)
