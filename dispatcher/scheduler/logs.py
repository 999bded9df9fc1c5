"""Structured logs: readable text on a terminal, one JSON object per line with ``--log-json``.

Fields given as ``extra={...}`` (campaign, event, counts) become JSON keys, so
a log shipper can filter on them without parsing sentences.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value if isinstance(value, (int, float, str, bool)) or value is None \
                    else str(value)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


_OWN_JOBS = frozenset({"tick", "housekeeping"})


def _not_an_overlap(record: logging.LogRecord) -> bool:
    """False for APScheduler's warning that a tick or housekeeping round is still running.

    Starting a large campaign can take longer than one tick; the next tick is then skipped
    on purpose (``max_instances=1``), which is no reason to worry whoever reads the log.
    """
    job = record.args[0] if isinstance(record.args, tuple) and record.args else None
    return not ("maximum number of running instances" in str(record.msg)
                and getattr(job, "id", None) in _OWN_JOBS)


def setup(*, json_lines: bool, level: int = logging.INFO) -> None:
    """Send the daemon's logs (and APScheduler's warnings) to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s",
                                               datefmt="%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger("dispatcher")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    aps = logging.getLogger("apscheduler")
    aps.handlers[:] = [handler]
    aps.setLevel(logging.WARNING)
    aps.propagate = False
    handler.addFilter(_not_an_overlap)
