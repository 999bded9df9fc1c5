"""What every key does and what the numbers mean."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# dispatcher dashboard

| key | does |
|---|---|
| `enter` / click | open the selected campaign |
| `p` / `r` | pause / resume the campaign |
| `c` | cancel it (asks first) |
| `f` | queue its failed deliveries again |
| `s` / `u` | schedule (at its `schedule.at`) / unschedule |
| `t` | light or dark theme |
| `escape` | back |
| `?` | this help |
| `q` | quit |

Actions change the campaign in the store; `dispatcher serve` and running
sends pick the change up when they next claim work.

**Rate** counts SMTP outcomes per second over the last minute; **ETA** is
the queue left at that rate (deferred deliveries wait for their retry time).
**Backoff** marks a domain that deferred mail in the last five minutes.
Numbers come from rollups
refreshed about once a second, never from counting every delivery.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "close", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Markdown(HELP)

    def action_close(self) -> None:
        self.dismiss(None)
