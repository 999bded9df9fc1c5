"""Export (SQLite and PostgreSQL): filters, columns, and the export → import → export round trip."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.errors import ConfigError, NotFoundError
from dispatcher.lists.export_format import CsvLines, RowText
from dispatcher.lists.exporter import _BATCH, ExportOptions, _Prefetch, export_csv
from dispatcher.lists.importer import ImportOptions, import_file
from dispatcher.lists.mapping import export_value
from dispatcher.store import Store
from dispatcher.store.models import Subscriber, utcnow

DATA = Path(__file__).parent / "data" / "lists"


def export(store: Store, **options: object) -> str:
    out = io.StringIO()
    export_csv(store, out, options=ExportOptions(**options))  # type: ignore[arg-type]
    return out.getvalue()


def load_fixtures(store: Store, tmp_path: Path) -> None:
    for name, list_name in [("mailchimp_subscribed.csv", "mailchimp"),
                            ("listmonk_export.csv", "listmonk"),
                            ("excel_unicode.txt", "excel"), ("crm_cp1252.csv", "crm"),
                            ("broken.csv", "mailchimp")]:
        shutil.copy(DATA / name, tmp_path / name)
        import_file(store, tmp_path / name, ImportOptions(list_name=list_name))
    with store.engine.begin() as conn:
        conn.execute(sa.update(Subscriber).where(Subscriber.email == "kim@example.net")
                     .values(status="bounced"))


def test_columns_filters_and_values(store: Store, tmp_path: Path) -> None:
    load_fixtures(store, tmp_path)
    text = export(store, list_name="listmonk")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0] == ("email,name,status,lists,beta,city,plan,seats,tags,uuid,"
                                    "created_at,updated_at")
    assert [(r["email"], r["status"], r["lists"]) for r in rows] == [
        ("ops@example.net", "active", "listmonk"), ("gone@example.net", "unsubscribed", "listmonk"),
        ("kim@example.net", "bounced", "listmonk")]
    assert (rows[0]["beta"], rows[0]["seats"], rows[0]["tags"]) == ("true", "12", '["a", "b"]')
    assert rows[0]["created_at"] == "2023-03-01T10:00:00.123456+00:00"
    bounced = list(csv.DictReader(io.StringIO(export(store, status="bounced"))))
    assert [r["email"] for r in bounced] == ["kim@example.net"]
    where = list(csv.DictReader(io.StringIO(export(store, where="age >= 9"))))
    assert [(r["email"], r["age"]) for r in where] == [("good@example.com", "40"),
                                                       ("last@example.com", "10")]
    as_json = list(csv.DictReader(io.StringIO(export(store, list_name="listmonk",
                                                     attributes_json=True))))
    assert as_json[2]["attributes"] == (
        '{"city": "Seoul", "uuid": "9f1c6b4e-6c51-4f0e-9f6a-1c2d3e4f5a6d"}')


def test_bad_filters_are_errors(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no list called 'nope'"):
        export(store, list_name="nope")
    with pytest.raises(ConfigError, match="--status"):
        export(store, status="gone")
    with pytest.raises(ConfigError, match="--where"):
        export(store, where="age >=")


@pytest.mark.parametrize("attributes_json", [False, True])
def test_round_trip_export_import_export_is_identical(
        store_url: str, tmp_path: Path, attributes_json: bool) -> None:
    store = Store.open(store_url)
    load_fixtures(store, tmp_path)
    first = export(store, attributes_json=attributes_json)
    assert len(first.splitlines()) > 15
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM membership"))
        conn.execute(sa.text("DELETE FROM subscriber"))
        conn.execute(sa.text("DELETE FROM mailing_list"))
    path = tmp_path / "export.csv"
    path.write_text(first, encoding="utf-8")
    report = import_file(store, path, ImportOptions())
    rows = list(csv.reader(io.StringIO(first)))
    assert report.rejected_total == 0 and report.added == len(rows) - 1
    second = export(store, attributes_json=attributes_json)
    store.close()
    assert second == first


def test_keys_named_like_our_columns_and_odd_dates_survive_the_round_trip(
        store: Store, tmp_path: Path) -> None:
    # "Date added" and "created_at" whose text is no date we can read stay attributes; a
    # year before 1000 is written with four digits (strftime wrote "1-01-01").
    source = tmp_path / "odd.csv"
    # A bare "\r" in a value (old Mac line ends) was written unquoted before Python 3.13:
    # read back as a line break, it split the row.
    source.write_text(
        "email,Date added,created_at,attributes,note\n"
        'a@example.com,someday,0001-01-01 00:00:00,"{""email"": ""x"", ""Attribs"": 1,'
        ' ""email_"": 2, ""Email"": 3}","old\rmac"\n'
        "b@example.com,,0000-00-00 00:00:00,,\n"
        "c@example.com,2023-02-30,0001-01-01T00:00:00+01:00,,\n", encoding="utf-8",
        newline="")
    report = import_file(store, source, ImportOptions(list_name="odd"))
    assert (report.added, report.rejected_total) == (3, 0)
    first = export(store)
    header = first.splitlines()[0].split(",")
    assert header == ["email", "name", "status", "lists", "Attribs_", "Date added", "Email",
                      "created_at_", "email_", "email__", "note", "created_at", "updated_at"]
    rows = {r["email"]: r for r in csv.DictReader(io.StringIO(first))}
    assert (rows["a@example.com"]["created_at"], rows["a@example.com"]["Date added"],
            rows["a@example.com"]["email__"], rows["a@example.com"]["email_"]) == (
        "0001-01-01T00:00:00+00:00", "someday", "x", "2")
    assert rows["a@example.com"]["note"] == "old\rmac"
    assert rows["b@example.com"]["created_at_"] == "0000-00-00 00:00:00"
    assert rows["c@example.com"]["created_at_"] == "0001-01-01T00:00:00+01:00"
    assert rows["c@example.com"]["Date added"] == "2023-02-30"
    path = tmp_path / "again.csv"
    path.write_text(first, encoding="utf-8", newline="")
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM membership"))
        conn.execute(sa.text("DELETE FROM subscriber"))
    again = import_file(store, path, ImportOptions())
    assert (again.added, again.rejected_total) == (3, 0)
    assert export(store) == first


_FIELD = st.one_of(st.none(), st.text(alphabet=st.sampled_from('ab,"\n\r é;\t'), max_size=6))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_FIELD, min_size=4, max_size=4), max_size=5))
def test_csv_lines_are_what_csv_writer_writes(table: list[list[str | None]]) -> None:
    expected = io.StringIO()
    writer = csv.writer(expected, lineterminator="\r\n")
    lines = CsvLines(4)
    for row in table:
        lines.add(row)
        writer.writerow(row)
        expected.seek(expected.tell() - 2)  # "\n" ends our lines
        expected.write("\n")
        expected.truncate()
    text = lines.text()
    assert text == expected.getvalue()
    # What a CSV reader reads back: every field as it was ("\r" included), None as "".
    assert list(csv.reader(io.StringIO(text, newline=""))) == [
        ["" if f is None else f for f in row] for row in table]


@pytest.mark.parametrize("attributes", [
    {"n": 86, "neg": -7, "big": 10**30, "f": 9.41, "tiny": 1e-07, "e": 1e16, "z": -0.0,
     "three": 3.0, "t": True, "f2": False, "null": None, "s": "Zoë, \"q\"", "empty": ""},
    {"list": [1, 2.50, "x"], "obj": {"b": 1, "a": [True, None]}, "n": 5},
    {},
])
def test_attribute_columns_are_what_export_value_writes(attributes: dict[str, object]) -> None:
    keys = sorted({*attributes, "missing"})
    rows = RowText(keys, as_json=False, load_names=dict)
    for raw in (json.dumps(attributes), json.dumps(attributes, ensure_ascii=False)):
        assert rows.attributes(raw) == [export_value(attributes.get(k)) for k in keys]


def test_fetching_errors_and_early_stops_end_the_fetching_thread(store: Store) -> None:
    with pytest.raises(sa.exc.DBAPIError), _Prefetch(store, sa.select(sa.text("* FROM nope"))) as b:
        list(b)
    with store.engine.begin() as conn:
        conn.execute(sa.insert(Subscriber), [
            {"email": f"u{i}@example.com", "name": "", "attributes": {}, "status": "active",
             "created_at": utcnow(), "updated_at": utcnow()} for i in range(3 * _BATCH)])
    with _Prefetch(store, sa.select(Subscriber.email)) as batches:
        for _ in batches:
            break  # the writing stopped (a full disk, a closed pipe): the fetching stops too
    assert batches._thread.is_alive() is False
