"""Messages as receivers see them: parsed strictly, headers and parts checked, hostile input."""

from __future__ import annotations

from collections import Counter
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.config import SendingConfig
from dispatcher.core import tokens, tracking, verp
from dispatcher.core.campaign import Campaign
from dispatcher.errors import RecipientError, TemplateError
from dispatcher.render import Recipient, Renderer
from dispatcher.render.message import encode_body
from dispatcher.render.template import mjml_compile_count

DATA = Path(__file__).parent / "data"
SECRET = b"k" * 32
SENDING = SendingConfig(domain="news.shop.example", bounce_domain="bounces.shop.example",
                        unsubscribe_url="https://shop.example/u/{token}",
                        list_id="Shop News <news.shop.example>")


def campaign(**overrides: Any) -> Campaign:
    data: dict[str, Any] = {
        "name": "spring", "from": {"name": "Shop Team", "address": "news@shop.example"},
        "reply_to": "help@shop.example",
        "subject": "{{ first_name | default('Hi') }}, spring in {{ city | default('town') }}",
        "preheader": "Up to 30% off",
        "template": {"html": "templates/news.mjml", "text": "templates/news.txt"},
        "audience": {"lists": ["customers"]}, "variables": {"issue": 7},
        "headers": {"X-Campaign": "spring"},
    }
    data.update(overrides)
    return Campaign.model_validate(data)


def renderer(c: Campaign | None = None, **kw: Any) -> Renderer:
    return Renderer(c or campaign(), root=DATA, sending=SENDING, secret=SECRET, campaign_id=42,
                    **kw)


def parse(data: bytes) -> EmailMessage:
    msg = BytesParser(policy=policy.strict).parsebytes(data)
    assert isinstance(msg, EmailMessage)
    assert not msg.defects
    for part in msg.walk():
        assert not part.defects
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    assert b"\n" not in data.replace(b"\r\n", b"")
    return msg


def bodies(msg: EmailMessage) -> tuple[str, str]:
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    return plain.get_content(), unescape(html.get_content())


def test_a_message_has_every_header_bulk_senders_need() -> None:
    r = renderer()
    m = r.render(Recipient(5, "ann@example.org", "Ann Lee",
                           {"first_name": "Ann", "city": "Berlin", "plan": "pro"}))
    msg = parse(m.data)
    assert msg["From"] == "Shop Team <news@shop.example>"
    assert msg["To"] == "Ann Lee <ann@example.org>" and m.recipient == "ann@example.org"
    assert msg["Reply-To"] == "help@shop.example"
    assert msg["Subject"] == "Ann, spring in Berlin"
    assert msg["Message-ID"] == m.message_id and m.message_id.endswith("@news.shop.example>")
    assert msg["Date"].datetime.tzinfo is not None
    assert msg["List-Id"] == "Shop News <news.shop.example>"
    assert msg["Feedback-ID"] == "42:spring:newsletter:news.shop.example"
    assert msg["X-Campaign"] == "spring"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https, mailto = (u.strip().strip("<>") for u in str(msg["List-Unsubscribe"]).split(","))
    token = https.removeprefix("https://shop.example/u/")
    assert tokens.verify(SECRET, "unsub", token, 2) == (42, 5)
    assert mailto == f"mailto:unsubscribe@bounces.shop.example?subject=unsubscribe%20{token}"
    assert verp.parse(SECRET, m.envelope_from, prefix="bounces") == (42, 5)
    assert m.envelope_from.endswith("@bounces.shop.example")
    assert msg.get_content_type() == "multipart/alternative"
    text, html = bodies(msg)
    assert "Hallo Ann," in text and https in text
    assert "grüße aus Berlin" in html and f'href="{https}"' in html
    assert "Your pro perks are inside." in html
    # Jinja tags in an MJML href survived compilation and were rendered per recipient.
    assert 'href="https://shop.example/articles/7"' in html


def test_mjml_is_compiled_once_per_campaign_not_per_recipient() -> None:
    before = mjml_compile_count()
    r = renderer()
    for sid in range(20):
        r.render(Recipient(sid, f"r{sid}@example.org"))
    assert mjml_compile_count() - before == 1


