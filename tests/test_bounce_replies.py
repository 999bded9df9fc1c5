"""SMTP reply classification: the hard/soft rule, RFC 3463 parsing and provider wording."""

from __future__ import annotations

import pytest

from dispatcher.core.replies import HARD_REASONS, REASONS, classify, classify_reply, parse_status

CASES = [
    # (code, text, kind, reason, status)
    (
        550,
        "5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in virtual mailbox "
        "table",
        "hard",
        "user_unknown",
        "5.1.1",
    ),
    (
        550,
        "5.1.1 The email account that you tried to reach does not exist. Please try\n"
        "5.1.1 double-checking the recipient's email address for typos or\n"
        "5.1.1 https://support.google.com/mail/?p=NoSuchUser",
        "hard",
        "user_unknown",
        "5.1.1",
    ),
    (
        550,
        "5.2.1 The email account that you tried to reach is disabled.",
        "hard",
        "user_unknown",
        "5.2.1",
    ),
    (
        552,
        "5.2.2 The email account that you tried to reach is over quota.",
        "soft",
        "mailbox_full",
        "5.2.2",
    ),
    (
        452,
        "4.2.2 The email account that you tried to reach is over quota.",
        "soft",
        "mailbox_full",
        "4.2.2",
    ),
    (
        552,
        "Requested mail action aborted: exceeded storage allocation",
        "soft",
        "mailbox_full",
        None,
    ),
    (
        552,
        "5.3.4 Message size exceeds fixed maximum message size",
        "soft",
        "message_too_large",
        "5.3.4",
    ),
    (
        550,
        "5.7.1 [192.0.2.1] Our system has detected that this message is likely unsolicited mail.",
        "soft",
        "spam_detected",
        "5.7.1",
    ),
    (
        550,
        "5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires "
        "all senders to authenticate with either SPF or DKIM.",
        "soft",
        "auth_failure",
        "5.7.26",
    ),
    (
        421,
        "4.7.28 [192.0.2.1] Our system has detected an unusual rate of unsolicited mail "
        "originating "
        "from your IP address.",
        "soft",
        "rate_limited",
        "4.7.28",
    ),
    (
        550,
        "5.7.515 Access denied, sending domain [example.com] does not meet the required "
        "authentication level.",
        "soft",
        "auth_failure",
        "5.7.515",
    ),
    (
        550,
        "5.4.1 Recipient address rejected: Access denied. AS(201806281) "
        "[DB5EUR03FT012.eop-EUR03.prod.protection.outlook.com]",
        "hard",
        "user_unknown",
        "5.4.1",
    ),
    (
        550,
        "5.5.0 Requested action not taken: mailbox unavailable (S2017062302) "
        "[AM1EUR01FT012.eop-EUR01.prod.protection.outlook.com]",
        "hard",
        "user_unknown",
        "5.5.0",
    ),
    (
        550,
        "5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your "
        "Internet service "
        "provider since part of their network is on our block list (S3150).",
        "soft",
        "blocked",
        "5.7.1",
    ),
    (550, "5.7.606 Access denied, banned sending IP [192.0.2.1]", "soft", "blocked", "5.7.606"),
    (
        421,
        "4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or "
        "user "
        "complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
        "soft",
        "rate_limited",
        "4.7.0",
    ),
    (
        554,
        "delivery error: dd This user doesn't have a yahoo.com account (nobody@yahoo.com) [0] - "
        "mta1234.mail.yahoo.com",
        "hard",
        "user_unknown",
        None,
    ),
    (
        554,
        "delivery error: dd Sorry your message to x@yahoo.com cannot be delivered. This mailbox "
        "is disabled (554.30).",
        "hard",
        "user_unknown",
        None,
    ),
    (
        554,
        "5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
        "soft",
        "blocked",
        "5.7.1",
    ),
    (554, "5.7.1 <x@example.org>: Relay access denied", "soft", "policy", "5.7.1"),
    (
        550,
        "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
        "hard",
        "user_unknown",
        "5.1.10",
    ),
    (556, "5.1.10 Recipient address has null MX", "hard", "host_unknown", "5.1.10"),
    (550, "5.1.6 Recipient has moved; no forwarding address", "hard", "has_moved", "5.1.6"),
    (
        450,
        "4.1.1 <x@example.com>: Recipient address rejected: User unknown in local recipient table",
        "soft",
        "user_unknown",
        "4.1.1",
    ),
    (451, "4.7.1 Greylisted, please try again in 300 seconds", "soft", "policy", "4.7.1"),
    (550, "Sorry, no mailbox here by that name. (#5.1.1)", "hard", "user_unknown", "5.1.1"),
    (
        553,
        "sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)",
        "soft",
        "blocked",
        "5.7.1",
    ),
    (550, "", "soft", "unknown", None),
    (554, "5.0.0 Service unavailable", "soft", "system", "5.0.0"),
    (250, "2.0.0 Ok: queued as 4BXyZ", "delivered", "none", "2.0.0"),
    (421, "4.4.2 example.com Error: timeout exceeded", "soft", "network", "4.4.2"),
    # Wording from the real samples in tests/data/bounces/sisimai/ and phpbouncehandler/.
    (
        550,
        "5.4.1 <kijitora@example.br>: Recipient address rejected: Access denied "
        "[BL2NAM02FT061.eop-nam02.prod.protection.outlook.com]",
        "hard",
        "user_unknown",
        "5.4.1",
    ),
    (
        554,
        "5.7.1 <kijitora@example.com>: Recipient address rejected: Access denied",
        "soft",
        "policy",
        "5.7.1",
    ),
    (550, "Mailbox is frozen. See http://mail.i.ua/err/3/", "hard", "user_unknown", None),
    (
        550,
        "The recipient's e-mail address was not found in the recipient's e-mail system.",
        "hard",
        "user_unknown",
        None,
    ),
    (
        554,
        "The mail could not be delivered to the recipient because the domain is not reachable. "
        "Please check the domain and try again (-1915321397:308:-2147467259)",
        "hard",
        "host_unknown",
        None,
    ),
    (550, "Ip frequency limited", "soft", "rate_limited", None),
    (554, "Host network not allowed -", "soft", "blocked", None),
    (
        550,
        "5.1.0 <bounce@mailer.example.com> sender rejected. AUP#CDRBL",
        "soft",
        "blocked",
        "5.1.0",
    ),
    (550, "Unroutable sender address", "soft", "policy", None),
    (
        550,
        "5.7.1 RESOLVER.RST.AuthRequired; authentication required",
        "soft",
        "policy",
        "5.7.1",
    ),
    (554, "5.4.6 Hop count exceeded - possible mail loop", "soft", "system", "5.4.6"),
]


