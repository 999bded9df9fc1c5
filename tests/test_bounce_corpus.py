"""The returned-mail corpus: real-world bounces, complaints and auto-replies with expected verdicts.

``tests/data/bounces/*/expected.json`` gives, per sample, the kind, reason and
recipients a careful human would assign (see ``tests/data/bounces/README.md``
for where every sample comes from). Every folder with an ``expected.json`` is
loaded: ``flufl/``, ``sisimai/``, ``mailbouncedetector/`` and ``phpbouncehandler/``
hold real mail copied from other projects' test data, ``providers/`` holds
reconstructions. The test prints the accuracy overall and per folder, and holds
the issue's bar over the whole corpus: the failed recipient found for >= 97% of
bounces, hard/soft agreeing for >= 95%.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from dispatcher.core.bounces import Analysis, analyze
from dispatcher.core.replies import REASONS

DATA = Path(__file__).parent / "data" / "bounces"
SECRET = b"corpus-secret"  # what tests/data/bounces/providers/_make.py signed with


def _load() -> dict[str, dict[str, object]]:
    expected: dict[str, dict[str, object]] = {}
    for path in sorted(DATA.glob("*/expected.json")):
        expected.update(json.loads(path.read_text(encoding="utf-8")))
    return expected


EXPECTED = _load()


@pytest.fixture(scope="module")
def results() -> dict[str, Analysis]:
    return {name: analyze((DATA / name).read_bytes(), secret=SECRET) for name in EXPECTED}


def _lower(items: object) -> set[str]:
    assert isinstance(items, list)
    return {str(i).lower() for i in items}


def test_corpus_size_and_variety() -> None:
    assert len(EXPECTED) >= 150
    origins = {Path(name).stem.split("_")[0].split("-")[0] for name in EXPECTED}
    assert len(origins) >= 15, origins
    assert {e["kind"] for e in EXPECTED.values()} >= {
        "hard", "soft", "complaint", "autoreply", "delivered", "not_bounce"}
    for name in EXPECTED:
        assert (DATA / name).is_file(), name


def _folder(name: str) -> str:
    return name.split("/", 1)[0]


def _breakdown(results: dict[str, Analysis]) -> list[str]:
    """One line per corpus folder: recipients found, hard/soft, kind and reason agreement."""
    lines = []
    for folder in sorted({_folder(n) for n in EXPECTED}):
        names = [n for n in EXPECTED if _folder(n) == folder]
        bounces = [n for n in names if EXPECTED[n]["kind"] in ("hard", "soft")]
        named = [n for n in bounces if EXPECTED[n]["recipients"]]
        found = sum(_lower(EXPECTED[n]["recipients"]) <= {r.lower() for r in results[n].recipients}
                    for n in named)
        hardsoft = sum(results[n].kind == EXPECTED[n]["kind"] for n in bounces)
        kinds = sum(results[n].kind == EXPECTED[n]["kind"] for n in names)
        reasons = sum(results[n].reason == EXPECTED[n]["reason"] for n in bounces)
        lines.append(f"  {folder + '/':20s} {len(names):3d} samples  recipient {found}/{len(named)}"
                     f"  hard/soft {hardsoft}/{len(bounces)}  kind {kinds}/{len(names)}"
                     f"  reason {reasons}/{len(bounces)}")
    return lines


def test_accuracy(results: dict[str, Analysis], capsys: pytest.CaptureFixture[str]) -> None:
    bounces = [n for n, e in EXPECTED.items() if e["kind"] in ("hard", "soft")]
    named = [n for n in bounces if EXPECTED[n]["recipients"]]
    found = [n for n in named if _lower(EXPECTED[n]["recipients"]) <= {
        r.lower() for r in results[n].recipients}]
    exact = [n for n in named if _lower(EXPECTED[n]["recipients"]) == {
        r.lower() for r in results[n].recipients}]
    hardsoft = [n for n in bounces if results[n].kind == EXPECTED[n]["kind"]]
    kinds = [n for n in EXPECTED if results[n].kind == EXPECTED[n]["kind"]]
    reasons = [n for n in bounces if results[n].reason == EXPECTED[n]["reason"]]
    misses = Counter(f"{EXPECTED[n]['kind']}->{results[n].kind}" for n in EXPECTED
                     if results[n].kind != EXPECTED[n]["kind"])
    with capsys.disabled():
        print(f"\nbounce corpus: {len(EXPECTED)} samples, {len(bounces)} bounces "
              f"({len(named)} naming a recipient)")
        print(f"  recipient found       {len(found)}/{len(named)} = {len(found) / len(named):.1%}"
              f"  (exactly the expected set: {len(exact) / len(named):.1%})")
        print(f"  hard/soft agreement   {len(hardsoft)}/{len(bounces)} = "
              f"{len(hardsoft) / len(bounces):.1%}")
        print(f"  kind agreement (all)  {len(kinds)}/{len(EXPECTED)} = "
              f"{len(kinds) / len(EXPECTED):.1%}   misses: {dict(misses)}")
        print(f"  reason agreement      {len(reasons)}/{len(bounces)} = "
              f"{len(reasons) / len(bounces):.1%}")
        print("\n".join(_breakdown(results)))
        wrong = [n for n in EXPECTED if results[n].kind != EXPECTED[n]["kind"]
                 or not _lower(EXPECTED[n]["recipients"]) <= {
                     r.lower() for r in results[n].recipients}]
        if wrong:
            print("  misses (kind or recipient): " + ", ".join(wrong))
    assert len(found) / len(named) >= 0.97
    assert len(hardsoft) / len(bounces) >= 0.95
    assert len(kinds) / len(EXPECTED) >= 0.95


@pytest.mark.parametrize("name", [n for n, e in EXPECTED.items()
                                  if e["kind"] in ("complaint", "autoreply", "delivered")])
def test_never_a_bounce(name: str, results: dict[str, Analysis]) -> None:
    """Complaints, auto-replies and delivery receipts are never counted as bounces."""
    assert not results[name].is_bounce
    assert results[name].kind == EXPECTED[name]["kind"]


@pytest.mark.parametrize("name", [n for n, e in EXPECTED.items() if e["subscriber"] is not None])
def test_verp_identifies_the_delivery(name: str, results: dict[str, Analysis]) -> None:
    result = results[name]
    assert (result.campaign_id, result.subscriber_id) == (
        EXPECTED[name]["campaign"], EXPECTED[name]["subscriber"])
    assert result.verified


def test_wrong_secret_is_not_verified() -> None:
    raw = (DATA / "providers" / "gmail-user-unknown.eml").read_bytes()
    result = analyze(raw, secret=b"another secret")
    assert (result.campaign_id, result.subscriber_id) == (7, 101)
    assert not result.verified


def test_reasons_are_from_the_vocabulary(results: dict[str, Analysis]) -> None:
    assert {r.reason for r in results.values()} <= set(REASONS)
    assert {e["reason"] for e in EXPECTED.values()} <= set(REASONS)


@pytest.mark.parametrize("raw", [b"", b"\x00\xff\xfe garbage", b"Subject: hi\n\nhello",
                                 b"Content-Type: multipart/report; boundary=x\n\n--x\n\n--x--\n",
                                 b"From: MAILER-DAEMON@x\nSubject: Undelivered\n\n" + b"a" * 50000,
                                 b"Subject: x\n\n{\"notificationType\": \"Bounce\", \"bounce\": "
                                 b"{\"bouncedRecipients\": \"oops\"}}",
                                 b"Subject: x\n\n{\"notificationType\": \"Bounce\", "
                                 b"\"bounce\": 7}"])
def test_junk_never_crashes(raw: bytes) -> None:
    """Hostile or broken input gets a verdict, never an exception (and stays fast)."""
    result = analyze(raw)
    assert result.kind in ("hard", "soft", "not_bounce")


def test_vacation_reply_without_headers_is_an_autoreply() -> None:
    raw = (b"From: Pat <pat@example.com>\nTo: news@news.example.com\nSubject: Re: Your week\n\n"
           b"Hello, I am currently out of the office until Monday with limited access to email.")
    assert analyze(raw).kind == "autoreply"
    human = b"From: Pat <pat@example.com>\nSubject: Re: Your week\n\nGreat issue, thanks!"
    assert analyze(human).kind == "not_bounce"


def test_arf_report_that_is_not_a_complaint() -> None:
    """An ARF ``auth-failure`` (or ``not-spam``) report is no complaint and no bounce."""
    def report(feedback_type: str) -> bytes:
        return (b"From: fbl@isp.example\nTo: abuse@news.example.com\nSubject: report\n"
                b"MIME-Version: 1.0\nContent-Type: multipart/report; "
                b"report-type=feedback-report; boundary=b\n\n--b\nContent-Type: text/plain\n\n"
                b"A report.\n--b\nContent-Type: message/feedback-report\n\n"
                b"Feedback-Type: " + feedback_type.encode() + b"\nUser-Agent: x/1.0\n"
                b"Version: 1\nOriginal-Rcpt-To: reader@isp.example\n--b\n"
                b"Content-Type: text/rfc822-headers\n\nFrom: news@news.example.com\n"
                b"To: reader@isp.example\nSubject: Issue 7\n--b--\n")
    assert analyze(report("abuse")).kind == "complaint"
    for feedback_type in ("auth-failure", "not-spam"):
        result = analyze(report(feedback_type))
        assert result.kind == "not_bounce" and not result.is_bounce


def test_percent_hack_recipient_is_decoded() -> None:
    raw = (b"From: Mail Delivery System <Mailer-Daemon@relay.example>\n"
           b"To: news@news.example.com\nSubject: Mail delivery failed\n"
           b"X-Failed-Recipients: reader%isp.example@relay.example\n\n"
           b"This message was created automatically by mail delivery software.\n\n"
           b"A message that you sent could not be delivered to one or more of its "
           b"recipients.\n\n"
           b"  reader%isp.example@relay.example\n    mailbox is full: retry timeout exceeded\n")
    result = analyze(raw)
    assert list(result.recipients) == ["reader@isp.example"]
    assert (result.kind, result.reason) == ("soft", "mailbox_full")
