"""Address normalisation and validation (email-validator); the optional MX check is in
:mod:`.mx_check`.

email-validator costs ~32 µs per address (field notes), which alone would cap
an import at ~30,000 rows/s, below the 50,000 rows/s target. Most real
addresses are plain ASCII dot-atoms, so a strict regular expression accepts
those directly; it matches a strict subset of what email-validator accepts
(checked against it in tests/test_lists_addresses.py), and everything else
(IDN, quoted local parts, oddities, errors) goes through email-validator.
"""

from __future__ import annotations

import re

from email_validator import SPECIAL_USE_DOMAIN_NAMES as _SPECIAL
from email_validator import EmailNotValidError, validate_email

_ATEXT = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
# Special-use names (RFC 6761) and their subdomains are refused by email-validator.
_NOT_SPECIAL = "".join(rf"(?<!\.{re.escape(name)})" for name in _SPECIAL)
# The local part's 64 characters checked by the lookahead; the domain's 253 follow
# from the whole address's 254.
_FAST = re.compile(rf"(?=[^@]{{1,64}}@){_ATEXT}(?:\.{_ATEXT})*@(?:{_LABEL}\.)+"
                   rf"[a-z](?:[a-z0-9-]{{0,61}}[a-z])?{_NOT_SPECIAL}")


class InvalidAddress(ValueError):
    """The reason a value is not a usable address (the text goes into the rejects file)."""


def _fast(address: str) -> bool:
    # "--" in a label is reserved for IDNA (xn--, RFC 5891 §4.2.3.1): leave those to the
    # library (anywhere in the address: one in the local part only costs a slower check).
    return len(address) <= 254 and "--" not in address and _FAST.fullmatch(address) is not None


def normalise_email(raw: str) -> str:
    """The address as we store it: trimmed, syntax checked, lower-cased, IDN domain in Unicode.

    Raises :class:`InvalidAddress`. No DNS lookup here (see :mod:`.mx_check`).
    """
    value = raw.strip()
    if not value:
        raise InvalidAddress("missing email")
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    # Local parts are case-sensitive in theory; in practice every provider ignores case,
    # and treating Ann@x and ann@x as two people would mail one person twice.
    lowered = value.lower()
    if lowered.isascii() and _fast(lowered):
        return lowered
    try:
        info = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"invalid email: {exc}") from None
    return info.normalized.lower()


def domain_of(email: str) -> str:
    return email.rpartition("@")[2]
