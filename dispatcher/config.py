"""The workspace: a folder with ``campaigns/``, ``lists/``, ``templates/`` and ``dispatcher.toml``.

``dispatcher.toml`` is optional; every key has a default that works on a
fresh machine. The database URL is chosen by, first to last:
``--database``, ``DISPATCHER_DATABASE_URL``, ``database`` in the file, and
``sqlite:///dispatcher.db`` in the workspace.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dispatcher.errors import ConfigError

CONFIG_FILE = "dispatcher.toml"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SendingConfig(_Section):
    # Used for Message-ID, the VERP bounce address and the mailto unsubscribe.
    domain: str = "news.example.com"
    bounce_domain: str = ""
    verp_prefix: str = "bounces"
    # ``{token}`` is replaced by the recipient's signed unsubscribe token.
    unsubscribe_url: str = "https://news.example.com/unsubscribe/{token}"
    unsubscribe_mailto: str = ""
    list_id: str = ""

    @property
    def bounce_host(self) -> str:
        return self.bounce_domain or self.domain

    @property
    def mailto_address(self) -> str:
        return self.unsubscribe_mailto or f"unsubscribe@{self.bounce_host}"


class RelayConfig(_Section):
    url: str
    max_connections: int = Field(default=4, ge=1, le=500)
    max_messages_per_connection: int = Field(default=100, ge=1)


class WorkspaceConfig(_Section):
    database: str | None = None
    outbox: str = "outbox"
    sending: SendingConfig = Field(default_factory=SendingConfig)
    relays: dict[str, RelayConfig] = Field(default_factory=dict)


def expand_env(value: str, *, what: str) -> str:
    """Replace ``${NAME}`` with the environment variable NAME; a missing one is an error."""

    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(f"{what} refers to ${{{name}}}, which is not set in the environment")
        return os.environ[name]

    return _ENV_REF.sub(repl, value)


@dataclass(frozen=True)
class Workspace:
    root: Path
    config: WorkspaceConfig

    @classmethod
    def load(cls, root: Path | None = None) -> Workspace:
        root = (root or Path(os.environ.get("DISPATCHER_WORKSPACE", "."))).resolve()
        path = root / CONFIG_FILE
        data: dict[str, Any] = {}
        if path.exists():
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"not valid TOML: {exc}", path=str(path)) from exc
        try:
            config = WorkspaceConfig.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"{where}: {first['msg']}", path=str(path)) from exc
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
