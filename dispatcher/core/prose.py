"""Bounces written for people: qmail, Exim, Sendmail, Exchange, Domino, Yahoo and the rest.

When a returned message has no machine-readable report, the failed
addresses and the reasons are in its prose. This module cuts the quoted
original off, then looks for the shapes the common MTAs write::

    <user@example.com>:                          qmail, Yahoo, Courier
      user@example.com                           Exim (indented, then "host ... said")
    <user@example.com>... User unknown           Sendmail
    RCPT TO:<user@example.com> ... 550 ...       transcripts
    user@example.com on 2/3/2020 ...             Exchange / Office 365 prose
    User user@example.com not listed in Domino Directory

and falls back to every address in the report that is not one of the
bounce's own (the daemon, the list, our return path).
"""

from __future__ import annotations

import re

# Quantifiers are bounded (RFC 5321 §4.5.3.1: 64-octet local part) so a long run of
# letters without an "@" costs linear, not quadratic, time.
ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}"
                     r"[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?){1,8}")

# Where the returned copy of the original message starts in a plain-text bounce.
_ORIGINAL = re.compile(
    r"^[ \t>-]*(?:-{2,}|={2,}|_{2,})?[ \t]*(?:original message(?: follows| headers)?|"
    r"below this line is a copy of the message|this is a copy of the message|"
    r"unsent message (?:below|follows)|returned message|message text follows|"
    r"copy of (?:the )?(?:original )?message|original message header|"
    r"the header of the original message|"
    r"text of the message follows|headers of the original message|"
    r"the original e-?mail|original mail follows|undelivered message headers|"
    r"message header follows|message removed|returned mail\b|start of returned message|"
    r"header of the source mail|original message as received)",
    re.I | re.M)

_STRONG = (
    # qmail / Yahoo / Courier: "<addr>:" alone on its line.
    re.compile(r"^[ \t]*<([^@<>\s]{1,64}@[^@<>\s]{1,255})>:?[ \t]*$", re.M),
    # Postfix (old): "<addr>: reason" at the start of a line.
    re.compile(r"^<([^@<>\s]{1,64}@[^@<>\s]{1,255})>:[ \t]+\S", re.M),
    # "The address to which your message was addressed, addr, did not ..."
    re.compile(r"addressed,?\s+(?:to\s+)?<?([^@\s<>,]{1,64}@[^@\s<>,]{1,254}[A-Za-z])", re.I),
    # Sendmail: "<addr>... User unknown" and "addr... reason".
    re.compile(r"<?([^@<>\s]{1,64}@[^@<>\s]{1,255}?)>?\.\.\.[ \t]+\S", re.M),
    # Transcripts: "RCPT TO:<addr>" / "RCPT To:<addr>" / "RCPT TO: addr".
    re.compile(r"rcpt to:\s*<?([^@<>\s]{1,64}@[^@<>\s]{1,255}?)>?(?=[\s>]|$)", re.I | re.M),
    # Exim: the failed address indented two spaces, alone on its line.
    re.compile(r"^  ([^@\s<>]{1,64}@[^@\s<>]{1,255})[ \t]*$", re.M),
    # Exchange / Office 365 / generic prose.
    re.compile(r"(?:delivery to (?:the following recipients?|this recipient) (?:failed|has failed"
               r"|was delayed)[^\n]*\n+\s*|could not be delivered to:?\s*\n+\s*|"
               r"following recipients?(?:\(s\))? (?:could not be reached|cannot be reached|failed)"
               r":?\s*\n+\s*|following address(?:es|\(es\))? (?:failed|had permanent fatal errors)"
               r"[^\n]*\n+\s*|was not delivered to:?\s*\n+\s*|did not reach the following "
               r"recipient\(s\):\s*\n+\s*|your message to\s+|delivery has failed to these "
               r"recipients or (?:groups|distribution lists):\s*\n+\s*|"
               r"unable to deliver (?:the )?message to:?\s*\n*\s*|"
               r"failed to deliver to\s+|delivery failed\b[^\n]*?:\s*|"
               r"user\s+|recipient:?\s*|addressee:?\s*|"
               r"could not deliver (?:the )?message to\s+)"
               r"[\"'<]?(?:SMTP=)?([^@\s<>\"';,()]{1,64}@[^@\s<>\"';,()]{1,255})", re.I),
    re.compile(r"SMTP=([^@\s;<>]{1,64}@[^@\s;<>]{1,255})", re.I),
    # Sendmail and Exim name the address we used when an alias was expanded.
    re.compile(r"\((?:expanded|generated) from:?\s*<?([^@\s<>()]{1,64}@[^@\s<>()]{1,255}?)>?\)",
               re.I),
)


