"""Short, fixed-width renderings of numbers, durations and progress for table cells."""

from __future__ import annotations

from datetime import datetime, timedelta

from rich.text import Text

HEALTH_STYLES = {"ok": "green", "idle": "dim", "degraded": "yellow", "down": "bold red"}
STATUS_STYLES = {
    "running": "bold green", "paused": "yellow", "scheduled": "cyan", "cancelled": "red",
    "finished": "dim", "draft": "dim", "missed": "red",
}
KIND_STYLES = {"bounced": "red", "failed": "bold red", "complained": "bold magenta",
               "deferred": "yellow", "unsubscribed": "cyan", "error": "bold red"}


def count(n: int) -> str:
    if n < 100_000:
        return f"{n:,}"
    if n < 10_000_000:
        return f"{n / 1000:.0f}k"
    return f"{n / 1_000_000:.1f}M"


def rate(per_second: float) -> str:
    if per_second <= 0:
        return "-"
    return f"{per_second:.1f}/s" if per_second < 100 else f"{per_second:.0f}/s"


def duration(span: timedelta | None) -> str:
    if span is None:
        return "-"
    seconds = int(span.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours >= 48:
        return f"{hours // 24}d{hours % 24:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s"


def when(at: datetime | None, now: datetime) -> str:
    """A time of day for today, a date otherwise (UTC, as the store keeps it)."""
    if at is None:
        return "-"
    return at.strftime("%H:%M:%S") if at.date() == now.date() else at.strftime("%Y-%m-%d %H:%M")


def percent(part: float) -> str:
    return f"{part * 100:.1f}%"


def bar(progress: float, width: int = 10) -> Text:
    filled = round(max(0.0, min(progress, 1.0)) * width)
    text = Text("█" * filled, style="green")
    text.append("░" * (width - filled), style="dim")
    text.append(f" {progress * 100:3.0f}%")
    return text


def styled(value: str, styles: dict[str, str]) -> Text:
    return Text(value, style=styles.get(value, ""))


def clip(value: str | None, width: int) -> Text:
    """Outside text (a relay's reply, a campaign name) cut to ``width``, as plain text.

    A ``str`` cell would be read as Rich markup: "550 [mailbox] unavailable" or a
    campaign called "sale [/b]" would restyle the table or stop the dashboard.
    """
    value = " ".join((value or "").split())
    return Text(value if len(value) <= width else value[: width - 1] + "…")


def plain(value: str | None) -> Text:
    """A name from the store as a cell, never read as markup (see :func:`clip`)."""
    return Text(value or "-")
