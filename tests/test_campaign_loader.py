"""Campaign YAML: the full schema loads; each broken fixture names its file, line, column."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dispatcher.campaigns.loader import load_campaign
from dispatcher.errors import CampaignError

DATA = Path(__file__).parent / "data"
BROKEN = sorted(p.name for p in (DATA / "campaigns").glob("*.yaml") if p.name != "good.yaml")


def test_the_full_example_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(DATA)
    c = load_campaign(Path("campaigns/good.yaml"), root=Path("."))
    assert c.sender.name == "Shop Team" and c.sender.address == "news@shop.example"
    assert c.audience.lists == ["customers"]
    assert c.audience.filter() is not None
    assert c.relay_pool == ["a", "b"] and c.rate.per_second == 50 and c.rate.connections == 8
    assert c.schedule is not None and c.schedule.at is not None
    assert c.schedule.at == datetime(2026, 3, 20, 8, 0, tzinfo=UTC)
    assert c.schedule.window is not None and c.schedule.window.hours == "09:00-17:00"
    assert c.tracking.opens and c.tracking.clicks
    assert c.ab_test is not None and c.ab_test.winner is not None
    assert c.ab_test.winner.wait == timedelta(hours=4)
    assert [v.name for v in c.ab_test.variants] == ["a", "b"]
    assert c.template_paths() == ["templates/news.mjml", "templates/news.txt",
                                  "templates/variant_b.html"]


@pytest.mark.parametrize("name", BROKEN)
def test_broken_fixture_gives_the_exact_message(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(DATA)
    path = Path("campaigns") / name
    expected = path.read_text(encoding="utf-8").splitlines()[0].removeprefix("# expect: ")
    with pytest.raises(CampaignError) as caught:
        load_campaign(path, root=Path("."))
    assert str(caught.value) == expected


def test_every_broken_fixture_states_its_expectation() -> None:
    assert len(BROKEN) >= 10
    for name in BROKEN:
        first = (DATA / "campaigns" / name).read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith(f"# expect: campaigns/{name}:")


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(body, encoding="utf-8")
    return path


BASE = "name: x\nfrom: a@shop.example\nsubject: Hi\ntemplate: t.mjml\naudience: {lists: [l]}\n"


@pytest.mark.parametrize(("extra", "message"), [
    ("reply_to: 'nope'\n", "reply_to: 'nope' is not a valid email address"),
    ("reply_to: 'zoë@example.org'\n", "'zoë@example.org' is not a valid email address"),
    ("relay: a\nrelays: [b]\n", "give either 'relay' or a 'relays' pool, not both"),
    ("schedule: {at: '2026-03-20T09:00 Mars/Olympus'}\n", "unknown time zone 'Mars/Olympus'"),
    ("schedule: {timezone: Europe/Nowhere}\n", "unknown time zone 'Europe/Nowhere'"),
    ("schedule: {window: {zone: Moon/Base}}\n", "unknown time zone 'Moon/Base'"),
    ("schedule: {local_time: '25:00'}\n", "must look like 09:00"),
    ("schedule: {cron: '0 9 * *'}\n", "needs five fields"),
    ("schedule: {at: '2026-03-20T09:00:00Z', cron: '0 9 * * *'}\n",
     "schedule takes one of at, cron, local_time, not at and cron"),
    ("schedule: {window: {days: [monday, funday]}}\n", "unknown day 'funday'"),
    ("tracking: {opens: maybe}\n", "'opens' must be true or false"),
    ("rate: {per_second: 0}\n", "rate.per_second: Input should be greater than 0"),
    ("ab_test: {variants: [{name: a, subject: A, percent: 50}, {name: b, subject: B, "
     "percent: 50}], winner: {by: opens, after: 4h}}\n", "leave some of the audience"),
    ("ab_test: {variants: [{name: a, subject: A, percent: 60}, {name: b, subject: B, "
     "percent: 40}], winner: {by: replies, after: 4h}}\n", "ab_test.winner.by"),
    ("ab_test: {variants: [{name: a, subject: A, percent: 5}, {name: b, subject: B, "
     "percent: 5}], winner: {by: clicks, after: soon}}\n", "duration 'soon' must look like"),
    ("headers: {'Bad Name': x}\n", "'Bad Name' is not a valid header name"),
])
def test_bad_values_are_explained(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(CampaignError, match=None) as caught:
        load_campaign(_write(tmp_path, BASE + extra))
    assert message in str(caught.value)
    assert caught.value.line is not None and caught.value.line >= 1


def test_international_sender_is_accepted_and_normalised(tmp_path: Path) -> None:
    c = load_campaign(_write(tmp_path, BASE.replace("a@shop.example", "Zoë <x>")
                             .replace("from: Zoë <x>", "from: {name: Zoë, address: "
                                      "news@bücher.example}")))
    assert c.sender.address == "news@bücher.example" and c.sender.name == "Zoë"


def test_a_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(CampaignError, match="must be a mapping"):
        load_campaign(_write(tmp_path, "- just\n- a list\n"))
    with pytest.raises(CampaignError, match="must be a mapping"):
        load_campaign(_write(tmp_path, ""))


def test_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(CampaignError, match="cannot read campaign file"):
        load_campaign(tmp_path / "missing.yaml")
    (tmp_path / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    with pytest.raises(CampaignError, match="not UTF-8"):
        load_campaign(tmp_path / "latin1.yaml")


def test_schedule_times_and_windows_use_the_scheduler_grammar(tmp_path: Path) -> None:
    c = load_campaign(_write(tmp_path, BASE + "schedule:\n  at: '2026-12-01T09:00 Europe/Berlin'\n"
                             "  window: {days: mon-fri, hours: '8:00-18:00', zone: recipient}\n"))
    assert c.schedule is not None and c.schedule.window is not None
    assert c.schedule.at == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert c.schedule.window.days == "mon-fri"
    naive = load_campaign(_write(tmp_path, BASE + "schedule: {at: '2026-07-01T09:00', "
                                 "timezone: America/New_York}\n"))
    assert naive.schedule is not None
    assert naive.schedule.at == datetime(2026, 7, 1, 13, 0, tzinfo=UTC)


def test_the_winner_is_the_best_rate_and_ties_go_to_the_first(tmp_path: Path) -> None:
    c = load_campaign(_write(tmp_path, BASE + "ab_test: {variants: [{name: a, subject: A, "
                             "percent: 10}, {name: b, subject: B, percent: 10}, {name: c, "
                             "subject: C, percent: 10}], winner: {by: clicks, after: 30m}}\n"))
    ab = c.ab_test
    assert ab is not None and ab.winner is not None
    assert ab.winner.wait == timedelta(minutes=30)
    assert ab.pick_winner({"a": (100, 5), "b": (50, 5), "c": (0, 0)}) == "b"
    assert ab.pick_winner({"a": (100, 5), "b": (100, 5)}) == "a"
    assert ab.pick_winner({}) == "a"
    assert {ab.assign(1, s) for s in range(300)} == {"a", "b", "c", ""}
