"""Complaints (RFC 5965 ARF, Microsoft JMRP, Amazon SES JSON) and auto-replies (RFC 3834).

Neither is a bounce: a complaint unsubscribes and suppresses, an auto-reply
("I am out of the office") changes nothing and must never count toward
suppression.
"""

from __future__ import annotations

import email.errors
import email.header
import json
import re
from dataclasses import dataclass
from email.message import Message
from typing import Any

from dispatcher.core.replies import parse_code


@dataclass(frozen=True)
class Complaint:
    feedback_type: str
    recipients: tuple[str, ...]
    user_agent: str = ""


def _payload_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload.decode(part.get_content_charset() or "utf-8", "replace")
    inner = part.get_payload()
    if isinstance(inner, list):
        return "\n".join(str(p) for p in inner)
    return str(inner or "")


def _fields(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.replace("\r\n", "\n").split("\n"):
        name, sep, value = line.partition(":")
        if sep and name and " " not in name.strip():
            out.setdefault(name.strip().lower(), value.strip())
    return out


def _strip_addr(value: str) -> str:
    match = re.search(r"[^@\s<>\"';,()]{1,64}@[^@\s<>\"';,()]{1,255}", value)
    return match.group(0).rstrip(".") if match else ""


def parse_arf(msg: Message, original_to: list[str]) -> Complaint | None:
    """An ARF report (``multipart/report; report-type=feedback-report``) or a JMRP one."""
    feedback = next(
        (p for p in msg.walk() if p.get_content_type() == "message/feedback-report"), None)
    if feedback is not None:
        inner = feedback.get_payload()
        text = "\n".join(str(p) for p in inner) if isinstance(inner, list) else _payload_text(
            feedback)
        fields = _fields(text)
        rcpt = _strip_addr(fields.get("original-rcpt-to", ""))
        recipients = (rcpt,) if rcpt else tuple(original_to)
        return Complaint(fields.get("feedback-type", "abuse").lower() or "abuse", recipients,
                         fields.get("user-agent", ""))
    # Microsoft JMRP: the header is on the report itself or on the returned copy attached to it.
    for part in msg.walk():
        jmrp = part.get("X-HmXmrOriginalRecipient")
        if jmrp:
            return Complaint("abuse", (_strip_addr(str(jmrp)),), "Microsoft JMRP")
    return None


# RFC 6591 authentication-failure reports and "not-spam" reports are ARF too, but nobody
# complained: they must not unsubscribe anyone.
NOT_COMPLAINTS = frozenset({"auth-failure", "not-spam", "dkim", "spf"})


_AUTO_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[ -]?(?:reply|response|antwort)|autoreply|auto:|out of (?:the )?office|"
    r"away from (?:the|my) office|on vacation|vacation (?:reply|notice|message)|"
    r"abwesenheit|r[ée]ponse automatique|respuesta autom[aá]tica|risposta automatica|"
    r"automatisch antwoord|fuera de la oficina|i am (?:currently )?(?:out|away)|"
    r"ooo\b|\[auto-?reply\])", re.I)


def _subject(msg: Message) -> str:
    """The Subject, RFC 2047-decoded, raw 8-bit UTF-8 (as some servers send) repaired."""
    raw = str(msg.get("Subject", "")).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    try:
        return str(email.header.make_header(email.header.decode_header(raw)))
    except (ValueError, LookupError, email.errors.HeaderParseError):
        return raw


def is_autoreply(msg: Message) -> bool:
    """RFC 3834 ``Auto-Submitted: auto-replied`` and the older vacation markers."""
    auto = str(msg.get("Auto-Submitted", "")).strip().lower()
    if auto.startswith("auto-replied"):
        return True
    for header in ("X-Autoreply", "X-Autorespond", "X-Auto-Reply", "X-Autoresponder"):
        if msg.get(header) is not None:
            return True
    if str(msg.get("Precedence", "")).strip().lower() == "auto_reply":
        return True
    if str(msg.get("X-Auto-Response-Suppress", "")).strip().lower() in ("all", "oof") and \
            _AUTO_SUBJECT.search(_subject(msg)):
        return True
    return bool(_AUTO_SUBJECT.search(_subject(msg)))


@dataclass(frozen=True)
class SESNotice:
    """One Amazon SES notification (bounce, complaint or delivery), SNS-wrapped or not."""

    kind: str  # bounce | complaint | delivery
    bounce_type: str  # Permanent | Transient | Undetermined | ""
    bounce_subtype: str
    recipients: tuple[tuple[str, str, str | None, int | None], ...]  # (addr, diag, status, code)
    feedback_type: str = ""
    mail_headers: tuple[tuple[str, str], ...] = ()


def parse_ses(text: str) -> SESNotice | None:
    """An SES notification in ``text``, or ``None`` (also for JSON of an unexpected shape)."""
    try:
        return _parse_ses(text)
    except (TypeError, AttributeError, KeyError):
        return None


_AUTO_BODY = re.compile(
    r"\b(?:out of (?:the )?office|on (?:annual |parental |sick )?leave|on vacation|on holiday|"
    r"away from (?:the |my )?(?:office|desk)|limited access to (?:my )?e-?mail|"
    r"i am (?:currently )?(?:away|out)|i'm (?:currently )?(?:away|out)|automatic reply|"
    r"abwesend|nicht im b[üu]ro|absente? du bureau|fuera de la oficina)\b", re.I)


def autoreply_body(text: str) -> bool:
    """Vacation wording at the start of a message that carries no auto-reply header."""
    return bool(_AUTO_BODY.search(text[:600]))


def _parse_ses(text: str) -> SESNotice | None:
    start = text.find("{")
    if start < 0:
        return None
    # strict=False: a notification relayed by e-mail can have a long line folded inside a
    # JSON string (a raw newline, which strict JSON forbids).
    try:
        data: Any = json.loads(text[start:text.rfind("}") + 1], strict=False)
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("Message"), str):
        try:
            data = json.loads(data["Message"], strict=False)
        except ValueError:
            return None
    if not isinstance(data, dict):
        return None
    kind = str(data.get("notificationType") or data.get("eventType") or "").lower()
    if kind not in ("bounce", "complaint", "delivery"):
        return None
    mail: dict[str, Any] = data["mail"] if isinstance(data.get("mail"), dict) else {}
    headers = tuple((str(h.get("name", "")), str(h.get("value", "")))
                    for h in mail.get("headers", []) if isinstance(h, dict))
    if kind == "bounce":
        body = data.get("bounce") or {}
        rows = []
        for r in body.get("bouncedRecipients", []):
            diag = str(r.get("diagnosticCode", ""))
            status = r.get("status")
            rows.append((str(r.get("emailAddress", "")), diag, str(status) if status else None,
                         parse_code(diag) if diag else None))
        return SESNotice("bounce", str(body.get("bounceType", "")),
                         str(body.get("bounceSubType", "")), tuple(rows), mail_headers=headers)
    if kind == "complaint":
        body = data.get("complaint") or {}
        rows = [(str(r.get("emailAddress", "")), "", None, None)
                for r in body.get("complainedRecipients", [])]
        return SESNotice("complaint", "", "", tuple(rows),
                         str(body.get("complaintFeedbackType", "abuse") or "abuse"), headers)
    body = data.get("delivery") or {}
    rows = [(str(r), "", "2.0.0", 250) for r in body.get("recipients", [])]
    return SESNotice("delivery", "", "", tuple(rows), mail_headers=headers)
