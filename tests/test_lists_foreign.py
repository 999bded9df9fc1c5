"""Files nobody here wrote: real exports and fixtures of other newsletter tools, imported.

The files in tests/data/lists/foreign/ come from other projects' repositories (their
README.md names the tool, repository, path, commit and licence of each). Every number
asserted here was worked out by reading the file, not by running the importer: what a
sender moving from that tool would expect to find in the store afterwards. What the importer
still does differently from such a sender's expectations is in foreign/FINDINGS.md.
"""

from __future__ import annotations

import csv
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from dispatcher.cli import app
from dispatcher.errors import ConfigError, ListFileError
from dispatcher.lists.importer import ImportOptions, ImportReport, import_file
from dispatcher.store import Store
from dispatcher.store.models import Subscriber

FOREIGN = Path(__file__).parent / "data" / "lists" / "foreign"


def load(store: Store, tmp_path: Path, name: str) -> ImportReport:
    target = tmp_path / name
    shutil.copy(FOREIGN / name, target)
    return import_file(store, target, ImportOptions(list_name="moved"))


def subscribers(store: Store) -> dict[str, tuple[str, str, dict[str, Any]]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(Subscriber.email, Subscriber.name, Subscriber.status,
                                      Subscriber.attributes)).all()
    return {r.email: (r.name, r.status, r.attributes) for r in rows}


def created_at(store: Store, email: str) -> datetime:
    with store.engine.connect() as conn:
        stamp: datetime = conn.execute(sa.select(Subscriber.created_at)
                                       .where(Subscriber.email == email)).scalar_one()
    return stamp