def test_non_ascii_names_subjects_and_idn_domains() -> None:
    c = campaign(**{"from": {"name": "Bücherstube Köln", "address": "post@bücher.example"}})
    m = renderer(c).render(Recipient(1, "zoe@münchen.example", 'Zoë "Z" Müller, Jr.',
                                     {"first_name": "Zoë", "city": "Köln"}))
    msg = parse(m.data)
    assert m.recipient == "zoe@xn--mnchen-3ya.example"
    assert msg["To"].addresses[0].display_name == 'Zoë "Z" Müller, Jr.'
    assert msg["To"].addresses[0].addr_spec == "zoe@xn--mnchen-3ya.example"
    assert msg["From"].addresses[0].display_name == "Bücherstube Köln"
    assert msg["From"].addresses[0].domain == "xn--bcher-kva.example"
    assert msg["Subject"] == "Zoë, spring in Köln"
    assert b"Zo\xc3\xab" not in m.data.split(b"\r\n\r\n")[0]  # headers stay 7-bit
    text, html = bodies(msg)
    assert "Hallo Zoë" in text and "grüße aus Köln" in html


def test_long_lines_and_long_subjects_are_kept_under_998_bytes() -> None:
    long_word = "x" * 3000
    c = campaign(subject="{{ first_name }} " + "spring " * 60)
    m = renderer(c).render(Recipient(1, "a@example.org", "A" * 250,
                                     {"first_name": long_word, "city": "é" * 2000}))
    msg = parse(m.data)
    assert msg["Subject"].startswith(long_word)
    text, html = bodies(msg)
    assert long_word in text and "é" * 2000 in html


@pytest.mark.parametrize(("text", "cte"), [
    ("plain ascii\n", b"7bit"), ("ü" * 10, b"quoted-printable"), ("a" * 1200, b"quoted-printable"),
    ("a" * 998 + "\nb", b"7bit"), ("b\n" + "a" * 999, b"quoted-printable"),
    ("ü" * 5000, b"base64"), ("line\r\nbreaks\rbare", b"quoted-printable"),
])
def test_body_encodings_round_trip(text: str, cte: bytes) -> None:
    kind, body = encode_body(text)
    assert kind == cte
    assert all(len(line) <= 998 for line in body.split(b"\r\n"))
    raw = (b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: " + kind
           + b"\r\n\r\n" + body)
    part = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(part, EmailMessage)
    got = part.get_content()
    assert got.replace("\r\n", "\n").rstrip("\n") == text.replace("\r\n", "\n").rstrip("\n")


hostile = st.text(alphabet=st.sampled_from(list("aZ é\r\n\0:<>@,;\"\\=?")), max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=hostile, city=hostile, first=hostile)
def test_hostile_values_never_inject_a_header_or_recipient(name: str, city: str,
                                                            first: str) -> None:
    r = _hostile_renderer
    attributes = {"first_name": first, "city": city}
    try:
        m = r.render(Recipient(9, "victim@example.org", name, attributes))
    except RecipientError as exc:
        assert any(ch in name + city + first for ch in "\r\n\0")
        assert "line break or NUL" in str(exc) and "victim@example.org" in str(exc)
        return
    msg = parse(m.data)
    assert [a.addr_spec for a in msg["To"].addresses] == ["victim@example.org"]
    assert msg.get_all("Bcc") is None and msg.get_all("Cc") is None
    assert len(msg.get_all("To") or []) == 1 and len(msg.get_all("Subject") or []) == 1
    assert m.recipient == "victim@example.org"
    # whitespace aside: CPython adds a space between encoded words (see test_render_parts)
    assert "".join(msg["To"].addresses[0].display_name.split()) == "".join(name.split())


_hostile_renderer = renderer(campaign(subject="{{ first_name }} in {{ city }}"))


def test_a_crlf_in_a_name_is_refused_with_the_recipient() -> None:
    with pytest.raises(RecipientError, match=r"bob@example.org: name contains a line break"):
        renderer().render(Recipient(1, "bob@example.org", "Bob\r\nBcc: all@example.org"))


def test_a_crlf_in_a_subject_variable_stays_inside_the_subject() -> None:
    c = campaign(subject="Hi {{ first_name }}")
    m = renderer(c).render(Recipient(1, "b@example.org", "",
                                     {"first_name": "x\r\nBcc: all@example.org"}))
    msg = parse(m.data)
    assert msg["Subject"] == "Hi x Bcc: all@example.org" and msg.get_all("Bcc") is None


