"""DKIM: our RSA-2048 and Ed25519 signatures verify with dkimpy and break on tampering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dkim
import dns.resolver
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from pydantic import Field

from dispatcher.config import SendingConfig
from dispatcher.core.campaign import Campaign
from dispatcher.errors import ConfigError
from dispatcher.render import Recipient, Renderer
from dispatcher.render.dkim import DkimKeyConfig, DkimSigner, relaxed_body, sign_all
from tests.support.dnsserver import DNSServer

DATA = Path(__file__).parent / "data"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ED_KEY = ed25519.Ed25519PrivateKey.generate()
SENDING = SendingConfig(domain="news.shop.example", unsubscribe_url="https://shop.example/u/{token}")
REQUIRED = ["from", "to", "subject", "date", "message-id", "list-unsubscribe",
            "list-unsubscribe-post"]


def signers() -> list[DkimSigner]:
    return [DkimSigner("shop.example", "rsa1", RSA_KEY), DkimSigner("shop.example", "ed1", ED_KEY)]


def dns_for(*items: DkimSigner) -> Any:
    records = {f"{s.selector}._domainkey.{s.domain}.".encode(): s.public_record().encode()
               for s in items}

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name)
    return dnsfunc


def verifies(data: bytes, index: int, dns: Any) -> bool:
    try:
        return bool(dkim.DKIM(data).verify(index, dnsfunc=dns))
    except dkim.ValidationError:
        return False


def rendered(**kw: Any) -> bytes:
    c = Campaign.model_validate({
        "name": "spring", "from": {"name": "Shöp", "address": "news@shop.example"},
        "subject": "Hi  {{ first_name | default('there') }}  ✓", "template": "templates/news.mjml",
        "audience": {"lists": ["x"]}, "variables": {"issue": 1}, **kw})
    r = Renderer(c, root=DATA, sending=SENDING, secret=b"s" * 32, campaign_id=1,
                 signers=signers())
    return r.render(Recipient(3, "ann@example.org", "Ann Ö", {"first_name": "Ann"})).data


def test_both_signatures_verify_with_dkimpy() -> None:
    data = rendered()
    dns = dns_for(*signers())
    assert verifies(data, 0, dns) and verifies(data, 1, dns)
    head = data.split(b"\r\n\r\n")[0]
    assert head.count(b"DKIM-Signature:") == 2
    assert b"a=rsa-sha256" in head and b"a=ed25519-sha256" in head


def test_h_covers_what_gmail_and_yahoo_require() -> None:
    head = rendered().split(b"\r\n\r\n")[0].decode()
    signed = head.split("h=")[1].split(";")[0].replace("\r\n\t", "").split(":")
    assert set(REQUIRED) <= set(signed)
    assert signed.count("from") == 2  # oversigned: a second From cannot be added


@pytest.mark.parametrize("tamper", [
    lambda d: d.replace(b"Hallo Ann", b"Hallo Bob"),
    lambda d: d.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
                        b"List-Unsubscribe-Post: nope"),
    lambda d: b"From: evil@attacker.example\r\n" + d,
    lambda d: d.replace(b"To: ", b"To: other@example.org, ", 1),
])
def test_tampering_breaks_the_signature(tamper: Any) -> None:
    data = tamper(rendered())
    dns = dns_for(*signers())
    assert not verifies(data, 0, dns)
    assert not verifies(data, 1, dns)


def test_relaxed_canonicalization_matches_dkimpy_on_awkward_bodies() -> None:
    message = (b"From: a@shop.example\r\nTo: b@example.org\r\nSubject:  lots \t of   space \r\n"
               b" folded\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@x>\r\n\r\n"
               b"  leading\t\ttabs  and trailing  \r\n\r\nmid\r\n\r\n\r\n")
    for signer in signers():
        signed = signer.sign(message)
        assert dkim.verify(signed, dnsfunc=dns_for(signer))
    assert relaxed_body(b"") == b"" and relaxed_body(b"\r\n\r\n") == b""
    assert relaxed_body(b"a \t b  \r\n") == b"a b\r\n"


def test_body_is_hashed_once_for_several_signatures() -> None:
    message = b"From: a@shop.example\r\nTo: b@example.org\r\n\r\nbody\r\n"
    signed = sign_all(signers(), message)
    bh = [part.split(b";")[0] for part in signed.split(b"bh=")[1:]]
    assert len(bh) == 2 and bh[0] == bh[1]
    assert dkim.verify(signed, dnsfunc=dns_for(*signers()))


def test_keys_load_from_pem_files_and_bad_ones_are_explained(tmp_path: Path) -> None:
    pem = RSA_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    (tmp_path / "k.pem").write_bytes(pem)
    s = DkimSigner.from_config(DkimKeyConfig("shop.example", "s1", "k.pem"), tmp_path)
    assert s.algorithm == "rsa-sha256" and s.public_record().startswith("v=DKIM1; k=rsa; p=")
    ed = ED_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    assert DkimSigner.from_pem("shop.example", "e", ed).algorithm == "ed25519-sha256"
    with pytest.raises(ConfigError, match="cannot read DKIM key"):
        DkimSigner.from_config(DkimKeyConfig("shop.example", "s1", "missing.pem"), tmp_path)
    (tmp_path / "bad.pem").write_text("not a key", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a usable PEM private key"):
        DkimSigner.from_config(DkimKeyConfig("shop.example", "s1", "bad.pem"), tmp_path)


def test_verified_against_a_real_dns_server_on_loopback() -> None:
    """dkimpy fetches the keys over UDP/TCP from a DNS server, as a receiver would."""
    rsa_signer, ed_signer = signers()
    with DNSServer() as server:
        server.dkim("shop.example", "rsa1", rsa_signer.public_record())
        server.dkim("shop.example", "ed1", ed_signer.public_record())
        resolver = server.resolver()

        def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
            answer = resolver.resolve(name.decode(), "TXT")
            return b"".join(b"".join(r.strings) for r in answer)

        data = rendered()
        assert verifies(data, 0, dnsfunc) and verifies(data, 1, dnsfunc)
        assert server.count("rsa1._domainkey.shop.example", "TXT") >= 1
        server.remove("ed1._domainkey.shop.example")
        with pytest.raises(dns.resolver.NXDOMAIN):
            dnsfunc(b"ed1._domainkey.shop.example.")


class _SendingWithDkim(SendingConfig):
    dkim: list[DkimKeyConfig] = Field(default_factory=list)


def test_the_renderer_signs_with_the_keys_the_sending_config_names(tmp_path: Path) -> None:
    pem = ED_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())
    (tmp_path / "dkim.pem").write_bytes(pem)
    (tmp_path / "t.html").write_text("<p>Hi</p>{{ unsubscribe_url }}", encoding="utf-8")
    sending = _SendingWithDkim(domain="shop.example", dkim=[
        DkimKeyConfig(domain="shop.example", selector="ed1", key_file="dkim.pem")])
    c = Campaign.model_validate({"name": "x", "from": "news@shop.example", "subject": "s",
                                 "template": "t.html", "audience": {"lists": ["l"]}})
    r = Renderer(c, root=tmp_path, sending=sending, secret=b"s" * 32, campaign_id=1)
    data = r.render(Recipient(1, "a@example.org")).data
    assert data.startswith(b"DKIM-Signature: v=1; a=ed25519-sha256;")
    assert verifies(data, 0, dns_for(DkimSigner("shop.example", "ed1", ED_KEY)))
