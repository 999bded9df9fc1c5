"""Interoperability with an SMTP server nobody here wrote: Postfix's ``smtp-sink``.

The CLI runs as a real subprocess, as a user would run it, on both stores; the sink dumps
every transaction to a file, so the test compares what Postfix accepted with what the
store says was sent. ``.ci/machine`` installs Postfix; outside CI a machine without it
skips this module and says why.
"""

from __future__ import annotations

import csv
import email
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"

if not Path(SMTP_SINK).exists():
    if os.environ.get("CI"):
        pytest.fail("Postfix's smtp-sink is missing: .ci/machine should have installed it",
                    pytrace=False)
    pytest.skip("Postfix's smtp-sink is not installed (sh .ci/machine installs it)",
                allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sink() -> Iterator[tuple[int, Path]]:
    # smtp-sink drops root for "nobody", who must be able to reach and write the dumps:
    # pytest's own temporary folders are private to their owner.
    with tempfile.TemporaryDirectory(prefix="smtp-sink-") as folder:
        dumps = Path(folder)
        os.chmod(dumps, 0o777)
        yield from _run_sink(dumps)


def _run_sink(dumps: Path) -> Iterator[tuple[int, Path]]:
    port = _free_port()
    args = [SMTP_SINK, "-d", f"{dumps}/%H%M%S.", f"127.0.0.1:{port}", "64"]
    if os.geteuid() == 0:
        args[1:1] = ["-u", "nobody"]
    with subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    pytest.fail(f"smtp-sink did not start: {proc.communicate()[1]!r}")
                time.sleep(0.05)
        yield port, dumps
        proc.terminate()
        proc.wait(timeout=10)


def dispatcher(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dispatcher", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_send_to_postfix_smtp_sink_delivers_every_message(
        workspace: Path, sink: tuple[int, Path]) -> None:
    port, dumps = sink
    with (workspace / "lists" / "weekly.csv").open(encoding="utf-8") as fh:
        rows = {row["email"].lower(): row for row in csv.DictReader(fh)}

    imported = dispatcher("import", "lists/weekly.csv", "--list", "weekly")
    assert imported.returncode == 0, imported.stderr
    sent = dispatcher("send", "campaigns/weekly.yaml", "--relay", f"smtp://127.0.0.1:{port}")
    assert sent.returncode == 0, sent.stdout + sent.stderr

    status = json.loads(dispatcher("status", "--json").stdout)
    (campaign,) = status["campaigns"]
    assert (campaign["total"], campaign["sent"], campaign["status"]) == (
        len(rows), len(rows), "finished")

    received: dict[str, email.message.EmailMessage] = {}
    for dump in dumps.iterdir():
        msg = email.message_from_bytes(dump.read_bytes(), policy=policy.default)
        assert isinstance(msg, email.message.EmailMessage)
        rcpt = str(msg["X-Rcpt-Args"]).strip("<>").lower()
        assert rcpt not in received, f"{rcpt} received twice"
        received[rcpt] = msg
    assert sorted(received) == sorted(rows)
    for rcpt, msg in received.items():
        assert str(msg["X-Mail-Args"]).startswith("<bounces+")
        assert msg["To"].addresses[0].addr_spec == rcpt
        assert msg["Subject"] == f"{rows[rcpt]['first_name']}, your week in {rows[rcpt]['city']}"
        assert msg.get_content_type() == "multipart/alternative"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