def rejects(tmp_path: Path, name: str) -> list[list[str]]:
    with (tmp_path / f"{name}.rejects.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


# (file, rows read, added, duplicates in the file, rejected by reason)
COUNTS = [
    ("mailchimp_subscribed.csv", 5, 5, 0, {}),
    ("mailchimp_unsubscribed.csv", 5, 5, 0, {}),
    ("mailchimp_cleaned.csv", 5, 5, 0, {}),
    # beehiiv's "pending" never confirmed its double opt-in: not imported, and said why.
    ("beehiiv_members.csv", 9, 8, 0, {"unconfirmed (pending double opt-in)": 1}),
    ("substack_signup_emails.csv", 21, 21, 0, {}),
    ("substack_subscriber_emails.csv", 16, 16, 0, {}),
    ("curated_subscribers.csv", 20, 18, 0, {"invalid email": 2}),
    ("tinynews_subs_v1.csv", 3, 0, 0, {"numeric status": 3}),
    ("tinynews_subs_v2.csv", 2, 2, 0, {}),
    ("ghost_member_export.csv", 2, 2, 0, {}),
    ("ghost_subscribed_to_emails_cases.csv", 12, 12, 0, {}),
    ("ghost_ragged_row.csv", 2, 2, 0, {}),
    ("listmonk_subs.csv", 50, 50, 0, {}),
    ("listmonk_subs_domain_blocklist.csv", 4, 4, 0, {}),
    ("mautic_contacts.csv", 2, 2, 0, {}),
    ("phplist_import_tab.csv", 1, 1, 0, {}),
]


@pytest.mark.parametrize(("name", "read", "added", "duplicates", "rejected"), COUNTS,
                         ids=[c[0] for c in COUNTS])
def test_each_file_imports_with_the_right_counts(store: Store, tmp_path: Path, name: str,
                                                 read: int, added: int, duplicates: int,
                                                 rejected: dict[str, int]) -> None:
    report = load(store, tmp_path, name)
    assert (report.read, report.added, report.updated, report.duplicates) == (
        read, added, 0, duplicates)
    assert dict(report.rejected) == rejected
    assert len(subscribers(store)) == added


# (file, the addresses that must not end up active, with the status each must have);
# every other address the file adds is active.
STATUSES: list[tuple[str, dict[str, str]]] = [
    ("mailchimp_subscribed.csv", {}),
    # Mailchimp's export zip holds one file per status; the unsubscribed and cleaned files
    # say so by their UNSUB_TIME / CLEAN_TIME columns, filled on every row.
    ("mailchimp_unsubscribed.csv", {f"u{i}@example.com": "unsubscribed" for i in range(1, 6)}),
    ("mailchimp_cleaned.csv", {f"c{i}@example.com": "bounced" for i in range(1, 6)}),
    # Substack: email_disabled=true is a reader who turned the emails off.
    ("substack_signup_emails.csv", {"maguirec086@comm.ca": "unsubscribed",
                                    "nottimferris@gmail.com": "unsubscribed"}),
    ("substack_subscriber_emails.csv", {"maguirec086@comm.ca": "unsubscribed",
                                        "nottimferris@gmail.com": "unsubscribed"}),
    # beehiiv: inactive is unsubscribed, and so is an active row with an unsubscribed_at date.
    ("beehiiv_members.csv", {"dolor@example.com": "unsubscribed",
                             "simet@example.com": "unsubscribed",
                             "unsublit@example.com": "unsubscribed"}),
    # Ghost: subscribed_to_emails=false is unsubscribed; empty or null means subscribed.
    ("ghost_member_export.csv", {"member_stripe_test@example.com": "unsubscribed"}),
    ("ghost_subscribed_to_emails_cases.csv", {
        "member_subscribed_false@example.com": "unsubscribed",
        "member_not_subscribed_false@example.com": "unsubscribed",
        "new_member_false@example.com": "unsubscribed"}),
    ("curated_subscribers.csv", {}),
    ("tinynews_subs_v2.csv", {"lorem@example.com": "unsubscribed"}),
    ("ghost_ragged_row.csv", {}),
    ("listmonk_subs.csv", {}),
    ("listmonk_subs_domain_blocklist.csv", {}),
    ("mautic_contacts.csv", {}),
    ("phplist_import_tab.csv", {}),
]


@pytest.mark.parametrize(("name", "not_active"), STATUSES, ids=[s[0] for s in STATUSES])
def test_each_row_ends_with_the_status_the_other_tool_gave_it(
        store: Store, tmp_path: Path, name: str, not_active: dict[str, str]) -> None:
    load(store, tmp_path, name)
    got = {email: status for email, (_, status, _) in subscribers(store).items()}
    assert {e: s for e, s in got.items() if s != "active"} == not_active


def test_mailchimp_columns_become_fields_and_typed_attributes(store: Store,
                                                              tmp_path: Path) -> None:
    for name in ("mailchimp_subscribed.csv", "mailchimp_unsubscribed.csv",
                 "mailchimp_cleaned.csv"):
        load(store, tmp_path, name)
    subs = subscribers(store)
    # OPTIN_TIME is the signup date (read as UTC, like every timestamp without a zone).
    assert subs["s1@example.com"] == ("", "active", {"CONFIRM_TIME": "2023-04-21 11:16:57"})
    assert created_at(store, "s1@example.com") == datetime(2023, 4, 21, 11, 16, 57, tzinfo=UTC)
    # Mailchimp writes each tag in quotes, the list as one field: kept as written.
    assert subs["s2@example.com"][2]["TAGS"] == '"Lorem Editors"'
    assert subs["c5@example.com"][2]["TAGS"] == "Editors"
    # The status columns become the status, as a status column does, not attributes.
    u1 = subs["u1@example.com"]
    assert (u1[0], u1[1], u1[2]["first_name"]) == ("", "unsubscribed", "Dolor")
    assert "last_name" not in u1[2] and "UNSUB_TIME" not in u1[2]
    assert subs["u2@example.com"][2]["last_name"] == "Simet"
    c3 = subs["c3@example.com"]
    assert (c3[1], c3[2]["first_name"], c3[2]["last_name"], c3[2]["Company"],
            c3[2]["MEMBER_RATING"]) == ("bounced", "Lorem", "Ipsum", "Another Company", 1)
    assert "CLEAN_TIME" not in c3[2]


def test_substack_addresses_timestamps_and_attributes(store: Store, tmp_path: Path) -> None:
    load(store, tmp_path, "substack_signup_emails.csv")
    subs = subscribers(store)
    # Mixed case folded; a non-ASCII local part (SMTPUTF8) is a valid address.
    assert {"bob.something@advisers.co.uk", "somenews@gmail.com", "ömil@gmail.com",
            "maïbes@gmail.com"} <= set(subs)
    herr = subs["herroooo@substack.com"]
    assert (herr[1], herr[2]["active_subscription"], herr[2]["expiry"]) == (
        "active", True, "2021-07-06T16:20:44.000Z")
    assert "email_disabled" not in herr[2]  # it is the status
    # Never paid: no subscription columns, only the flag.
    assert "active_subscription" not in subs["kirstygouda@gmail.com"][2]
    assert created_at(store, "herroooo@substack.com") == datetime(
        2018, 8, 27, 15, 6, 27, 713000, tzinfo=UTC)
    load(store, tmp_path, "substack_subscriber_emails.csv")
    subs = subscribers(store)
    assert len(subs) == 21  # the 16 of the second file are all in the first
    tc = subs["tcowenaldkuf@gmu.edu"][2]
    assert (tc["type"], tc["stripe_connected_customer_id"], tc["expiry"]) == (
        "comp", "cus_DZFvu2haq10CTS", "2118-09-11T12:14:56.557Z")


def test_beehiiv_columns_become_fields(store: Store, tmp_path: Path) -> None:
    load(store, tmp_path, "beehiiv_members.csv")
    subs = subscribers(store)
    elit = subs["elit@example.com"]
    assert (elit[0], elit[1]) == ("", "active")
    assert (elit[2]["tier"], elit[2]["stripe_customer_id"], elit[2]["Free Tier"],
            elit[2]["Premium Tier"]) == ("premium", "cus_1234", "No", "Yes")
    assert subs["fromsubstack@example.com"][2]["Subscription Date (Substack)"] == (
        "2022-03-12 11:43:23 UTC")
    assert "unsubscribed_at" not in subs["unsublit@example.com"][2]
    # Names padded with spaces, trimmed.
    assert subs["lorem@example.com"][2] == {"first_name": "Lorem Name", "tier": "free",
                                            "Free Tier": "Yes", "Premium Tier": "No"}
    assert (subs["ipsum@example.com"][2]["first_name"],
            subs["ipsum@example.com"][2]["last_name"]) == ("Ipsum", "Name")
    assert subs["nullfirst@example.com"][2]["last_name"] == "Last Only"
    # A first name of one space is no first name: a template's default still applies.
    assert subs["dolor@example.com"][2] == {"last_name": "Dolor Name", "tier": "free",
                                            "Free Tier": "Yes", "Premium Tier": "No"}


def test_beehiiv_pending_is_rejected_as_unconfirmed(store: Store, tmp_path: Path) -> None:
    load(store, tmp_path, "beehiiv_members.csv")
    assert [r[:3] for r in rejects(tmp_path, "beehiiv_members.csv")[1:]] == [
        ["6", "unconfirmed (pending double opt-in)", "amett@example.com"]]
    assert "amett@example.com" not in subscribers(store)


def test_beehiiv_signup_dates_are_read(store: Store, tmp_path: Path) -> None:
    load(store, tmp_path, "beehiiv_members.csv")
    assert created_at(store, "lorem@example.com") == datetime(2023, 3, 24, 10, 23, 10,
                                                              tzinfo=UTC)
    assert "created_at" not in subscribers(store)["lorem@example.com"][2]


def test_curated_rejects_name_the_bad_addresses_and_their_lines(store: Store,
                                                                tmp_path: Path) -> None:
    load(store, tmp_path, "curated_subscribers.csv")
    got = rejects(tmp_path, "curated_subscribers.csv")
    assert got[0][:3] == ["line", "reason", "Email Address"]
    assert [(r[0], r[1].partition(":")[0], r[2]) for r in got[1:]] == [
        ("5", "invalid email", "Bob.Something@adv"), ("10", "invalid email", "albert.a.dum")]
    subs = subscribers(store)
    # Empty quoted UTM fields leave no attribute behind; "Subscribed at" is the signup date.
    assert subs["jill@example.com"] == ("", "active", {})
    assert created_at(store, "jill@example.com") == datetime(2021, 2, 2, 20, 50, 10, tzinfo=UTC)
    assert "somenews@gmail.com" in subs and "maïbes@gmail.com" in subs


def test_tinynews_second_layout(store: Store, tmp_path: Path) -> None:
    load(store, tmp_path, "tinynews_subs_v2.csv")
    subs = subscribers(store)
    assert subs["lorem@example.com"] == ("", "unsubscribed", {
        "first_name": "NoSub Ipsum", "Last modified": "2022-10-05T12:58:20.000Z",
        "clicks": 0, "opens": 0})
    dolor = subs["dolor@example.com"][2]
    assert (dolor["first_name"], dolor["last_name"], dolor["clicks"], dolor["opens"]) == (
        "Dolor", "Simet", 0, 39)
    # "Date added" is the signup date.
    assert created_at(store, "dolor@example.com") == datetime(2022, 8, 4, 14, 26, 20,
                                                              tzinfo=UTC)


def test_tinynews_numeric_statuses_are_refused_until_the_sender_says_what_they_mean(
        workspace: Path, store_url: str) -> None:
    # Numbered statuses differ from tool to tool and the file does not say it is TinyNews's.
    target = workspace / "tinynews_subs_v1.csv"
    shutil.copy(FOREIGN / target.name, target)
    first = CliRunner().invoke(app, ["import", target.name, "--list", "moved", "--json"],
                               catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["added"] == 0
    got = rejects(workspace, target.name)
    assert [(r[0], r[1]) for r in got[1:]] == [
        (line, f"numeric status: '{code}' (tool-specific code; say what each code means "
               'with --status-map, e.g. "1=active,0=unsubscribed")') for line, code in
        (("2", "1"), ("3", "4"), ("4", "0"))]
    store = Store.open(store_url)
    assert subscribers(store) == {}
    # TryGhost/migrate reads TinyNews's 1 and 2 as subscribed, anything else as not.
    second = CliRunner().invoke(app, [
        "import", target.name, "--list", "moved", "--json",
        "--status-map", "1=active, 2=subscribed", "--status-map", "0=unsubscribed,4=unsubscribed"],
        catch_exceptions=False)
    assert second.exit_code == 0, second.output
    assert (json.loads(second.output)["added"], json.loads(second.output)["rejected"]) == (3, {})
    subs = subscribers(store)
    store.close()
    lorem = subs["lorem@example.com"]
    assert (lorem[0], lorem[1], lorem[2]["Channel id"], lorem[2]["Tier title"],
            lorem[2]["Id"]) == ("Lorem Ipsum", "active", 1234, "default", 456789)
    dolor = subs["dolor@example.com"]
    assert (dolor[0], dolor[1], dolor[2]["last_name"], dolor[2]["Tags"]) == (
        "Dolor", "unsubscribed", "Simet", "Multiple Tags,Example, More tags")
    assert subs["nosub@example.com"][1] == "unsubscribed"


@pytest.mark.parametrize(("args", "message"), [
    (["--status-map", "1"], "--status-map '1': expected \"value=status\" pairs"),
    (["--status-map", "1=gone"], "--status-map '1=gone': expected"),
    (["--status-map", "=active"], "--status-map '=active': expected"),
    (["--status-map", "1=active,1=unsubscribed"], "'1' is given as both active and unsubscribed"),
    # What a row already says about leaving is not the map's to soften.
    (["--status-map", "Unsubscribed=active"],
     "'unsubscribed' means unsubscribed, and a map may not make it more active"),
    (["--status-map", "cleaned=unsubscribed"], "'cleaned' means bounced"),
    (["--status-map", "pending=active"], "'pending' rows never confirmed their address"),
])
def test_a_status_map_that_says_nothing_clear_stops_the_import(
        workspace: Path, store_url: str, args: list[str], message: str) -> None:
    target = workspace / "tinynews_subs_v1.csv"
    shutil.copy(FOREIGN / target.name, target)
    result = CliRunner().invoke(app, ["import", target.name, "--list", "moved", *args])
    assert isinstance(result.exception, ConfigError)
    assert message in str(result.exception)
    assert not (workspace / (target.name + ".rejects.csv")).exists()


def test_a_status_map_needs_a_status_column(workspace: Path, store_url: str) -> None:
    target = workspace / "mautic_contacts.csv"
    shutil.copy(FOREIGN / target.name, target)
    result = CliRunner().invoke(app, ["import", target.name, "--list", "moved",
                                      "--status-map", "1=active"])
    assert isinstance(result.exception, ListFileError)
    assert (result.exception.line, result.exception.path) == (1, target.name)
    assert "--status-map: the file has no status column" in str(result.exception)


def test_padded_names_are_trimmed(store: Store, tmp_path: Path) -> None:
    for name in ("mailchimp_subscribed.csv", "mailchimp_unsubscribed.csv",
                 "mailchimp_cleaned.csv"):
        load(store, tmp_path, name)
    subs = subscribers(store)
    s5 = subs["s5@example.com"][2]
    assert (s5["first_name"], s5["last_name"], s5["Company"]) == ("Dolor", "Simet", "Lorem Co.")
    u3 = subs["u3@example.com"][2]
    assert (u3["first_name"], u3["last_name"]) == ("Lorem", "Ipsum")
    c2 = subs["c2@example.com"][2]
    assert (c2["first_name"], c2["last_name"]) == ("Simet", "Lut")


def test_ghost_members_export(store: Store, tmp_path: Path) -> None:
    report = load(store, tmp_path, "ghost_member_export.csv")
    assert report.delimiter == ","  # CRLF line ends, as Ghost writes them
    subs = subscribers(store)
    comp = subs["member_complimentary_test@example.com"]
    assert comp[0] == "bobby tables"
    assert {k: comp[2][k] for k in ("id", "note", "complimentary_plan", "labels",
                                    "products")} == {
        "id": "634e48e056ef99c6a7af5850", "note": "a note", "complimentary_plan": True,
        "labels": "user import label", "products": "This is a Bronze Tier"}
    stripe = subs["member_stripe_test@example.com"]
    assert (stripe[0], stripe[2]["stripe_customer_id"]) == ("stirpey beaver",
                                                            "cus_MdR9tqW6bAreiq")
    assert "deleted_at" not in stripe[2] and "complimentary_plan" not in stripe[2]
    assert created_at(store, "member_stripe_test@example.com") == datetime(
        2022, 10, 18, 7, 31, 57, tzinfo=UTC)


def test_ghost_import_template_and_ragged_rows(store: Store, tmp_path: Path) -> None:
    load(store, tmp_path, "ghost_subscribed_to_emails_cases.csv")
    load(store, tmp_path, "ghost_ragged_row.csv")
    subs = subscribers(store)
    new = subs["new_member_empty@example.com"]
    assert new[0] == "Test Email"
    assert (new[2]["labels"], new[2]["stripe_customer_id"], new[2]["complimentary_plan"]) == (
        "vip,promotion", "Example: cus_GdsYH4fZbHx9hF", False)
    assert created_at(store, "new_member_empty@example.com") == datetime(
        2019, 10, 30, 14, 52, 8, tzinfo=UTC)
    # A row that stops after the address: the missing fields are empty, not an error.
    assert subs["ragged-first@example.com"] == ("", "active", {})
    assert subs["ragged-full@example.com"] == ("Bob", "active", {"note": "a note"})


def test_listmonk_attributes_json_and_domain_case(store: Store, tmp_path: Path) -> None:
    load(store, tmp_path, "listmonk_subs.csv")
    load(store, tmp_path, "listmonk_subs_domain_blocklist.csv")
    subs = subscribers(store)
    assert len(subs) == 54
    assert subs["user0@mail.com"] == ("First0 Last0", "active", {
        "age": 29, "city": "Bangalore", "clientId": "DAXX79"})
    assert subs["user49@mail.com"] == ("First49 Last49", "active", {
        "age": 28, "city": "Bangalore", "clientId": "DAXX97"})
    assert subs["ban1-import@ban.net"][2]["age"] == 43
    assert "ban2-import@ban.org" in subs


def test_mautic_and_phplist_templates(store: Store, tmp_path: Path) -> None:
    load(store, tmp_path, "mautic_contacts.csv")  # no line end after the last row
    report = load(store, tmp_path, "phplist_import_tab.csv")
    assert report.delimiter == "\t"
    subs = subscribers(store)
    assert subs["john@doe.email"] == ("", "active", {"first_name": "John", "last_name": "doe"})
    assert subs["ferda@mravenec.email"][2] == {"first_name": "Ferda", "last_name": "Mravenec"}
    assert subs["test@test2.com"] == ("testname", "active", {"last_name": "testlastname"})
