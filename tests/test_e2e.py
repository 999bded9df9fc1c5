"""The whole pipeline on real files, a real store (both kinds) and a real SMTP relay."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from dispatcher.campaigns.loader import load_campaign
from dispatcher.cli import app
from dispatcher.core import verp
from dispatcher.delivery.queue import enqueue, prepare_campaign
from dispatcher.store import Store
from dispatcher.store.models import Delivery, Subscriber
from tests.support.relay import RecordingRelay

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def example_rows(root: Path) -> dict[str, dict[str, str]]:
    with (root / "lists" / "weekly.csv").open(encoding="utf-8") as fh:
        return {row["email"].lower(): row for row in csv.DictReader(fh)}


def test_import_then_send_delivers_one_personalized_message_per_active_subscriber(
        workspace: Path, relay: RecordingRelay, store_url: str) -> None:
    rows = example_rows(workspace)
    invoke("import", "lists/weekly.csv", "--list", "weekly")
    store = Store.open(store_url)
    left = sorted(rows)[7]
    with store.engine.begin() as conn:
        conn.execute(sa.update(Subscriber).where(Subscriber.email == left)
                     .values(status="unsubscribed"))

    invoke("send", "campaigns/weekly.yaml", "--relay", relay.url)

    received = relay.received
    assert sorted(r for m in received for r in m.rcpt_tos) == sorted(set(rows) - {left})
    secret = store.secret()
    with store.engine.connect() as conn:
        ids = dict(conn.execute(sa.select(Subscriber.email, Subscriber.id)).all())
        states = conn.execute(sa.select(Delivery.state, sa.func.count())
                              .group_by(Delivery.state)).all()
    assert states == [("sent", len(rows) - 1)]
    for item in received:
        (rcpt,) = item.rcpt_tos
        row = rows[rcpt]
        msg = item.message()
        assert not msg.defects
        assert msg["To"].addresses[0].addr_spec == rcpt
        assert msg["Subject"] == f"{row['first_name']}, your week in {row['city']}"
        assert msg["From"].addresses[0].addr_spec == "news@news.example.com"
        assert msg["Message-ID"].endswith("@news.example.com>") and msg["Date"]
        assert msg.get_content_type() == "multipart/alternative"
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert f"Hi {row['first_name']}," in text and f"Hi {row['first_name']}," in html
        unsubscribe = msg["List-Unsubscribe"]
        assert "<https://news.example.com/unsubscribe/" in unsubscribe and "<mailto:" in unsubscribe
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        campaign_and_subscriber = verp.parse(secret, item.mail_from, prefix="bounces")
        assert campaign_and_subscriber is not None
        assert campaign_and_subscriber[1] == ids[rcpt]
    store.close()

    status = json.loads(invoke("status", "--json"))["campaigns"]
    assert [(c["name"], c["status"], c["total"], c["sent"]) for c in status] == [
        ("weekly-2026-48", "finished", len(rows) - 1, len(rows) - 1)]

    # Sending again mails nobody twice.
    invoke("send", "campaigns/weekly.yaml", "--relay", relay.url)
    assert len(relay.received) == len(rows) - 1


def test_capture_relay_files_one_eml_per_subscriber(workspace: Path) -> None:
    invoke("import", "lists/weekly.csv", "--list", "weekly")
    output = invoke("send", "campaigns/weekly.yaml")
    files = sorted((workspace / "outbox").glob("*.eml"))
    assert len(files) == len(example_rows(workspace))
    assert "outbox" in output
    first = files[0].read_bytes()
    assert first.startswith(b"Return-Path: <bounces+")


def test_enqueue_counts_what_it_queued(workspace: Path, store_url: str) -> None:
    invoke("import", "lists/weekly.csv", "--list", "weekly")
    store = Store.open(store_url)
    definition = load_campaign(workspace / "campaigns" / "weekly.yaml")
    campaign_id = prepare_campaign(store, definition, source_path="campaigns/weekly.yaml",
                                   relay="capture")
    assert enqueue(store, campaign_id, definition) == len(example_rows(workspace))
    assert enqueue(store, campaign_id, definition) == 0
    store.close()