@pytest.mark.parametrize(("code", "text", "kind", "reason", "status"), CASES)
def test_classify_reply(code: int, text: str, kind: str, reason: str, status: str | None) -> None:
    result = classify_reply(code, text)
    assert (result.kind, result.reason, result.status) == (kind, reason, status)
    assert result.reason in REASONS
    assert result.code == code


def test_hard_only_for_reasons_waiting_cannot_cure() -> None:
    for code, text, *_ in CASES:
        result = classify_reply(code, text)
        if result.kind == "hard":
            assert result.reason in HARD_REASONS and code >= 500


def test_552_is_temporary() -> None:
    result = classify_reply(552, "5.2.2 Mailbox full")
    assert result.temporary and result.kind == "soft"
    assert not classify_reply(550, "5.1.1 no such user").temporary


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("smtp; 550 5.1.1 <a@b>: user unknown", "5.1.1"),
        ("#5.1.1 smtp;550 5.1.1 RESOLVER", "5.1.1"),
        ("host 192.168.1.1 said: no", None),
        ("version 1.2.3.4 failed", None),
        ("550-5.7.1 blocked", "5.7.1"),
        ("4.016.055 weird", "4.16.55"),
    ],
)
def test_parse_status(text: str, status: str | None) -> None:
    assert parse_status(text) == status


def test_diagnostic_without_code_uses_status() -> None:
    result = classify(
        None,
        "X-Postfix; Host or domain name not found. Name service error for "
        "name=example.invalid type=A: Host not found",
        status="5.4.4",
    )
    assert (result.kind, result.reason) == ("hard", "host_unknown")
    assert classify(None, "smtp; 550 5.1.1 unknown user").code == 550


def test_null_mx_is_hard_whatever_the_status() -> None:
    """Gmail fails a message to a null-MX domain with status 4.0.0; waiting cannot help."""
    result = classify(
        None,
        "DNS Error: 80458680 DNS type 'mx' lookup of libsisimai.org responded with code "
        "NOERROR The domain libsisimai.org doesn't receive email according to the "
        "administrator: returned Null MX https://www.rfc-editor.org/info/rfc7505",
        status="4.0.0",
    )
    assert (result.kind, result.reason) == ("hard", "host_unknown")
    # Other 4.x host trouble stays soft.
    assert classify(None, "Host or domain name not found", status="4.4.3").kind == "soft"


def test_the_stated_cause_beats_the_retry_timeout() -> None:
    result = classify(None, "4.4.7 retry timeout exceeded; mailbox full", status="4.4.7")
    assert (result.kind, result.reason) == ("soft", "mailbox_full")
