"""Address normalisation (fast path proven against email-validator) and the MX check on real DNS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.lists.addresses import InvalidAddress, _fast, normalise_email
from dispatcher.lists.importer import ImportOptions, import_file
from dispatcher.lists.mx_check import MXChecker
from dispatcher.store import Store
from tests.support.dnsserver import DNSServer


@pytest.mark.parametrize(("raw", "expected"), [
    ("Ann@Example.COM", "ann@example.com"),
    ("  <bob@example.org> ", "bob@example.org"),
    ("o'neil+news@sub.example.co.uk", "o'neil+news@sub.example.co.uk"),
    ("marie@EXÄMPLE.fr", "marie@exämple.fr"),
    ("marie@xn--exmple-cua.fr", "marie@exämple.fr"),
    ("zoë@example.org", "zoë@example.org"),
])
def test_normalise(raw: str, expected: str) -> None:
    assert normalise_email(raw) == expected


@pytest.mark.parametrize(("raw", "reason"), [
    ("", "missing email"),
    ("   ", "missing email"),
    ("no-at.example.com", "invalid email: An email address must have an @-sign."),
    ("a..b@example.com", "invalid email: An email address cannot have two periods in a row."),
    ("x@localhost", "invalid email: The part after the @-sign is not valid. "
                    "It should have a period."),
    ("x@host.test", "invalid email: The part after the @-sign is a special-use or reserved "
                    "name that cannot be used with email."),
    ("x@-bad.com", "invalid email: An email address cannot have a hyphen immediately after "
                   "the @-sign."),
])
def test_rejections_carry_email_validators_reason(raw: str, reason: str) -> None:
    with pytest.raises(InvalidAddress) as info:
        normalise_email(raw)
    assert str(info.value) == reason


def _library(address: str) -> str | None:
    try:
        return validate_email(address, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


ATOM = st.text(alphabet="abcxyz09.-_+'!#&=?`{}|~", min_size=1, max_size=12)
LABEL = st.text(alphabet="abz09-", min_size=1, max_size=8)
TLD = st.sampled_from(["com", "de", "test", "local", "x1", "1x", "xn--p1ai", "c-m", "museum"])


@settings(max_examples=400, deadline=None)
@given(local=ATOM, labels=st.lists(LABEL, min_size=0, max_size=3), tld=TLD)
def test_fast_path_accepts_only_what_email_validator_accepts(
        local: str, labels: list[str], tld: str) -> None:
    address = f"{local}@{'.'.join([*labels, tld])}"
    if _fast(address):
        assert _library(address) == address


@pytest.mark.parametrize(("address", "fast"), [
    ("x" * 64 + "@example.com", True), ("x" * 65 + "@example.com", False),
    ("a@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + "." + "e" * 56 + ".com", True),
    ("ab@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + "." + "e" * 56 + ".com", False),
    ("a@b.test", False), ("a@mail.onion", False), ("a@b.mytest", True), ("a@test.com", True),
    ("a--b@example.com", False), ("a@x--y.com", False),
])
def test_fast_path_boundaries(address: str, fast: bool) -> None:
    assert _fast(address) is fast
    if fast:
        assert _library(address) == address


@pytest.fixture
def dns_server() -> Iterator[DNSServer]:
    with DNSServer() as server:
        yield server


def test_mx_check_on_a_real_dns_server(dns_server: DNSServer) -> None:
    dns_server.mx("mail.example", (10, "mx.mail.example"))
    dns_server.a("aonly.example", "192.0.2.1")
    dns_server.null_mx("nullmx.example")
    dns_server.txt("txtonly.example", "hello")
    checker = MXChecker(dns_server.resolver(), concurrency=3, timeout=2.0)
    verdicts = checker.check(["mail.example", "aonly.example", "nullmx.example",
                              "nxdomain.example", "txtonly.example"])
    assert verdicts == {
        "mail.example": None,
        "aonly.example": None,
        "nullmx.example": "domain does not accept mail (null MX)",
        "nxdomain.example": "domain does not exist",
        "txtonly.example": "domain has no MX or address record",
    }
    asked = dns_server.count("mail.example")
    # Cached per domain: asking again sends nothing.
    assert checker.check(["mail.example", "nxdomain.example"])["mail.example"] is None
    assert dns_server.count("mail.example") == asked


def test_import_with_mx_check_rejects_dead_domains(
        dns_server: DNSServer, store: Store, tmp_path: Path) -> None:
    dns_server.mx("live.example", (10, "mx.live.example"))
    dns_server.null_mx("nullmx.example")
    path = tmp_path / "f.csv"
    path.write_text("email\na@live.example\nb@LIVE.example\nc@dead.example\n"
                    "d@nullmx.example\n", encoding="utf-8")
    report = import_file(store, path, ImportOptions(
        list_name="l", mx=MXChecker(dns_server.resolver(), concurrency=2)))
    assert (report.added, dict(report.rejected)) == (2, {"no mail server": 2})
    rows = path.with_name("f.csv.rejects.csv").read_text(encoding="utf-8").splitlines()
    assert rows[1:] == ["4,no mail server: domain does not exist,c@dead.example",
                        "5,no mail server: domain does not accept mail (null MX),"
                        "d@nullmx.example"]
    assert dns_server.count("live.example", "MX") == 1


def test_mx_check_keeps_addresses_when_the_resolver_fails(dns_server: DNSServer) -> None:
    dns_server.fail("broken.example")
    checker = MXChecker(dns_server.resolver(), timeout=1.0)
    assert checker.check(["broken.example"]) == {"broken.example": None}
