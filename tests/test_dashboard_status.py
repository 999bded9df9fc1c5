"""``dispatcher status``: the rolled-up numbers as text and JSON, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from dispatcher.cli import app
from dispatcher.delivery.queue import campaign_counts
from dispatcher.store import Store
from tests.test_dashboard_support import prepare

runner = CliRunner()


def test_status_json_matches_a_full_count(store: Store, store_url: str, tmp_path: Path) -> None:
    prepare(store)
    result = runner.invoke(app, ["--workspace", str(tmp_path), "--database", store_url,
                                 "status", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    oracle = {c["name"]: c for c in campaign_counts(store)}
    assert [c["name"] for c in data["campaigns"]] == list(oracle)
    for row in data["campaigns"]:
        for key in ("status", "total", "sent", "deferred", "bounced", "failed",
                    "unsubscribed", "complained"):
            assert row[key] == oracle[row["name"]][key], (row["name"], key)
    spring = data["campaigns"][0]
    assert (spring["queued"], spring["progress"]) == (24, round(35 / 60, 4))
    assert {r["relay"] for r in data["relays"]} == {"smtp://relay-a:25", "smtp://relay-b:25"}


def test_status_text_and_unknown_campaign(store: Store, store_url: str, tmp_path: Path) -> None:
    prepare(store)
    base = ["--workspace", str(tmp_path), "--database", store_url, "status"]
    result = runner.invoke(app, [*base, "--campaign", "autumn-news"], catch_exceptions=False,
                           env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    narrow = runner.invoke(app, base, catch_exceptions=False, env={"COLUMNS": "80"}).output
    assert max(len(li) for li in narrow.splitlines()) <= 80
    assert "spring-sale" in narrow
    line = next(li for li in result.output.splitlines() if "autumn-news" in li)
    assert line.split() == ["autumn-news", "finished", "10", "9", "0", "1", "0", "0", "1",
                            "100%", "-", "-"]
    assert "relay smtp://relay-a:25: " in result.output
    missing = runner.invoke(app, [*base, "--campaign", "nope"])
    assert missing.exit_code != 0
    assert "no campaign named 'nope'" in str(missing.exception)
