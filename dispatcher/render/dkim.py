"""DKIM signatures (RFC 6376) with RSA-SHA256 and Ed25519-SHA256 (RFC 8463).

The signature math is ``cryptography`` (OpenSSL): dkimpy signs RSA in pure
Python at ~7 ms per message, ~25x slower (field notes). Canonicalization is
relaxed/relaxed and written here, with a fast path: our bodies come out of
quoted-printable or base64 encoding, which leaves no trailing whitespace, so
the relaxed body is the body itself unless it holds a tab or two spaces in a
row, and the check for that is a C-speed substring search.

``h=`` always covers From, To, Subject, Date, Message-ID, List-Unsubscribe and
List-Unsubscribe-Post (Gmail's and Yahoo's bulk-sender rules), plus the other
headers we write; From is signed twice so a second From cannot be added.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from dispatcher.errors import ConfigError

SIGNED_HEADERS = (
    "from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post",
    "reply-to", "list-id", "feedback-id", "mime-version", "content-type",
    "content-transfer-encoding",
)
# Only what changes: a lone space is already canonical, and substituting each
# of the thousands in an HTML part was most of the cost of signing.
_WSP_RUN = re.compile(rb"[ \t]{2,}|\t")
_TRAILING_WSP = re.compile(rb"[ \t]+\r\n")
_HEADER_WSP = re.compile(r"[ \t]+")


@dataclass(frozen=True)
class DkimKeyConfig:
    """One signing key, as ``dispatcher.toml`` names it (``[[dkim]]`` tables)."""

    domain: str
    selector: str
    key_file: str


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4: runs of WSP to one SP, none at line ends, no empty lines at the end."""
    if b"\t" in body or b"  " in body or b" \r\n" in body:
        body = _WSP_RUN.sub(b" ", body)
        body = _TRAILING_WSP.sub(b"\r\n", body)
        if body.endswith(b" "):
            body = body[:-1]
    body = body.rstrip(b"\r\n")
    return body + b"\r\n" if body else b""


def relaxed_chunk(part: bytes) -> bytes:
    """Relaxed form of one MIME part body that the message continues after with CRLF.

    The renderer hashes a message part by part, so the regular expressions
    only run over a part that needs them (a text part with indentation), not
    over a 20 KB HTML part that does not.
    """
    if b"\t" in part or b"  " in part:
        part = _TRAILING_WSP.sub(b"\r\n", _WSP_RUN.sub(b" ", part))
    elif b" \r\n" in part:
        part = part.replace(b" \r\n", b"\r\n")  # no runs: one space at most before CRLF
    return part.rstrip(b" \t")


def body_hash(chunks: Sequence[bytes]) -> str:
    """``bh=`` of a body given as relaxed-canonical chunks (see :func:`relaxed_chunk`)."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return base64.b64encode(digest.digest()).decode()


def relaxed_header(name: str, value: str) -> bytes:
    """RFC 6376 3.4.2: lower-case name, unfolded value, WSP runs to one SP, trimmed."""
    value = value.replace("\r\n", "")
    if "\t" in value or "  " in value:
        value = _HEADER_WSP.sub(" ", value)
    return f"{name.lower()}:{value.strip()}".encode()


def split_headers(head: bytes) -> list[tuple[str, str]]:
    """The (name, raw value) pairs of a header block, folded lines joined back."""
    fields: list[tuple[str, str]] = []
    for line in head.decode("utf-8", "surrogateescape").split("\r\n"):
        if line[:1] in (" ", "\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, f"{value}\r\n{line}")
        elif line:
            name, _, value = line.partition(":")
            fields.append((name.strip(), value))
    return fields


def _fold_b64(data: str, width: int = 72) -> str:
    return "\r\n\t".join(data[i:i + width] for i in range(0, len(data), width))


class DkimSigner:
    """Signs whole messages (``head CRLF CRLF body`` bytes) for one domain and selector."""

    def __init__(self, domain: str, selector: str,
                 key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.domain = domain
        self.selector = selector
        self.key = key
        self.clock = clock
        self.algorithm = "ed25519-sha256" if isinstance(key, ed25519.Ed25519PrivateKey) \
            else "rsa-sha256"

    @classmethod
    def from_pem(cls, domain: str, selector: str, pem: bytes, *, source: str = "key") -> DkimSigner:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"not a usable PEM private key: {exc}", path=source) from None
        if isinstance(key, rsa.RSAPrivateKey):
            if key.key_size < 1024:
                raise ConfigError("RSA DKIM keys need at least 1024 bits (RFC 8301); use 2048",
                                  path=source)
        elif not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ConfigError("DKIM keys must be RSA or Ed25519", path=source)
        return cls(domain, selector, key)

    @classmethod
    def from_config(cls, config: DkimKeyConfig, root: Path) -> DkimSigner:
        path = root / config.key_file
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read DKIM key: {exc.strerror}", path=str(path)) from None
        return cls.from_pem(config.domain, config.selector, pem, source=str(path))

    def public_record(self) -> str:
        """The TXT record to publish at ``selector._domainkey.domain``."""
        public = self.key.public_key()
        if isinstance(public, ed25519.Ed25519PublicKey):
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
        der = public.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"

    def _sign(self, data: bytes) -> bytes:
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            # RFC 8463 3: Ed25519 signs the SHA-256 hash, not the data itself.
            return self.key.sign(hashlib.sha256(data).digest())
        return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def header(self, message: bytes, *, body_hash: str | None = None) -> bytes:
        """The ``DKIM-Signature: ...\\r\\n`` line to put in front of ``message``."""
        head, sep, body = message.partition(b"\r\n\r\n")
        if not sep:
            head, body = message.rstrip(b"\r\n"), b""
        if body_hash is None:
            body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest()).decode()
        fields = split_headers(head)
        present = {name.lower(): (name, value) for name, value in fields}
        names = [h for h in SIGNED_HEADERS if h in present]
        hashed = [relaxed_header(*present[h]) for h in names]
        names.append("from")  # signed once more with no value: a second From breaks it
        tags = (f" v=1; a={self.algorithm}; c=relaxed/relaxed; d={self.domain};"
                f" s={self.selector}; t={int(self.clock())};\r\n\th={':'.join(names)};"
                f"\r\n\tbh={body_hash};\r\n\tb=")
        data = b"\r\n".join(hashed) + b"\r\n" + relaxed_header("DKIM-Signature", tags)
        signature = base64.b64encode(self._sign(data)).decode()
        return f"DKIM-Signature:{tags}{_fold_b64(signature)}\r\n".encode()

    def sign(self, message: bytes) -> bytes:
        return self.header(message) + message


def sign_all(signers: Sequence[DkimSigner], message: bytes, *, bh: str | None = None) -> bytes:
    """``message`` with one signature per signer (e.g. RSA and Ed25519), body hashed once."""
    if not signers:
        return message
    if bh is None:
        _, _, body = message.partition(b"\r\n\r\n")
        bh = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest()).decode()
    return b"".join(s.header(message, body_hash=bh) for s in signers) + message
