"""``dispatcher bounces classify``: one JSON line per file, no store touched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).parent / "data" / "bounces"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from dispatcher.cli import main; main()", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_classify_json_lines_without_a_store(tmp_path: Path) -> None:
    files = [DATA / "providers" / "gmail-user-unknown.eml", DATA / "providers" / "arf-yahoo.eml",
             DATA / "flufl" / "qmail_03.txt"]
    result = run("bounces", "classify", *map(str, files), "--json", "--secret",
                 b"corpus-secret".hex(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["file"] for r in rows] == [str(f) for f in files]
    assert rows[0] | {"file": ""} == {
        "file": "", "kind": "hard", "reason": "user_unknown", "status": "5.1.1",
        "recipients": ["no.such.person@gmail.com"], "campaign": 7, "subscriber": 101,
        "verified": True}
    assert (rows[1]["kind"], rows[1]["recipients"]) == ("complaint", ["complainer@yahoo.com"])
    assert (rows[2]["kind"], rows[2]["campaign"], rows[2]["subscriber"]) == ("hard", None, None)
    assert list(tmp_path.iterdir()) == []  # no dispatcher.db was created


def test_classify_reports_an_unreadable_file(tmp_path: Path) -> None:
    good = DATA / "providers" / "gmail-spam.eml"
    result = run("bounces", "classify", str(good), str(tmp_path / "missing.eml"), "--json",
                 cwd=tmp_path)
    assert result.returncode == 1
    assert "missing.eml: cannot read" in result.stderr
    assert json.loads(result.stdout.splitlines()[0])["reason"] == "spam_detected"


def test_ingest_reports_an_unreachable_mailbox_without_its_password(tmp_path: Path) -> None:
    import socket

    with socket.socket() as closed:  # a loopback port with nobody listening
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = run("--database", f"sqlite:///{tmp_path / 'store.db'}", "bounces", "ingest",
                 f"imaps://bounce:hunter2@127.0.0.1:{port}/INBOX", cwd=tmp_path)
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "cannot read imaps://bounce:***@127.0.0.1" in message and "hunter2" not in message
