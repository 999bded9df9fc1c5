"""Importing into the store (SQLite and PostgreSQL): counts, rejects, modes, compliance."""

from __future__ import annotations

import csv
import gc
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dispatcher.errors import ListFileError
from dispatcher.lists.importer import ImportOptions, import_file
from dispatcher.lists.mapping import parse_map
from dispatcher.store import Store
from dispatcher.store.models import Event, Membership, Subscriber, Suppression
from dispatcher.store.subscribers import ensure_list, suppression_hash

DATA = Path(__file__).parent / "data" / "lists"


def copy(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copy(DATA / name, target)
    return target


def subscribers(store: Store) -> dict[str, tuple[str, str, dict[str, Any]]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(Subscriber.email, Subscriber.name, Subscriber.status,
                                      Subscriber.attributes)).all()
    return {r.email: (r.name, r.status, r.attributes) for r in rows}


def seed(store: Store, email: str, status: str = "active", **attributes: Any) -> None:
    from dispatcher.store.models import utcnow
    with store.engine.begin() as conn:
        conn.execute(sa.insert(Subscriber).values(
            email=email, name="Seed", status=status, attributes=attributes,
            created_at=utcnow(), updated_at=utcnow()))


def rejects(path: Path) -> list[list[str]]:
    with path.with_name(path.name + ".rejects.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def test_broken_file_exact_counts_reasons_and_line_numbers(store: Store, tmp_path: Path) -> None:
    path = copy("broken.csv", tmp_path)
    seed(store, "left@example.com", status="unsubscribed")
    with store.engine.begin() as conn:
        conn.execute(sa.insert(Suppression).values(
            email_hash=suppression_hash("erased@example.com"), reason="erased"))
    report = import_file(store, path, ImportOptions(list_name="news"))
    assert (report.read, report.added, report.updated, report.unchanged, report.duplicates,
            report.suppressed_kept) == (13, 5, 1, 0, 1, 1)
    assert dict(report.rejected) == {"invalid email": 3, "missing email": 1,
                                     "too many fields": 1, "suppressed (erased)": 1}
    got = rejects(path)
    assert got[0] == ["line", "reason", "email", "first_name", "city", "age"]
    assert [(r[0], r[1].partition(":")[0]) for r in got[1:]] == [
        ("3", "invalid email"), ("4", "missing email"), ("8", "too many fields"),
        ("10", "invalid email"), ("14", "invalid email"), ("13", "suppressed (erased)")]
    assert got[3] == ["8", "too many fields: 5 fields, the header has 4",
                      "extra@example.com", "Extra", "Riga", "4", "surplus"]
    subs = subscribers(store)
    assert "erased@example.com" not in subs
    assert subs["left@example.com"][1] == "unsubscribed"
    assert subs["good@example.com"] == ("", "active", {"first_name": "Good", "city": "Paris",
                                                       "age": 40})
    assert subs["multi@example.com"][2]["first_name"] == "Line\nbreak"
    assert subs["short@example.com"][2] == {"first_name": "Short"}
    assert subs["last@example.com"][2]["age"] == 10


def test_unterminated_quotes_reject_their_line_and_keep_the_rows_after(store: Store,
                                                                        tmp_path: Path) -> None:
    path = copy("unterminated_quote.csv", tmp_path)
    report = import_file(store, path, ImportOptions(list_name="news"))
    assert (report.read, report.added, report.duplicates) == (8, 6, 0)
    assert dict(report.rejected) == {"unterminated quoted field": 2}
    assert rejects(path)[1:] == [
        ["6", "unterminated quoted field: line 6 opens a quote that is only closed on line 8, "
              "by a quote followed by more text", "bad@example.com", '"Smith', "Rome", "60"],
        ["12", "unterminated quoted field: line 12 opens a quote that is still open at the end "
               "of the file", "last@example.com", '"Never closed', "Graz", "10"]]
    subs = subscribers(store)
    assert sorted(subs) == ["ann@example.com", "carl@example.com", "dora@example.com",
                            "eve@example.com", "frank@example.com", "multi@example.com"]
    assert subs["carl@example.com"][2] == {"first_name": "Carl", "address": "Oslo", "age": 23}
    assert subs["dora@example.com"][2]["first_name"] == 'Dora "D" Ray'
    assert subs["eve@example.com"][2]["address"] == "Postfach 12\r\nWien"
    assert subs["multi@example.com"][2]["address"] == "Flat 2\r\n12 High Street\r\nLeeds"


def test_a_quote_left_open_above_a_thousand_rows_loses_none_of_them(store: Store,
                                                                     tmp_path: Path) -> None:
    good = "".join(f"u{i}@example.com,U{i}\n" for i in range(1500))
    f = write(tmp_path / "f.csv", "email,first_name\na@example.com,A\nb@example.com,B\n"
                                  'c@example.com,C\nbad@example.com,"Smith\n' + good)
    report = import_file(store, f, ImportOptions(list_name="l"))
    assert (report.read, report.added, report.rejected_total) == (1504, 1503, 1)
    assert rejects(f)[1:] == [["5", "unterminated quoted field: line 5 opens a quote that is "
                                    "still open after 1,000 lines", "bad@example.com", '"Smith']]
    subs = subscribers(store)
    assert len(subs) == 1503 and "bad@example.com" not in subs
    assert subs["u1499@example.com"][2] == {"first_name": "U1499"}


@pytest.mark.parametrize(("name", "options", "counts", "rejected"), [
    ("mailchimp_subscribed.csv", {}, (5, 4, 0), {"invalid email": 1}),
    ("listmonk_export.csv", {}, (4, 3, 0), {"attributes not a JSON object": 1}),
    ("sendy_export.csv", {}, (4, 2, 1), {"missing email": 1}),
    ("excel_unicode.txt", {}, (3, 3, 0), {}),
    ("crm_cp1252.csv", {}, (3, 3, 0), {}),
])
def test_exports_of_other_tools(store: Store, tmp_path: Path, name: str,
                                options: dict[str, Any], counts: tuple[int, int, int],
                                rejected: dict[str, int]) -> None:
    report = import_file(store, copy(name, tmp_path), ImportOptions(list_name="l", **options))
    assert (report.read, report.added, report.duplicates) == counts
    assert dict(report.rejected) == rejected


def test_listmonk_attributes_status_and_timestamps(store: Store, tmp_path: Path) -> None:
    import_file(store, copy("listmonk_export.csv", tmp_path), ImportOptions(list_name="l"))
    subs = subscribers(store)
    assert subs["ops@example.net"] == ("Ops Team", "active", {
        "uuid": "7f1c6b4e-6c51-4f0e-9f6a-1c2d3e4f5a6b", "city": "Lisbon", "plan": "pro",
        "seats": 12, "beta": True, "tags": ["a", "b"]})
    assert subs["gone@example.net"][1] == "unsubscribed"
    with store.engine.connect() as conn:
        created = conn.execute(sa.select(Subscriber.created_at)
                               .where(Subscriber.email == "ops@example.net")).scalar_one()
    assert created.isoformat() == "2023-03-01T10:00:00.123456+00:00"


def test_mailchimp_and_excel_headers_become_fields(store: Store, tmp_path: Path) -> None:
    import_file(store, copy("mailchimp_subscribed.csv", tmp_path), ImportOptions(list_name="m"))
    import_file(store, copy("excel_unicode.txt", tmp_path), ImportOptions(list_name="x"))
    import_file(store, copy("crm_cp1252.csv", tmp_path), ImportOptions(list_name="c"))
    subs = subscribers(store)
    anna = subs["anna.schmidt@example.de"][2]
    assert (anna["first_name"], anna["last_name"], anna["MEMBER_RATING"]) == ("Anna", "Schmidt", 2)
    assert anna["Address"] == "Hauptstr. 1\r\n10115 Berlin\r\nDE"
    assert "marie@exämple.fr" in subs and "john.doe@example.com" in subs
    chen = subs["chen@example.cn"][2]
    assert (chen["first_name"], chen["Age"], chen["Score"], chen["Newsletter"]) == (
        "晨", 28, -0.5, "yes")
    assert subs["ola@example.no"][2]["Age"] == "007"
    assert subs["francois@example.fr"][2]["last_name"] == "Lefèvre"
    assert subs["jürgen@example.de"][2]["Umsatz"] == 1200


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_modes(store: Store, tmp_path: Path) -> None:
    seed(store, "a@example.com", city="Rome", plan="free")
    f = write(tmp_path / "f.csv", "email,name,plan,age\na@example.com,Ann,pro,30\n"
                                  "b@example.com,Bob,free,\n")
    r = import_file(store, f, ImportOptions(list_name="l", mode="add"))
    assert (r.added, r.updated, r.unchanged) == (1, 0, 1)
    assert subscribers(store)["a@example.com"] == ("Seed", "active", {"city": "Rome",
                                                                       "plan": "free"})
    r = import_file(store, f, ImportOptions(list_name="l"))
    assert (r.added, r.updated, r.unchanged) == (0, 1, 1)
    assert subscribers(store)["a@example.com"] == ("Ann", "active", {
        "city": "Rome", "plan": "pro", "age": 30})
    r = import_file(store, f, ImportOptions(list_name="l"))
    assert (r.added, r.updated, r.unchanged) == (0, 0, 2)
    r = import_file(store, f, ImportOptions(list_name="l", mode="overwrite"))
    assert (r.added, r.updated, r.unchanged) == (0, 1, 1)
    assert subscribers(store)["a@example.com"] == ("Ann", "active", {"plan": "pro", "age": 30})


def test_compliance_never_reactivates_without_resubscribe(store: Store, tmp_path: Path) -> None:
    for email, status in [("u@example.com", "unsubscribed"), ("b@example.com", "bounced"),
                          ("c@example.com", "complained")]:
        seed(store, email, status=status)
    f = write(tmp_path / "f.csv", "email,status\nu@example.com,subscribed\nb@example.com,\n"
                                  "c@example.com,active\nnew@example.com,unsubscribed\n")
    r = import_file(store, f, ImportOptions(list_name="l"))
    assert (r.added, r.suppressed_kept, r.resubscribed) == (1, 3, 0)
    assert {e: s for e, (_, s, _) in subscribers(store).items()} == {
        "u@example.com": "unsubscribed", "b@example.com": "bounced",
        "c@example.com": "complained", "new@example.com": "unsubscribed"}
    r = import_file(store, f, ImportOptions(list_name="l", resubscribe=True))
    assert r.resubscribed == 3
    assert {s for _, s, _ in subscribers(store).values()} == {"active", "unsubscribed"}
    with store.engine.connect() as conn:
        kinds = conn.execute(sa.select(Event.kind, Event.source)).all()
    assert sorted(kinds) == [("resubscribed", "import")] * 3


def test_file_unsubscribes_are_honoured(store: Store, tmp_path: Path) -> None:
    seed(store, "a@example.com")
    f = write(tmp_path / "f.csv", "email,status\na@example.com,unsubscribed\n")
    r = import_file(store, f, ImportOptions(list_name="l"))
    assert r.updated == 1
    assert subscribers(store)["a@example.com"][1] == "unsubscribed"


def test_status_columns_of_other_tools_and_the_strictest_status_wins(store: Store,
                                                                      tmp_path: Path) -> None:
    # A row's status is the strictest its columns give (complained > bounced > unsubscribed >
    # active): a column saying someone left is never outvoted by one saying active.
    seed(store, "b@example.com")
    seed(store, "z@example.com", status="unsubscribed")
    f = write(tmp_path / "f.csv", "email,status,unsubscribed_at,CLEAN_TIME,subscribed_to_emails\n"
                                  "a@example.com,active,,,true\n"
                                  "b@example.com,active,2024-01-01 10:00:00 UTC,,\n"
                                  "c@example.com,unsubscribed,,2024-01-02,\n"
                                  "d@example.com,complained,2024-01-01,2024-01-02,FALSE\n"
                                  "e@example.com,bounced,,,false\n"
                                  "f@example.com,,,,false\n"
                                  "g@example.com,,,,null\n"
                                  "h@example.com,,,,maybe\n"
                                  "i@example.com,pending,,,\n"
                                  "j@example.com,2,,,\n"
                                  "z@example.com,active,,,true\n")
    r = import_file(store, f, ImportOptions(list_name="l"))
    assert (r.added, r.updated, r.suppressed_kept) == (6, 1, 1)
    assert dict(r.rejected) == {"unknown value in column 'subscribed_to_emails'": 1,
                                "unconfirmed (pending double opt-in)": 1, "numeric status": 1}
    assert [row[:2] for row in rejects(f)[1:]] == [
        ["9", "unknown value in column 'subscribed_to_emails': 'maybe'"],
        ["10", "unconfirmed (pending double opt-in)"],
        ["11", "numeric status: '2' (tool-specific code; say what each code means with "
               '--status-map, e.g. "1=active,0=unsubscribed")']]
    subs = subscribers(store)
    assert {e: s for e, (_, s, _) in subs.items()} == {
        "a@example.com": "active", "b@example.com": "unsubscribed",
        "c@example.com": "bounced", "d@example.com": "complained", "e@example.com": "bounced",
        "f@example.com": "unsubscribed", "g@example.com": "active",
        "z@example.com": "unsubscribed"}
    # Read into the status, like the status column, and not kept as attributes.
    assert all(attributes == {} for _, _, attributes in subs.values())
    # A column the user maps is the user's: an attribute like any other.
    g = write(tmp_path / "g.csv", "email,subscribed_to_emails\nk@example.com,false\n")
    import_file(store, g, ImportOptions(list_name="l", rules=parse_map(
        ["subscribed_to_emails=emails"])))
    assert subscribers(store)["k@example.com"][1:] == ("active", {"emails": False})


def test_spaces_around_values_are_trimmed(store: Store, tmp_path: Path) -> None:
    f = write(tmp_path / "f.csv", "email,name,first_name,age,zip,note\n"
                                  ' a@example.com ,  Ann Lee , Ann\u00a0, 42 , 01234 ,'
                                  '"  two  words\n"\n'
                                  "b@example.com,Bob,Bob,42,01234,two  words\n")
    import_file(store, f, ImportOptions(list_name="l", rules=parse_map(["zip=zip:text"])))
    subs = subscribers(store)
    expected = {"first_name": "Ann", "age": 42, "zip": "01234", "note": "two  words"}
    assert subs["a@example.com"] == ("Ann Lee", "active", expected)
    assert subs["b@example.com"] == ("Bob", "active", expected | {"first_name": "Bob"})


def test_list_membership_unsubscribed_from_a_list_stays_so(store: Store, tmp_path: Path) -> None:
    f = write(tmp_path / "f.csv", "email\na@example.com\n")
    import_file(store, f, ImportOptions(list_name="l"))
    with store.engine.begin() as conn:
        conn.execute(sa.update(Membership).values(status="unsubscribed"))
    import_file(store, f, ImportOptions(list_name="l"))
    import_file(store, f, ImportOptions(list_name="other"))
    with store.engine.connect() as conn:
        states = sorted(conn.execute(sa.select(Membership.status)).scalars())
    assert states == ["subscribed", "unsubscribed"]


def test_dry_run_writes_nothing_and_counts_the_same(store: Store, tmp_path: Path) -> None:
    path = copy("broken.csv", tmp_path)
    seed(store, "good@example.com", city="Paris")
    dry = import_file(store, path, ImportOptions(list_name="news", dry_run=True))
    assert subscribers(store) == {"good@example.com": ("Seed", "active", {"city": "Paris"})}
    assert not path.with_name("broken.csv.rejects.csv").exists()
    real = import_file(store, path, ImportOptions(list_name="news"))
    assert dry.as_dict() | {"dry_run": False, "rejects_file": None} == real.as_dict() | {
        "rejects_file": None}


def test_unusable_files_are_errors_with_location(store: Store, tmp_path: Path) -> None:
    f = write(tmp_path / "f.csv", "name,city\nAnn,Rome\n")
    with pytest.raises(ListFileError, match=r"f\.csv:1: no email column"):
        import_file(store, f, ImportOptions(list_name="l"))
    f = write(tmp_path / "g.csv", "email\na@example.com\n")
    with pytest.raises(ListFileError, match="--list"):
        import_file(store, f, ImportOptions())


def test_map_and_attributes_json_options(store: Store, tmp_path: Path) -> None:
    f = write(tmp_path / "f.csv", "Contact;Zip;Extra;Junk\nA@example.com;01234;"
                                  '"{""vip"": true}";x\n')
    r = import_file(store, f, ImportOptions(
        list_name="l", rules=parse_map(["Contact=email", "Zip=zip:text", "Junk=-"]),
        attributes_json="Extra"))
    assert r.added == 1
    assert subscribers(store)["a@example.com"][2] == {"zip": "01234", "vip": True}


def test_lists_column_subscribes_to_each_list(store: Store, tmp_path: Path) -> None:
    ensure_list(store, "existing")
    f = write(tmp_path / "f.csv", "email,lists\na@example.com,weekly|existing\n"
                                  "b@example.com,\n")
    import_file(store, f, ImportOptions(list_name="all"))
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT s.email, l.name FROM membership m JOIN subscriber s ON s.id = m.subscriber_id"
            " JOIN mailing_list l ON l.id = m.list_id ORDER BY 1, 2")).all()
    assert [tuple(r) for r in rows] == [("a@example.com", "all"), ("a@example.com", "existing"),
                                        ("a@example.com", "weekly"), ("b@example.com", "all")]


