"""Classify one SMTP reply (code, enhanced status, text) as a kind and a reason.

The rule the best bounce classifiers follow: a bounce is *hard* only when
waiting cannot help — the user or the host does not exist, the address has
moved, the domain does not accept mail (RFC 7505 null MX). A full mailbox, a
message too large, a rate limit, a reputation block, a spam verdict, a policy
or authentication rejection and an unknown failure are *soft*, even with a 5xx
code, because the sender (or time) can fix them.

Sources: RFC 5321 §4.2 (reply classes) and §4.5.3.1.10 (a 552 "too much mail"
is temporary), RFC 3463 (enhanced status codes, ``class.subject.detail``),
RFC 7505 (``5.1.10`` null MX), and the wording of the big providers (Gmail,
Outlook.com/Office 365, Yahoo) which often matters more than the code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = ("hard", "soft", "complaint", "autoreply", "delivered", "not_bounce")
REASONS = (
    "user_unknown", "host_unknown", "has_moved", "mailbox_full", "message_too_large",
    "rate_limited", "blocked", "spam_detected", "policy", "expired", "network", "system",
    "auth_failure", "unknown", "complaint", "none",
)
# Reasons that no amount of waiting cures.
HARD_REASONS = frozenset({"user_unknown", "host_unknown", "has_moved"})


@dataclass(frozen=True)
class ReplyClass:
    """What one reply means. ``status`` is the RFC 3463 code (``"5.1.1"``) or ``None``."""

    kind: str
    reason: str
    status: str | None
    code: int | None = None

    @property
    def is_bounce(self) -> bool:
        return self.kind in ("hard", "soft")

    @property
    def temporary(self) -> bool:
        """The server asked us to try again later (4xx, or a 552 per RFC 5321 §4.5.3.1.10)."""
        if self.code is not None:
            return 400 <= self.code < 500 or self.code == 552
        return self.status is not None and self.status.startswith("4.")


# An enhanced status: not part of an IP address or a version number. Exchange
# writes it as "#5.1.1", Gmail continues lines with "550-5.1.1".
_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d]|\.\d)")
_CODE = re.compile(r"^\s*(?:[a-z0-9-]+;\s*)?([245]\d\d)(?:[ -]|$)", re.I)
# Codes written inside prose: "host x said: 550 5.1.1 ..." / "remote server replied: 554".
_CODE_ANYWHERE = re.compile(
    r"(?:said|replied|returned|response|answered|error|reply|was|server)[:\s]+\(?([45][0-5]\d)\b",
    re.I,
)


def parse_status(text: str, classes: str = "245") -> str | None:
    """The first RFC 3463 enhanced status (``"5.1.1"``) in ``text`` of one of ``classes``."""
    for match in _STATUS.finditer(text):
        cls, subject, detail = match.groups()
        if cls in classes:
            return f"{cls}.{int(subject)}.{int(detail)}"
    return None


def parse_code(text: str) -> int | None:
    """The SMTP reply code a diagnostic starts with (``"smtp; 550 ..."``) or quotes."""
    match = _CODE.match(text) or _CODE_ANYWHERE.search(text)
    return int(match.group(1)) if match else None


def _p(*words: str) -> re.Pattern[str]:
    return re.compile("|".join(words), re.I)


# Ordered: the first pattern that matches names the reason. Specific provider
# phrases come before the generic words they contain ("blocked because the
# sender is unauthenticated" is an authentication failure, not a block).
_TEXT_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    # Outlook.com's Directory-Based Edge Blocking: the recipient does not exist.
    ("user_unknown", _p(
        r"does not have a (?:final )?(?:e-?mail )?delivery point", r"did not exactly match",
        r"n'existe pas", r"existiert nicht", r"unbekannt", r"no existe", r"non esiste",
        r"n[ãa]o existe",
        r"name is not recognized", r"(?:user|recipient|address) not known",
        r"invalid final delivery userid",
        r"access denied\. ?as\(201806281\)", r"resolver\.adr\.recip\w*notfound",
        r"recipientnotfound", r"recipient not found by smtp address lookup",
    )),
    # Microsoft's older Directory-Based Edge Blocking wording (no AS code): 5.4.1 + access denied.
    ("user_unknown", _p(
        r"5\.4\.1\b[^\n]{0,80}recipient address rejected: access denied",
        r"mailbox (?:is )?frozen",
        r"(?:e-?mail )?address wasn[\u2019']?t found", r"(?:e-?mail )?address was not found",
    )),
    ("host_unknown", _p(
        r"because the domain is not reachable",  # Outlook.com: the domain has no mail server
    )),
    # Exchange "RESOLVER.RST.*": delivery to the address is restricted (groups, senders).
    ("policy", _p(r"resolver\.rst\.", r"delivery to this address is restricted")),
    ("system", _p(
        r"hop count exceeded", r"mail loop", r"too many hops", r"routing loop",
        r"does not advertise auth", r"send mail as",
    )),
    # Postfix's "Host not found, try again" is a DNS failure that may pass.
    ("network", _p(
        r"host not\s+found, try again", r"name service error.{0,120}try again",
    )),
    ("auth_failure", _p(
        r"\bdmarc\b", r"\bspf\b", r"\bdkim\b", r"sender policy framework", r"unauthenticated",
        r"not authenticated", r"authentication (?:check|level|fail|require)",
        r"does not meet the required authentication", r"5\.7\.(?:515|509|26|27|23)\b",
        r"authentication credentials invalid", r"dmarc policy",
    )),
    # A full mailbox is the cause an MTA names before "retry timeout exceeded".
    ("mailbox_full", _p(
        r"exceed\w* (?:their |the |his |her |its )?quota", r"quota violation",
        r"mailbox (?:is )?full", r"mail ?box.{0,20}\bfull\b", r"over ?quota", r"quota exceeded",
        r"exceeded (?:the |his |her |their )?(?:storage|quota)", r"exceeds? (?:the )?quota",
        r"quota (?:limit|full)", r"insufficient (?:disk )?(?:space|storage) for (?:the )?user",
        r"inbox (?:is )?full", r"out of storage space", r"full mailbox", r"mailbox size limit",
        r"disk quota", r"reached (?:its |the |his |her )?quota",
        r"storage (?:limit|quota)", r"too many messages in (?:this|the) mailbox",
        r"user.{0,10} disk quota", r"not enough (?:disk )?space", r"mailfolder is full",
        r"\bdisk full\b.{0,40}(?:user|mailbox)", r"message would exceed",
    )),
    ("expired", _p(
        r"retry timeout exceeded", r"maximum delivery attempts", r"delivery time expired",
        r"message expired",
        r"could not be delivered within", r"has been delayed for too long",
        r"too long in (?:the )?queue", r"retry time not reached for any host after a long",
        r"giving up on", r"was not delivered within", r"\bexpired\b(?! account)",
        r"maximum time in queue", r"message timed? ?out after",
    )),
    ("message_too_large", _p(
        r"message (?:is )?too (?:large|big)", r"message size (?:exceeds|limit|too)",
        r"exceeds? (?:the )?(?:maximum )?(?:message )?size", r"size (?:limit )?exceeded",
        r"message length exceeds", r"too large for", r"maximum (?:incoming )?message size",
        r"message .{0,30} exceeds .{0,30} (?:limit|size)", r"file too large",
    )),
    ("has_moved", _p(
        r"has moved", r"no longer (?:with|at|employed|works)", r"moved to (?:a )?new",
        r"changed (?:his|her|their)? ?e-?mail address", r"forwarding address",
    )),
    ("host_unknown", _p(
        r"host (?:or domain name )?not found", r"host unknown", r"unknown host",
        r"domain (?:name )?not found", r"unknown domain", r"no such domain",
        r"domain (?:does not|doesn't) exist", r"unrouteable (?:mail )?(?:address|domain)",
        r"null mx", r"does not accept (?:e-?)?mail", r"name or service not known",
        r"\bnxdomain\b", r"no (?:valid )?mx (?:record|host)", r"non-existent hosts",
        r"domain (?:is )?not (?:hosted|local|configured|valid)", r"invalid domain",
        r"dns error: domain", r"mx records point to", r"name service error", r"unable to route",
        r"domain has no", r"unresolvable", r"bad destination host",
    )),
    ("user_unknown", _p(
        r"user (?:is )?unknown", r"unknown (?:user|recipient|local[- ]part|address|mailbox)",
        r"no such (?:user|recipient|mailbox|address|person|account|local user)",
        r"(?:user|recipient|mailbox|address|account|addressee) (?:was )?not found",
        r"(?:user|recipient|mailbox|address|account|e-?mail account).{0,40}(?:does not|doesn't|"
        r"did not|does no longer|no longer) exists?",
        r"(?:not|isn't) a (?:valid|known) (?:user|mailbox|recipient|address)",
        r"invalid (?:recipient|mailbox|user|address|e-?mail address)",
        r"bad (?:recipient|destination mailbox|address)", r"addressee unknown",
        r"mailbox unavailable", r"mailbox (?:is )?(?:disabled|inactive|not available)",
        r"account (?:has been |is )?(?:disabled|deactivated|closed|terminated|inactive|deleted|"
        r"removed|locked|expired)",
        r"(?:disabled|inactive|deactivated|closed) (?:account|mailbox)", r"no mailbox here",
        r"not listed in (?:the )?(?:domino|public name|directory)", r"mailbox does not exist",
        r"recipient (?:address )?rejected: (?:user|mailbox|account)",
        r"doesn't have a \S+ account", r"does not have an? \S* ?account",
        r"(?:address|mailbox) unknown", r"is not a (?:known|valid) (?:user|recipient)",
        r"unknown or illegal alias", r"user doesn't exist", r"no account by that name",
        r"destination address does not exist", r"undeliverable address",
        r"recipient (?:address )?(?:is )?(?:invalid|unknown)",
        r"address (?:does not exist|is invalid|rejected: no)", r"no valid recipients",
        r"not our customer", r"alias (?:is )?invalid",
        r"no longer (?:active|valid|in use|available)", r"this user doesn't",
        r"user not (?:found|exist)", r"unknown user account", r"mailbox not found",
        r"is not a valid e-?mail",
    )),
    ("rate_limited", _p(
        r"rate (?:limit|control)", r"rate[- ]limited",
        r"too many (?:messages|mails|emails|connections|concurrent|sessions|recipients|invalid|"
        r"errors)",
        r"throttl", r"receiving mail (?:at a rate|too quickly)", r"too (?:fast|quickly)",
        r"unusual rate", r"temporarily deferred",
        r"unexpected volume", r"exceeded the (?:sending|message|connection)", r"connection limit",
        r"try (?:again )?later.{0,40}(?:volume|rate)", r"(?:sending|message) rate", r"mail rate",
        r"limit exceeded", r"slow down", r"resources temporarily unavailable",
        r"frequency limit",
    )),
    ("spam_detected", _p(
        r"unsolicited", r"\bspam\b(?!haus|cop|cannibal)", r"spam (?:content|message|score)",
        r"looks like spam", r"\bjunk\b", r"content (?:rejected|filter|policy)",
        r"message content", r"bulk mail", r"phishing", r"virus", r"malware", r"security issue",
        r"suspicious", r"high probability", r"unsafe (?:attachment|content)",
        r"spam\s*(?:filter|detected)", r"scored as", r"message (?:was )?classified",
    )),
    ("blocked", _p(
        r"block ?list", r"black ?list", r"\bblocked\b", r"spamhaus", r"spamcop", r"barracuda",
        r"\brbl\b", r"dnsbl", r"\blisted\b", r"reputation", r"banned", r"\bban\b",
        r"client host .{0,40}rejected", r"poor reputation", r"permanently deferred",
        r"not authorized to send", r"sender ip", r"\bblocking\b", r"\(s3150\)", r"sending ip",
        r"ip address .{0,40}(?:rejected|refused|blocked|not allowed)", r"sorbs",
        r"host network not allowed", r"\bcdrbl\b",
    )),
    ("policy", _p(
        r"\bpolicy\b", r"not permitted",
        r"relay(?:ing)? (?:access )?(?:denied|not permitted|not allowed)", r"relay access",
        r"not allowed", r"prohibited", r"\bdenied\b", r"not authori[sz]ed", r"refused",
        r"administrative(?:ly)? prohibit", r"tls required", r"must use tls",
        r"encryption required", r"ptr record", r"reverse dns", r"helo", r"greylist", r"grey-list",
        r"gray ?list", r"sender (?:address )?rejected", r"sender verify", r"not accepted",
        r"restricted", r"rejected by (?:the )?recipient", r"unroutable sender",
    )),
    ("network", _p(
        r"connection (?:refused|timed out|reset|closed|lost|dropped)", r"timed out", r"timeout",
        r"network (?:is )?unreachable", r"no route to host", r"lost connection",
        r"could not connect", r"couldn't connect", r"unable to connect", r"can't connect",
        r"failed to connect", r"tls handshake", r"ssl handshake", r"connect to .{0,80}:",
        r"host unreachable", r"conversation with .{0,80} timed out", r"no answer from host",
        r"name server timeout", r"dns (?:lookup|resolution|query) (?:failed|timeout)",
        r"temporary (?:dns|lookup) failure", r"try again",
    )),
    ("system", _p(
        r"message looping", r"\bloop(?:ing|s)?\b",
        r"system", r"internal (?:server )?error", r"local error", r"server error",
        r"out of memory", r"configuration error", r"mail loop", r"loops? back to myself",
        r"too many hops", r"routing loop", r"insufficient (?:system )?storage",
        r"service (?:not |un)available", r"temporar(?:y|ily) (?:failure|unavailable|error)",
        r"unavailable", r"i/o error", r"disk full", r"queue file", r"transaction failed",
        r"protocol error", r"syntax error", r"command unrecognized", r"mail server .{0,30}error",
    )),
)

# RFC 3463 subject.detail -> reason, used when the text says nothing recognisable.
_STATUS_REASONS: dict[str, str] = {
    "1.0": "user_unknown", "1.1": "user_unknown", "1.2": "host_unknown", "1.3": "user_unknown",
    "1.4": "user_unknown", "1.5": "none", "1.6": "has_moved", "1.7": "policy", "1.8": "policy",
    "1.10": "host_unknown",
    "2.0": "user_unknown", "2.1": "user_unknown", "2.2": "mailbox_full", "2.3": "message_too_large",
    "2.4": "system",
    "3.0": "system", "3.1": "system", "3.2": "system", "3.3": "system", "3.4": "message_too_large",
    "3.5": "system",
    "4.0": "network", "4.1": "network", "4.2": "network", "4.3": "network", "4.4": "host_unknown",
    "4.5": "system", "4.6": "system", "4.7": "expired",
    "5.0": "system", "5.1": "system", "5.2": "system", "5.3": "rate_limited", "5.4": "system",
    "5.5": "system",
    "6.0": "system", "6.1": "spam_detected", "6.2": "system", "6.3": "system", "6.4": "system",
    "6.5": "system",
    "7.0": "policy", "7.1": "blocked", "7.2": "policy", "7.3": "policy", "7.4": "policy",
    "7.5": "policy", "7.6": "policy", "7.7": "policy", "7.8": "auth_failure", "7.9": "auth_failure",
    "7.13": "auth_failure", "7.14": "auth_failure", "7.17": "user_unknown", "7.18": "user_unknown",
    "7.20": "auth_failure", "7.21": "auth_failure", "7.22": "auth_failure", "7.23": "auth_failure",
    "7.24": "auth_failure", "7.25": "policy", "7.26": "auth_failure", "7.27": "auth_failure",
    "7.28": "rate_limited", "7.29": "auth_failure", "7.30": "auth_failure",
    "7.509": "auth_failure", "7.515": "auth_failure", "7.708": "blocked", "7.650": "rate_limited",
}


def reason_from_text(text: str) -> str | None:
    """The reason the wording of a reply gives, or ``None`` when it says nothing we know."""
    for reason, pattern in _TEXT_RULES:
        if pattern.search(text):
            return reason
    return None


def reason_from_status(status: str | None) -> str | None:
    if status is None:
        return None
    _cls, subject, detail = status.split(".")
    key = f"{subject}.{detail}"
    if key in _STATUS_REASONS:
        return _STATUS_REASONS[key]
    if subject == "7" and 600 <= int(detail) <= 649:
        return "blocked"  # Office 365: banned sending IP ranges.
    return None


# Statuses whose meaning is precise enough to beat a vague word in the text
# ("550 5.1.1 <x>: Recipient address rejected: access denied" is user unknown).
_DECISIVE = frozenset({"1.1", "1.2", "1.3", "1.6", "1.10", "2.2", "3.4", "2.3", "4.7"})
_VAGUE = frozenset({"policy", "system", "network", "blocked", "unknown"})


_NULL_MX = re.compile(r"null mx|rfc ?7505|doesn'?t receive e-?mail|does not (?:accept|receive) "
                      r"(?:e-?)?mail", re.I)

# A reason is stated near the start; a bounded input keeps hostile mail cheap.
_MAX_TEXT = 8192


def classify(code: int | None, text: str, status: str | None = None) -> ReplyClass:
    """Classify a reply or a DSN diagnostic; ``status`` overrides the one found in ``text``."""
    text = text[:_MAX_TEXT]
    if code is None:
        code = parse_code(text)
    # In prose a "2.0.12" is more often a version number than a success status.
    status = status or parse_status(text, "245" if code and code < 300 else "45")
    cls = status[0] if status else (str(code)[0] if code else "")
    if cls == "2" or (code is not None and 200 <= code < 300 and status is None):
        return ReplyClass("delivered", "none", status, code)

    by_text = reason_from_text(text)
    by_status = reason_from_status(status)
    reason = by_text or by_status
    decisive = status is not None and status.split(".", 1)[1] in _DECISIVE
    if decisive and by_status is not None and by_text in _VAGUE:
        reason = by_status
    if reason is None or reason == "none":
        reason = "unknown"
    if code == 552 and reason not in HARD_REASONS | {"message_too_large"}:
        # RFC 5321 §4.5.3.1.10: a 552 on RCPT means "too much mail", temporary.
        reason = "mailbox_full"

    temporary = cls == "4" or (code is not None and 400 <= code < 500)
    if reason == "host_unknown" and _NULL_MX.search(text):
        # RFC 7505: a null MX is the domain's own word that it takes no mail, whatever
        # code the reporting MTA chose (Gmail says 4.0.0 while failing the message).
        temporary = False
    kind = "hard" if reason in HARD_REASONS and not temporary else "soft"
    return ReplyClass(kind, reason, status, code)


def classify_reply(code: int, text: str) -> ReplyClass:
    """Classify the reply an SMTP server gave us (``code`` and the text after it)."""
    return classify(code, text)
