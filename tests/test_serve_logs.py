"""`--log-json`: one JSON object per line, with the fields given as ``extra``."""

from __future__ import annotations

import json
import logging
import sys
from types import SimpleNamespace

import pytest

from dispatcher.scheduler.logs import JSONFormatter, setup


def test_json_lines_carry_message_level_and_fields() -> None:
    record = logging.makeLogRecord({
        "name": "dispatcher.scheduler", "levelno": logging.WARNING, "levelname": "WARNING",
        "msg": "campaign %s missed its time", "args": ("spring",), "created": 1796083200.25,
        "campaign": "spring", "event": "missed", "queued": 3, "owner": object(),
    })
    data = json.loads(JSONFormatter().format(record))
    assert data["msg"] == "campaign spring missed its time"
    assert (data["level"], data["logger"]) == ("warning", "dispatcher.scheduler")
    assert data["ts"] == "2026-12-01T00:00:00.250+00:00"
    assert (data["campaign"], data["event"], data["queued"]) == ("spring", "missed", 3)
    assert data["owner"].startswith("<object")
    assert "args" not in data and "levelno" not in data


def test_exceptions_are_one_field_not_extra_lines() -> None:
    try:
        raise RuntimeError("relay went away")
    except RuntimeError:
        record = logging.makeLogRecord({"msg": "pass failed", "exc_info": sys.exc_info()})
    line = JSONFormatter().format(record)
    assert "\n" not in line
    assert "RuntimeError: relay went away" in json.loads(line)["exc"]


def test_an_overlapping_tick_is_not_a_warning_but_a_stuck_cron_job_is(
        capsys: pytest.CaptureFixture[str]) -> None:
    setup(json_lines=False)
    aps = logging.getLogger("apscheduler.scheduler")
    message = 'Execution of job "%s" skipped: maximum number of running instances reached (%d)'
    try:
        aps.warning(message, SimpleNamespace(id="tick"), 1)
        aps.warning(message, SimpleNamespace(id="cron:weekly"), 1)
    finally:
        for name in ("dispatcher", "apscheduler"):
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "namespace(id='cron:weekly')" in lines[0]
