"""Reading real-world subscriber files: encodings, delimiters, line numbers, header mapping."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.errors import ConfigError, ListFileError
from dispatcher.lists.incoming import RowReader
from dispatcher.lists.mapping import auto_value, build_mapping, export_value, parse_map
from dispatcher.lists.reader import (
    QUOTED_LINES,
    Row,
    detect_encoding,
    open_rows,
    sniff_delimiter,
)
from dispatcher.store.models import sql_stamp

DATA = Path(__file__).parent / "data" / "lists"


def rows(path: Path) -> list[tuple[int, list[str]]]:
    with open_rows(path) as stream:
        return [(r.line, r.values) for r in stream.rows]


@pytest.mark.parametrize(("name", "encoding", "delimiter", "fallback"), [
    ("mailchimp_subscribed.csv", "utf-8", ",", None),
    ("sendy_export.csv", "utf-8-sig", ",", None),
    ("excel_unicode.txt", "utf-16", "\t", None),
    ("crm_cp1252.csv", "cp1252", ";", "not UTF-8: read as Windows-1252"),
    ("listmonk_export.csv", "utf-8", ",", None),
])
def test_fixtures_are_sniffed(name: str, encoding: str, delimiter: str,
                              fallback: str | None) -> None:
    with open_rows(DATA / name) as stream:
        list(stream.rows)
    assert (stream.sniffed.encoding, stream.sniffed.delimiter, stream.sniffed.fallback) == (
        encoding, delimiter, fallback)


def test_utf16_excel_text_reads_unicode_names() -> None:
    with open_rows(DATA / "excel_unicode.txt") as stream:
        got = [(r.line, r.values[:3]) for r in stream.rows]
    assert stream.header[:3] == ["E-mail", "First Name", "Last Name"]
    assert got == [
        (2, ["lena@example.at", "Lena", "Gruber"]),
        (3, ["ola@example.no", "Ola", "Nordmann"]),
        (4, ["chen@example.cn", "晨", "陈"]),
    ]


def test_cp1252_with_semicolons_keeps_accents_and_euro() -> None:
    got = rows(DATA / "crm_cp1252.csv")
    assert got[1] == (3, ["francois@example.fr", "François", "Lefèvre", "Besançon", "€ 80"])
    assert got[2][1][2:4] == ["Øberg", "Malmö"]


def test_line_numbers_follow_the_original_file_across_embedded_newlines() -> None:
    got = rows(DATA / "broken.csv")
    lines = [line for line, _ in got]
    # Line 6 holds a field running onto line 7; line 15 is blank and skipped.
    assert lines == [2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 16]
    assert got[4][1] == ["multi@example.com", "Line\nbreak", "Bern", "3"]
    assert got[8][1][1] == 'Say "hi"'


def test_mailchimp_crlf_multiline_address_line_numbers() -> None:
    got = rows(DATA / "mailchimp_subscribed.csv")
    assert [line for line, _ in got] == [2, 5, 6, 7, 8]
    assert got[0][1][3] == "Hauptstr. 1\r\n10115 Berlin\r\nDE"


def test_header_spanning_lines_and_bad_bytes_late_in_a_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    # The bad byte lies past the 1 MB sample the encoding is decided on.
    body = b"".join(b"u%d@example.com,N\xc3\xa9\n" % i for i in range(60000))
    path.write_bytes(b'"e\nmail",name\n' + body + b"bad@example.com,Ren\xe9\n")
    with open_rows(path) as stream:
        got = [(r.line, r.values) for r in stream.rows]
    assert stream.sniffed.encoding == "utf-8"
    assert got[0] == (3, ["u0@example.com", "Né"])
    assert got[-1] == (60003, ["bad@example.com", "René"])
    assert stream.recovered_lines == [60003]


@pytest.mark.parametrize(("data", "expected"), [
    (b"\xef\xbb\xbfemail\n", ("utf-8-sig", True, None)),
    ("email\n".encode("utf-16-le"), ("utf-16-le", False, None)),
    ("email\n".encode("utf-16-be"), ("utf-16-be", False, None)),
    (b"email\nx\x81y\n", ("latin-1", False, "not UTF-8: read as Latin-1 (ISO-8859-1)")),
    (b"email\n\xe9\n", ("cp1252", False, "not UTF-8: read as Windows-1252")),
])
def test_detect_encoding(data: bytes, expected: tuple[str, bool, str | None]) -> None:
    assert detect_encoding(data) == expected


@pytest.mark.parametrize(("line", "delimiter"), [
    ("email,name\n", ","), ("email;name;city\n", ";"), ("email\tname\n", "\t"),
    ("email|name\n", "|"), ('"a;b;c",name\n', ","), ("email\n", ","),
])
def test_sniff_delimiter(line: str, delimiter: str) -> None:
    assert sniff_delimiter(line) == delimiter


def test_empty_and_missing_files_are_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(ListFileError, match="empty"):
        open_rows(empty)
    with pytest.raises(ListFileError, match="cannot read"):
        open_rows(tmp_path / "nope.csv")


def test_aliases_map_case_insensitively() -> None:
    m = build_mapping(["Email Address", "FNAME", "LNAME", "Name", "Plan", "STATUS"])
    assert (m.email, m.name, m.status) == (0, 3, 5)
    assert [(i, key) for i, key, _ in m.attributes] == [
        (1, "first_name"), (2, "last_name"), (4, "Plan")]


def test_map_rules_types_and_ignored_columns() -> None:
    rules = parse_map(["Mail=email", "Zip=zip:text", "Age=age:int", "Secret=-"])
    m = build_mapping(["Mail", "Zip", "Age", "Secret"], rules)
    assert m.email == 0 and m.ignored == ["Secret"]
    converters = {key: conv for _, key, conv in m.attributes}
    assert converters["zip"]("01234") == "01234"
    assert converters["age"]("42") == 42
    with pytest.raises(ValueError):
        converters["age"]("forty")
    with pytest.raises(ConfigError, match="expected"):
        parse_map(["no equals sign"])
    with pytest.raises(ConfigError, match="unknown type"):
        parse_map(["A=b:float128"])


def test_no_email_column_names_the_columns_found() -> None:
    with pytest.raises(ListFileError, match=r"no email column.*Contact, Name") as info:
        build_mapping(["Contact", "Name"], path="x.csv")
    assert info.value.line == 1


@pytest.mark.parametrize(("text", "value"), [
    ("42", 42), ("-7", -7), ("0", 0), ("007", "007"), ("4.75", 4.75), ("13.40", 13.4),
    ("1e3", "1e3"), ("+4930", "+4930"), ("true", True), ("FALSE", False), ("yes", "yes"),
    ("2024-02-29", "2024-02-29"), ("12345678901234567890", "12345678901234567890"),
    ("", ""), ("Paris", "Paris"),
])
def test_auto_typing_only_when_it_reads_back(text: str, value: object) -> None:
    assert auto_value(text) == value
    assert type(auto_value(text)) is type(value)
    if isinstance(value, str) or text in ("42", "-7", "0", "4.75"):
        assert export_value(auto_value(text)) == text


def test_an_unparseable_row_is_reported_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    path.write_text("email,name\na@example.com,A\n"
                    f'b@example.com,"{"x" * (1 << 20)}y"\nc@example.com,C\n', encoding="utf-8")
    got = rows(path)
    assert [line for line, _ in got] == [2, 3, 4]
    assert got[1][1][0].startswith("<unparseable: field larger than field limit")
    assert got[2] == (4, ["c@example.com", "C"])


def read(path: Path) -> list[tuple[int, list[str], str | None]]:
    with open_rows(path) as stream:
        return [(r.line, r.values, r.problem) for r in stream.rows]


_OPEN = "unterminated quoted field: line {} opens a quote that "


def test_an_unterminated_quote_rejects_its_own_line_and_the_rows_after_it_are_read() -> None:
    assert read(DATA / "unterminated_quote.csv") == [
        (2, ["ann@example.com", "Ann", "1 Rue de Rivoli, Paris", "31"], None),
        (3, ["multi@example.com", "Multi", "Flat 2\r\n12 High Street\r\nLeeds", "50"], None),
        # The quote it opens is taken for closed by Dora's opening quote, two rows on.
        (6, ["bad@example.com", '"Smith', "Rome", "60"],
         _OPEN.format(6) + "is only closed on line 8, by a quote followed by more text"),
        (7, ["carl@example.com", "Carl", "Oslo", "23"], None),
        (8, ["dora@example.com", 'Dora "D" Ray', "Bern", "35"], None),
        (9, ["eve@example.com", "Eve", "Postfach 12\r\nWien", "44"], None),
        (11, ["frank@example.com", "Frank", "Lima", ""], None),
        (12, ["last@example.com", '"Never closed', "Graz", "10"],
         _OPEN.format(12) + "is still open at the end of the file"),
    ]


def test_a_multi_line_row_reads_its_first_line_as_leniently_as_any_row(tmp_path: Path) -> None:
    path = tmp_path / "lenient.csv"
    path.write_text('email,name,address\na@example.com,"Bob" Jr,"Flat 2\nLeeds"\n'
                    'b@example.com,"Ann" Lee,Oslo\n', encoding="utf-8")
    assert read(path) == [(2, ["a@example.com", "Bob Jr", "Flat 2\nLeeds"], None),
                          (4, ["b@example.com", "Ann Lee", "Oslo"], None)]


@pytest.mark.parametrize("newline", ["\n", ""])
def test_a_quote_open_on_the_last_line_is_rejected_not_swallowed(tmp_path: Path,
                                                                  newline: str) -> None:
    path = tmp_path / "last.csv"
    path.write_text(f'email,name\na@example.com,A\nz@example.com,"Zed{newline}', encoding="utf-8")
    assert read(path) == [(2, ["a@example.com", "A"], None), (3, ["z@example.com", '"Zed'],
                          _OPEN.format(3) + "is still open at the end of the file")]


def test_a_quote_open_before_rows_without_quotes_gives_up_after_quoted_lines(
        tmp_path: Path) -> None:
    path = tmp_path / "runaway.csv"
    good = [f"u{i}@example.com,U{i}" for i in range(1500)]
    path.write_text("email,name\na@example.com,A\nb@example.com,B\nc@example.com,C\n"
                    'bad@example.com,"Smith\n' + "\n".join(good) + "\n", encoding="utf-8")
    got = read(path)
    assert got[3] == (5, ["bad@example.com", '"Smith'],
                      _OPEN.format(5) + "is still open after 1,000 lines")
    assert got[4:] == [(6 + i, [f"u{i}@example.com", f"U{i}"], None) for i in range(1500)]


@pytest.mark.parametrize("span", [QUOTED_LINES, QUOTED_LINES + 1])
def test_a_quoted_field_may_span_quoted_lines_lines(tmp_path: Path, span: int) -> None:
    path = tmp_path / "long.csv"
    # Far more line feeds than an Excel cell can hold (253) is still data.
    note = "\n".join(f"note {i}" for i in range(span))
    path.write_text(f'email,note\na@example.com,"{note}"\nb@example.com,B\n', encoding="utf-8")
    got = read(path)
    assert got[-1] == (span + 2, ["b@example.com", "B"], None)
    if span == QUOTED_LINES:
        assert got[0] == (2, ["a@example.com", note], None) and len(got) == 2
    else:
        assert got[0] == (2, ["a@example.com", '"note 0'],
                          _OPEN.format(2) + f"is still open after {QUOTED_LINES:,} lines")
        assert got[1] == (3, ["note 1"], None) and len(got) == span + 1


def test_a_quote_running_into_an_oversized_line_is_unterminated(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    path.write_text('email,name\na@example.com,A\nbad@example.com,"Smith\n'
                    f"c@example.com,{'x' * (1 << 20)}y\nd@example.com,D\n", encoding="utf-8")
    got = read(path)
    assert [(line, problem) for line, _, problem in got] == [
        (2, None), (3, _OPEN.format(3) + "is still open where reading stopped: field larger "
                                          "than field limit (1048576)"), (4, None), (5, None)]
    assert got[2][1][0].startswith("<unparseable: field larger than field limit")
    assert got[3][1] == ["d@example.com", "D"]


_ROWS = st.lists(st.one_of(
    st.just(("plain", 1)), st.just(("quoted", 1)), st.just(("bad", 1)),
    st.integers(min_value=2, max_value=4).map(lambda span: ("multi", span))), max_size=25)


@settings(max_examples=200, deadline=None)
@given(_ROWS, st.sampled_from([",", ";", "\t"]), st.sampled_from(["\n", "\r\n"]),
       st.booleans())
def test_every_row_is_read_at_its_line_whatever_quotes_are_left_open(
        kinds: list[tuple[str, int]], delimiter: str, newline: str, last_newline: bool) -> None:
    text = [f"email{delimiter}note"]
    expected: list[tuple[int, list[str], bool]] = []
    line = 2
    for i, (kind, span) in enumerate(kinds):
        email = f"u{i}@example.com"
        if kind == "plain":
            text.append(f"{email}{delimiter}Note {i}")
            values = [email, f"Note {i}"]
        elif kind == "quoted":
            text.append(f'"{email}"{delimiter}"Say ""hi"" {i}"')
            values = [email, f'Say "hi" {i}']
        elif kind == "multi":
            note = newline.join(f"Line {n}" for n in range(span))
            text.append(f'{email}{delimiter}"{note}"')
            values = [email, note]
        else:
            text.append(f'{email}{delimiter}"Open {i}')
            values = [email, f'"Open {i}']
        expected.append((line, values, kind == "bad"))
        line += span
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.csv"
        path.write_bytes((newline.join(text) + (newline if last_newline else "")).encode())
        got = [(n, values, problem is not None) for n, values, problem in read(path)]
    assert got == expected


_TEXTS = st.one_of(
    st.sampled_from(["", "0", "-0", "007", "42", "-7", "3.50", "1e3", "true", "FALSE", "yes",
                     "2024-02-29", "12345678901234567890", '{"a": [1, 2.5]}', "[1, 2]",
                     "null", "Zoë", "a\u2028b", 'say "hi"', "NaN", " 5 "]),
    st.text(max_size=8))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_TEXTS, min_size=5, max_size=5), min_size=1, max_size=6))
def test_row_attributes_as_json_are_what_json_dumps_writes(table: list[list[str]]) -> None:
    header = ["email", "Zip", "Age", "Extra", "Note", "Price"]
    rules = parse_map(["Zip=zip:text", "Age=age:int", "Extra=extra:json", "Price=price:decimal"])
    mapping = build_mapping(header, rules)
    reader = RowReader(mapping, ("l",))
    seen: list[dict[str, object]] = []
    for line, texts in enumerate(table, start=2):
        try:
            item = reader.incoming(Row(line, ["a@example.com", *texts]))
        except ValueError:
            continue
        assert item.encoded == json.dumps(item.attributes)
        expected = {key: convert(texts[index - 1])
                    for index, key, convert in mapping.attributes if texts[index - 1].strip()}
        assert json.dumps(item.attributes) == json.dumps(expected)
        seen.append(item.attributes)
    # Typed JSON values (dicts, lists) are never one object shared by two rows.
    shared = [id(v) for a in seen for v in a.values() if isinstance(v, dict | list)]
    assert len(shared) == len(set(shared))


_STAMPS = st.one_of(
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0000-00-00",
                     "2023-03-24 10:23:10 UTC", "2023-02-30", "0005-01-02", "2023-03-24T10:23Z"]),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.text(st.characters(blacklist_characters="\x00"), max_size=12))  # NUL: its own reject


@settings(max_examples=300, deadline=None)
@given(_STAMPS, _STAMPS)
def test_any_text_in_a_date_column_is_a_date_or_kept_as_written(
        created: str, updated: str) -> None:
    mapping = build_mapping(["email", "created_at", "Date added", "updated_at"])
    item = RowReader(mapping, ("l",)).incoming(
        Row(2, ["a@example.com", created, "someday", updated]))
    for text, stamp, key in ((created, item.created_at, "created_at_"),
                             (updated, item.updated_at, "updated_at_")):
        if stamp is None:
            assert item.attributes.get(key, "") == text.strip()
        else:
            assert stamp.tzinfo is not None and key not in item.attributes
            assert sql_stamp(stamp)[:4].isdigit()
    assert item.attributes["Date added"] == "someday"


def test_a_quote_inside_a_header_name_is_text(tmp_path: Path) -> None:
    path = tmp_path / "sizes.csv"
    path.write_text('email,5" size,name\na@example.com,S,Ann\n', encoding="utf-8")
    with open_rows(path) as stream:
        assert stream.header == ["email", '5" size', "name"]
        assert [(r.line, r.values) for r in stream.rows] == [(2, ["a@example.com", "S", "Ann"])]


def test_a_header_name_quoted_over_two_lines_is_one_header(tmp_path: Path) -> None:
    path = tmp_path / "two.csv"
    path.write_text('email,"first\nname"\na@example.com,Ann\n', encoding="utf-8")
    with open_rows(path) as stream:
        assert stream.header == ["email", "first\nname"]
        assert [(r.line, r.values) for r in stream.rows] == [(3, ["a@example.com", "Ann"])]


@pytest.mark.parametrize(("rows", "within"), [(2, 3), (40, 5)])
def test_a_quote_left_open_in_the_header_is_an_error_not_a_swallowed_file(
        tmp_path: Path, rows: int, within: int) -> None:
    path = tmp_path / "open.csv"
    path.write_text('email,"name\n' + "".join(f"u{i}@example.com,U{i}\n" for i in range(rows)),
                    encoding="utf-8")
    with pytest.raises(ListFileError, match=f"header opens a quote that is not closed within "
                                            f"{within} line") as caught:
        open_rows(path)
    assert caught.value.line == 1 and caught.value.path == str(path)
