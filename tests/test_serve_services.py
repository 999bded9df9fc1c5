"""What `dispatcher serve` runs beside the scheduler: bounce polling and its option parsing."""

from __future__ import annotations

import asyncio
import logging
import mailbox
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from dispatcher.commands.schedule import scheduler_config
from dispatcher.commands.serve import warmup_keys
from dispatcher.config import Workspace
from dispatcher.core.schedule import SchedulerConfig
from dispatcher.errors import ConfigError
from dispatcher.scheduler.services import SideServices, host_port
from dispatcher.store import Store
from tests.conftest import REPO

SAMPLE = REPO / "tests" / "data" / "bounces" / "providers" / "arf-yahoo.eml"


def test_host_port() -> None:
    assert host_port("127.0.0.1:8080", what="--web") == ("127.0.0.1", 8080)
    assert host_port("[::1]:25", what="--inbound") == ("::1", 25)
    assert host_port(":0", what="--web") == ("127.0.0.1", 0)
    with pytest.raises(ConfigError, match="--web"):
        host_port("localhost", what="--web")


def test_housekeeping_reads_the_bounce_mailbox_and_files_what_it_applied(
        workspace: Path, store: Store) -> None:
    box = mailbox.Maildir(workspace / "bounces", create=True)
    box.add(SAMPLE.read_bytes())
    services = SideServices(store, Workspace.load(workspace), bounces=str(workspace / "bounces"))
    asyncio.run(services.poll_bounces())
    assert list(box.iterkeys()) == []
    assert len(box.get_folder("Processed")) == 1
    # Read again: nothing new, nothing applied twice.
    asyncio.run(services.poll_bounces())
    assert len(box.get_folder("Processed")) == 1


def test_an_unreachable_bounce_source_is_a_warning_not_a_crash(
        workspace: Path, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    services = SideServices(store, Workspace.load(workspace),
                            bounces=str(workspace / "no-such-box"))
    with caplog.at_level(logging.WARNING, logger="dispatcher.scheduler"):
        asyncio.run(services.poll_bounces())
    assert "no such mailbox" in caplog.text


def test_warmup_option() -> None:
    assert warmup_keys(["News.Example.com=2026-11-20", "relay-a = 2026-12-01"]) == {
        "news.example.com": date(2026, 11, 20), "relay-a": date(2026, 12, 1)}
    for bad in ("news.example.com", "=2026-11-20", "news.example.com=next monday"):
        with pytest.raises(ConfigError, match="--warmup"):
            warmup_keys([bad])


def test_scheduler_settings_come_from_the_workspace_config_when_it_has_them() -> None:
    settings = SchedulerConfig(grace=timedelta(minutes=5), default_timezone="Asia/Tokyo")
    workspace = SimpleNamespace(config=SimpleNamespace(scheduler=settings))
    assert scheduler_config(workspace) == settings
    assert scheduler_config(SimpleNamespace(config=SimpleNamespace())) == SchedulerConfig()
