"""``dispatcher send``: queue a campaign and send it now, in the foreground."""

from __future__ import annotations

import asyncio
import functools
import os
import re
import signal
from collections import Counter
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from dispatcher.commands.common import EXIT_UNDELIVERED, console, load
from dispatcher.core.campaign import Campaign
from dispatcher.core.rates import Limits
from dispatcher.delivery import campaign_counts, enqueue, prepare_campaign, send_campaign
from dispatcher.delivery.engine import SendSummary
from dispatcher.delivery.queue import Outcome, drop_if_empty
from dispatcher.errors import DispatcherError
from dispatcher.render import Renderer
from dispatcher.smtp.relay import CAPTURE, choose_relays, open_relays

SHOWN = ("total", "sent", "deferred", "bounced", "failed", "skipped", "queued")
AUTO_POOL = 2000
REASONS_SHOWN = 5
# Replies that quote a queue id or a timestamp are all different: past this many, a new
# one is counted as "another reply" rather than kept.
REASONS_KEPT = 10_000
REPLY_WIDTH = 300  # some servers answer with a paragraph; the summary wants its gist
OTHER_REPLY = "(another reply)"
# "550 5.1.1 <ann@example.com>: user unknown" is one reason, whoever it was for.
_ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:]+@[^\s<>()\[\]\"',;:]+")


def campaign_limits(campaign: Campaign) -> Limits:
    rate = campaign.rate
    return Limits(rate.per_second,
                  *(int(v) if v is not None else None
                    for v in (rate.per_minute, rate.per_hour, rate.per_day)))


def auto_render_processes(due: int) -> int:
    """Rendering is ~40% of the work per message: a second core pays for starting a
    process (~1 s of imports, while this one renders and sends) once a send is more than
    tiny. One is enough on the machines measured (``bench/send.py``): the relay needs a
    core too."""
    return 1 if (os.cpu_count() or 1) > 1 and due >= AUTO_POOL else 0


class Reasons:
    """Why this run left messages undelivered: each one's latest reply, counted.

    Per delivery, not per outcome: a long run retries its deferrals, and a message
    deferred twice and then sent is not a reason for anything.
    """

    def __init__(self) -> None:
        self.latest: dict[int, tuple[str, str]] = {}
        self.kept: dict[tuple[str, str], tuple[str, str]] = {}  # one copy of each reason

    def add(self, outcome: Outcome) -> None:
        delivery = outcome.claimed.delivery_id
        # Render failures are listed with their template error already.
        if outcome.state not in ("deferred", "bounced", "failed") or outcome.reason == "render":
            self.latest.pop(delivery, None)
            return
        reply = _ADDRESS.sub("…", " ".join(outcome.reply.split()))
        if outcome.code is not None:
            reply = f"{outcome.code} {reply}"
        if len(reply) > REPLY_WIDTH:
            reply = reply[:REPLY_WIDTH - 1] + "…"
        key = (outcome.state, reply or "(no reply)")
        if key not in self.kept and len(self.kept) >= REASONS_KEPT:
            key = (outcome.state, OTHER_REPLY)
        self.latest[delivery] = self.kept.setdefault(key, key)

    def lines(self) -> list[str]:
        """The most common reasons, "300 deferred: <reply>", most frequent first."""
        counts = Counter(self.latest.values())
        top = counts.most_common(REASONS_SHOWN)
        lines = [f"{n} {state}: {reply}" for (state, reply), n in top]
        if rest := len(self.latest) - sum(n for _, n in top):
            lines.append(f"{rest} more with other replies")
        return lines


