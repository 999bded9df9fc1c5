"""``dispatcher campaign check`` and ``dispatcher preview``: see what would leave, send nothing."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Generator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import jinja2
import typer

from dispatcher.campaigns.loader import load_campaign
from dispatcher.commands.common import (
    EXIT_ERROR,
    State,
    campaign_path,
    console,
    errors,
    group,
    state,
)
from dispatcher.core.campaign import Campaign
from dispatcher.errors import DispatcherError, InputError, NotFoundError, TemplateError
from dispatcher.render import Recipient, Renderer
from dispatcher.smtp.relay import choose_relay
from dispatcher.store.audience import count, members, unused_names

PREVIEW_CAMPAIGN_ID = 0  # previews are not a send: their links carry no real campaign
_UNDEFINED = re.compile(r"^'([^']+)' is undefined$")
PLAIN: dict[str, Any] = {"highlight": False, "markup": False, "soft_wrap": True}
_MAX_MISSING = 20  # attributes looked for per recipient before giving up


def load_checked(ctx: typer.Context, file: Path) -> tuple[State, Campaign, Path, Renderer]:
    """The campaign, its template files checked and compiled (every variant)."""
    st = state(ctx)
    ws = st.workspace
    path = campaign_path(ws, file)
    campaign = load_campaign(path, root=ws.root)
    renderer = Renderer(campaign, root=ws.root, sending=ws.config.sending,
                        secret=st.store.secret(), campaign_id=PREVIEW_CAMPAIGN_ID)
    return st, campaign, path, renderer


@dataclass
class CheckReport:
    rendered: int = 0
    missing: Counter[str] = field(default_factory=Counter)
    first_missing: dict[str, str] = field(default_factory=dict)
    failures: Counter[str] = field(default_factory=Counter)
    first_failure: dict[str, str] = field(default_factory=dict)
    variants: Counter[str] = field(default_factory=Counter)
    no_unsubscribe_link: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.failures or self.no_unsubscribe_link)


def _undefined_name(exc: TemplateError) -> str | None:
    if isinstance(exc.__cause__, jinja2.UndefinedError):
        match = _UNDEFINED.match(exc.message)
        if match:
            return match.group(1)
    return None


def check_recipient(renderer: Renderer, recipient: Recipient, report: CheckReport) -> None:
    """Render once; for each missing attribute, note it and retry with a stand-in value,
    so one recipient's report lists every attribute they lack, not just the first."""
    attributes = dict(recipient.attributes)
    lacking: list[str] = []
    try:
        for _ in range(_MAX_MISSING):
            candidate = Recipient(recipient.subscriber_id, recipient.email, recipient.name,
                                  attributes)
            try:
                variant, _, html, text = renderer.render_parts(candidate)
            except TemplateError as exc:
                name = _undefined_name(exc)
                if name is None or name in attributes:
                    raise
                lacking.append(name)
                attributes[name] = ""
                continue
            if not lacking:
                renderer.render(candidate)  # header encoding, addresses, DKIM
            break
        else:
            raise TemplateError(f"more than {_MAX_MISSING} attributes are missing",
                                recipient=recipient.email)
    except DispatcherError as exc:
        report.failures[exc.message] += 1
        report.first_failure.setdefault(exc.message, str(exc))
        return
    for name in lacking:
        report.missing[name] += 1
        report.first_missing.setdefault(name, recipient.email)
    if lacking:
        return
    report.rendered += 1
    report.variants[variant] += 1
    link = renderer.unsubscribe_url(recipient.subscriber_id)
    if link not in html.replace("&amp;", "&") and link not in text:
        report.no_unsubscribe_link += 1