def split_original(text: str) -> tuple[str, str]:
    """``(report, original)``: the bounce's own words and the quoted copy after them."""
    match = _ORIGINAL.search(text)
    if match is None or match.start() < 20:
        return text, ""
    return text[:match.start()], text[match.start():]


def clean(address: str) -> str:
    address = address.strip().strip("<>[]()\"'.,;:")
    if address.lower().startswith("mailto:"):
        address = address[7:]
    return address


def unpercent(address: str) -> str:
    """Undo the "percent hack" (``user%example.com@relay`` -> ``user@example.com``)."""
    local, _, _host = address.rpartition("@")
    user, pct, domain = local.rpartition("%")
    if pct and user and "." in domain and ADDRESS.fullmatch(f"{user}@{domain}"):
        return f"{user}@{domain}"
    return address


def _ignorable(address: str, own: set[str]) -> bool:
    low = address.lower()
    local = low.split("@", 1)[0]
    return (low in own or local in ("postmaster", "mailer-daemon", "mailer_daemon", "mail-daemon",
                                    "root", "noreply", "no-reply", "abuse", "daemon")
            or low.endswith((".png", ".gif", ".jpg")) or ("=" in local and "+" not in local))


_BARE = re.compile(r"following recipients?[^\n]*:[ \t]*\n[ \t]+([A-Za-z0-9._-]+)[ \t]*$",
                   re.M | re.I)


def strong_recipients(report: str, own: set[str], domain: str = "") -> list[str]:
    """Addresses in the places MTAs put failed recipients, first seen first.

    ``domain`` completes a bare mailbox name (AOL wrote ``screenname`` alone).
    """
    found: list[str] = []
    if domain:
        found.extend(f"{m.group(1)}@{domain}" for m in _BARE.finditer(report))
    for pattern in _STRONG:
        for match in pattern.finditer(report):
            address = clean(match.group(1))
            if "@" in address and ADDRESS.fullmatch(address) and not _ignorable(address, own) \
                    and address.lower() not in (f.lower() for f in found):
                found.append(address)
    return found


def any_recipients(report: str, own: set[str]) -> list[str]:
    found: list[str] = []
    for match in ADDRESS.finditer(report):
        address = clean(match.group(0))
        before = report[max(0, match.start() - 40):match.start()].lower()
        if "message-id" in before or "from:" in before[-8:] or "id <" in before[-5:]:
            continue
        if not _ignorable(address, own) and address.lower() not in (f.lower() for f in found):
            found.append(address)
    return found


def context(report: str, address: str, width: int = 600) -> str:
    """The prose around the first mention of ``address``: its reason, usually."""
    at = report.lower().find(address.lower())
    if at < 0:
        return ""
    end = report.find("\n\n\n", at)
    stop = min(len(report), at + width) if end < 0 else min(end, at + width)
    return report[max(0, at - 200):stop]


_WARNING = re.compile(
    r"warning: (?:could not send|message still undelivered|delayed)|delivery status notification "
    r"\(delay\)|delayed mail|this is a warning message only|"
    r"will (?:continue|keep) (?:trying|to try)|"
    r"still (?:being )?(?:retried|trying)|has not yet been delivered|delivery (?:is )?delayed|"
    r"you do not need to resend|not (?:yet )?been able to deliver", re.I)


def is_warning(subject: str, report: str) -> bool:
    """A delay notice: the MTA is still trying, nothing failed yet."""
    return bool(_WARNING.search(subject) or _WARNING.search(report[:3000]))
