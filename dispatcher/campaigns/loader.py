"""Load ``campaigns/*.yaml`` into a :class:`~dispatcher.core.campaign.Campaign`."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from dispatcher.core.campaign import Campaign
from dispatcher.errors import CampaignError


def load_campaign(path: Path) -> Campaign:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CampaignError(f"cannot read campaign file: {exc.strerror}", path=str(path)) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise CampaignError(
            f"not valid YAML: {getattr(exc, 'problem', exc)}",
            path=str(path),
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from exc
    if not isinstance(data, dict):
        raise CampaignError("a campaign file must be a mapping of keys to values", path=str(path))
    try:
        return Campaign.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CampaignError(f"{where}: {first['msg']}", path=str(path)) from exc
