"""Header values that are safe on the wire: RFC 5322 syntax, RFC 2047 for non-ASCII, IDNA domains.

Written by hand rather than with :class:`email.header.Header` because this runs
for every recipient (the stdlib class costs ~15 µs per call, the encoder here
~2 µs for the common ASCII case). Any CR, LF or NUL in a value is refused:
passed through, it would start a new header or a second recipient.
"""

from __future__ import annotations

import base64
import re

import idna

from dispatcher.errors import RecipientError

_FORBIDDEN = re.compile(r"[\r\n\0]")
_ATOM_PHRASE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*$")  # RFC 5322 3.2.3 atext + space
# 75 characters per encoded word (RFC 2047 2): "=?utf-8?b?" + data + "?=" leaves 63 for base64,
# i.e. at most 45 bytes of UTF-8 (never split inside a character).
_WORD_BYTES = 45
_FOLD_AT = 76
_SPACE_FOLD = "\r\n "


class HeaderInjectionError(RecipientError):
    """A value would have added a header line or a recipient."""


def check(value: str, *, what: str, recipient: str | None = None) -> str:
    """``value`` unchanged, or :class:`HeaderInjectionError` if it holds CR, LF or NUL."""
    if _FORBIDDEN.search(value):
        raise HeaderInjectionError(f"{what} contains a line break or NUL", recipient=recipient)
    return value


def _words(value: str) -> list[str]:
    data = value.encode("utf-8")
    if len(data) <= _WORD_BYTES:  # the common case: one word, no per-character loop
        return [f"=?utf-8?b?{base64.b64encode(data).decode('ascii')}?="]
    words: list[str] = []
    chunk = bytearray()
    for ch in value:
        encoded = ch.encode("utf-8")
        if len(chunk) + len(encoded) > _WORD_BYTES:
            words.append(f"=?utf-8?b?{base64.b64encode(bytes(chunk)).decode('ascii')}?=")
            chunk.clear()
        chunk += encoded
    if chunk or not words:
        words.append(f"=?utf-8?b?{base64.b64encode(bytes(chunk)).decode('ascii')}?=")
    return words


def _fold(value: str, first: int) -> str:
    """Fold a long ASCII value at spaces so lines stay short (RFC 5322 2.2.3)."""
    if first + len(value) <= _FOLD_AT:
        return value
    out: list[str] = []
    line = first
    for i, word in enumerate(value.split(" ")):
        if i and line + 1 + len(word) > _FOLD_AT and line > 1:
            out.append("\r\n " + word)
            line = 1 + len(word)
        else:
            out.append((" " if i else "") + word)
            line += len(word) + (1 if i else 0)
    return "".join(out)


def encode_text(value: str, *, name: str = "Subject", what: str | None = None,
                recipient: str | None = None) -> str:
    """An unstructured header value (Subject, List-Id text ...), folded and encoded."""
    check(value, what=what or name, recipient=recipient)
    first = len(name) + 2
    if value.isascii() and "=?" not in value and max(map(len, value.split(" "))) < 900:
        return _fold(value, first)
    return _SPACE_FOLD.join(_words(value))


def ascii_domain(domain: str) -> str:
    """The A-label form of ``domain`` (IDNA 2008 via the ``idna`` package, UTS 46 mapping)."""
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise RecipientError(f"domain {domain!r} cannot be encoded: {exc}") from None


def ascii_address(address: str, *, recipient: str | None = None) -> str:
    """``local@domain`` with an IDN domain in its A-label form.

    A non-ASCII local part can only travel with SMTPUTF8 (RFC 6531) and is
    refused here rather than mangled.
    """
    check(address, what="address", recipient=recipient)
    local, at, domain = address.rpartition("@")
    if not at or not local:
        raise RecipientError(f"{address!r} is not an address", recipient=recipient)
    if not local.isascii():
        raise RecipientError("a non-ASCII local part needs SMTPUTF8, which is not supported",
                             recipient=recipient)
    return f"{local}@{ascii_domain(domain)}"


def format_address(name: str, address: str, *, recipient: str | None = None) -> str:
    """``Display Name <addr>`` with the name quoted or RFC 2047-encoded as needed."""
    addr = ascii_address(address, recipient=recipient)
    check(name, what="name", recipient=recipient)
    name = name.strip()
    if not name:
        return addr
    if not name.isascii() or "=?" in name:
        return f"{_SPACE_FOLD.join(_words(name))} <{addr}>"
    if _ATOM_PHRASE.match(name) and "  " not in name:
        return f"{name} <{addr}>"
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{addr}>'
