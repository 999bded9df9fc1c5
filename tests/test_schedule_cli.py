"""`dispatcher schedule / schedules / unschedule`; recurring schedules in the job store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from apscheduler.triggers.cron import CronTrigger
from typer.testing import CliRunner

from dispatcher.cli import app
from dispatcher.config import Workspace
from dispatcher.core.schedule import SchedulerConfig
from dispatcher.errors import DispatcherError
from dispatcher.scheduler import jobs
from dispatcher.scheduler.cron import cron_trigger
from dispatcher.scheduler.daemon import Daemon
from dispatcher.scheduler.service import build_scheduler, sync_cron
from dispatcher.store import Store
from dispatcher.store.tables import campaign_t

runner = CliRunner()
NAME = "weekly-2026-48"


def run(*args: str) -> tuple[int, str]:
    """Exit code and output; a DispatcherError counts as `cli.main` reports it (exit 1)."""
    result = runner.invoke(app, list(args))
    if isinstance(result.exception, DispatcherError):
        return 1, result.output + str(result.exception)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def campaigns(url: str) -> dict[str, tuple[str, datetime | None]]:
    store = Store.open(url)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(campaign_t.c.name, campaign_t.c.status,
                                      campaign_t.c.scheduled_at)).all()
    store.close()
    return {r.name: (r.status, r.scheduled_at) for r in rows}


def test_schedule_list_unschedule(workspace: Path, store_url: str) -> None:
    code, out = run("schedule", "campaigns/weekly.yaml", "--at", "2099-12-01T09:00 Europe/Berlin")
    assert code == 0, out
    assert "2099-12-01 08:00 UTC" in out
    assert campaigns(store_url) == {NAME: ("scheduled", datetime(2099, 12, 1, 8, tzinfo=UTC))}
    code, out = run("schedules")
    assert code == 0 and NAME in out and "scheduled" in out
    # Scheduling again moves the time; it does not make a second campaign.
    assert run("schedule", "campaigns/weekly.yaml", "--at", "2099-12-02T10:00+00:00")[0] == 0
    assert campaigns(store_url) == {NAME: ("scheduled", datetime(2099, 12, 2, 10, tzinfo=UTC))}
    code, out = run("unschedule", NAME)
    assert code == 0, out
    assert campaigns(store_url) == {}
    code, out = run("unschedule", NAME)
    assert code == 1 and "no schedule named" in out


@pytest.mark.parametrize(("at", "message"), [
    ("next tuesday", "is not a date-time"),
    ("2099-12-01T09:00 Mars/Base", "unknown time zone"),
    ("2020-01-01T09:00+00:00", "in the past"),
])
def test_schedule_refuses_bad_times(workspace: Path, store_url: str, at: str,
                                    message: str) -> None:
    code, out = run("schedule", "campaigns/weekly.yaml", "--at", at)
    assert code == 1 and message in " ".join(out.split())
    assert campaigns(store_url) == {}


def test_schedule_refuses_a_time_the_clocks_jump_over(workspace: Path, store_url: str) -> None:
    code, out = run("schedule", "campaigns/weekly.yaml", "--at", "2099-03-29T02:30 Europe/Berlin")
    assert code == 1
    assert ("--at: 2099-03-29 02:30 does not exist in Europe/Berlin: the clocks jump forward "
            "then") in " ".join(out.split())
    assert campaigns(store_url) == {}


def test_schedule_refuses_a_time_off_the_campaigns_calendar(workspace: Path,
                                                            store_url: str) -> None:
    path = workspace / "campaigns" / "weekly.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "schedule:\n  timezone: Asia/Tokyo\n",
                    encoding="utf-8")
    # Exists in UTC, but in Tokyo it would be in the year 10000.
    code, out = run("schedule", "campaigns/weekly.yaml", "--at", "9999-12-31T23:30Z")
    assert code == 1
    assert "--at: 9999-12-31 23:30 UTC is out of range in Asia/Tokyo" in " ".join(out.split())
    assert campaigns(store_url) == {}


def test_schedule_needs_a_time(workspace: Path, store_url: str) -> None:
    code, out = run("schedule", "campaigns/weekly.yaml")
    assert code == 1 and "no time given" in " ".join(out.split())


def test_a_running_campaign_cannot_be_rescheduled(workspace: Path, store_url: str) -> None:
    assert run("schedule", "campaigns/weekly.yaml", "--at", "2099-12-01T09:00Z")[0] == 0
    store = Store.open(store_url)
    with store.engine.begin() as conn:
        conn.execute(sa.update(campaign_t).values(status="running"))
    store.close()
    code, out = run("schedule", "campaigns/weekly.yaml", "--at", "2099-12-03T09:00Z")
    assert code == 1 and "is running" in out


def write_cron_campaign(root: Path, name: str, cron: str) -> Path:
    text = (root / "campaigns" / "weekly.yaml").read_text(encoding="utf-8")
    text = text.replace(f"name: {NAME}", f"name: {name}")
    text += f'schedule:\n  cron: "{cron}"\n  timezone: Europe/Berlin\n'
    path = root / "campaigns" / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_recurring_schedules_live_in_the_job_store_and_report_missed_runs(
        workspace: Path, store_url: str) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    now = datetime.now(UTC)
    # Two daily schedules whose latest runs fell while the daemon was down:
    # one 2 hours ago (beyond the hour's grace), one 10 minutes ago (within it).
    runs = {"old": (now - timedelta(hours=2)).replace(second=0, microsecond=0),
            "recent": (now - timedelta(minutes=10)).replace(second=0, microsecond=0)}
    for name, at in runs.items():
        local = at.astimezone(berlin)
        path = write_cron_campaign(workspace, name, f"{local.minute} {local.hour} * * *")
        code, out = run("schedule", str(path))
        assert code == 0 and "first run" in out, out
    store = Store.open(store_url)
    daemon = Daemon(store, Workspace.load(workspace), SchedulerConfig())

    async def first_run() -> dict[str, datetime]:
        jobs.install(daemon)
        scheduler = build_scheduler(daemon)
        scheduler.start(paused=True)
        sync_cron(scheduler, daemon)
        times = {j.id: j.next_run_time for j in scheduler.get_jobs(jobstore="default")}
        for name, at in runs.items():
            scheduler.modify_job(f"cron:{name}", next_run_time=at)
        scheduler.shutdown(wait=False)
        return times

    times = asyncio.run(first_run())
    for name, at in runs.items():
        assert times[f"cron:{name}"] - at == timedelta(days=1)  # tomorrow's, as synced

    async def restart() -> None:
        scheduler = build_scheduler(daemon)
        scheduler.start()
        await asyncio.sleep(0.5)
        scheduler.shutdown(wait=False)
        jobs.install(None)

    asyncio.run(restart())
    rows = campaigns(store_url)
    for name, at in runs.items():
        instance = f"{name}-{at.astimezone(berlin):%Y%m%d-%H%M}"
        assert rows[instance] == ("missed" if name == "old" else "scheduled", at)
    assert len(rows) == 2

    # Unscheduling a recurring schedule takes its job out of the store too.
    assert run("unschedule", "old")[0] == 0

    async def synced() -> set[str]:
        scheduler = build_scheduler(daemon)
        scheduler.start(paused=True)
        sync_cron(scheduler, daemon)
        ids = {j.id for j in scheduler.get_jobs(jobstore="default")}
        scheduler.shutdown(wait=False)
        return ids

    assert asyncio.run(synced()) == {"cron:recent"}
    store.close()


def test_a_job_stored_with_apschedulers_own_cron_trigger_is_replaced(
        workspace: Path, store_url: str) -> None:
    # Jobs stored by older versions used APScheduler's CronTrigger, which hangs the
    # scheduler on a clocks-go-back night; it prints like ours, so compare types too.
    path = write_cron_campaign(workspace, "nightly", "30 2 * * *")
    assert run("schedule", str(path))[0] == 0
    store = Store.open(store_url)
    daemon = Daemon(store, Workspace.load(workspace), SchedulerConfig())

    async def triggers() -> list[type]:
        jobs.install(daemon)
        scheduler = build_scheduler(daemon)
        scheduler.start(paused=True)
        old = CronTrigger.from_crontab("30 2 * * *", timezone=ZoneInfo("Europe/Berlin"))
        scheduler.add_job(jobs.FIRE_CRON, old, args=["nightly"], id="cron:nightly",
                          jobstore="default", replace_existing=True)
        sync_cron(scheduler, daemon)
        found = [type(j.trigger) for j in scheduler.get_jobs(jobstore="default")]
        scheduler.shutdown(wait=False)
        jobs.install(None)
        return found

    assert asyncio.run(triggers()) == [type(cron_trigger("30 2 * * *", "Europe/Berlin"))]
    store.close()


def test_local_time_campaign_is_scheduled_from_now(workspace: Path, store_url: str) -> None:
    text = (workspace / "campaigns" / "weekly.yaml").read_text(encoding="utf-8")
    path = workspace / "campaigns" / "morning.yaml"
    path.write_text(text + 'schedule:\n  local_time: "09:00"\n  timezone: Asia/Tokyo\n',
                    encoding="utf-8")
    before = datetime.now(UTC)
    code, out = run("schedule", str(path))
    assert code == 0 and "each recipient at 09:00 their time" in " ".join(out.split()), out
    ((status, at),) = campaigns(store_url).values()
    assert status == "scheduled" and at is not None
    assert before - timedelta(seconds=1) <= at <= datetime.now(UTC)