def test_a_non_ascii_local_part_is_refused_not_mangled() -> None:
    with pytest.raises(RecipientError, match="SMTPUTF8"):
        renderer().render(Recipient(1, "zoë@example.org"))


def test_missing_attributes_fail_loudly_but_default_filters_work(tmp_path: Path) -> None:
    c = campaign(template={"html": "templates/strict.html"}, subject="Hi")
    r = renderer(c)
    with pytest.raises(TemplateError) as caught:
        r.render(Recipient(1, "a@example.org", "", {"first_name": "A"}))
    where = "templates/strict.html"
    assert str(caught.value) == f"{where}: a@example.org: 'city' is undefined"
    m = renderer().render(Recipient(1, "a@example.org"))  # news.mjml uses default()
    assert "Hallo Leser" in bodies(parse(m.data))[0]


def test_the_sandbox_refuses_python_internals(tmp_path: Path) -> None:
    (tmp_path / "t.html").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}",
                                     encoding="utf-8")
    c = campaign(template={"html": "t.html"}, subject="x")
    r = Renderer(c, root=tmp_path, sending=SENDING, secret=SECRET, campaign_id=1)
    with pytest.raises(TemplateError, match=r"unsafe|not safely|access"):
        r.render(Recipient(1, "a@example.org"))


def test_jinja_syntax_errors_point_at_the_mjml_line() -> None:
    c = campaign(template={"html": "templates/broken_jinja.mjml"})
    with pytest.raises(TemplateError) as caught:
        renderer(c)
    assert caught.value.line == 5
    assert str(caught.value) == "templates/broken_jinja.mjml:5: unexpected '}'"


def test_html_only_templates_get_a_derived_text_part() -> None:
    c = campaign(template="templates/variant_b.html")
    text, _ = bodies(parse(renderer(c).render(Recipient(3, "c@example.org")).data))
    assert "B offer (https://shop.example/b)" in text
    assert "Unsubscribe (https://shop.example/u/" in text


AB = {"variants": [
    {"name": "a", "subject": "Subject A for {{ email }}", "percent": 30},
    {"name": "b", "template": "templates/variant_b.html", "percent": 70}]}


def test_a_fixed_ab_split_assigns_stable_variants_in_proportion() -> None:
    r = renderer(campaign(ab_test=AB))
    seen: Counter[str] = Counter()
    for sid in range(400):
        m = r.render(Recipient(sid, f"s{sid}@example.org"))
        msg = parse(m.data)
        seen[m.variant] += 1
        if m.variant == "a":
            assert msg["Subject"] == f"Subject A for s{sid}@example.org"
            assert "grüße" in bodies(msg)[1]
        else:
            assert msg["Subject"].endswith("spring in town")
            assert f"Variant B for s{sid}@example.org" in bodies(msg)[1]
    assert 90 <= seen["a"] <= 150 and seen["a"] + seen["b"] == 400
    assert r.render(Recipient(7, "x@example.org")).variant == r.variant_for(Recipient(7, "y"))
    assert r.render(Recipient(7, "x@example.org", variant="b")).variant == "b"


def test_a_winner_rule_holds_back_the_rest_until_the_winner_is_known() -> None:
    ab = {"variants": [{"name": "a", "subject": "A", "percent": 10},
                       {"name": "b", "subject": "B", "percent": 10}],
          "winner": {"by": "clicks", "after": "2h"}}
    waiting = renderer(campaign(ab_test=ab))
    decided = renderer(campaign(ab_test=ab), winner="b")
    shares = Counter(waiting.variant_for(Recipient(s, "x")) for s in range(1000))
    assert 50 < shares["a"] < 150 and 50 < shares["b"] < 150 and shares[""] > 700
    held = next(s for s in range(1000) if waiting.variant_for(Recipient(s, "x")) == "")
    assert decided.render(Recipient(held, "h@example.org")).variant == "b"


