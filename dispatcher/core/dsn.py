"""RFC 3464 delivery status notifications: the recipient fields of ``message/delivery-status``.

A DSN body is one block of per-message fields (Reporting-MTA, Arrival-Date
...) followed by one block per recipient (Final-Recipient, Action, Status,
Diagnostic-Code ...), blocks separated by blank lines (RFC 3464 §2.1). Real
reports bend this: some put everything in one block, some indent continuation
lines, some leave the Status at ``5.0.0`` while the Diagnostic-Code carries the
real ``5.1.1``; :func:`parse_delivery_status` copes with all of these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dispatcher.core.replies import parse_code, parse_status

_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)\s*:\s*(.*)$")
_VALID = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")
_ADDR_TYPE = re.compile(r"^\s*(?:rfc822|rfc-822|x-[\w-]+|utf-8)\s*;\s*", re.I)


@dataclass(frozen=True)
class DSNRecipient:
    """One recipient block of a DSN."""

    final_recipient: str
    original_recipient: str
    action: str
    status: str | None
    code: int | None
    diagnostic: str
    remote_mta: str


def _address(value: str) -> str:
    value = _ADDR_TYPE.sub("", value).strip().strip("<>").strip()
    # "rfc822; <a@b> (comment)" and stray quoting.
    value = value.split()[0] if value else ""
    return value.strip("<>;,\"'")


def _blocks(text: str) -> list[dict[str, str]]:
    """Field blocks, continuation lines unfolded, names lower-cased."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for raw in text.replace("\r\n", "\n").split("\n"):
        if not raw.strip():
            if current:
                blocks.append(current)
                current, last = {}, ""
            continue
        if raw[0] in " \t" and last:
            current[last] += " " + raw.strip()
            continue
        match = _FIELD.match(raw)
        if match is None:
            continue
        name = match.group(1).lower()
        if name in current and name in ("final-recipient", "original-recipient"):
            # A report that forgot the blank line between recipients.
            blocks.append(current)
            current = {}
        current[name] = match.group(2).strip()
        last = name
    if current:
        blocks.append(current)
    return blocks


def _best_status(field: str | None, diagnostic: str) -> str | None:
    """The Status field, unless it is a generic ``X.0.0`` and the diagnostic is more precise."""
    status = parse_status(field) if field else None
    from_diag = parse_status(diagnostic) if diagnostic else None
    if status is None:
        return from_diag
    if from_diag and status.endswith(".0.0") and from_diag[0] == status[0]:
        return from_diag
    return status


def parse_delivery_status(text: str) -> list[DSNRecipient]:
    """The recipient blocks of a ``message/delivery-status`` body (possibly empty)."""
    out: list[DSNRecipient] = []
    for block in _blocks(text):
        final = block.get("final-recipient") or block.get("x-actual-recipient") or ""
        original = block.get("original-recipient", "")
        if not final and not original:
            continue
        diagnostic = block.get("diagnostic-code", "")
        status_field = block.get("status", "")
        if not diagnostic and "(" in status_field:
            # "Status: 5.0.0 (recipient reached disk quota)": the comment is the reason.
            diagnostic = status_field[status_field.index("("):].strip("() ")
        diag_text = re.sub(r"^\s*(?:smtp|x-[\w-]+|x-unix)\s*;\s*", "", diagnostic, flags=re.I)
        final_addr, original_addr = _address(final), _address(original)
        if _VALID.fullmatch(original_addr):
            # RFC 3461 ORCPT: the address as the sender gave it, before any forwarding
            # (and instead of x400 names or "user@sims-ms-daemon").
            final_addr = original_addr
        out.append(DSNRecipient(
            final_recipient=final_addr or original_addr,
            original_recipient=_address(original) if original else "",
            action=block.get("action", "").split()[0].lower() if block.get("action") else "",
            status=_best_status(block.get("status"), diag_text),
            code=parse_code(diag_text) if diag_text else None,
            diagnostic=diag_text,
            remote_mta=re.sub(r"^\s*dns\s*;\s*", "", block.get("remote-mta", ""), flags=re.I),
        ))
    return out