def test_the_garbage_collector_is_left_as_it_was(store: Store, tmp_path: Path) -> None:
    f = write(tmp_path / "f.csv", "email\na@example.com\nnot-an-address\n")
    before = gc.get_freeze_count()  # Python 3.12 starts with some of its own
    during: list[int] = []
    import_file(store, f, ImportOptions(list_name="l"),
                progress=lambda rows, pos: during.append(gc.get_freeze_count()))
    assert during and min(during) > before + 1000  # the loaded application, while it runs
    assert gc.get_freeze_count() <= before  # nothing the import made stays frozen
    gc.freeze()  # as an application freezing its start-up objects would
    try:
        frozen = gc.get_freeze_count()
        import_file(store, f, ImportOptions(list_name="l"))
        # Still frozen, less the few the import freed (gc.unfreeze would leave none).
        assert gc.get_freeze_count() > frozen - 100
    finally:
        gc.unfreeze()


def test_rejects_keep_file_order_across_batches(store: Store, tmp_path: Path) -> None:
    with store.engine.begin() as conn:
        for email in ("s1@example.com", "s2@example.com"):
            conn.execute(sa.insert(Suppression).values(email_hash=suppression_hash(email),
                                                       reason="complained"))
    f = write(tmp_path / "f.csv", "email\ns1@example.com\nbad1\na@example.com\nbad2\n"
                                  "b@example.com\ns2@example.com\nbad3\n")
    report = import_file(store, f, ImportOptions(list_name="l", batch=2))
    assert (report.added, report.rejected_total) == (2, 5)
    assert [(r[0], r[1].partition(" ")[0]) for r in rejects(f)[1:]] == [
        ("3", "invalid"), ("2", "suppressed"), ("5", "invalid"), ("7", "suppressed"),
        ("8", "invalid")]


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_large_import_refreshes_postgresql_planner_statistics(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dispatcher.lists.importer.ANALYZE_AFTER", 2)
    count = sa.text("SELECT analyze_count FROM pg_stat_user_tables "
                    "WHERE relname = 'subscriber' AND schemaname = current_schema()")
    with store.engine.connect() as conn:
        before = conn.execute(count).scalar_one()
    path = tmp_path / "two.csv"
    path.write_text("email\na@example.com\nb@example.com\n", encoding="utf-8")
    import_file(store, path, ImportOptions(list_name="l"))
    # The statistics collector reports with a delay of its own: wait for it, bounded.
    deadline = time.monotonic() + 10
    while True:
        with store.engine.connect() as conn:
            conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
            after = conn.execute(count).scalar_one()
        if after > before or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert after == before + 1


def test_a_nul_byte_rejects_its_row_and_keeps_the_rest(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "nul.csv"
    path.write_bytes(b"email,first_name\na@example.com,A\nb@example.com,B\x00C\nc@example.com,C\n")
    report = import_file(store, path, ImportOptions(list_name="l"))
    assert (report.added, dict(report.rejected)) == (2, {"NUL character in column 'first_name'": 1})
    assert [r[:2] for r in rejects(path)[1:]] == [
        ["3", "NUL character in column 'first_name'"]]
    assert sorted(subscribers(store)) == ["a@example.com", "c@example.com"]


def test_a_spreadsheet_instead_of_a_csv_is_named_not_dumped(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "subscribers.xlsx"
    path.write_bytes(b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" + bytes(range(256)) * 4)
    with pytest.raises(ListFileError, match=r"subscribers\.xlsx: not a text CSV file") as caught:
        import_file(store, path, ImportOptions(list_name="l"))
    assert "\x00" not in str(caught.value) and "PK" not in str(caught.value)
