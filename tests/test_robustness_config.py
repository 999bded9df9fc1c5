"""A careless dispatcher.toml or store URL: one line naming the file and the key, never a crash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from dispatcher.config import Workspace
from dispatcher.errors import ConfigError


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed entry point in a real process, as a user would run it."""
    return subprocess.run([sys.executable, "-c", "from dispatcher.cli import main; main()", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def failed(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a command that must have stopped cleanly with exit code 1."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "internal error" not in result.stderr
    return result.stderr


def load_error(tmp_path: Path, toml: bytes) -> str:
    (tmp_path / "dispatcher.toml").write_bytes(toml)
    with pytest.raises(ConfigError) as caught:
        Workspace.load(tmp_path)
    return str(caught.value)


def test_unknown_keys_name_their_line_and_the_key_meant(tmp_path: Path) -> None:
    shown = str(tmp_path / "dispatcher.toml")
    assert load_error(tmp_path, b'[sending]\ndomain = "a.example"\ndomian = "b.example"\n') == (
        f"{shown}:3: unknown key 'domian' in [sending] (did you mean 'domain'?)")
    assert load_error(tmp_path, b'# relays\n[relays.main]\nurl = "smtp://h"\n'
                      b'max_conections = 3\n') == (
        f"{shown}:4: unknown key 'max_conections' in [relays.main] "
        "(did you mean 'max_connections'?)")
    assert load_error(tmp_path, b'databse = "sqlite:///x.db"\n') == (
        f"{shown}:1: unknown key 'databse' (did you mean 'database'?)")
    assert load_error(tmp_path, b'[relays]\ndefault = "smtp://h"\n') == (
        f"{shown}:2: relays.default must be a table: [relays.default] followed by its keys")


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://relay.example.com", "scheme must be smtp, smtp+starttls or smtps"),
    ("smtps://[::1", "is not a URL: Invalid IPv6 URL"),
    ("smtp://relay.example.com:abc", "is not a URL: Port could not be cast"),
    ("smtp://", "has no host"),
])
def test_a_bad_relay_url_is_reported_where_it_is_written(
        tmp_path: Path, url: str, message: str) -> None:
    error = load_error(tmp_path, f'[sending]\ndomain = "a.example"\n\n[relays.default]\n'
                                 f'url = "{url}"\n'.encode())
    assert error.startswith(f"{tmp_path / 'dispatcher.toml'}:5: relays.default.url: ")
    assert message in error


def test_a_relay_password_from_the_environment_is_not_needed_until_the_relay_is_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    (tmp_path / "dispatcher.toml").write_text(
        '[relays.default]\nurl = "smtp://u:${NOT_SET_ANYWHERE}@relay.example.com"\n',
        encoding="utf-8")
    assert Workspace.load(tmp_path).config.relays["default"].url.startswith("smtp://u:")


def test_an_unreadable_or_binary_or_bottomless_config_is_one_clear_line(tmp_path: Path) -> None:
    shown = str(tmp_path / "dispatcher.toml")
    assert load_error(tmp_path, b"\xff\xfe[sending]\n") == (
        f"{shown}: not UTF-8 text: invalid start byte at byte 0")
    assert load_error(tmp_path, b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n") == (
        f"{shown}: not valid TOML: nested too deeply")
    (tmp_path / "dispatcher.toml").unlink()
    (tmp_path / "dispatcher.toml").mkdir()
    with pytest.raises(ConfigError, match=r"dispatcher.toml: cannot read: Is a directory"):
        Workspace.load(tmp_path)
    stderr = failed(run("status", cwd=tmp_path))
    assert "dispatcher.toml: cannot read: Is a directory" in stderr


def test_the_documented_dkim_tracking_and_scheduler_settings_are_accepted(
        workspace: Path) -> None:
    """docs/campaigns.md documents [[sending.dkim]] and sending.tracking_url, and the daemon
    reads [scheduler]: a dispatcher.toml using them was refused as having unknown keys."""
    key = ed25519.Ed25519PrivateKey.generate()
    (workspace / "dkim.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with (workspace / "dispatcher.toml").open("a", encoding="utf-8") as toml:
        toml.write('\n[[sending.dkim]]\ndomain = "news.example.com"\nselector = "ed1"\n'
                   'key_file = "dkim.pem"\n\n[scheduler]\ndefault_timezone = "Asia/Tokyo"\n')
    toml_text = (workspace / "dispatcher.toml").read_text(encoding="utf-8")
    (workspace / "dispatcher.toml").write_text(toml_text.replace(
        "[sending]\n", '[sending]\ntracking_url = "https://t.example.com"\n'), encoding="utf-8")
    config = Workspace.load(workspace).config
    assert config.sending.tracking_url == "https://t.example.com"
    assert config.scheduler.default_timezone == "Asia/Tokyo"

    result = run("import", "lists/weekly.csv", "--list", "weekly", cwd=workspace)
    assert result.returncode == 0, result.stderr
    result = run("campaign", "check", "campaigns/weekly.yaml", "--sample", "3", cwd=workspace)
    assert result.returncode == 0, result.stderr
    assert "DKIM: ed25519-sha256 d=news.example.com s=ed1" in result.stdout
    result = run("preview", "campaigns/weekly.yaml", "--out", "previews", "--limit", "1",
                 cwd=workspace)
    assert result.returncode == 0, result.stderr
    (eml,) = (workspace / "previews").glob("*.eml")
    assert b"\r\nDKIM-Signature: v=1; a=ed25519-sha256;" in eml.read_bytes()
    result = run("schedule", "campaigns/weekly.yaml", "--at", "2030-01-07T09:00",
                 cwd=workspace)
    assert result.returncode == 0, result.stderr
    assert "2030-01-07 00:00 UTC (Mon 2030-01-07 09:00 Asia/Tokyo)" in " ".join(
        result.stdout.split())  # rich wraps the line at the terminal's width


def test_a_store_url_that_is_no_store_names_the_url(tmp_path: Path) -> None:
    (tmp_path / "notes.db").write_text("shopping list: milk, eggs\n", encoding="utf-8")
    stderr = failed(run("--database", "sqlite:///notes.db", "status", cwd=tmp_path))
    assert f"cannot open the store at sqlite:///{tmp_path / 'notes.db'}: " \
           "file is not a database" in stderr
    stderr = failed(run("--database", "garbage://user:secret@host/db", "dashboard",
                        cwd=tmp_path))
    assert "cannot open the store at garbage://user:***@host/db: Can't load plugin" in stderr
    assert "secret" not in stderr
    stderr = failed(run("--database", "not a url", "lists", cwd=tmp_path))
    assert "cannot open the store at not a url: Could not parse" in stderr


def test_a_workspace_that_is_not_there_is_named(tmp_path: Path) -> None:
    """It used to surface as "cannot open the store at sqlite:////missing/dispatcher.db"."""
    stderr = failed(run("--workspace", str(tmp_path / "missing"), "status", cwd=tmp_path))
    assert f"error: {tmp_path / 'missing'}: the workspace folder does not exist" in stderr
