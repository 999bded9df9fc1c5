"""``dispatcher bounces classify|ingest|report``: returned mail, complaints and their effect."""

from __future__ import annotations

import imaplib
import json
import os
import poplib
import re
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from dispatcher.commands.common import EXIT_ERROR, console, errors, group, state
from dispatcher.core.bounces import Analysis, analyze
from dispatcher.errors import ConfigError, FeedbackError
from dispatcher.feedback.inbound import InboundHandler, start_receiver
from dispatcher.feedback.intake import ingest as ingest_messages
from dispatcher.feedback.intake import open_source
from dispatcher.feedback.policy import Policy, sweep_smtp_bounces
from dispatcher.feedback.report import feedback_report


def _secret(hex_secret: str | None) -> bytes | None:
    value = hex_secret or os.environ.get("DISPATCHER_SECRET")
    if not value:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise ConfigError("--secret must be the store's secret in hex") from exc


def as_dict(name: str, result: Analysis) -> dict[str, Any]:
    return {"file": name, "kind": result.kind, "reason": result.reason, "status": result.status,
            "recipients": list(result.recipients), "campaign": result.campaign_id,
            "subscriber": result.subscriber_id, "verified": result.verified}


def classify(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="Message files (.eml, one message each).")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    secret: Annotated[str | None, typer.Option(
        "--secret", help="Store secret (hex) to verify VERP tokens; default $DISPATCHER_SECRET. "
        "Without it, campaign and subscriber are read from the token unverified.")] = None,
) -> None:
    """Classify returned messages: kind, reason, status, recipients. Never touches the store."""
    key = _secret(secret)
    prefix = state(ctx).workspace.config.sending.verp_prefix
    rows: list[dict[str, Any]] = []
    unreadable = 0
    for path in files:
        try:
            raw = path.read_bytes()
            result = analyze(raw, secret=key, verp_prefix=prefix)
        except (OSError, RecursionError) as exc:
            # The other files are still classified; the exit code says one was not.
            reason = (f"cannot read: {exc.strerror or exc}" if isinstance(exc, OSError)
                      else "cannot classify: MIME parts nested too deeply")
            errors.print(f"[bold red]error:[/] {escape(str(path))}: {escape(reason)}",
                         markup=True, highlight=False)
            unreadable += 1
            continue
        row = as_dict(str(path), result)
        if as_json:
            print(json.dumps(row), flush=True)
        rows.append(row)
    if not as_json and rows:
        table = Table(title="returned mail")
        for column in ("file", "kind", "reason", "status", "recipients", "campaign",
                       "subscriber"):
            table.add_column(column)
        for row in rows:
            table.add_row(row["file"], row["kind"], row["reason"], row["status"] or "",
                          ", ".join(row["recipients"]), str(row["campaign"] or ""),
                          str(row["subscriber"] or ""))
        console.print(table)
    if unreadable:
        raise typer.Exit(EXIT_ERROR)


SoftLimit = Annotated[int, typer.Option(
    "--soft-limit", min=1, help="Soft bounces (within --soft-days, no success between) that "
    "suppress an address.")]
SoftDays = Annotated[int, typer.Option("--soft-days", min=1, help="Window for --soft-limit.")]


def ingest(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help=(
        "maildir or mbox path, a folder or file of .eml, imaps://user:pass@host/INBOX"
        "?processed=Processed, or pop3s://user:pass@host"))],
    soft_limit: SoftLimit = 3,
    soft_days: SoftDays = 14,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Read returned mail once from SOURCE and apply it, and the 5xx replies seen while sending.

    Each message is acknowledged at its source (moved/flagged/deleted) only after its
    effect is committed; a message already applied is never applied twice.
    """
    st = state(ctx)
    policy = Policy(soft_limit=soft_limit, soft_days=soft_days)
    swept = sweep_smtp_bounces(st.store, policy=policy)
    name, messages = open_source(source)
    try:
        report = ingest_messages(st.store, messages, source=name, policy=policy,
                                 verp_prefix=st.workspace.config.sending.verp_prefix)
    except (OSError, imaplib.IMAP4.error, poplib.error_proto) as exc:
        # Whatever was applied before the mailbox failed stays applied (and acknowledged).
        raise FeedbackError(f"cannot read {_redact(source)}: {exc}") from exc
    actions: dict[str, int] = {}
    for decision in [*swept, *report.decisions]:
        actions[decision.action] = actions.get(decision.action, 0) + 1
    summary = {"source": source, "messages": report.messages, "duplicates": report.duplicates,
               "kinds": report.kinds, "smtp_bounces": len(swept), "actions": actions,
               "errors": report.errors, "skipped": report.skipped}
    if as_json:
        print(json.dumps(summary))
        if report.failed:
            raise typer.Exit(EXIT_ERROR)
        return
    table = Table(title=f"ingest {source}", show_header=False)
    for key in ("messages", "duplicates", "smtp_bounces"):
        table.add_row(key.replace("_", " "), str(summary[key]))
    for kind, count in sorted(report.kinds.items()):
        table.add_row(f"kind: {kind}", str(count))
    for action, count in sorted(actions.items()):
        table.add_row(f"action: {action}", str(count))
    console.print(table)
    if report.skipped:
        shown = ", ".join(report.skipped[:5]) + (", ..." if len(report.skipped) > 5 else "")
        console.print(f"[yellow]warning:[/] {len(report.skipped)} file(s) are not mail and were "
                      f"left where they are: {escape(shown)}", markup=True, highlight=False)
    for error in report.errors:
        console.print(f"[yellow]warning:[/] {escape(error)}", markup=True, highlight=False)
    if report.failed:
        # What could not be read or applied is still at its source for the next pass.
        raise typer.Exit(EXIT_ERROR)


def _redact(source: str) -> str:
    """The source without its password, for messages."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", source)


def report(
    ctx: typer.Context,
    campaign: Annotated[str | None, typer.Option("--campaign", "-c", help="Only this campaign.")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Bounces, complaints and unsubscribes by kind, reason and receiving domain."""
    result = feedback_report(state(ctx).store, campaign)
    if as_json:
        print(json.dumps(result.as_dict()))
        return
    for title, counts in (("by kind", result.by_kind), ("bounces by reason", result.by_reason),
                          ("bounces by domain", result.by_domain)):
        table = Table(title=f"{title}" + (f" ({campaign})" if campaign else ""))
        table.add_column(title.split()[-1])
        table.add_column("count", justify="right")
        for key, count in counts.most_common():
            table.add_row(key, str(count))
        console.print(table)


def receive(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (25 for the bounce domain's MX).", min=0,
                                      max=65535)] = 2525,
    soft_limit: SoftLimit = 3,
    soft_days: SoftDays = 14,
) -> None:
    """Run the inbound SMTP receiver for the bounce domain until interrupted."""
    st = state(ctx)
    sending = st.workspace.config.sending
    handler = InboundHandler(st.store, sending.bounce_host, sending.verp_prefix,
                             sending.mailto_address,
                             policy=Policy(soft_limit=soft_limit, soft_days=soft_days))
    controller = start_receiver(handler, host=host, port=port)
    console.print(f"receiving mail for {sending.bounce_host} on {host}:{controller.port} "
                  "(Ctrl-C to stop)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


def register(app: typer.Typer) -> None:
    sub = group(app, "bounces", "Bounces, complaints and auto-replies: classify, ingest, report.")
    sub.command("classify")(classify)
    sub.command("ingest")(ingest)
    sub.command("report")(report)
    sub.command("receive")(receive)
