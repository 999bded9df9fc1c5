"""The whole loop on loopback: send, bounce, complain, unsubscribe; the next campaign skips them.

A relay rejects two RCPTs with 550 5.1.1; DSNs and a complaint for accepted
messages arrive at the inbound SMTP receiver or in a maildir; one subscriber
uses the one-click POST, one the mailto. Afterwards suppressions and events
are exactly right, and a second campaign to the same list skips exactly those.
"""

from __future__ import annotations

import json
import mailbox
import re
import smtplib
from pathlib import Path

import httpx
import sqlalchemy as sa
from typer.testing import CliRunner

from dispatcher.cli import app
from dispatcher.feedback.inbound import InboundHandler, start_receiver
from dispatcher.store import Store
from dispatcher.store.models import Event, Subscriber, Suppression
from dispatcher.store.subscribers import suppression_hash
from dispatcher.web import create_app, start_server
from tests.support.relay import Received, RecordingRelay

runner = CliRunner()
PEOPLE = {  # role -> address
    "rejected1": "rita.rejected@example.com", "rejected2": "rolf.rejected@example.org",
    "hard_dsn": "hank.gone@example.net", "soft_dsn": "sofia.full@example.net",
    "complaint": "carl.angry@example.com", "one_click": "olga.leaves@example.org",
    "mailto": "mads.mailto@example.com", "autoreply": "ann.away@example.com",
    "stay1": "sam.stays@example.com", "stay2": "tara.stays@example.net",
    "stay3": "uma.stays@example.org", "stay4": "vic.stays@example.com",
}
GONE = {"rejected1": "bounced", "rejected2": "bounced", "hard_dsn": "bounced",
        "complaint": "complained", "one_click": "unsubscribed", "mailto": "unsubscribed"}


def invoke(*args: str, codes: tuple[int, ...] = (0,)) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code in codes, result.output
    return result.output


def report(kind: str, item: Received, rcpt: str, status: str, diag: str) -> bytes:
    """A DSN (or an ARF report) about ``item`` the way a receiving MTA would send it."""
    if kind == "arf":
        part = (f"Content-Type: message/feedback-report\n\nFeedback-Type: abuse\nUser-Agent: "
                f"Yahoo!-Mail-Feedback/2.0\nVersion: 1\nOriginal-Rcpt-To: <{rcpt}>\n")
        rtype, frm = "feedback-report", "feedback@arf.mail.yahoo.com"
    else:
        part = (f"Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n"
                f"Final-Recipient: rfc822; {rcpt}\nAction: failed\nStatus: {status}\n"
                f"Diagnostic-Code: smtp; {diag}\n")
        rtype, frm = "delivery-status", "MAILER-DAEMON@mx.example.net"
    head = (f"From: {frm}\nTo: {item.mail_from}\nSubject: Report\nMIME-Version: 1.0\n"
            f"Content-Type: multipart/report; report-type={rtype}; boundary=RB\n\n--RB\n"
            f"Content-Type: text/plain\n\nAbout your message.\n\n--RB\n{part}\n--RB\n"
            f"Content-Type: message/rfc822\n\n").encode()
    raw = head + item.data.replace(b"\r\n", b"\n") + b"\n--RB--\n"
    return raw.replace(b"\n", b"\r\n")  # smtplib sends bytes as they are: SMTP wants CRLF


