"""``dispatcher import`` (subscribers in from CSV) and ``dispatcher lists``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from dispatcher.commands.common import console, state
from dispatcher.errors import ConfigError
from dispatcher.lists import admin
from dispatcher.lists.importer import ImportOptions, ImportReport, import_file
from dispatcher.lists.mapping import parse_map, parse_status_map
from dispatcher.store.models import SUBSCRIBER_STATES

if TYPE_CHECKING:
    from dispatcher.lists.mx_check import MXChecker


def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV/TSV file with an email column.",
                                         dir_okay=False)],
    list_name: Annotated[str | None, typer.Option(
        "--list", "-l", help="List to add the rows to (optional if the file has a 'lists' "
        "column).")] = None,
    mode: Annotated[str, typer.Option(
        help="upsert: add new, merge attributes of known; add: leave known rows untouched; "
        "overwrite: replace known rows' name and attributes.")] = "upsert",
    mapping: Annotated[list[str] | None, typer.Option(
        "--map", help="\"Column Header=field[:type]\" (type: text, int, decimal, bool, date, "
        "json); field '-' ignores the column. Repeatable.")] = None,
    attributes_json: Annotated[str | None, typer.Option(
        "--attributes-json", help="Column holding a JSON object of attributes.")] = None,
    status_map: Annotated[list[str] | None, typer.Option(
        "--status-map", help="What the status column's own values mean, e.g. "
        "\"1=active,2=active,0=unsubscribed\" (another tool's codes). Repeatable.")] = None,
    delimiter: Annotated[str | None, typer.Option(
        help="Field delimiter (default: sniffed from the header among , ; tab |).")] = None,
    check_mx: Annotated[bool, typer.Option(
        "--check-mx", help="Reject addresses whose domain has no MX or A record (DNS).")] = False,
    resubscribe: Annotated[bool, typer.Option(
        "--resubscribe", help="Reactivate unsubscribed, bounced, complained and suppressed "
        "addresses found in the file. Only with their consent!")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Report what would happen; write nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Import subscribers from a CSV file into a list; bad rows go to FILE.rejects.csv."""
    st = state(ctx)
    if delimiter in ("tab", "\\t"):
        delimiter = "\t"
    if delimiter is not None and len(delimiter) != 1:
        raise ConfigError(f"--delimiter {delimiter!r}: one character, e.g. ';' or 'tab'")
    options = ImportOptions(
        list_name=list_name, mode=mode, dry_run=dry_run, resubscribe=resubscribe,
        rules=parse_map(mapping or []), attributes_json=attributes_json, delimiter=delimiter,
        status_map=parse_status_map(status_map or []),
        mx=_mx_checker() if check_mx else None)
    store = st.store
    size = file.stat().st_size if file.is_file() else None
    show = not as_json and console.is_terminal
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                  TextColumn("{task.fields[rows]} rows"), TimeRemainingColumn(),
                  console=console, transient=True, disable=not show) as bar:
        # The column reads its text as markup: a file name is not.
        task = bar.add_task(f"importing {escape(file.name)}", total=size, rows=0)
        report = import_file(store, file, options,
                             progress=lambda rows, pos: bar.update(task, completed=pos, rows=rows))
    summary = report.as_dict()
    summary["list"] = list_name
    if as_json:
        print(json.dumps(summary, ensure_ascii=False))
        return
    _print_summary(report, list_name)


def _print_summary(report: ImportReport, list_name: str | None) -> None:
    title = f"import {report.path}" + (f" -> list {list_name!r}" if list_name else "")
    if report.dry_run:
        title += " (dry run: nothing written)"
    table = Table(title=title, show_header=False)
    rows = [("read", report.read), ("added", report.added), ("updated", report.updated),
            ("unchanged", report.unchanged), ("duplicates in file", report.duplicates),
            ("suppressed kept", report.suppressed_kept), ("resubscribed", report.resubscribed)]
    for key, value in rows:
        table.add_row(key, str(value))
    for reason, count in sorted(report.rejected.items()):
        table.add_row(f"rejected: {reason}", str(count))
    console.print(table)
    console.print(f"encoding {report.encoding}, delimiter {report.delimiter!r}")
    if report.encoding_fallback:
        console.print(f"[yellow]warning:[/] {escape(report.encoding_fallback)}", markup=True)
    if report.recovered_lines:
        console.print(f"[yellow]warning:[/] {report.recovered_lines} lines were not UTF-8 and "
                      "were read as Windows-1252", markup=True)
    if report.rejects_path:
        console.print(f"rejected rows are in {report.rejects_path}")


lists_app = typer.Typer(help="Mailing lists: counts by status, create, rename, delete.",
                        invoke_without_command=True)


@lists_app.callback()
def lists_main(ctx: typer.Context, as_json: Annotated[bool, typer.Option(
        "--json", help="Print the counts as JSON.")] = False) -> None:
    """Show every list with its members counted by status (the default)."""
    if ctx.invoked_subcommand is not None:
        return
    counts = admin.list_counts(state(ctx).store)
    if as_json:
        print(json.dumps([{"list": c.name, "total": c.total, **c.by_status,
                           "left_list": c.left_list} for c in counts]))
        return
    table = Table("list", "total", *SUBSCRIBER_STATES, "left this list")
    for c in counts:
        table.add_row(c.name, str(c.total),
                      *(str(c.by_status.get(s, 0)) for s in SUBSCRIBER_STATES), str(c.left_list))
    console.print(table if counts else "no lists yet: dispatcher import FILE --list NAME")


@lists_app.command("create")
def list_create(ctx: typer.Context, name: str,
                description: Annotated[str, typer.Option(help="What the list is for.")] = ""
                ) -> None:
    """Create an empty list."""
    admin.create_list(state(ctx).store, name, description)
    console.print(f"created list {name!r}")


@lists_app.command("rename")
def list_rename(ctx: typer.Context, old: str, new: str) -> None:
    """Rename a list (campaigns name lists: update their audience.lists too)."""
    admin.rename_list(state(ctx).store, old, new)
    console.print(f"renamed list {old!r} to {new!r}")


@lists_app.command("delete")
def list_delete(ctx: typer.Context, name: str,
                yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False) -> None:
    """Delete a list and its memberships; the subscribers themselves stay."""
    if not yes:
        typer.confirm(f"delete list {name!r}?", abort=True)
    members = admin.delete_list(state(ctx).store, name)
    console.print(f"deleted list {name!r} ({members} memberships)")


def _mx_checker() -> MXChecker:
    # Imported here: dnspython's resolver costs every list command ~75 ms to import.
    from dispatcher.lists.mx_check import MXChecker

    return MXChecker()


def register(app: typer.Typer) -> None:
    app.command("import")(import_)
    app.add_typer(lists_app, name="lists")