def send(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Campaign YAML file.", dir_okay=False)],
    relay: Annotated[str | None, typer.Option(
        "--relay", "-r", help="Relay URL (smtp://, smtps://, smtp+starttls://), a relay name "
        "from dispatcher.toml, several separated by commas (a pool), 'direct' (MX lookup), "
        "or 'capture' to file messages under outbox/.")] = None,
    connections: Annotated[int | None, typer.Option(
        "--connections", "-c", min=1, help="Concurrent SMTP connections per relay.")] = None,
    render_processes: Annotated[int | None, typer.Option(
        "--render-processes", min=0, help="Processes that render while this one sends "
        "(0: render in this process; default: one on a machine with several cores when "
        f"{AUTO_POOL:,} messages or more are due).")] = None,
    lease: Annotated[float, typer.Option(
        "--lease", min=1, help="Seconds a claimed batch stays ours before another worker may "
        "take it over (a crashed sender's claims on this machine are taken back at once).")
    ] = 300.0,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Deliveries claimed at once.")
                     ] = 200,
) -> None:
    """Send a campaign now to every active subscriber of its lists not sent to yet."""
    st, campaign, path = load(ctx, file)
    ws = st.workspace
    store = st.store
    choices = choose_relays(relay, campaign.relay_pool, ws.config.relays)
    display = ", ".join(c.display for c in choices)
    campaign_id = prepare_campaign(store, campaign, source_path=str(path), relay=display)
    # The renderer is built before anything is queued, so a template error stops the send.
    factory = functools.partial(Renderer, campaign, root=ws.root, sending=ws.config.sending,
                                secret=store.secret(), campaign_id=campaign_id)
    try:
        renderer = factory()
        enqueue(store, campaign_id, campaign, path=str(path))
    except DispatcherError:
        # A template error or an unknown list: no campaign left "running" with nobody in it.
        drop_if_empty(store, campaign_id)
        raise
    (counts,) = campaign_counts(store, campaign_id)
    due = counts["queued"] + counts["deferred"]
    if render_processes is None:
        render_processes = auto_render_processes(due)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with open_relays(choices, ws.outbox) as urls, Progress(*columns, console=console) as bar:
        task = bar.add_task(escape(f"sending {campaign.name}"), total=due)
        unshown = 0
        reasons = Reasons()

        def advance(outcome: Outcome) -> None:
            reasons.add(outcome)
            # The bar redraws ten times a second: telling it about every message is wasted.
            nonlocal unshown
            unshown += 1
            if unshown >= 64:
                bar.advance(task, unshown)
                unshown = 0

        interrupted = asyncio.Event()
        summary = asyncio.run(_until_interrupted(interrupted, send_campaign(
            store, campaign_id, renderer, urls,
            connections=connections or campaign.rate.connections or choices[0].max_connections,
            per_connection=campaign.rate.per_connection or choices[0].max_messages_per_connection,
            batch=batch, lease=timedelta(seconds=lease), limits=campaign_limits(campaign),
            render_processes=render_processes, render_factory=factory, progress=advance,
            stop=interrupted)))
        bar.advance(task, unshown)
    (counts,) = campaign_counts(store, campaign_id)
    table = Table(title=f"campaign {campaign.name!r} via {display}")
    for key in SHOWN:
        table.add_column(key, justify="right")
    table.add_row(*(str(counts[k]) for k in SHOWN))
    console.print(table)
    if lines := reasons.lines():
        console.print("not delivered in this run, most common reasons first:")
        for line in lines:
            console.print(f"  {line}", highlight=False, soft_wrap=True)
    if summary.stopped:
        console.print(f"campaign is {summary.stopped}; unsent messages stay queued")
    if interrupted.is_set():
        console.print("interrupted: every message the relay answered is recorded; run the same "
                      "command again to go on")
    for line in summary.errors[:5]:
        console.print(f"[red]{line}[/]", markup=True, highlight=False)
    if any(c.spec == CAPTURE for c in choices):
        console.print(f"messages are in {ws.outbox}/ (one .eml per recipient)")
    undelivered = counts["deferred"] + counts["bounced"] + counts["failed"] + counts["queued"]
    if undelivered:
        raise typer.Exit(EXIT_UNDELIVERED)


async def _until_interrupted(stop: asyncio.Event,
                             sending: Coroutine[Any, Any, SendSummary]) -> SendSummary:
    """Run ``sending``; the first Ctrl-C stops it gracefully, a second one at once.

    Graceful means no new message starts and every one in flight is answered and recorded,
    so a rerun sends nobody twice (a hard stop resends what was answered but not recorded).
    """
    loop = asyncio.get_running_loop()

    def first_interrupt() -> None:
        stop.set()
        # Python's own handler again: the next Ctrl-C raises KeyboardInterrupt.
        loop.remove_signal_handler(signal.SIGINT)

    loop.add_signal_handler(signal.SIGINT, first_interrupt)
    try:
        return await sending
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def register(app: typer.Typer) -> None:
    app.command("send")(send)
