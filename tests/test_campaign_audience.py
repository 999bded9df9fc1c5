"""Audience queries: lists, statuses and the where-filter in SQL agree with the Python filter."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from dispatcher.core import segment
from dispatcher.core.campaign import Audience
from dispatcher.errors import CampaignError
from dispatcher.store import Store
from dispatcher.store.audience import count, members
from dispatcher.store.models import MailingList, Membership, Subscriber

PEOPLE: list[tuple[str, str, dict[str, Any]]] = [
    ("ann@example.org", "Ann", {"city": "Berlin", "plan": "pro", "age": "42", "vip": True}),
    ("bob@Example.COM", "Bob", {"city": "Berlin", "plan": "free", "age": 17}),
    ("cem@example.org", "", {"city": "Köln", "plan": "team", "age": "17.5", "vip": False}),
    ("dan@example.net", "Dan", {"plan": "pro", "age": "old", "score": -2}),
    ("eve@example.org", "Eve", {"city": None, "plan": 5, "age": " 30 ", "score": 1.5}),
    ("fay@example.org", "Fay", {"city": "berlin", "age": "-3", "tags": ["a"]}),
    ("gus@example.org", "Gus", {"city": "Zürich", "age": "1.2.3", "plan": "PRO"}),
    ("hal@example.org", "Hal", {"age": ".5", "plan": "team", "city": "Aachen"}),
]
FILTERS = [
    "city == 'Berlin' and plan in ['pro', 'team']",
    "city == 'Berlin'", "city != 'Berlin'", "not city == 'Berlin'",
    "plan in ['pro', 'team']", "plan not in ['pro', 'team']", "plan == 5",
    "age >= 18", "age < 18", "age == 17", "18 <= age < 65", "score > -1", "score <= -2",
    "vip == True", "vip == False", "vip != True", "city == None", "city != None",
    "city is None", "domain == 'example.org'", "domain == 'example.com'", "name == ''",
    "email == 'ann@example.org' or name == 'Dan'", "city < 'Berlin'", "city >= 'Köln'",
    "not (age > 10 or plan == 'pro')", "tags == 'a'", "missing == None", "missing != 'x'",
    "name > 'C'",
]


@pytest.fixture
def people(store: Store) -> Store:
    lists = MailingList.__table__  # type: ignore[attr-defined]
    subs = Subscriber.__table__  # type: ignore[attr-defined]
    member = Membership.__table__  # type: ignore[attr-defined]
    with store.engine.begin() as conn:
        main = conn.execute(lists.insert().values(name="main").returning(lists.c.id)).scalar_one()
        other = conn.execute(lists.insert().values(name="other").returning(lists.c.id)
                             ).scalar_one()
        for i, (email, name, attrs) in enumerate(PEOPLE):
            sid = conn.execute(subs.insert().values(email=email, name=name, attributes=attrs)
                               .returning(subs.c.id)).scalar_one()
            conn.execute(member.insert().values(list_id=main, subscriber_id=sid))
            if i % 2:
                conn.execute(member.insert().values(list_id=other, subscriber_id=sid))
        extra = conn.execute(subs.insert().values(email="zed@example.org", name="Zed",
                                                  attributes={}, status="unsubscribed")
                             .returning(subs.c.id)).scalar_one()
        conn.execute(member.insert().values(list_id=other, subscriber_id=extra))
    return store


def python_side(where: str) -> list[str]:
    predicate = segment.compile_filter(segment.parse(where))
    return [e for e, n, a in PEOPLE if predicate(segment.record(e, n, a))]


@pytest.mark.parametrize("where", FILTERS)
def test_sql_filter_agrees_with_the_python_filter(people: Store, where: str) -> None:
    audience = Audience(lists=["main"], where=where)
    got = [email for _, email, _, _ in members(people, audience)]
    assert got == python_side(where)
    assert count(people, audience) == len(got)


def test_lists_are_joined_once_and_inactive_people_left_out(people: Store) -> None:
    both = [e for _, e, _, _ in members(people, Audience(lists=["main", "other"]))]
    assert both == [e for e, _, _ in PEOPLE]
    assert "zed@example.org" not in both
    with people.engine.begin() as conn:
        conn.execute(sa.update(Subscriber).where(Subscriber.email == "ann@example.org")
                     .values(status="bounced"))
    assert count(people, Audience(lists=["main"])) == len(PEOPLE) - 1
    assert [e for _, e, _, _ in members(people, Audience(lists=["main"]), limit=2)] == [
        "bob@Example.COM", "cem@example.org"]


def test_an_unknown_list_is_named(people: Store) -> None:
    with pytest.raises(CampaignError, match="unknown list 'nope' in audience"):
        list(members(people, Audience(lists=["main", "nope"]), path="c.yaml"))
