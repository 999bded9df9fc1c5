"""Write the provider samples in this folder (run once; the .eml files are committed).

Each sample reproduces the layout and wording a real MTA or provider uses
(see ../README.md for the sources), addressed back to a VERP return path made
with the corpus secret ``SECRET`` so the tests can check that the campaign and
subscriber are recovered. Run: ``python tests/data/bounces/providers/_make.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from dispatcher.core import tokens, verp

SECRET = b"corpus-secret"
HERE = Path(__file__).parent
CAMPAIGN = 7
EXPECT: dict[str, dict[str, object]] = {}


def ret(sub: int) -> str:
    return verp.address(SECRET, CAMPAIGN, sub, prefix="bounces", domain="bounces.example.com")


def original(rcpt: str, sub: int) -> str:
    unsub = tokens.sign(SECRET, "unsub", CAMPAIGN, sub)
    return (
        f"Return-Path: <{ret(sub)}>\n"
        f"From: Example Weekly <news@news.example.com>\n"
        f"To: {rcpt}\n"
        f"Subject: This week at Example\n"
        f"Date: Mon, 02 Mar 2026 09:00:00 +0000\n"
        f"Message-ID: <c{CAMPAIGN}.s{sub}.1740906000@news.example.com>\n"
        f"List-Unsubscribe: <https://news.example.com/unsubscribe/{unsub}>,\n"
        f" <mailto:unsubscribe@bounces.example.com?subject=unsubscribe-{unsub}>\n"
        f"List-Unsubscribe-Post: List-Unsubscribe=One-Click\n"
        f"Feedback-ID: {CAMPAIGN}:weekly:newsletter:news.example.com\n"
        f"MIME-Version: 1.0\n"
        f"Content-Type: text/plain; charset=utf-8\n"
    )


def dsn(name: str, sub: int, rcpt: str, *, mta: str, human: str, status: str, diag: str,
        action: str = "failed", remote: str = "", frm: str = "", subject: str = "",
        kind: str, reason: str, extra_fields: str = "", headers_only: bool = True) -> None:
    frm = frm or f"MAILER-DAEMON@{mta} (Mail Delivery System)"
    subject = subject or "Undelivered Mail Returned to Sender"
    remote_line = f"Remote-MTA: dns; {remote}\n" if remote else ""
    diag_line = f"Diagnostic-Code: smtp; {diag}\n" if diag else ""
    part = "text/rfc822-headers" if headers_only else "message/rfc822"
    body = (
        f"Return-Path: <>\nDelivered-To: {ret(sub)}\nFrom: {frm}\nTo: {ret(sub)}\n"
        f"Subject: {subject}\nDate: Mon, 02 Mar 2026 09:01:12 +0000\n"
        f"Auto-Submitted: auto-replied\nMIME-Version: 1.0\n"
        f"Content-Type: multipart/report; report-type=delivery-status;\n"
        f"\tboundary=\"B0UND\"\nMessage-Id: <20260302090112.{sub}@{mta}>\n\n"
        f"This is a MIME-encapsulated message.\n\n--B0UND\nContent-Description: Notification\n"
        f"Content-Type: text/plain; charset=us-ascii\n\n{human}\n\n"
        f"--B0UND\nContent-Description: Delivery report\nContent-Type: message/delivery-status\n\n"
        f"Reporting-MTA: dns; {mta}\nX-Postfix-Queue-ID: 4Q{sub}XyZ\n"
        f"Arrival-Date: Mon,  2 Mar 2026 09:00:01 +0000 (UTC)\n\n"
        f"Final-Recipient: rfc822; {rcpt}\nOriginal-Recipient: rfc822;{rcpt}\n"
        f"Action: {action}\nStatus: {status}\n{remote_line}{diag_line}{extra_fields}\n"
        f"--B0UND\nContent-Description: Undelivered Message Headers\nContent-Type: {part}\n\n"
        f"{original(rcpt, sub)}\n--B0UND--\n"
    )
    write(name, body, kind, reason, [rcpt], sub)


def plain(name: str, sub: int, rcpt: str, *, frm: str, subject: str, text: str, kind: str,
          reason: str, quote: str = "------ This is a copy of the message, including all the "
          "headers. ------", extra_headers: str = "", recipients: list[str] | None = None) -> None:
    body = (
        f"Return-Path: <>\nFrom: {frm}\nTo: {ret(sub)}\nSubject: {subject}\n"
        f"Date: Mon, 02 Mar 2026 09:01:12 +0000\nMessage-Id: <b{sub}.{name}@mx.invalid>\n"
        f"{extra_headers}MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n"
        f"{text}\n\n{quote}\n\n{original(rcpt, sub)}\nHello, this is this week's newsletter.\n"
    )
    write(name, body, kind, reason, [rcpt] if recipients is None else recipients, sub)


def write(name: str, body: str, kind: str, reason: str, recipients: list[str],
          sub: int | None) -> None:
    (HERE / f"{name}.eml").write_text(body, encoding="utf-8")
    EXPECT[f"providers/{name}.eml"] = {
        "kind": kind, "reason": reason, "recipients": recipients,
        "campaign": CAMPAIGN if sub is not None else None, "subscriber": sub,
    }


POSTFIX_HUMAN = (
    "This is the mail system at host {mta}.\n\nI'm sorry to have to inform you that your message "
    "could not\nbe delivered to one or more recipients. It's attached below.\n\nFor further "
    "assistance, please send mail to postmaster.\n\nIf you do so, please include this problem "
    "report. You can\ndelete your own text from the attached returned message.\n\n"
    "                   The mail system\n\n<{rcpt}>: {said}")
GMAIL = "gmail-smtp-in.l.google.com[142.250.27.26]"


def postfix_relay(name: str, sub: int, rcpt: str, remote: str, reply: str, status: str,
                  kind: str, reason: str, action: str = "failed") -> None:
    said = f"host {remote} said: {reply} (in reply to RCPT TO command)"
    dsn(name, sub, rcpt, mta="mx1.news.example.com",
        human=POSTFIX_HUMAN.format(mta="mx1.news.example.com", rcpt=rcpt, said=said),
        status=status, diag=reply.replace("\n", " "), remote=remote.split("[")[0],
        kind=kind, reason=reason, action=action)


def gmail_like() -> None:
    postfix_relay("gmail-user-unknown", 101, "no.such.person@gmail.com", GMAIL,
                  "550-5.1.1 The email account that you tried to reach does not exist. Please "
                  "try\n550-5.1.1 double-checking the recipient's email address for typos or\n"
                  "550-5.1.1 unnecessary spaces. For more information, go to\n550 5.1.1  "
                  "https://support.google.com/mail/?p=NoSuchUser a1si123 - gsmtp",
                  "5.1.1", "hard", "user_unknown")
    postfix_relay("gmail-disabled", 102, "gone.away@gmail.com", GMAIL,
                  "550-5.2.1 The email account that you tried to reach is disabled. For more\n"
                  "550 5.2.1 information, go to https://support.google.com/mail/?p=DisabledUser "
                  "b2si456 - gsmtp", "5.2.1", "hard", "user_unknown")
    postfix_relay("gmail-over-quota", 103, "hoarder@gmail.com", GMAIL,
                  "552-5.2.2 The recipient's inbox is out of storage space. Please direct the\n"
                  "552 5.2.2 recipient to https://support.google.com/mail/?p=OverQuotaPerm "
                  "c3si789 - gsmtp", "5.2.2", "soft", "mailbox_full")
    postfix_relay("gmail-spam", 104, "reader@gmail.com", GMAIL,
                  "550-5.7.1 [198.51.100.7] Gmail has detected that this message is likely "
                  "unsolicited mail.\n550 5.7.1 To reduce the amount of spam sent to Gmail, "
                  "this message has been blocked. d4si012 - gsmtp", "5.7.1", "soft",
                  "spam_detected")
    postfix_relay("gmail-unauthenticated", 105, "someone@gmail.com", GMAIL,
                  "550-5.7.26 This mail has been blocked because the sender is unauthenticated."
                  "\n550-5.7.26 Gmail requires all senders to authenticate with either SPF or "
                  "DKIM.\n550 5.7.26 https://support.google.com/mail/answer/81126 e5si345 - gsmtp",
                  "5.7.26", "soft", "auth_failure")
    postfix_relay("gmail-rate", 106, "busy@gmail.com", GMAIL,
                  "421-4.7.28 [198.51.100.7] Our system has detected an unusual rate of\n"
                  "421 4.7.28 unsolicited mail originating from your IP address. f6si678 - gsmtp",
                  "4.7.28", "soft", "rate_limited", action="delayed")
    postfix_relay("gmail-workspace-unknown", 107, "former.staff@example-corp.com",
                  "aspmx.l.google.com[142.250.102.27]",
                  "550-5.1.1 The email account that you tried to reach does not exist.\n"
                  "550 5.1.1 https://support.google.com/mail/?p=NoSuchUser g7si901 - gsmtp",
                  "5.1.1", "hard", "user_unknown")
    postfix_relay("gmail-ptr", 108, "pat@gmail.com", GMAIL,
                  "550-5.7.25 [198.51.100.7] The IP address sending this message does not have "
                  "a\n550 5.7.25 PTR record setup. h8si234 - gsmtp", "5.7.25", "soft", "policy")


OUTLOOK = "outlook-com.olc.protection.outlook.com[52.101.40.29]"
O365 = "example-org.mail.protection.outlook.com[52.101.68.1]"


def microsoft() -> None:
    postfix_relay("outlook-mailbox-unavailable", 111, "nobody.here@outlook.com", OUTLOOK,
                  "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302). "
                  "[AM4PEPF00027A5F.eurprd04.prod.outlook.com]", "5.5.0", "hard", "user_unknown")
    postfix_relay("outlook-515", 112, "reader@hotmail.com", OUTLOOK,
                  "550 5.7.515 Access denied, sending domain [NEWS.EXAMPLE.COM] does not meet "
                  "the required authentication level. [DB1PEPF000509F.eurprd02.prod.outlook.com]",
                  "5.7.515", "soft", "auth_failure")
    postfix_relay("outlook-s3150", 113, "reader@live.com", OUTLOOK,
                  "550 5.7.1 Unfortunately, messages from [198.51.100.7] weren't sent. Please "
                  "contact your Internet service provider since part of their network is on our "
                  "block list (S3150). [VI1EUR04FT012.eop-eur04.prod.protection.outlook.com]",
                  "5.7.1", "soft", "blocked")
    postfix_relay("o365-dbeb", 114, "left.company@example-org.com", O365,
                  "550 5.4.1 Recipient address rejected: Access denied. AS(201806281) "
                  "[DB5EUR03FT012.eop-EUR03.prod.protection.outlook.com]", "5.4.1", "hard",
                  "user_unknown")
    postfix_relay("o365-banned-ip", 115, "ceo@example-org.com", O365,
                  "550 5.7.606 Access denied, banned sending IP [198.51.100.7]. To request "
                  "removal from this list please visit https://sender.office.com/ and follow "
                  "the directions. (AS16012609)", "5.7.606", "soft", "blocked")
    postfix_relay("outlook-rate", 116, "fan@outlook.com", OUTLOOK,
                  "451 4.7.650 The mail server [198.51.100.7] has been temporarily rate limited "
                  "due to IP reputation. (S775)", "4.7.650", "soft", "rate_limited",
                  action="delayed")
    ndr = (
        "Delivery has failed to these recipients or groups:\n\n"
        "{rcpt}<mailto:{rcpt}>\nThe email address you entered couldn't be found. Please check "
        "the recipient's email address and try to resend the message. If the problem "
        "continues, please contact your helpdesk.\n\n\n\n\n\n\nDiagnostic information for "
        "administrators:\n\nGenerating server: EXCH01.example-org.local\n\n{rcpt}\n"
        "#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##\n\nOriginal message headers:\n")
    rcpt = "j.doe@example-org.local"
    dsn("exchange2013-recipnotfound", 117, rcpt, mta="EXCH01.example-org.local",
        frm="Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@example-org."
        "local>", subject="Undeliverable: This week at Example", human=ndr.format(rcpt=rcpt),
        status="5.1.1", diag="", extra_fields="X-Display-Name: J Doe\n", kind="hard",
        reason="user_unknown")
    rcpt = "full.box@example-org.com"
    dsn("o365-mailbox-full", 118, rcpt, mta="AM0PR02MB5555.eurprd02.prod.outlook.com",
        frm="Microsoft Outlook <postmaster@example-org.com>",
        subject="Undeliverable: This week at Example",
        human=f"Your message to {rcpt} couldn't be delivered.\n{rcpt.split('@')[0]}'s "
        "mailbox is full.\n\nDiagnostic information for administrators:\n\n"
        f"Remote Server returned '554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:"
        "QuotaExceededException.MapiExceptionShutoffQuotaExceeded'",
        status="5.2.2", diag="554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:"
        "QuotaExceededException.MapiExceptionShutoffQuotaExceeded", kind="soft",
        reason="mailbox_full")
    plain("exchange2003-prose", 119, "old.user@legacy-corp.com",
          frm="System Administrator <postmaster@legacy-corp.com>",
          subject="Undeliverable: This week at Example",
          text="Your message\n\n  To:      old.user@legacy-corp.com\n  Subject: This week at "
          "Example\n  Sent:    Mon, 2 Mar 2026 09:00:05 +0000\n\ndid not reach the following "
          "recipient(s):\n\nold.user@legacy-corp.com on Mon, 2 Mar 2026 09:01:00 +0000\n"
          "    The e-mail account does not exist at the organization this message was sent to."
          "  Check the e-mail address, or contact the recipient directly to find out the "
          "correct address.\n    <EXCH2003.legacy-corp.com #5.1.1>",
          quote="", kind="hard", reason="user_unknown")


def yahoo() -> None:
    for sub, rcpt, reply, kind, reason in (
        (121, "nobody2026@yahoo.com", "554 delivery error: dd This user doesn't have a "
         "yahoo.com account (nobody2026@yahoo.com) [0] - mta1025.mail.bf1.yahoo.com",
         "hard", "user_unknown"),
        (122, "quiet@yahoo.com", "554 delivery error: dd Sorry your message to quiet@yahoo.com "
         "cannot be delivered. This mailbox is disabled (554.30). - mta4123.mail.gq1.yahoo.com",
         "hard", "user_unknown"),
        (123, "reader@ymail.com", "553 5.7.2 [TSS09] All messages from 198.51.100.7 will be "
         "permanently deferred; Retrying will NOT succeed. See https://postmaster.yahooinc.com"
         "/error-codes", "soft", "blocked"),
        (124, "friend@aol.com", "552 1 Requested mail action aborted, mailbox not found",
         "hard", "user_unknown"),
    ):
        plain(f"yahoo-{sub}", sub, rcpt, frm="MAILER-DAEMON@yahoo.com",
              subject="Failure Notice",
              text="Sorry, we were unable to deliver your message to the following address."
              f"\n\n<{rcpt}>:\nRemote host said: {reply} [RCPT_TO]",
              quote="--- Below this line is a copy of the message.", kind=kind, reason=reason)
    postfix_relay("yahoo-tss04", 125, "reader@yahoo.com",
                  "mta7.am0.yahoodns.net[67.195.204.77]",
                  "421 4.7.0 [TSS04] Messages from 198.51.100.7 temporarily deferred due to "
                  "unexpected volume or user complaints - 4.16.55.1; see "
                  "https://postmaster.yahooinc.com/error-codes", "4.7.0", "soft",
                  "rate_limited", action="delayed")


def ses() -> None:
    def notice(name: str, sub: int, payload: dict[str, object], kind: str, reason: str,
               recipients: list[str]) -> None:
        mail = {"timestamp": "2026-03-02T09:00:00.000Z", "source": ret(sub),
                "messageId": f"0102018e{sub:04d}-ses", "destination": recipients,
                "headersTruncated": False,
                "headers": [{"name": "Return-Path", "value": f"<{ret(sub)}>"},
                            {"name": "Message-ID",
                             "value": f"<c{CAMPAIGN}.s{sub}.1740906000@news.example.com>"}]}
        message = json.dumps({**payload, "mail": mail})
        sns = json.dumps({"Type": "Notification", "MessageId": f"sns-{sub}",
                          "TopicArn": "arn:aws:sns:eu-west-1:123456789012:ses-feedback",
                          "Message": message, "Timestamp": "2026-03-02T09:01:00.000Z"},
                         indent=2)
        body = (f"From: AWS Notifications <no-reply@sns.amazonaws.com>\nTo: {ret(sub)}\n"
                f"Subject: AWS Notification Message\nDate: Mon, 02 Mar 2026 09:01:00 +0000\n"
                f"Message-ID: <sns-{sub}@email.amazonses.com>\nMIME-Version: 1.0\n"
                f"Content-Type: text/plain; charset=UTF-8\n\n{sns}\n\n--\nIf you wish to stop "
                f"receiving notifications from this topic, please click or visit the link below"
                f" to unsubscribe:\nhttps://sns.eu-west-1.amazonaws.com/unsubscribe.html\n")
        write(name, body, kind, reason, recipients, sub)

    notice("ses-permanent-general", 131, {"notificationType": "Bounce", "bounce": {
        "bounceType": "Permanent", "bounceSubType": "General", "bouncedRecipients": [{
            "emailAddress": "nobody@example.net", "action": "failed", "status": "5.1.1",
            "diagnosticCode": "smtp; 550 5.1.1 <nobody@example.net>: Recipient address "
            "rejected: User unknown in virtual mailbox table"}],
        "timestamp": "2026-03-02T09:00:30.000Z", "feedbackId": "0102-ses-fb",
        "reportingMTA": "dsn; a1-2.smtp-out.eu-west-1.amazonses.com"}},
        "hard", "user_unknown", ["nobody@example.net"])
    notice("ses-transient-full", 132, {"notificationType": "Bounce", "bounce": {
        "bounceType": "Transient", "bounceSubType": "MailboxFull", "bouncedRecipients": [{
            "emailAddress": "full@example.org", "action": "failed", "status": "5.2.2",
            "diagnosticCode": "smtp; 552 5.2.2 Mailbox full"}]}},
        "soft", "mailbox_full", ["full@example.org"])
    notice("ses-suppressed", 133, {"notificationType": "Bounce", "bounce": {
        "bounceType": "Permanent", "bounceSubType": "Suppressed", "bouncedRecipients": [{
            "emailAddress": "suppressed@example.com"}]}},
        "hard", "user_unknown", ["suppressed@example.com"])
    notice("ses-complaint", 134, {"notificationType": "Complaint", "complaint": {
        "complainedRecipients": [{"emailAddress": "angry@example.com"}],
        "complaintFeedbackType": "abuse", "userAgent": "Yahoo!-Mail-Feedback/2.0",
        "timestamp": "2026-03-02T12:00:00.000Z", "feedbackId": "0102-ses-c"}},
        "complaint", "complaint", ["angry@example.com"])
    notice("ses-delivery", 135, {"notificationType": "Delivery", "delivery": {
        "recipients": ["happy@example.com"], "smtpResponse": "250 2.0.0 OK",
        "processingTimeMillis": 812, "reportingMTA": "a1-2.smtp-out.eu-west-1.amazonses.com"}},
        "delivered", "none", ["happy@example.com"])
    notice("ses-event-bounce", 136, {"eventType": "Bounce", "bounce": {
        "bounceType": "Permanent", "bounceSubType": "NoEmail", "bouncedRecipients": [{
            "emailAddress": "ghost@example.com", "diagnosticCode": "smtp; 550 No such user"}]}},
        "hard", "user_unknown", ["ghost@example.com"])


def classic_mtas() -> None:
    rcpt = "gone@exim-host.example"
    plain("exim-user-unknown", 141, rcpt, frm="Mail Delivery System <Mailer-Daemon@mx.exim-host."
          "example>", subject="Mail delivery failed: returning message to sender",
          extra_headers=f"X-Failed-Recipients: {rcpt}\nAuto-Submitted: auto-replied\n",
          text="This message was created automatically by mail delivery software.\n\n"
          "A message that you sent could not be delivered to one or more of its\nrecipients. "
          "This is a permanent error. The following address(es) failed:\n\n"
          f"  {rcpt}\n    host mx.exim-host.example [203.0.113.9]\n    SMTP error from remote "
          f"mail server after RCPT TO:<{rcpt}>:\n    550 5.1.1 <{rcpt}>: Recipient address "
          "rejected: User unknown in local recipient table", kind="hard", reason="user_unknown")
    rcpt = "slow@exim-host.example"
    plain("exim-retry-timeout", 142, rcpt, frm="Mail Delivery System <Mailer-Daemon@relay."
          "example>", subject="Mail delivery failed: returning message to sender",
          extra_headers=f"X-Failed-Recipients: {rcpt}\n",
          text="This message was created automatically by mail delivery software.\n\n"
          "A message that you sent could not be delivered to one or more of its\nrecipients. "
          f"This is a permanent error. The following address(es) failed:\n\n  {rcpt}\n"
          "    retry timeout exceeded", kind="soft", reason="expired")
    rcpt = "warn@exim-host.example"
    plain("exim-delay-warning", 143, rcpt, frm="Mail Delivery System <Mailer-Daemon@relay."
          "example>", subject="Warning: message 1uAbCd-000123-Xy delayed 24 hours",
          text="This message was created automatically by mail delivery software.\n"
          "A message that you sent has not yet been delivered to one or more of its\n"
          "recipients after more than 24 hours on the queue on relay.example.\n\n"
          "The message identifier is:     1uAbCd-000123-Xy\n\nThe address to which the message "
          f"has not yet been delivered is:\n\n  {rcpt}\n    host mx.exim-host.example "
          "[203.0.113.9]\n    Delay reason: SMTP error from remote mail server after MAIL "
          "FROM:<...>:\n    451 4.7.1 Greylisting in action, please come back later\n\n"
          "No action is required on your part. Delivery attempts will continue for\nsome time, "
          "and this warning may be repeated at intervals if the message\nremains undelivered. "
          "Eventually the mail delivery software will give up,\nand when that happens, the "
          "message will be returned to you.", quote="------ This is a copy of the message's "
          "headers. ------", kind="soft", reason="policy")
    rcpt = "user@sendmail-host.example"
    dsn("sendmail-user-unknown", 144, rcpt, mta="mail.sendmail-host.example",
        frm="Mail Delivery Subsystem <MAILER-DAEMON@mail.sendmail-host.example>",
        subject="Returned mail: see transcript for details",
        human="The original message was received at Mon, 2 Mar 2026 09:00:03 GMT\nfrom "
        "out.news.example.com [198.51.100.7]\n\n   ----- The following addresses had permanent "
        f"fatal errors -----\n<{rcpt}>\n    (reason: 550 5.1.1 <{rcpt}>... User unknown)\n\n"
        "   ----- Transcript of session follows -----\n... while talking to "
        f"mx.sendmail-host.example.:\n>>> DATA\n<<< 550 5.1.1 <{rcpt}>... User unknown\n"
        "550 5.1.1 " + rcpt + "... User unknown\n<<< 503 5.0.0 Need RCPT (recipient)",
        status="5.1.1", diag=f"550 5.1.1 <{rcpt}>... User unknown", kind="hard",
        reason="user_unknown")
    rcpt = "nobody@qmail-host.example"
    plain("qmail-no-mailbox", 145, rcpt, frm="MAILER-DAEMON@mx.qmail-host.example",
          subject="failure notice",
          text="Hi. This is the qmail-send program at mx.qmail-host.example.\nI'm afraid I "
          "wasn't able to deliver your message to the following addresses.\nThis is a permanent "
          f"error; I've given up. Sorry it didn't work out.\n\n<{rcpt}>:\nSorry, no mailbox "
          "here by that name. (#5.1.1)", quote="--- Below this line is a copy of the message.",
          kind="hard", reason="user_unknown")
    rcpt = "big@qmail-host.example"
    plain("qmail-too-large", 146, rcpt, frm="MAILER-DAEMON@mx.qmail-host.example",
          subject="failure notice",
          text="Hi. This is the qmail-send program at out.relay.example.\nI'm afraid I wasn't "
          "able to deliver your message to the following addresses.\nThis is a permanent "
          f"error; I've given up. Sorry it didn't work out.\n\n<{rcpt}>:\n203.0.113.20 does not "
          "like recipient.\nRemote host said: 552 5.3.4 Message size exceeds fixed maximum "
          "message size\nGiving up on 203.0.113.20.", quote="--- Below this line is a copy of "
          "the message.", kind="soft", reason="message_too_large")
    rcpt = "Jane.Roe@domino-corp.example"
    plain("domino-not-listed", 147, rcpt, frm="Postmaster <Postmaster@domino-corp.example>",
          subject="DELIVERY FAILURE: User Jane Roe (Jane.Roe@domino-corp.example) not listed "
          "in Domino Directory", extra_headers="X-Mailer: Lotus Domino Release 9.0.1FP10\n",
          text="Your message\n\n  Subject: This week at Example\n\nwas not delivered to:\n\n"
          f"  {rcpt}\n\nbecause:\n\n  User Jane Roe ({rcpt}) not listed in Domino Directory",
          quote="", kind="hard", reason="user_unknown")
    rcpt = "nope@courier-host.example"
    plain("courier-unknown", 148, rcpt, frm="Courier mail server at mx.courier-host.example "
          "<@>", subject="NOTICE: mail delivery status.",
          text="This is a delivery status notification from mx.courier-host.example,\nrunning "
          "the Courier mail server, version 1.1.8.\n\nThe original message was received on Mon,"
          " 02 Mar 2026 09:00:04 +0000\nfrom out.news.example.com [198.51.100.7]\n\n"
          f"---------------------------------------------------------------------------\n\n"
          f"                        UNDELIVERABLE MAIL\n\nYour message to the following "
          f"recipients cannot be delivered:\n\n<{rcpt}>:\n    mx.courier-host.example [203.0.113"
          f".30]:\n>>> RCPT TO:<{rcpt}>\n<<< 550 User unknown.", quote="------ Original message "
          "follows ------", kind="hard", reason="user_unknown")
    rcpt = "someone@no-such-domain.example"
    said = ("Host or domain name not found. Name service error for name=no-such-domain.example "
            "type=MX: Host not found")
    dsn("postfix-host-not-found", 149, rcpt, mta="mx1.news.example.com",
        human=POSTFIX_HUMAN.format(mta="mx1.news.example.com", rcpt=rcpt, said=said),
        status="5.4.4", diag="", extra_fields=f"Diagnostic-Code: X-Postfix; {said}\n",
        kind="hard", reason="host_unknown")


def more_receivers() -> None:
    for name, sub, rcpt, remote, reply, status, kind, reason in (
        ("icloud-unknown", 151, "lost@icloud.com", "mx01.mail.icloud.com[17.57.154.6]",
         "550 5.1.1 <lost@icloud.com>: user does not exist", "5.1.1", "hard", "user_unknown"),
        ("gmx-mailbox-full", 152, "voll@gmx.de", "mx00.emig.gmx.net[212.227.17.5]",
         "552-Requested mail action aborted: exceeded storage allocation\n552 Mailbox quota "
         "exceeded", "5.2.2", "soft", "mailbox_full"),
        ("webde-unknown", 153, "weg@web.de", "mx-ha02.web.de[212.227.17.10]",
         "550 Requested action not taken: mailbox unavailable", "5.0.0", "hard", "user_unknown"),
        ("comcast-blocked", 154, "viewer@comcast.net", "mx2c1.comcast.net[96.114.157.81]",
         "554 resimta-po-25v.sys.comcast.net comcast 198.51.100.7 found on one or more DNSBLs, "
         "see http://postmaster.comcast.net/smtp-error-codes.php#BL000010", "5.0.0", "soft",
         "blocked"),
        ("mimecast-spam", 155, "staff@mimecast-customer.example",
         "eu-smtp-inbound-1.mimecast.com[195.130.217.221]",
         "550 Rejected by header based Anti-Spoofing policy: news@news.example.com - "
         "https://community.mimecast.com/docs/DOC-1369#550 [-xYz123ABC.uk300]", "5.0.0", "soft",
         "policy"),
        ("proofpoint-reputation", 156, "buyer@pp-customer.example",
         "mx0a-00123401.pphosted.com[67.231.149.1]",
         "550 5.7.1 Mail from 198.51.100.7 refused, see https://ipcheck.proofpoint.com/?ip="
         "198.51.100.7 - poor reputation", "5.7.1", "soft", "blocked"),
        ("zoho-unknown", 157, "no-user@zoho-customer.example", "mx.zoho.eu[185.20.209.12]",
         "550 5.1.1 User does not exist - <no-user@zoho-customer.example>", "5.1.1", "hard",
         "user_unknown"),
        ("mailru-unknown", 158, "nikto@mail.ru", "mxs.mail.ru[94.100.180.31]",
         "550 Message was not accepted -- invalid mailbox.  Local mailbox nikto@mail.ru is "
         "unavailable: user not found", "5.0.0", "hard", "user_unknown"),
        ("null-mx", 159, "anyone@nullmx.example", "nullmx.example",
         "556 5.1.10 Recipient address has null MX", "5.1.10", "hard", "host_unknown"),
        ("postfix-local-quota", 160, "full@local.example", "mail.local.example[203.0.113.40]",
         "452 4.2.2 <full@local.example>: Recipient address rejected: Over quota", "4.2.2",
         "soft", "mailbox_full"),
        ("postfix-size", 161, "tiny@small.example", "mx.small.example[203.0.113.41]",
         "552 5.3.4 Message size exceeds fixed limit", "5.3.4", "soft", "message_too_large"),
        ("spamhaus-listed", 162, "reader@isp.example", "mx.isp.example[203.0.113.42]",
         "554 5.7.1 Service unavailable; Client host [198.51.100.7] blocked using "
         "zen.spamhaus.org; https://www.spamhaus.org/query/ip/198.51.100.7", "5.7.1", "soft",
         "blocked"),
        ("moved", 163, "old.name@university.example", "mx.university.example[203.0.113.43]",
         "551 5.1.6 User has moved; please try <new.name@university.example>", "5.1.6", "hard",
         "has_moved"),
        ("greylisted-expired", 164, "strict@grey.example", "mx.grey.example[203.0.113.44]",
         "450 4.7.1 <strict@grey.example>: Recipient address rejected: Greylisted, see "
         "http://postgrey.schweikert.ch/help/grey.example.html", "4.7.1", "soft", "policy"),
    ):
        postfix_relay(name, sub, rcpt, remote, reply, status, kind, reason)


def not_bounces() -> None:
    for name, sub, rcpt, remote, action, status in (
        ("success-delivered", 171, "happy@dsn.example", "mx.dsn.example", "delivered", "2.0.0"),
        ("success-relayed", 172, "relay@dsn.example", "mx.other.example", "relayed", "2.0.0"),
    ):
        dsn(name, sub, rcpt, mta="mx1.news.example.com", subject="Successful Mail Delivery "
            "Report", human="This is the mail system at host mx1.news.example.com.\n\n"
            "Your message was successfully delivered to the destination(s)\nlisted below. If "
            "the message was delivered to mailbox you will\nreceive no further notifications."
            " Otherwise you may still receive\nnotifications of mail delivery errors from "
            f"other systems.\n\n                   The mail system\n\n<{rcpt}>: delivery via "
            f"{remote}[203.0.113.50]:25: 250 2.0.0 Ok: queued as 4QAbCd",
            status=status, diag="250 2.0.0 Ok: queued as 4QAbCd", action=action,
            remote=remote, kind="delivered", reason="none")
    for name, sub, frm, subject, headers, text in (
        ("autoreply-rfc3834", 181, "Ana <ana@corp.example>", "Auto: This week at Example",
         "Auto-Submitted: auto-replied\nIn-Reply-To: <c7.s181.1740906000@news.example.com>\n",
         "I am out of the office until 9 March with limited access to email."),
        ("autoreply-exchange-oof", 182, "Bob Builder <bob@corp.example>",
         "Automatic reply: This week at Example",
         "X-Auto-Response-Suppress: All\nX-MS-Exchange-Inbox-Rules-Loop: bob@corp.example\n"
         "Auto-Submitted: auto-generated\n",
         "Thank you for your email. I am on parental leave and will reply when I am back."),
        ("autoreply-vacation", 183, "carol@home.example", "Away from my mail",
         "Precedence: bulk\nX-Autoreply: yes\n",
         "I'm on vacation until Monday. Your mail regarding \"This week at Example\" will be "
         "read when I return."),
        ("autoreply-german", 184, "dieter@firma.example", "Abwesenheitsnotiz: This week at "
         "Example", "Auto-Submitted: auto-replied\n",
         "Ich bin bis zum 10.03. nicht im Büro. In dringenden Fällen wenden Sie sich bitte an "
         "info@firma.example."),
        ("autoreply-french", 185, "eve@societe.example", "Réponse automatique : This week at "
         "Example", "", "Je suis absente du bureau jusqu'au 9 mars."),
    ):
        body = (f"From: {frm}\nTo: {ret(sub)}\nSubject: {subject}\n"
                f"Date: Mon, 02 Mar 2026 09:05:00 +0000\nMessage-ID: <ar{sub}@corp.example>\n"
                f"{headers}MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
                f"Content-Transfer-Encoding: 8bit\n\n{text}\n")
        addr = frm.rpartition("<")[2].strip(">")
        write(name, body, "autoreply", "none", [addr], sub)
    body = ("From: Reader <reader@example.net>\nTo: news@news.example.com\nSubject: Re: This week"
            " at Example\nDate: Mon, 02 Mar 2026 10:00:00 +0000\nMessage-ID: <r1@example.net>\n"
            "In-Reply-To: <c7.s190.1740906000@news.example.com>\nMIME-Version: 1.0\nContent-Type:"
            " text/plain; charset=utf-8\n\nThanks, great issue! Could you cover Python 3.14 "
            "next time?\n\n> Hello, this is this week's newsletter.\n")
    write("human-reply", body, "not_bounce", "none", [], None)


def complaints() -> None:
    for name, sub, rcpt, reporter, agent in (
        ("arf-yahoo", 191, "complainer@yahoo.com", "feedback@arf.mail.yahoo.com",
         "Yahoo!-Mail-Feedback/2.0"),
        ("arf-aol", 192, "grumpy@aol.com", "scomp@aol.net", "AOL SComp"),
        ("arf-comcast", 193, "viewer@comcast.net", "feedbackloop@comcastfbl.senderscore.net",
         "ReturnPathFBL/2.0"),
        ("arf-fastmail", 194, "user@fastmail.com", "abuse@fastmail.com", "FastMail-ARF/1.0"),
    ):
        body = (
            f"From: <{reporter}>\nTo: fbl@news.example.com\nSubject: FW: This week at Example\n"
            f"Date: Mon, 02 Mar 2026 12:00:00 +0000\nMessage-ID: <arf{sub}@reporter.example>\n"
            f"MIME-Version: 1.0\nContent-Type: multipart/report; report-type=feedback-report;\n"
            f"\tboundary=\"ARF_BOUNDARY\"\n\n--ARF_BOUNDARY\nContent-Type: text/plain; "
            f"charset=\"US-ASCII\"\nContent-Transfer-Encoding: 7bit\n\nThis is an email abuse "
            f"report for an email message received from IP 198.51.100.7 on Mon, 02 Mar 2026 "
            f"09:00:05 +0000.\nFor more information about this format please see "
            f"http://www.mipassoc.org/arf/.\n\n--ARF_BOUNDARY\nContent-Type: "
            f"message/feedback-report\n\nFeedback-Type: abuse\nUser-Agent: {agent}\n"
            f"Version: 1\nOriginal-Mail-From: <{ret(sub)}>\nOriginal-Rcpt-To: <{rcpt}>\n"
            f"Arrival-Date: Mon, 02 Mar 2026 09:00:05 +0000\nSource-IP: 198.51.100.7\n"
            f"Reported-Domain: news.example.com\n\n--ARF_BOUNDARY\nContent-Type: message/rfc822\n"
            f"Content-Disposition: inline\n\n{original(rcpt, sub)}\nHello, this is this week's "
            f"newsletter.\n\n--ARF_BOUNDARY--\n")
        write(name, body, "complaint", "complaint", [rcpt], sub)
    sub, rcpt = 195, "redacted@hotmail.com"
    body = (
        "From: staff@hotmail.com\nTo: jmrp@news.example.com\nSubject: complaint about message "
        "from 198.51.100.7\nDate: Mon, 02 Mar 2026 12:30:00 +0000\nMessage-ID: <jmrp195@"
        "hotmail.com>\nX-HmXmrOriginalRecipient: <" + rcpt + ">\nMIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; boundary=\"JMRP\"\n\n--JMRP\nContent-Type: text/plain"
        "\n\nThis is a Junk Mail Reporting Program complaint.\n\n--JMRP\nContent-Type: "
        "message/rfc822\n\n" + original(rcpt, sub) + "\nHello, this is this week's newsletter."
        "\n\n--JMRP--\n")
    write("jmrp-hotmail", body, "complaint", "complaint", [rcpt], sub)


def main() -> None:
    gmail_like()
    microsoft()
    yahoo()
    ses()
    classic_mtas()
    more_receivers()
    not_bounces()
    complaints()
    (HERE / "expected.json").write_text(json.dumps(EXPECT, indent=1, sort_keys=True) + "\n")
    print(f"{len(EXPECT)} samples")


if __name__ == "__main__":
    main()
