"""What a returned message is and who it is about: :func:`analyze`.

Order of evidence, most reliable first:

1. an ARF complaint (RFC 5965) or Microsoft JMRP report -> ``complaint``;
2. an Amazon SES JSON notification (bounce, complaint or delivery);
3. an RFC 3464 ``message/delivery-status`` part, per recipient (``Action:
   delivered`` -> ``delivered``, ``delayed`` -> ``soft``);
4. an auto-reply (RFC 3834 ``Auto-Submitted: auto-replied``, vacation
   subjects) -> ``autoreply``, never a bounce;
5. the prose of a non-standard bounce (:mod:`.prose`).

Whatever the format, the returned copy of *our* message names the delivery:
our VERP return path (``bounces+TOKEN@...``) or a signed token in its
``List-Unsubscribe`` header. With the store's secret the ids are verified;
without it they are reported unverified (``verified=False``).
"""

from __future__ import annotations

import contextlib
import email
import re
from dataclasses import dataclass, field
from email.message import Message
from email.policy import compat32
from typing import Any

from dispatcher.core import prose, tokens
from dispatcher.core.arf import (
    NOT_COMPLAINTS,
    SESNotice,
    autoreply_body,
    is_autoreply,
    parse_arf,
    parse_ses,
)
from dispatcher.core.dsn import parse_delivery_status
from dispatcher.core.replies import HARD_REASONS, ReplyClass, classify

_TOKEN = re.compile(r"(?<![0-9a-z-])([0-9a-z]{1,13})-([0-9a-z]{1,13})-([a-z2-7]{16})(?![0-9a-z-])",
                    re.I)
