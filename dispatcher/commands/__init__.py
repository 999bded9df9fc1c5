"""The CLI's commands, one module per area; each module has ``register(app)``.

:data:`COMMANDS` names every top-level command, the modules whose ``register``
defines it, and its one-line help. ``dispatcher --help`` is printed from the
table and a command imports only its own modules, so starting ``dispatcher
status`` does not pay for the dashboard's or the daemon's imports. Adding a
command means adding its module and its line here; ``tests/test_cli.py`` checks
that the table and the modules agree.
"""

from __future__ import annotations

from typing import NamedTuple


class Entry(NamedTuple):
    modules: tuple[str, ...]  # under dispatcher.commands; a shared group names each module
    help: str  # the command's own first line, shown without importing it


# In the order ``dispatcher --help`` lists them.
COMMANDS: dict[str, Entry] = {
    "preview": Entry(("campaign",), "Write rendered messages for the first recipients as .eml "
                     "and .html files."),
    "dashboard": Entry(("dashboard",), "Open the live dashboard: campaigns, throughput, relays, "
                       "domains, events."),
    "import": Entry(("lists",), "Import subscribers from a CSV file into a list; bad rows go to "
                    "FILE.rejects.csv."),
    "export": Entry(("export",), "Export subscribers as UTF-8 CSV with a header, streamed "
                    "(constant memory)."),
    "schedule": Entry(("schedule",), "Schedule a campaign; `dispatcher serve` sends it at its "
                      "time."),
    "schedules": Entry(("schedule",), "List the schedules: one-off ones with their campaign's "
                       "state, recurring ones."),
    "unschedule": Entry(("schedule",), "Remove a schedule; a campaign that has not started is "
                        "dropped with it."),
    "send": Entry(("send",), "Send a campaign now to every active subscriber of its lists not "
                  "sent to yet."),
    "serve": Entry(("serve",), "Run until SIGTERM/SIGINT: start scheduled campaigns, send, retry "
                   "deferrals, tidy up."),
    "status": Entry(("status",), "Show every campaign's delivery counts, progress, rate and ETA, "
                    "and relay health."),
    "test-send": Entry(("test_send",), "Send the campaign's message to seed addresses, one per "
                       "A/B variant."),
    "web": Entry(("web",), "Serve one-click unsubscribe (RFC 8058), the preference page and "
                 "open/click tracking."),
    "worker": Entry(("worker",), "Send queued deliveries of running campaigns until stopped "
                    "(Ctrl-C, SIGTERM)."),
    "bounces": Entry(("bounces",), "Bounces, complaints and auto-replies: classify, ingest, "
                     "report."),
    "campaign": Entry(("campaign", "campaign_control"), "Check and manage campaigns."),
    "lists": Entry(("lists",), "Mailing lists: counts by status, create, rename, delete."),
    "subscriber": Entry(("subscribers",), "One subscriber: show, unsubscribe, delete (GDPR "
                        "erasure)."),
}
