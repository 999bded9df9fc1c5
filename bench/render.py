"""Render benchmark: personalize + build MIME (+ DKIM) per recipient, on one core.

    python bench/render.py [--messages N]

Prints messages/s (best of 5 rounds, CPU time of this process) for: no DKIM
(ASCII and non-ASCII recipients), RSA-2048, Ed25519, both; the same work
done with ``email.message.EmailMessage`` + ``as_bytes()``; and ``openssl
speed`` for RSA-2048 and Ed25519 measured in the same run, so the figures can
be read as ratios on whatever machine runs it. MJML compilation is counted:
once per campaign (and variant), whatever N.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dispatcher.config import SendingConfig  # noqa: E402
from dispatcher.core.campaign import Campaign  # noqa: E402
from dispatcher.render import Recipient, Renderer  # noqa: E402
from dispatcher.render.dkim import DkimSigner  # noqa: E402
from dispatcher.render.template import mjml_compile_count  # noqa: E402

SENDING = SendingConfig(domain="news.example.com", bounce_domain="bounces.example.com",
                        unsubscribe_url="https://news.example.com/unsubscribe/{token}",
                        list_id="Example Weekly <weekly.news.example.com>")
ARTICLE = (
    '\n        <mj-text font-size="18px" font-weight="bold">{n}. {title}</mj-text>'
    "\n        <mj-text>{body} {{% if city %}}Readers in {{{{ city }}}} told us about it "
    "first.{{% endif %}}</mj-text>"
    '\n        <mj-button background-color="#0b3d91" href="https://news.example.com/articles/'
    '{n}?utm_source=weekly&amp;utm_medium=email">Read the story</mj-button>\n')
BODY = ("Commuters get twelve kilometres of protected lanes before winter. We rode all of them "
        "so you do not have to guess which one is worth the detour, and we measured the wait at "
        "every crossing on the way, morning and evening, for a whole week.")


def workspace(tmp: Path) -> Path:
    """The example newsletter, grown to ~20 KB of compiled HTML with more articles."""
    source = (ROOT / "templates" / "weekly.mjml").read_text(encoding="utf-8")
    articles = "".join(ARTICLE.format(n=n, title=f"Story number {n} of the week", body=BODY)
                       for n in range(4, 12))
    source = source.replace("{% if plan", articles + "        {% if plan", 1)
    (tmp / "templates").mkdir()
    (tmp / "templates" / "weekly.mjml").write_text(source, encoding="utf-8")
    shutil.copy(ROOT / "templates" / "weekly.txt", tmp / "templates" / "weekly.txt")
    return tmp


def campaign() -> Campaign:
    return Campaign.model_validate({
        "name": "weekly-bench", "from": {"name": "Example Weekly",
                                         "address": "news@news.example.com"},
        "reply_to": "editor@news.example.com",
        "subject": "{{ first_name | default('Hello') }}, your week in "
                   "{{ city | default('the city') }}",
        "preheader": "Five things worth your time this week.",
        "template": {"html": "templates/weekly.mjml", "text": "templates/weekly.txt"},
        "audience": {"lists": ["weekly"]},
        "variables": {"issue": 48, "edition_date": "23 November 2026"},
    })


NAMES = [("Rosa", "Kowalski", "Berlin"), ("Farid", "Novak", "Lisbon"), ("Mei", "Tanaka", "Tokyo"),
         ("Liam", "Walsh", "Dublin"), ("Ana", "Silva", "Porto")]
NON_ASCII = [("Zoë", "Müller", "Köln"), ("Øystein", "Ærø", "Tromsø"), ("Chloé", "Lefèvre", "Nîmes")]


def recipients(n: int, names: list[tuple[str, str, str]]) -> list[Recipient]:
    out = []
    for i in range(n):
        first, last, city = names[i % len(names)]
        local = first.lower().encode("ascii", "ignore").decode()
        out.append(Recipient(i + 1, f"{local}.{i}@example.com", f"{first} {last}",
                             {"first_name": first, "city": city,
                              "plan": ("free", "pro", "team")[i % 3]}))
    return out


def rate(label: str, fn: Callable[[Recipient], Any], people: list[Recipient],
         rounds: int = 5) -> float:
    """Best of ``rounds`` in CPU seconds of this process: other processes on the machine
    (this one is shared) stretch wall time, not the CPU time we use."""
    fn(people[0])  # warm caches
    chunk = max(len(people) // rounds, 1)
    best = float("inf")
    size = 0
    for i in range(rounds):
        batch = people[i * chunk:(i + 1) * chunk] or people[:chunk]
        start = time.process_time()
        size = sum(len(fn(person)) for person in batch)
        best = min(best, (time.process_time() - start) / len(batch))
    print(f"{label:<44} {1 / best:>9,.0f} msg/s  {best * 1e6:>7.0f} µs/msg"
          f"  {size / chunk / 1024:5.1f} KB")
    return 1 / best


def openssl_speed(algorithm: str) -> float | None:
    """Signatures per second by ``openssl speed`` on one core, or None if unavailable."""
    if shutil.which("openssl") is None:
        return None
    proc = subprocess.run(["openssl", "speed", "-seconds", "2", algorithm],
                          capture_output=True, text=True, check=False, timeout=120)
    out = proc.stdout
    if algorithm == "rsa2048":
        match = re.search(r"rsa\s+2048 bits\s+\S+\s+\S+\s+([\d.]+)", out)
    else:
        match = re.search(r"\(Ed25519\)\s+\S+\s+\S+\s+([\d.]+)", out)
    return float(match.group(1)) if match else None


def email_message_baseline(r: Renderer) -> Callable[[Recipient], bytes]:
    """The same personalization, with the stdlib building and serialising the message."""

    def build(person: Recipient) -> bytes:
        _, subject, html, text = r.render_parts(person)
        msg = EmailMessage()
        msg["From"] = f"{r.campaign.sender.name} <{r.campaign.sender.address}>"
        msg["To"] = f"{person.name} <{person.email}>"
        msg["Subject"] = subject
        msg["Date"] = format_datetime(r.clock())
        msg["Message-ID"] = make_msgid(domain=r.domain)
        msg["List-Unsubscribe"] = f"<{r.unsubscribe_url(person.subscriber_id)}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        return msg.as_bytes()

    return build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", "-n", type=int, default=3000)
    args = parser.parse_args()
    n = args.messages
    with tempfile.TemporaryDirectory() as tmp:
        root = workspace(Path(tmp))
        c = campaign()
        compiles = mjml_compile_count()
        start = time.perf_counter()
        plain = Renderer(c, root=root, sending=SENDING, secret=b"s" * 32, campaign_id=7,
                         signers=[])
        setup = time.perf_counter() - start
        rsa_signer = DkimSigner("example.com", "rsa",
                                rsa.generate_private_key(public_exponent=65537, key_size=2048))
        ed_signer = DkimSigner("example.com", "ed", ed25519.Ed25519PrivateKey.generate())
        with_rsa = Renderer(c, root=root, sending=SENDING, secret=b"s" * 32, campaign_id=7,
                            signers=[rsa_signer])
        with_ed = Renderer(c, root=root, sending=SENDING, secret=b"s" * 32, campaign_id=7,
                           signers=[ed_signer])
        dual = Renderer(c, root=root, sending=SENDING, secret=b"s" * 32, campaign_id=7,
                        signers=[rsa_signer, ed_signer])
        html_size = len(plain.html.render(plain.context(recipients(1, NAMES)[0])))
        print(f"newsletter: {html_size / 1024:.1f} KB of HTML after MJML; campaign setup "
              f"(MJML compile + Jinja compile) {setup * 1000:.1f} ms; {n} messages per row")
        people = recipients(n, NAMES)
        foreign = recipients(n, NON_ASCII)
        ours = rate("ours, no DKIM (ASCII recipients)", lambda p: plain.render(p).data, people)
        rate("ours, no DKIM (non-ASCII recipients)", lambda p: plain.render(p).data, foreign)
        ours_rsa = rate("ours, DKIM RSA-2048", lambda p: with_rsa.render(p).data, people)
        ours_ed = rate("ours, DKIM Ed25519", lambda p: with_ed.render(p).data, people)
        rate("ours, DKIM RSA-2048 + Ed25519", lambda p: dual.render(p).data, people)
        baseline = rate("EmailMessage + as_bytes(), no DKIM", email_message_baseline(plain),
                        people[: max(n // 4, 200)])
        print(f"MJML compilations for {4 * n + n // 4 + 2} rendered messages: "
              f"{mjml_compile_count() - compiles} (one per Renderer, i.e. per campaign)")
        openssl_rsa = openssl_speed("rsa2048")
        openssl_ed = openssl_speed("ed25519")
        print(f"ours / EmailMessage (no DKIM):                 {ours / baseline:5.1f}x")
        if openssl_rsa:
            print(f"openssl speed rsa2048 sign:      {openssl_rsa:>9,.0f} /s; ours with RSA DKIM "
                  f"= {ours_rsa / openssl_rsa:.2f} of it")
        if openssl_ed:
            print(f"openssl speed ed25519 sign:      {openssl_ed:>9,.0f} /s; ours with Ed25519 "
                  f"= {ours_ed / openssl_ed:.2f} of it")


if __name__ == "__main__":
    main()
