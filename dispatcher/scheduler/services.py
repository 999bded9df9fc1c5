"""What `dispatcher serve` runs beside the scheduler: the web endpoint, bounce intake.

Each is optional (a command-line option turns it on) and runs in its own
thread or in ``asyncio.to_thread``, so a slow IMAP server or a busy HTTP
client never holds up a scheduling tick.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from dispatcher.config import Workspace
from dispatcher.errors import ConfigError, DispatcherError
from dispatcher.feedback.inbound import InboundHandler, start_receiver
from dispatcher.feedback.intake import ingest, open_source
from dispatcher.feedback.policy import sweep_smtp_bounces
from dispatcher.store.database import Store
from dispatcher.web.app import create_app
from dispatcher.web.server import start_server

log = logging.getLogger("dispatcher.scheduler")


def host_port(value: str, *, what: str) -> tuple[str, int]:
    """``127.0.0.1:8080``, ``[::1]:8080`` or ``:8080`` (loopback)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"{what} {value!r} must look like 127.0.0.1:8080")
    return host.strip("[]") or "127.0.0.1", int(port)


@dataclass
class SideServices:
    store: Store
    workspace: Workspace
    web: str | None = None  # HOST:PORT for unsubscribe and tracking
    inbound: str | None = None  # HOST:PORT for the bounce domain's SMTP receiver
    bounces: str | None = None  # a maildir/mbox/IMAP/POP3 source polled for returned mail
    _running: list[Any] = field(default_factory=list)

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()  # --web started but --inbound's port is taken: stop the web server too
            raise

    def _start(self) -> None:
        sending = self.workspace.config.sending
        if self.web:
            host, port = host_port(self.web, what="--web")
            server = start_server(create_app(self.store, sending.unsubscribe_url),
                                  host=host, port=port)
            self._running.append(server)
            log.info("web endpoint on %s", server.url, extra={"event": "web", "url": server.url})
        if self.inbound:
            host, port = host_port(self.inbound, what="--inbound")
            handler = InboundHandler(self.store, sending.bounce_host, sending.verp_prefix,
                                     sending.mailto_address)
            controller = start_receiver(handler, host=host, port=port)
            self._running.append(controller)
            log.info("receiving returned mail for %s on %s:%s", sending.bounce_host, host,
                     controller.port, extra={"event": "inbound", "port": controller.port})

    async def poll_bounces(self) -> None:
        """Apply 5xx replies seen while sending, and read the bounce mailbox once."""
        swept = await asyncio.to_thread(sweep_smtp_bounces, self.store)
        if not self.bounces:
            if swept:
                log.info("%d bounces seen while sending applied", len(swept),
                         extra={"event": "bounces", "smtp": len(swept)})
            return
        try:
            name, messages = await asyncio.to_thread(open_source, self.bounces)
            report = await asyncio.to_thread(
                ingest, self.store, messages, source=name,
                verp_prefix=self.workspace.config.sending.verp_prefix)
        except (DispatcherError, OSError) as exc:
            log.warning("bounce source %s: %s; trying again later", self.bounces, exc,
                        extra={"event": "bounces-error"})
            return
        if report.messages or swept:
            log.info("returned mail: %d messages, %d duplicates, %d bounces seen while "
                     "sending", report.messages, report.duplicates, len(swept),
                     extra={"event": "bounces", "messages": report.messages,
                            "smtp": len(swept)})
        for error in report.errors:
            log.warning("bounce source: %s", error, extra={"event": "bounces-error"})

    def stop(self) -> None:
        for item in reversed(self._running):
            item.stop()
        self._running.clear()