_BOUNCE_FROM = re.compile(r"mailer-daemon|post_?master|mail delivery|mdaemon|mail administrator|"
                          r"system administrator|mailerdaemon|notify|bounce", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|returned mail|delivery (?:status )?(?:notification|failure|failed|"
    r"report|problem)|failure notice|mail delivery (?:failed|failure|system)|could not send|"
    r"delivery has failed|could not be delivered|nondeliverable|non-delivery|not delivered|"
    r"failed delivery|mail system error|returned to sender|delivery error|warning: could not|"
    r"delayed mail|rejected|bounce|mail delivery status|unzustellbar|no entregado|"
    r"non recapitabile|retour|error", re.I)


# The bounce's own words are short; quoted originals can be megabytes.
_MAX_REPORT = 65536


@dataclass(frozen=True)
class RecipientResult:
    address: str
    kind: str
    reason: str
    status: str | None = None
    code: int | None = None
    diagnostic: str = ""


@dataclass(frozen=True)
class Analysis:
    """The verdict on one returned message."""

    kind: str  # hard | soft | complaint | autoreply | delivered | not_bounce
    reason: str
    status: str | None
    code: int | None
    recipients: tuple[str, ...]
    details: tuple[RecipientResult, ...] = ()
    source: str = ""  # arf | ses | dsn | prose | autoreply | none
    campaign_id: int | None = None
    subscriber_id: int | None = None
    verified: bool = False
    message_id: str = ""
    feedback_type: str = ""
    diagnostic: str = ""
    delayed: bool = False
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def is_bounce(self) -> bool:
        return self.kind in ("hard", "soft")


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        charset = part.get_content_charset() or "utf-8"
        try:
            return payload.decode(charset, "replace")
        except LookupError:
            return payload.decode("latin-1")
    inner = part.get_payload()
    if isinstance(inner, list):
        return "\n".join(p.as_string() if isinstance(p, Message) else str(p) for p in inner)
    return str(inner or "")


def _header(msg: Message, name: str) -> str:
    value = msg.get(name)
    if value is None:
        return ""
    try:
        return str(email.header.make_header(email.header.decode_header(str(value))))
    except (ValueError, LookupError, email.errors.HeaderParseError):
        return str(value)


def _original(msg: Message) -> Message | None:
    """The returned original message (its headers at least), when it is attached."""
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/rfc822-headers", "text/rfc822-headers",
                     "message/partial"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return inner[0]
            return email.message_from_string(_text(part).lstrip(), policy=compat32)
    return None


def _quoted_headers(text: str) -> Message | None:
    lines = [re.sub(r"^[ \t>|]*", "", ln) for ln in text.replace("\r\n", "\n").split("\n")]
    for i, line in enumerate(lines):
        if re.match(r"^(?:Received|Return-Path|From|To|Subject|Message-ID|Date|MIME-Version):",
                    line, re.I):
            return email.message_from_string("\n".join(lines[i:]), policy=compat32)
    return None


def _report_parts(msg: Message) -> list[str]:
    """Text parts that are the bounce's own words (not the returned original)."""
    out: list[str] = []
    # Courier and some appliances write their explanation in the MIME preamble.
    preamble = msg.preamble if msg.is_multipart() else None
    if preamble and len(preamble.strip()) > 80:
        out.append(preamble)

    def walk(part: Message) -> None:
        ctype = part.get_content_type()
        if ctype.startswith("message/") or ctype == "text/rfc822-headers":
            return
        if part.is_multipart():
            for sub in part.get_payload():
                if isinstance(sub, Message):
                    walk(sub)
            return
        # A multipart whose boundary parameter was lost (an unfolded header line) is
        # left as one text blob by the parser: its words are still the bounce's.
        if ctype.startswith(("text/", "multipart/")) or ctype == "application/octet-stream":
            text = _text(part)
            if ctype == "text/html":
                text = re.sub(r"<br\s*/?>|</p>|</div>|</tr>", "\n", text, flags=re.I)
                text = re.sub(r"<[^>]+>", " ", text)
                text = re.sub(r"&lt;", "<", re.sub(r"&gt;", ">", re.sub(r"&nbsp;", " ", text)))
            out.append(text)

    walk(msg)
    return out


def _ids(
    whole: str, secret: bytes | None, verp_prefix: str
) -> tuple[int | None, int | None, bool]:
    """Campaign and subscriber from our VERP address or unsubscribe token, verified when we can."""
    prefix = re.escape(verp_prefix)
    unverified: tuple[int, int] | None = None
    for match in re.finditer(rf"{prefix}\+([0-9a-z-]+)@", whole, re.I):
        token = match.group(1).lower()
        if secret is not None:
            ids = tokens.verify(secret, "verp", token, 2)
            if ids is not None:
                return ids[0], ids[1], True
        parts = token.split("-")
        if unverified is None and len(parts) == 3:
            with contextlib.suppress(ValueError):
                unverified = (int(parts[0], 36), int(parts[1], 36))
    if secret is not None:
        for match in _TOKEN.finditer(whole):
            token = match.group(0).lower()
            for purpose in ("unsub", "verp"):
                ids = tokens.verify(secret, purpose, token, 2)
                if ids is not None:
                    return ids[0], ids[1], True
    if unverified is not None:
        return unverified[0], unverified[1], False
    return None, None, False


def _summary(details: list[RecipientResult]) -> tuple[str, str, str | None, int | None, str]:
    """The message's verdict: the most severe recipient's (hard over soft over the rest)."""
    order = {"complaint": 0, "hard": 1, "soft": 2, "delivered": 3, "autoreply": 4}
    best = min(details, key=lambda d: order.get(d.kind, 9))
    return best.kind, best.reason, best.status, best.code, best.diagnostic


def _from_reply(address: str, cls: ReplyClass, diagnostic: str, *, delayed: bool = False,
                action: str = "") -> RecipientResult:
    kind, reason = cls.kind, cls.reason
    if action in ("delivered", "relayed", "expanded"):
        kind, reason = "delivered", "none"
    elif delayed or action == "delayed":
        kind = "soft"
        if reason == "expired":
            reason = "unknown"  # still being tried: nothing has expired yet
    elif action == "failed" and cls.temporary and reason in ("network", "unknown", "system"):
        # The MTA gave up retrying a temporary failure: the message expired in its queue.
        reason = "expired"
    elif kind == "delivered":
        # A failure report whose status says 2.x: trust the report, not the stray code.
        kind, reason = "soft", "unknown"
    return RecipientResult(address, kind, reason, cls.status, cls.code, diagnostic.strip()[:500])


def analyze(raw: bytes | str, *, secret: bytes | None = None,
            verp_prefix: str = "bounces", own_addresses: tuple[str, ...] = ()) -> Analysis:
    """Classify one returned message (bytes as read from a mailbox or received by SMTP).

    MIME parts nested thousands deep raise RecursionError from the stdlib
    parser. It is left to the caller, because the right answer depends on where
    the message came from: the SMTP receiver refuses it for good (554), a
    mailbox pass leaves it in place and counts it as failed.
    """
    if isinstance(raw, bytes):
        # Raw 8-bit headers (vacation replies often have them) stay readable this way.
        try:
            whole = raw.decode("utf-8")
        except UnicodeDecodeError:
            whole = raw.decode("latin-1")
    else:
        whole = raw
    msg = email.message_from_string(whole, policy=compat32)
    original = _original(msg)
    report = "\n".join(_report_parts(msg))[:_MAX_REPORT]
    if original is None:
        report, quoted = prose.split_original(report)
        original = _quoted_headers(quoted) if quoted else None
    original_to = [prose.clean(a) for a in prose.ADDRESS.findall(_header(original, "To"))] \
        if original is not None else []
    campaign, subscriber, verified = _ids(whole, secret, verp_prefix)
    subject = _header(msg, "Subject")
    base: dict[str, Any] = {
        "campaign_id": campaign, "subscriber_id": subscriber, "verified": verified,
        "message_id": _header(original, "Message-ID").strip() if original else "",
        "headers": {"subject": subject, "from": _header(msg, "From")}}

    complaint = parse_arf(msg, original_to)
    if complaint is not None:
        kind, reason = ("not_bounce", "none") if complaint.feedback_type in NOT_COMPLAINTS \
            else ("complaint", "complaint")
        return Analysis(kind, reason, None, None, complaint.recipients,
                        source="arf", feedback_type=complaint.feedback_type, **base)

    ses = parse_ses(report) if "notificationType" in whole or "eventType" in whole else None
    if ses is not None:
        return _ses_analysis(ses, base)

    from_ = _header(msg, "From")
    own = {a.lower() for a in own_addresses}
    for name in ("From", "To", "Return-Path", "Sender", "Reply-To", "Delivered-To", "Cc"):
        own.update(prose.clean(a).lower() for a in prose.ADDRESS.findall(_header(msg, name)))
    senders = set(own)
    if original is not None:
        for name in ("From", "Sender", "Return-Path", "Reply-To", "Errors-To"):
            senders.update(prose.clean(a).lower() for a in prose.ADDRESS.findall(
                _header(original, name)))
    failed = [prose.unpercent(prose.clean(a)) for a in
              str(msg.get("X-Failed-Recipients", "")).split(",") if "@" in a]

    dsn_parts = [p for p in msg.walk() if p.get_content_type() in (
        "message/delivery-status", "message/global-delivery-status")]
    dsn_text = "\n".join(_text(p) for p in dsn_parts)
    if not dsn_parts and re.search(r"^Final-Recipient:", report, re.M | re.I):
        dsn_text = report
    rows = parse_delivery_status(dsn_text) if dsn_text else []
    delayed = prose.is_warning(subject, report)
    if rows:
        # A report whose recipient field is no address ("/var/mail/x", "@host"): the
        # failed address is named elsewhere (X-Failed-Recipients, the prose, the original).
        spare = [a for a in [*failed, *prose.strong_recipients(report, own),
                             *(t for t in original_to if t.lower() not in senders)]
                 if prose.ADDRESS.fullmatch(a)]
        details: list[RecipientResult] = []
        for row in rows:
            address = row.final_recipient
            if not prose.ADDRESS.fullmatch(address):
                used = {d.address.lower() for d in details}
                address = next((a for a in spare if a.lower() not in used), address)
            if any(d.address.lower() == address.lower() for d in details):
                continue
            around = prose.context(report, row.final_recipient) or prose.context(report, address)
            text = row.diagnostic or around
            cls = classify(row.code, text, row.status)
            if cls.reason in ("unknown", "system") and around and text is not around:
                better = classify(row.code, around, row.status)
                if better.reason not in ("unknown", "system"):
                    cls, text = better, f"{text}\n{around}"
            details.append(_from_reply(address, cls, text, action=row.action))
        return _finish(details, "dsn", delayed and all(r.action != "failed" for r in rows), base)

    looks_bounce = bool(_BOUNCE_FROM.search(from_) or _BOUNCE_SUBJECT.search(subject)
                        or msg.get("X-Failed-Recipients"))
    if not looks_bounce and (is_autoreply(msg) or autoreply_body(report)):
        return Analysis("autoreply", "none", None, None,
                        tuple(a for a in [prose.clean(from_.rpartition("<")[2])] if "@" in a),
                        source="autoreply", **base)

    domain = from_.rpartition("@")[2].strip("<> ").lower()
    recipients = failed or prose.strong_recipients(report, own, domain)
    if not recipients and looks_bounce:
        recipients = prose.any_recipients(report, senders) or [
            a for a in original_to if a.lower() not in senders]
    if not recipients:
        if not looks_bounce:
            return Analysis("not_bounce", "none", None, None, (), source="none", **base)
        cls = classify(None, report)
        return Analysis(_prose_kind(cls, delayed), cls.reason, cls.status, cls.code, (),
                        source="prose", diagnostic=report.strip()[:500], delayed=delayed,
                        **base)
    details = []
    for address in recipients:
        snippet = prose.context(report, address) or report
        cls = _prose_reply(snippet)
        if cls.reason == "unknown":
            cls = classify(None, report + "\n" + subject)
        details.append(RecipientResult(address, _prose_kind(cls, delayed), cls.reason, cls.status,
                                       cls.code, snippet.strip()[:500]))
    return _finish(details, "prose", delayed, base)


_REMOTE = re.compile(r"(?<![\d.])([45][0-5]\d)(?:[ :-]+)(?=\S)([^\n]*(?:\n[ \t]+[^\n]*)*)")


def _prose_reply(snippet: str) -> ReplyClass:
    """The remote server's own reply quoted in the prose beats the MTA's boilerplate around it."""
    for match in _REMOTE.finditer(snippet):
        quoted = classify(int(match.group(1)), match.group(2))
        if quoted.reason not in ("unknown", "system"):
            return quoted
    return classify(None, snippet)


def _prose_kind(cls: ReplyClass, delayed: bool) -> str:
    if delayed:
        return "soft"
    return "hard" if cls.reason in HARD_REASONS and cls.kind == "hard" else "soft"


def _finish(details: list[RecipientResult], source: str, delayed: bool,
            base: dict[str, Any]) -> Analysis:
    kind, reason, status, code, diag = _summary(details)
    if delayed and kind == "hard":
        kind = "soft"
    return Analysis(kind, reason, status, code, tuple(d.address for d in details),
                    tuple(details), source=source, diagnostic=diag, delayed=delayed,
                    **base)


_SES_REASONS = {"MailboxFull": "mailbox_full", "MessageTooLarge": "message_too_large",
                "ContentRejected": "spam_detected", "AttachmentRejected": "policy",
                "Suppressed": "user_unknown", "OnAccountSuppressionList": "user_unknown",
                "NoEmail": "user_unknown"}


def _ses_analysis(ses: SESNotice, base: dict[str, Any]) -> Analysis:
    addrs = tuple(r[0] for r in ses.recipients)
    if ses.kind == "complaint":
        return Analysis("complaint", "complaint", None, None, addrs, source="ses",
                        feedback_type=ses.feedback_type, **base)
    if ses.kind == "delivery":
        return Analysis("delivered", "none", "2.0.0", 250, addrs, source="ses", **base)
    details = []
    for address, diag, status, code in ses.recipients:
        cls = classify(code, diag, status)
        reason = cls.reason
        if reason in ("unknown", "system") and ses.bounce_subtype in _SES_REASONS:
            reason = _SES_REASONS[ses.bounce_subtype]
        if reason == "unknown" and ses.bounce_type == "Permanent":
            reason = "user_unknown"
        temporary = ses.bounce_type == "Transient" or (cls.temporary and code != 552)
        kind = "hard" if reason in HARD_REASONS and not temporary else "soft"
        details.append(RecipientResult(address, kind, reason, cls.status, cls.code, diag))
    return _finish(details, "ses", False, base)
