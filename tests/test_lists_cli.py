"""The list commands as a user runs them: import/export options, lists, subscriber (both DBs)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from dispatcher.cli import app
from dispatcher.store import Store
from dispatcher.store.models import Event, Subscriber, Suppression
from dispatcher.store.subscribers import suppression_hash

DATA = Path(__file__).parent / "data" / "lists"
runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def fails(*args: str) -> str:
    """The error a command stops with (cli.main prints it; the runner keeps it)."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == 1, result.output
    return str(result.exception)


def test_import_json_dry_run_export_and_lists(workspace: Path, store_url: str) -> None:
    shutil.copy(DATA / "broken.csv", workspace / "broken.csv")
    dry = json.loads(invoke("import", "broken.csv", "--list", "news", "--dry-run", "--json"))
    assert (dry["dry_run"], dry["added"], dry["rejected_total"]) == (True, 7, 5)
    assert "no lists yet" in invoke("lists")
    summary = json.loads(invoke("import", "broken.csv", "--list", "news", "--json"))
    assert (summary["read"], summary["added"], summary["duplicates_in_file"]) == (13, 7, 1)
    assert summary["rejected"] == {"invalid email": 3, "missing email": 1, "too many fields": 1}
    assert summary["rejects_file"].endswith("broken.csv.rejects.csv")
    invoke("subscriber", "unsubscribe", "good@example.com")
    invoke("subscriber", "unsubscribe", "quote@example.com", "--list", "news")
    counts = json.loads(invoke("lists", "--json"))
    assert counts == [{"list": "news", "total": 7, "active": 5, "unsubscribed": 1, "bounced": 0,
                       "complained": 0, "left_list": 1}]
    table = invoke("lists")
    assert "news" in table and "left this list" in table
    out = invoke("export", "--status", "unsubscribed", "-o", "-")
    assert [r["email"] for r in csv.DictReader(io.StringIO(out))] == ["good@example.com"]
    invoke("export", "--list", "news", "--where", "age > 8", "-o", "out.csv")
    rows = list(csv.DictReader(io.StringIO((workspace / "out.csv").read_text(encoding="utf-8"))))
    assert [r["email"] for r in rows] == ["good@example.com", "last@example.com"]
    assert not (workspace / "out.csv.partial").exists()


def test_list_management(workspace: Path, store_url: str) -> None:
    invoke("lists", "create", "weekly", "--description", "Fridays")
    assert "already exists" in fails("lists", "create", "weekly")
    invoke("lists", "rename", "weekly", "friday")
    (workspace / "f.csv").write_text("email\na@example.com\n", encoding="utf-8")
    invoke("import", "f.csv", "--list", "friday")
    assert [c["list"] for c in json.loads(invoke("lists", "--json"))] == ["friday"]
    assert "1 memberships" in invoke("lists", "delete", "friday", "--yes")
    assert json.loads(invoke("lists", "--json")) == []
    assert "no list called 'nope'" in fails("lists", "delete", "nope", "--yes")


def test_subscriber_show_and_gdpr_erase(workspace: Path, store_url: str) -> None:
    (workspace / "f.csv").write_text("email,first_name\nAnn@Example.com,Ann\n", encoding="utf-8")
    invoke("import", "f.csv", "--list", "l")
    shown = json.loads(invoke("subscriber", "show", "ann@example.com", "--json"))
    assert (shown["attributes"], shown["lists"], shown["status"]) == (
        {"first_name": "Ann"}, {"l": "subscribed"}, "active")
    invoke("subscriber", "unsubscribe", "ANN@example.com")
    shown = json.loads(invoke("subscriber", "show", "ann@example.com", "--json"))
    assert shown["status"] == "unsubscribed"
    assert [e["kind"] for e in shown["events"]] == ["unsubscribed"]
    invoke("subscriber", "delete", "ann@example.com", "--yes")
    store = Store.open(store_url)
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Subscriber)).scalar() == 0
        assert conn.execute(sa.select(Event.subscriber_id, Event.detail)).all() == [(None, "")]
        assert conn.execute(sa.select(Suppression.email_hash, Suppression.reason)).all() == [
            (suppression_hash("ann@example.com"), "erased")]
    store.close()
    again = json.loads(invoke("import", "f.csv", "--list", "l", "--json"))
    assert (again["added"], again["rejected"]) == (0, {"suppressed (erased)": 1})
    assert "no subscriber" in fails("subscriber", "show", "ann@example.com")
