"""The workspace: a folder with ``campaigns/``, ``lists/``, ``templates/`` and ``dispatcher.toml``.

``dispatcher.toml`` is optional; every key has a default that works on a
fresh machine. The database URL is chosen by, first to last:
``--database``, ``DISPATCHER_DATABASE_URL``, ``database`` in the file, and
``sqlite:///dispatcher.db`` in the workspace.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from dispatcher.core.schedule import SchedulerConfig
from dispatcher.errors import ConfigError

CONFIG_FILE = "dispatcher.toml"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DkimConfig(_Section):
    """One ``[[sending.dkim]]`` key; ``key_file`` is a PEM file, relative to the workspace."""

    domain: str
    selector: str
    key_file: str


class SendingConfig(_Section):
    # Used for Message-ID, the VERP bounce address and the mailto unsubscribe.
    domain: str = "news.example.com"
    bounce_domain: str = ""
    verp_prefix: str = "bounces"
    # ``{token}`` is replaced by the recipient's signed unsubscribe token.
    unsubscribe_url: str = "https://news.example.com/unsubscribe/{token}"
    unsubscribe_mailto: str = ""
    list_id: str = ""
    # Where tracked links and the open pixel point (default: unsubscribe_url's origin).
    tracking_url: str = ""
    dkim: list[DkimConfig] = Field(default_factory=list)

    @property
    def bounce_host(self) -> str:
        return self.bounce_domain or self.domain

    @property
    def mailto_address(self) -> str:
        return self.unsubscribe_mailto or f"unsubscribe@{self.bounce_host}"


_RELAY_SCHEMES = ("smtp", "smtps", "smtp+starttls")


class RelayConfig(_Section):
    url: str
    max_connections: int = Field(default=4, ge=1, le=500)
    max_messages_per_connection: int = Field(default=100, ge=1)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        # The shape only: ${NAME} is expanded when the relay is used, so a variable
        # set just for `send` does not stop `status`. smtp/relay.py checks the rest.
        if value in ("capture", "direct"):
            return value
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a URL: {exc}") from None
        if parts.scheme.lower() not in _RELAY_SCHEMES:
            raise ValueError(f"{value!r}: scheme must be smtp, smtp+starttls or smtps "
                             "(or the word 'capture' or 'direct')")
        if not parts.hostname:
            raise ValueError(f"{value!r} has no host")
        return value


class WorkspaceConfig(_Section):
    database: str | None = None
    outbox: str = "outbox"
    sending: SendingConfig = Field(default_factory=SendingConfig)
    relays: dict[str, RelayConfig] = Field(default_factory=dict)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)


def expand_env(value: str, *, what: str) -> str:
    """Replace ``${NAME}`` with the environment variable NAME; a missing one is an error."""

    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(f"{what} refers to ${{{name}}}, which is not set in the environment")
        return os.environ[name]

    return _ENV_REF.sub(repl, value)


def _describe(error: ErrorDetails, loc: tuple[str, ...]) -> str:
    keys = [p for p in loc if not p.isdigit()]  # [[sending.dkim]] entries by number
    dotted = ".".join(keys)
    if error["type"] in ("model_type", "dict_type"):
        return f"{dotted} must be a table: [{dotted}] followed by its keys"
    if error["type"] != "extra_forbidden":
        return f"{dotted}: {error['msg'].removeprefix('Value error, ')}"
    model: type[BaseModel] | None = WorkspaceConfig
    named = False  # the next key names an entry of a table of tables ([relays.NAME])
    for part in keys[:-1]:
        if named:
            named = False
            continue
        field = model.model_fields.get(part) if model else None
        annotation = field.annotation if field else None
        model = _model_in(annotation)
        named = typing.get_origin(annotation) is dict
    close = difflib.get_close_matches(keys[-1], list(model.model_fields) if model else [], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    section = f" in [{'.'.join(keys[:-1])}]" if len(keys) > 1 else ""
    return f"unknown key {keys[-1]!r}{section}{hint}"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The table model a field holds, directly or as the items of a list or dict."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _line_of(text: str, loc: tuple[str, ...]) -> int | None:
    """The line where the key at ``loc`` is written, as well as a plain reading can tell.

    tomllib keeps no positions, so look for the key's own line after the header
    of the deepest table it is in (``[relays.default]``, ``[[sending.dkim]]``).
    """
    lines = text.splitlines()
    keys = [p for p in loc if not p.isdigit()]
    start: int | None = None
    for depth in range(len(keys) - 1, 0, -1):
        dotted = r"\s*\.\s*".join(r'"?' + re.escape(k) + r'"?' for k in keys[:depth])
        header = re.compile(r"^\s*\[\[?\s*" + dotted + r"\s*\]\]?\s*(#.*)?$")
        start = next((i for i, line in enumerate(lines) if header.match(line)), None)
        if start is not None:
            break
    key = re.compile(r'^\s*"?' + re.escape(keys[-1]) + r'"?\s*[=.]') if keys else None
    for i in range(start or 0, len(lines)):
        if key is not None and key.match(lines[i]):
            return i + 1
    return None if start is None else start + 1


@dataclass(frozen=True)
class Workspace:
    root: Path
    config: WorkspaceConfig

    @classmethod
    def load(cls, root: Path | None = None) -> Workspace:
        root = (root or Path(os.environ.get("DISPATCHER_WORKSPACE", "."))).resolve()
        if not root.is_dir():
            # Said now: later it would surface as "cannot open the store" or a missing file.
            raise ConfigError("the workspace folder does not exist", path=str(root))
        path = root / CONFIG_FILE
        data: dict[str, Any] = {}
        text = ""
        if path.exists():
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise ConfigError(f"not UTF-8 text: {exc.reason} at byte {exc.start}",
                                  path=str(path)) from None
            except OSError as exc:
                raise ConfigError(f"cannot read: {exc.strerror}", path=str(path)) from None
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"not valid TOML: {exc}", path=str(path)) from exc
            except RecursionError:
                raise ConfigError("not valid TOML: nested too deeply", path=str(path)) from None
        try:
            config = WorkspaceConfig.model_validate(data)
        except ValidationError as exc:
            # An unknown key first: a typo'd key usually also explains a "missing" one.
            found = exc.errors()
            first = next((e for e in found if e["type"] == "extra_forbidden"), found[0])
            loc = tuple(str(p) for p in first["loc"])
            raise ConfigError(_describe(first, loc), path=str(path),
                              line=_line_of(text, loc)) from exc
        return cls(root=root, config=config)

    def path(self, relative: str | Path) -> Path:
        return self.root / relative

    def database_url(self, override: str | None = None) -> str:
        url = override or os.environ.get("DISPATCHER_DATABASE_URL") or self.config.database
        if not url:
            return f"sqlite:///{self.root / 'dispatcher.db'}"
        url = expand_env(url, what="the database URL")
        # A relative SQLite path means relative to the workspace, not to the shell's cwd.
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            return f"sqlite:///{self.root / url.removeprefix('sqlite:///')}"
        return url

    @property
    def outbox(self) -> Path:
        return self.root / self.config.outbox