def test_the_loop(workspace: Path, relay: RecordingRelay, store_url: str) -> None:
    (workspace / "lists" / "small.csv").write_text(
        "email,name,first_name,city,plan,signup_date\n" + "".join(
            f"{a},{r.title()} Test,{r.title()},Lisbon,free,2024-01-02\n"
            for r, a in PEOPLE.items()),
        encoding="utf-8")
    invoke("import", "lists/small.csv", "--list", "weekly")
    for role in ("rejected1", "rejected2"):
        address = PEOPLE[role]
        relay.handler.reject_rcpt[address] = (
            f"550 5.1.1 <{address}>: Recipient address rejected: User unknown in virtual "
            "mailbox table")
    invoke("send", "campaigns/weekly.yaml", "--relay", relay.url, codes=(0, 3))
    sent = {item.rcpt_tos[0]: item for item in relay.received}
    assert set(sent) == set(PEOPLE.values()) - {PEOPLE["rejected1"], PEOPLE["rejected2"]}

    store = Store.open(store_url)
    handler = InboundHandler(store, "bounces.example.com", "bounces",
                             "unsubscribe@bounces.example.com")
    receiver = start_receiver(handler)
    web = start_server(create_app(store, "https://news.example.com/unsubscribe/{token}"))
    try:
        with smtplib.SMTP("127.0.0.1", receiver.port, timeout=10) as smtp:
            for role, kind, status, diag in (
                ("hard_dsn", "dsn", "5.1.1", "550-5.1.1 The email account that you tried to "
                 "reach does not exist. - gsmtp"),
                ("complaint", "arf", "", ""),
            ):
                item = sent[PEOPLE[role]]
                smtp.sendmail("", [item.mail_from],
                              report(kind, item, PEOPLE[role], status, diag))
            mailto = re.search(r"<mailto:([^?>]+)\?subject=([^>]+)>",
                               str(sent[PEOPLE["mailto"]].message()["List-Unsubscribe"]))
            assert mailto is not None
            smtp.sendmail(PEOPLE["mailto"], [mailto.group(1)],
                          f"From: {PEOPLE['mailto']}\nSubject: "
                          f"{mailto.group(2).replace('%20', ' ')}\r\n\r\n".encode())
        box = mailbox.Maildir(workspace / "Bounces", create=True)
        box.add(report("dsn", sent[PEOPLE["soft_dsn"]], PEOPLE["soft_dsn"], "4.2.2",
                       "452 4.2.2 The email account that you tried to reach is over quota."))
        box.add(f"From: {PEOPLE['autoreply']}\nTo: {sent[PEOPLE['autoreply']].mail_from}\n"
                "Subject: Automatic reply: your week\nAuto-Submitted: auto-replied\n\nAway.\n")
        url = re.search(r"<(https://[^>]+)>", str(sent[PEOPLE["one_click"]].message()[
            "List-Unsubscribe"]))
        assert url is not None
        path = url.group(1).removeprefix("https://news.example.com")
        r = httpx.post(web.url + path, data={"List-Unsubscribe": "One-Click"})
        assert (r.status_code, r.is_redirect) == (200, False)
    finally:
        receiver.stop()
        web.stop()
    summary = json.loads(invoke("bounces", "ingest", str(workspace / "Bounces"), "--json"))
    assert (summary["messages"], summary["smtp_bounces"], summary["kinds"]) == (
        2, 2, {"soft": 1, "autoreply": 1})

    with store.engine.connect() as conn:
        ids = dict(conn.execute(sa.select(Subscriber.email, Subscriber.id)).all())
        statuses = dict(conn.execute(sa.select(Subscriber.email, Subscriber.status)).all())
        suppressions = dict(conn.execute(sa.select(Suppression.email_hash,
                                                   Suppression.reason)).all())
        rows = conn.execute(sa.select(Event.subscriber_id, Event.kind, Event.reason)
                            .order_by(Event.id)).all()
    store.close()
    assert suppressions == {suppression_hash(PEOPLE[r]): reason for r, reason in GONE.items()}
    assert statuses == {a: GONE.get(r, "active") for r, a in PEOPLE.items()}
    by_role = {role: [(k, reason) for s, k, reason in rows if s == ids[a]]
               for role, a in PEOPLE.items()}
    sent_ok = ("sent", None)
    assert by_role == {
        "rejected1": [("bounced", "user_unknown"), ("suppressed", "user_unknown")],
        "rejected2": [("bounced", "user_unknown"), ("suppressed", "user_unknown")],
        "hard_dsn": [sent_ok, ("bounced", "user_unknown"), ("suppressed", "user_unknown")],
        "soft_dsn": [sent_ok, ("bounced", "mailbox_full")],
        "complaint": [sent_ok, ("complained", "complaint"), ("suppressed", "complaint")],
        "one_click": [sent_ok, ("unsubscribed", None)],
        "mailto": [sent_ok, ("unsubscribed", None)],
        "autoreply": [sent_ok, ("autoreply", "none")],
        **{f"stay{i}": [sent_ok] for i in range(1, 5)},
    }
    figures = json.loads(invoke("bounces", "report", "--campaign", "weekly-2026-48", "--json"))
    assert figures["by_kind"] == {"bounced:hard": 3, "bounced:soft": 1, "suppressed": 4,
                                  "complained": 1, "unsubscribed": 2, "autoreply": 1}

    # The next campaign to the same list skips exactly the suppressed.
    second = (workspace / "campaigns" / "weekly.yaml").read_text(encoding="utf-8").replace(
        "name: weekly-2026-48", "name: weekly-2026-49")
    (workspace / "campaigns" / "second.yaml").write_text(second, encoding="utf-8")
    before = len(relay.received)
    invoke("send", "campaigns/second.yaml", "--relay", relay.url)
    assert sorted(i.rcpt_tos[0] for i in relay.received[before:]) == sorted(
        a for r, a in PEOPLE.items() if r not in GONE)