def test_tracking_wraps_links_with_signed_urls_and_adds_a_pixel() -> None:
    c = campaign(tracking={"opens": True, "clicks": True})
    r = renderer(c)
    msg = parse(r.render(Recipient(5, "t@example.org", "", {"plan": "free"})).data)
    _, html = bodies(msg)
    assert 'src="https://shop.example/o/' in html
    pixel = html.split('src="https://shop.example/o/')[1].split('"')[0]
    assert tracking.verify_open(SECRET, pixel) == (42, 5)
    clicks = [h.split('"')[0] for h in html.split('href="')[1:]]
    wrapped = [u for u in clicks if u.startswith("https://shop.example/c/")]
    assert len(wrapped) == 2
    targets = set()
    for url in wrapped:
        parts = urlsplit(url.replace("&amp;", "&"))
        target = parse_qs(parts.query)["u"][0]
        token = parts.path.rsplit("/", 1)[1]
        assert tracking.verify_click(SECRET, token, target) == (42, 5)
        assert tracking.verify_click(SECRET, token, "https://evil.example/") is None
        targets.add(target)
    assert targets == {"https://shop.example/upgrade?from=t%40example.org",
                       "https://shop.example/articles/7"}
    assert any(u.startswith("https://shop.example/u/") for u in clicks)  # unsubscribe untouched


def test_tracking_is_off_by_default() -> None:
    html = bodies(parse(renderer().render(Recipient(5, "t@example.org")).data))[1]
    assert "/o/" not in html and "/c/" not in html


def test_html_templates_get_the_preheader_hidden_after_body() -> None:
    c = campaign(template="templates/variant_b.html", preheader="Only this week: 30% off")
    html = bodies(parse(renderer(c).render(Recipient(3, "c@example.org")).data))[1]
    body = html.split("<body>", 1)[1]
    assert body.startswith('<div style="display:none;') and "Only this week: 30% off" in body
    text = bodies(parse(renderer(c).render(Recipient(3, "c@example.org")).data))[0]
    assert "Only this week" not in text  # the preheader is for the inbox list only


@pytest.mark.parametrize(("source", "message"), [
    ("{{ 1 / count }}", "ZeroDivisionError: division by zero"),
    ("{{ 'a' + count }}", "TypeError"),
    ("{{ items[3] }}", "list object has no element 3"),
    ("{% for i in range(10**9) %}{% endfor %}", "OverflowError"),
])
def test_runtime_errors_in_a_template_fail_that_recipient_with_a_message(
        tmp_path: Path, source: str, message: str) -> None:
    (tmp_path / "t.html").write_text(source + "{{ unsubscribe_url }}", encoding="utf-8")
    c = campaign(template="t.html", subject="x")
    r = Renderer(c, root=tmp_path, sending=SENDING, secret=SECRET, campaign_id=1)
    with pytest.raises(TemplateError) as caught:
        r.render(Recipient(1, "a@example.org", "", {"count": 0, "items": [1]}))
    assert message in str(caught.value) and "a@example.org" in str(caught.value)
    assert str(caught.value).startswith("t.html: a@example.org: ")


def test_a_non_ascii_campaign_name_makes_a_clean_feedback_id() -> None:
    c = campaign(name="Frühling: 2026 / Süd", headers={"X-Kampagne": "Frühling"})
    msg = parse(renderer(c).render(Recipient(1, "a@example.org")).data)
    assert msg["Feedback-ID"] == "42:Fr-hling-2026-S-d:newsletter:news.shop.example"
    assert msg["X-Kampagne"] == "Frühling"


def test_a_non_ascii_list_name_keeps_its_list_id_readable() -> None:
    sending = SENDING.model_copy(update={"list_id": "Bücherwurm Wöchentlich <weekly.shop.example>"})
    r = Renderer(campaign(), root=DATA, sending=sending, secret=SECRET, campaign_id=1)
    data = r.render(Recipient(1, "a@example.org")).data
    line = next(h for h in data.split(b"\r\n") if h.startswith(b"List-Id:"))
    assert line.startswith(b"List-Id: =?utf-8?b?") and line.endswith(b" <weekly.shop.example>")
    assert parse(data)["List-Id"] == "Bücherwurm Wöchentlich <weekly.shop.example>"


def test_templates_cannot_mutate_values_shared_between_recipients(tmp_path: Path) -> None:
    (tmp_path / "t.html").write_text("{{ seen.append(email) }}{{ seen }}{{ unsubscribe_url }}",
                                     encoding="utf-8")
    c = campaign(template="t.html", subject="x", variables={"seen": []})
    r = Renderer(c, root=tmp_path, sending=SENDING, secret=SECRET, campaign_id=1)
    with pytest.raises(TemplateError, match="unsafe"):
        r.render(Recipient(1, "first@example.org"))
    assert c.variables["seen"] == []
