"""The campaign definition: what a marketer writes in ``campaigns/*.yaml``.

Pure data with validation; reading the YAML file (and pointing at the line of
a mistake) is :mod:`dispatcher.campaigns.loader`'s job.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Sender(_Strict):
    name: str = ""
    address: str


class TemplateRef(_Strict):
    """Paths relative to the workspace: an ``.mjml`` or ``.html`` file and an optional text file."""

    html: str
    text: str | None = None


class Audience(_Strict):
    lists: list[str] = Field(min_length=1)
    where: str | None = None


class Campaign(_Strict):
    name: str = Field(min_length=1, max_length=200)
    sender: Sender = Field(alias="from")
    reply_to: str | None = None
    subject: str = Field(min_length=1)
    preheader: str = ""
    template: TemplateRef
    audience: Audience
    variables: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    relay: str | None = None

    @field_validator("template", mode="before")
    @classmethod
    def _template_shorthand(cls, value: Any) -> Any:
        # ``template: templates/x.mjml`` is the common case; the mapping form adds a text part.
        if isinstance(value, str):
            return {"html": value}
        return value

    @field_validator("sender", mode="before")
    @classmethod
    def _sender_shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"address": value}
        return value
