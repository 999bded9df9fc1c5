"""Files and mailboxes pointed at carelessly: output folders, folders of other files, bad mail."""

from __future__ import annotations

import csv
import json
import smtplib
from pathlib import Path

import pytest

from dispatcher.errors import ConfigError
from dispatcher.feedback.inbound import InboundHandler, start_receiver
from dispatcher.feedback.intake import from_files, ingest, open_source
from dispatcher.store import Store
from tests.conftest import REPO
from tests.test_robustness_config import failed, run

SAMPLES = REPO / "tests" / "data" / "bounces" / "providers"


def nested_mime(depth: int = 3000) -> bytes:
    """A message whose MIME parts nest thousands deep: the stdlib parser recurses on it."""
    head = "From: mailer-daemon@example.net\nTo: bounces@bounces.example.com\nSubject: x\n" \
           "MIME-Version: 1.0\n"
    opening = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n'
                      for i in range(depth))
    closing = "".join(f"--b{i}--\n" for i in reversed(range(depth)))
    return (head + opening + "Content-Type: text/plain\n\nhi\n" + closing).encode()


def test_export_into_a_missing_folder_a_folder_or_under_a_file(workspace: Path) -> None:
    assert run("import", "lists/weekly.csv", "--list", "weekly", cwd=workspace).returncode == 0
    stderr = failed(run("export", "-o", "missing/dir/out.csv", cwd=workspace))
    assert "missing/dir/out.csv: the folder missing/dir does not exist" in stderr
    stderr = failed(run("export", "-o", "lists", cwd=workspace))
    assert "lists: is a folder: give a file name" in stderr
    stderr = failed(run("export", "-o", "lists/weekly.csv/out.csv", cwd=workspace))
    assert "lists/weekly.csv/out.csv: cannot write: Not a directory" in stderr
    # A failure half way (here: an unknown list) leaves no half file behind.
    stderr = failed(run("export", "--list", "nosuch", "-o", "out.csv", cwd=workspace))
    assert "no list called 'nosuch'" in stderr
    assert not (workspace / "out.csv.partial").exists()
    assert not (workspace / "out.csv").exists()
    result = run("export", "--list", "weekly", "-o", "out.csv", cwd=workspace)
    assert result.returncode == 0, result.stderr
    with (workspace / "out.csv").open(encoding="utf-8") as exported:
        assert len(list(csv.DictReader(exported))) == 300


def test_a_delimiter_of_several_characters_is_bad_usage_not_a_crash(workspace: Path) -> None:
    stderr = failed(run("import", "lists/weekly.csv", "--list", "w", "--delimiter", "ab",
                        cwd=workspace))
    assert "--delimiter 'ab': one character, e.g. ';' or 'tab'" in stderr
    (workspace / "semi.csv").write_text("email;first_name\na@example.com;A\n", encoding="utf-8")
    result = run("import", "semi.csv", "--list", "w", "--delimiter", ";", "--json",
                 cwd=workspace)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["added"] == 1


def test_classify_goes_on_past_a_file_it_cannot_read_or_parse(tmp_path: Path) -> None:
    (tmp_path / "deep.eml").write_bytes(nested_mime())
    (tmp_path / "folder").mkdir()
    result = run("bounces", "classify", "deep.eml", "missing.eml", "folder",
                 str(SAMPLES / "gmail-spam.eml"), "--json", cwd=tmp_path)
    stderr = failed(result)
    assert "error: deep.eml: cannot classify: MIME parts nested too deeply" in stderr
    assert "error: missing.eml: cannot read: No such file or directory" in stderr
    assert "error: folder: cannot read: Is a directory" in stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["reason"] for r in rows] == ["spam_detected"]


def test_a_folder_of_files_takes_mail_only_and_leaves_the_rest_alone(
        store: Store, tmp_path: Path) -> None:
    """`bounces ingest lists` moved the subscriber CSV into lists/processed/."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "weekly.csv").write_text("email,first_name\na@example.com,A\n", encoding="utf-8")
    (folder / "notes.md").write_text("# Notes\n\nnothing: here\n", encoding="utf-8")
    (folder / "arf-yahoo.eml").write_bytes((SAMPLES / "arf-yahoo.eml").read_bytes())
    (folder / "qmail.txt").write_bytes(
        (REPO / "tests" / "data" / "bounces" / "flufl" / "qmail_03.txt").read_bytes())
    (folder / "deep.eml").write_bytes(nested_mime())
    name, messages = open_source(str(folder))
    report = ingest(store, messages, source=name, verp_prefix="bounces")
    assert report.skipped == [str(folder / "notes.md"), str(folder / "weekly.csv")]
    assert report.messages == 3 and report.failed == 1
    assert report.errors == [f"{folder / 'deep.eml'}: not applied, left in place: "
                             "maximum recursion depth exceeded"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "deep.eml", "notes.md", "processed", "weekly.csv"]
    assert sorted(p.name for p in (folder / "processed").iterdir()) == [
        "arf-yahoo.eml", "qmail.txt"]


def test_a_file_that_vanished_or_cannot_be_read_is_left_for_the_next_pass(
        store: Store, tmp_path: Path) -> None:
    sample = tmp_path / "arf-yahoo.eml"
    sample.write_bytes((SAMPLES / "arf-yahoo.eml").read_bytes())
    report = ingest(store, from_files([tmp_path / "gone.eml", tmp_path, sample]),
                    source="files", verp_prefix="bounces")
    assert (report.messages, report.failed) == (1, 2)
    assert report.errors == [
        f"{tmp_path / 'gone.eml'}: not read, left in place: cannot read: No such file or "
        "directory",
        f"{tmp_path}: not read, left in place: cannot read: Is a directory"]


def test_ingest_exits_non_zero_when_a_message_was_left_behind(workspace: Path) -> None:
    folder = workspace / "returned"
    folder.mkdir()
    (folder / "deep.eml").write_bytes(nested_mime())
    (folder / "arf-yahoo.eml").write_bytes((SAMPLES / "arf-yahoo.eml").read_bytes())
    (folder / "README.txt").write_text("Bounces land here.\n", encoding="utf-8")
    result = run("bounces", "ingest", "returned", cwd=workspace)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    text = " ".join(result.stdout.split())
    assert "1 file(s) are not mail and were left where they are:" in text
    assert "deep.eml: not applied, left in place" in text
    assert (folder / "processed" / "arf-yahoo.eml").exists()


@pytest.mark.parametrize(("url", "message"), [
    ("imaps://user:secret@[::1/INBOX", "Invalid IPv6 URL"),
    ("pop3s://user:secret@mail.example.com:pop", "Port could not be cast"),
])
def test_a_malformed_mailbox_url_is_refused_before_connecting(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_source(url)
    assert message in str(caught.value)
    assert "secret" not in str(caught.value)


def test_the_receiver_refuses_for_good_what_can_never_be_parsed(store: Store) -> None:
    """451 made the sending MTA retry the same unparseable message for days."""
    handler = InboundHandler(store, "bounces.example.com", "bounces")
    controller = start_receiver(handler)
    try:
        with smtplib.SMTP("127.0.0.1", controller.port, timeout=30) as smtp:
            with pytest.raises(smtplib.SMTPDataError) as refused:
                smtp.sendmail("", ["postmaster@bounces.example.com"],
                              nested_mime().replace(b"\n", b"\r\n"))
            assert refused.value.smtp_code == 554
            smtp.sendmail("", ["postmaster@bounces.example.com"],
                          (SAMPLES / "arf-yahoo.eml").read_bytes().replace(b"\n", b"\r\n"))
    finally:
        controller.stop()
    assert handler.accepted == 1