def check(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Campaign YAML file.", dir_okay=False)],
    sample: Annotated[int | None, typer.Option(
        "--sample", min=1, help="Render only the first N recipients.")] = None,
) -> None:
    """Validate a campaign and render it for every recipient (or a sample), sending nothing.

    Reports unknown keys, bad addresses, missing template files, template
    syntax errors, unknown lists, and which attributes are missing for how
    many recipients. Exits non-zero when anything would go wrong in a send.
    """
    st, campaign, path, renderer = load_checked(ctx, file)
    pool: list[str | None] = [*campaign.relay_pool] or [None]
    for name in pool:
        choose_relay(None, name, st.workspace.config.relays)  # a bad relay fails here, not at 9:00
    total = count(st.store, campaign.audience, path=str(path))
    report = CheckReport()
    for sid, email, name, attributes in members(st.store, campaign.audience, path=str(path),
                                                limit=sample):
        check_recipient(renderer, Recipient(sid, email, name, attributes), report)
    checked = min(total, sample) if sample else total
    console.print(f"{path}: campaign {campaign.name!r}: {total} recipient(s) in the audience, "
                  f"{checked} checked, {report.rendered} rendered", **PLAIN)
    signing = ", ".join(f"{s.algorithm} d={s.domain} s={s.selector}" for s in renderer.signers)
    console.print(f"DKIM: {signing or 'not configured (add [[sending.dkim]] keys)'}; tracking: "
                  f"opens {'on' if campaign.tracking.opens else 'off'}, clicks "
                  f"{'on' if campaign.tracking.clicks else 'off'}", **PLAIN)
    if campaign.ab_test:
        split = ", ".join(f"{v or 'winner'}: {n}" for v, n in sorted(report.variants.items()))
        console.print(f"A/B variants: {split}", **PLAIN)
    for attr, n in report.missing.most_common():
        errors.print(f"{path}: missing attribute {attr!r} for {n} recipient(s) (first: "
                     f"{report.first_missing[attr]}); add it to the list or use "
                     f"{{{{ {attr} | default('...') }}}}", **PLAIN)
    for key, n in report.failures.most_common():
        errors.print(f"{n} recipient(s): {report.first_failure.get(key, key)}",
                     **PLAIN)
    if report.no_unsubscribe_link:
        errors.print(f"{path}: {report.no_unsubscribe_link} message(s) have no visible "
                     "unsubscribe link: put {{ unsubscribe_url }} in the template",
                     **PLAIN)
    for name in unused_names(st.store, campaign.audience):
        errors.print(f"{path}: warning: no subscriber has the attribute {name!r} that "
                     f"audience.where uses", **PLAIN)
    if total == 0:
        errors.print(f"{path}: the audience is empty", **PLAIN)
    if not report.ok or total == 0:
        raise typer.Exit(EXIT_ERROR)


def _recipients(st: State, campaign: Campaign, path: Path, limit: int,
                subscriber: str | None) -> Generator[Recipient, None, None]:
    found = False
    rows = members(st.store, campaign.audience, path=str(path),
                   limit=None if subscriber else limit)
    with closing(rows):
        for sid, email, name, attributes in rows:
            if subscriber and email.lower() != subscriber.lower():
                continue
            found = True
            yield Recipient(sid, email, name, attributes)
            if subscriber:
                return
    if subscriber and not found:
        raise NotFoundError(f"{subscriber} is not in the campaign's audience", path=str(path))


def preview(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Campaign YAML file.", dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write into.",
                                      file_okay=False)] = Path("previews"),
    limit: Annotated[int, typer.Option("--limit", "-n", min=1,
                                       help="How many recipients.")] = 5,
    subscriber: Annotated[str | None, typer.Option(
        "--subscriber", "-s", help="Preview for this subscriber's email only.")] = None,
) -> None:
    """Write rendered messages for the first recipients as .eml and .html files."""
    st, campaign, path, renderer = load_checked(ctx, file)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot make the preview folder: {exc.strerror}", path=str(out)
                         ) from None
    written = failed = 0
    for number, recipient in enumerate(_recipients(st, campaign, path, limit, subscriber), 1):
        try:
            message = renderer.render(recipient)
            _, _, html, _ = renderer.render_parts(
                Recipient(recipient.subscriber_id, recipient.email, recipient.name,
                          recipient.attributes, message.variant))
        except DispatcherError as exc:
            # One recipient's missing attribute must not hide how the others look.
            errors.print(str(exc), **PLAIN)
            failed += 1
            continue
        stem = f"{number:03d}-{re.sub(r'[^A-Za-z0-9@._+-]', '_', recipient.email)}"
        try:
            (out / f"{stem}.eml").write_bytes(
                f"Return-Path: <{message.envelope_from}>\r\n".encode() + message.data)
            (out / f"{stem}.html").write_text(html, encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write previews: {exc.strerror}", path=str(out)) from None
        written += 1
    console.print(f"wrote {written} preview(s) to {out}/", **PLAIN)
    if failed:
        errors.print(f"{path}: {failed} recipient(s) could not be rendered", **PLAIN)
        raise typer.Exit(EXIT_ERROR)


def preview_attributes(st: State, campaign: Campaign, path: Path,
                       subscriber: str | None) -> dict[str, Any]:
    """Attributes to personalize a test message with: a named subscriber's, else the first's."""
    with closing(_recipients(st, campaign, path, 1, subscriber)) as found:
        for recipient in found:
            return {"name": recipient.name, **recipient.attributes}
    return {}


def register(app: typer.Typer) -> None:
    group(app, "campaign", "Check and manage campaigns.").command("check")(check)
    app.command("preview")(preview)
