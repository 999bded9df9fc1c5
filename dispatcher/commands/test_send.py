"""``dispatcher test-send FILE --to ADDR...``: the real message, to seed addresses only.

Each seed gets one message per A/B variant, personalized with a real
subscriber's attributes (``--subscriber``, else the first of the audience),
through the relay a send would use. Nothing is queued or recorded.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import aiosmtplib
import typer

from dispatcher.commands.campaign import PLAIN, load_checked, preview_attributes
from dispatcher.commands.common import EXIT_UNDELIVERED, console, errors
from dispatcher.core.campaign import check_address
from dispatcher.errors import ConfigError, SMTPAuthError, SMTPConnectError
from dispatcher.render import Recipient, RenderedMessage
from dispatcher.smtp.relay import CAPTURE, RelayURL, choose_relay, open_relay


async def _send_all(relay: RelayURL, messages: list[RenderedMessage], helo: str
                    ) -> list[tuple[RenderedMessage, str | None]]:
    start_tls = {"required": True, "off": False}.get(relay.starttls)
    client = aiosmtplib.SMTP(
        hostname=relay.host, port=relay.port, use_tls=relay.implicit_tls, start_tls=start_tls,
        validate_certs=relay.verify_tls, timeout=relay.timeout, local_hostname=helo,
        username=relay.username, password=relay.password)
    results: list[tuple[RenderedMessage, str | None]] = []
    try:
        await client.connect()
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise SMTPAuthError(f"relay {relay.display} refused the login: {exc.code} "
                            f"{exc.message}", code=exc.code, text=exc.message) from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise SMTPConnectError(f"relay {relay.display}: cannot connect: {exc}") from None
    try:
        for message in messages:
            try:
                await client.sendmail(message.envelope_from, [message.recipient], message.data)
                results.append((message, None))
            except aiosmtplib.SMTPRecipientsRefused as exc:
                refused = exc.recipients[0]
                results.append((message, f"{refused.code} {refused.message}"))
            except aiosmtplib.SMTPResponseException as exc:
                results.append((message, f"{exc.code} {exc.message}"))
            except (aiosmtplib.SMTPException, OSError) as exc:
                # The connection is gone: this seed and the ones after it were not sent.
                results += [(m, f"connection lost: {exc}") for m in messages[len(results):]]
                break
    finally:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            client.close()
    return results


def test_send(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Campaign YAML file.", dir_okay=False)],
    to: Annotated[list[str], typer.Option("--to", "-t", help="Seed address (repeatable).")],
    subscriber: Annotated[str | None, typer.Option(
        "--subscriber", "-s", help="Personalize as this subscriber (default: the first).")
    ] = None,
    relay: Annotated[str | None, typer.Option(
        "--relay", "-r", help="Relay URL or name (default: the campaign's, as send uses).")
    ] = None,
) -> None:
    """Send the campaign's message to seed addresses, one per A/B variant."""
    seeds = []
    for address in to:
        try:
            seeds.append(check_address(address))
        except ValueError as exc:
            raise ConfigError(f"--to: {exc}") from None
    st, campaign, path, renderer = load_checked(ctx, file)
    ws = st.workspace
    attributes = preview_attributes(st, campaign, path, subscriber)
    name = str(attributes.pop("name", ""))
    variants = [v.name for v in campaign.ab_test.variants] if campaign.ab_test else [""]
    messages = [renderer.render(Recipient(0, seed, name, attributes, variant))
                for seed in seeds for variant in variants]
    choice = choose_relay(relay, campaign.relay or (campaign.relays[0] if campaign.relays
                                                    else None), ws.config.relays)
    with open_relay(choice, ws.outbox) as url:
        results = asyncio.run(_send_all(url, messages, ws.config.sending.domain))
    failed = 0
    for message, problem in results:
        label = f" (variant {message.variant})" if message.variant else ""
        if problem is None:
            console.print(f"sent to {message.recipient}{label}", **PLAIN)
        else:
            failed += 1
            errors.print(f"{message.recipient}{label}: refused: {problem}", **PLAIN)
    if choice.spec == CAPTURE:
        console.print(f"messages are in {ws.outbox}/", **PLAIN)
    if failed:
        raise typer.Exit(EXIT_UNDELIVERED)


def register(app: typer.Typer) -> None:
    app.command("test-send")(test_send)
