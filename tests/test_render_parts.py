"""Header encoding, HTML to text, and tracking URLs on their own."""

from __future__ import annotations

from email import policy
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.parser import BytesParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.core import tracking
from dispatcher.errors import RecipientError
from dispatcher.render.headers import (
    HeaderInjectionError,
    ascii_address,
    encode_text,
    format_address,
)
from dispatcher.render.text import html_to_text

SECRET = b"t" * 32


def parse_header(name: str, value: str) -> str:
    msg = BytesParser(policy=policy.strict).parsebytes(f"{name}: {value}\r\n\r\n".encode("ascii"))
    assert not msg.defects
    return str(msg[name])


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="\r\n\0",
                                      blacklist_categories=("Cs", "Cc")), max_size=300))
def test_any_subject_round_trips_and_stays_short(subject: str) -> None:
    encoded = encode_text(subject)
    assert encoded.isascii()
    assert all(len(line) <= 998 for line in f"Subject: {encoded}".split("\r\n"))
    assert " ".join(parse_header("Subject", encoded).split()) == " ".join(subject.split())


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="\r\n\0",
                                      blacklist_categories=("Cs", "Cc")), max_size=100))
def test_any_display_name_round_trips(name: str) -> None:
    value = format_address(name, "ann@example.org")
    msg = BytesParser(policy=policy.strict).parsebytes(f"To: {value}\r\n\r\n".encode("ascii"))
    (address,) = msg["To"].addresses
    assert isinstance(address, Address)
    assert address.addr_spec == "ann@example.org"
    raw = value.rsplit(" <", 1)[0]
    if raw.startswith("=?"):
        # CPython's phrase parser keeps the folding space between encoded words that
        # RFC 2047 6.2 says to ignore; its legacy decoder follows the RFC.
        assert str(make_header(decode_header(raw))) == name.strip()
    else:
        assert " ".join(address.display_name.split()) == " ".join(name.split())


@pytest.mark.parametrize("value", ["a\rb", "a\nBcc: x@example.org", "nul\0"])
def test_line_breaks_and_nul_are_refused(value: str) -> None:
    with pytest.raises(HeaderInjectionError):
        encode_text(value)
    with pytest.raises(HeaderInjectionError):
        format_address(value, "a@example.org")
    with pytest.raises(RecipientError):
        ascii_address(f"a{value}@example.org")


def test_idn_domains_become_a_labels() -> None:
    assert ascii_address("post@bücher.example") == "post@xn--bcher-kva.example"
    assert ascii_address("Post@EXAMPLE.org") == "Post@EXAMPLE.org"
    with pytest.raises(RecipientError):
        ascii_address("no-at-sign")


def test_html_to_text_keeps_links_and_structure() -> None:
    html = ("<html><head><title>T</title><style>p{color:red}</style></head><body>"
            '<div style="display:none;max-height:0">preheader</div><h1>Spring</h1>'
            "<p>Hi &amp; welcome,<br>friend</p><ul><li>one</li><li>two</li></ul>"
            '<a href="https://x.example/a?b=1&amp;c=2">Read <b>more</b></a> '
            '<a href="https://x.example/plain">https://x.example/plain</a> '
            '<a href="mailto:help@x.example">help@x.example</a> <a href="#top">top</a>'
            '<img src="logo.png" alt="Logo"><!-- hidden --><script>alert(1)</script>'
            "</body></html>")
    assert html_to_text(html) == (
        "Spring\n\nHi & welcome,\nfriend\n\n- one\n- two\n"
        "Read more (https://x.example/a?b=1&c=2) https://x.example/plain help@x.example top"
        " Logo\n")


def test_click_urls_cannot_become_open_redirects() -> None:
    url = tracking.click_url("https://t.example/", SECRET, 4, 9, "https://shop.example/a?x=1&y=2")
    assert url.startswith("https://t.example/c/")
    token = url.split("/c/")[1].split("?")[0]
    assert tracking.verify_click(SECRET, token, "https://shop.example/a?x=1&y=2") == (4, 9)
    assert tracking.verify_click(SECRET, token, "https://evil.example/") is None
    assert tracking.verify_click(b"x" * 32, token, "https://shop.example/a?x=1&y=2") is None
    js = tracking.click_url("https://t.example", SECRET, 4, 9, "javascript:alert(1)")
    js_token = js.split("/c/")[1].split("?")[0]
    assert tracking.verify_click(SECRET, js_token, "javascript:alert(1)") is None
    opened = tracking.open_url("https://t.example", SECRET, 4, 9)
    assert tracking.verify_open(SECRET, opened.rsplit("/", 1)[1]) == (4, 9)
    assert tracking.verify_open(SECRET, "4-9-aaaaaaaaaaaaaaaa.gif") is None
    # a click token is not an open token and vice versa
    assert tracking.verify_open(SECRET, token) is None


def test_rewrite_links_only_touches_what_wrap_accepts() -> None:
    html = ('<a href="https://a.example/?p=1&amp;q=2">A</a> <a class="x" href=\'mailto:m@x\'>M</a>'
            '<p>href="https://not-a-link.example"</p>')
    out = tracking.rewrite_links(
        html, lambda u: f"https://w/{u}" if tracking.trackable(u) else None)
    assert '<a href="https://w/https://a.example/?p=1&amp;q=2">A</a>' in out
    assert "href='mailto:m@x'" in out and '<p>href="https://not-a-link.example"</p>' in out
    assert tracking.add_pixel("<body>x</body>", "https://p/o.gif").endswith(
        '<img src="https://p/o.gif" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0" /></body>')
