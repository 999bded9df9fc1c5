"""Ctrl-C during ``dispatcher send``: the first one stops gracefully; a rerun sends nobody twice.

A real ``dispatcher send`` process against a real loopback relay, paced so the interrupt lands
mid-campaign; the relay's record and the store must agree after the interrupt.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.support.relay import RecordingRelay


def dispatcher(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "dispatcher", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def sent(cwd: Path) -> int:
    with dispatcher("status", "--json", cwd=cwd) as proc:
        out, _ = proc.communicate(timeout=60)
    return int(json.loads(out)["campaigns"][0]["sent"])


def test_ctrl_c_records_what_was_in_flight_and_a_rerun_completes_without_duplicates(
        workspace: Path, relay: RecordingRelay) -> None:
    with dispatcher("import", "lists/weekly.csv", "--list", "weekly", cwd=workspace) as proc:
        assert proc.wait(timeout=60) == 0
    target = f"{relay.url}?starttls=off&per_second=40"
    with dispatcher("send", "campaigns/weekly.yaml", "--relay", target, cwd=workspace) as proc:
        deadline = time.monotonic() + 60
        while len(relay.received) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, out + err
    assert "interrupted: every message the relay answered is recorded" in out
    stopped_at = len(relay.received)
    assert 40 <= stopped_at < 300
    assert sent(workspace) == stopped_at

    with dispatcher("send", "campaigns/weekly.yaml", "--relay", relay.url + "?starttls=off",
                    cwd=workspace) as proc:
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    times = Counter(r for m in relay.received for r in m.rcpt_tos)
    assert len(times) == 300 and set(times.values()) == {1}
    assert sent(workspace) == 300
