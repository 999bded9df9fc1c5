"""The one exception tree of dispatcher.

Every error the package raises on purpose derives from :class:`DispatcherError`,
and where a builtin means the same thing the error inherits it too (as
aiosmtplib does), so ``except ValueError`` keeps working for callers who do not
know our names::

    DispatcherError
    ├── ConfigError (ValueError)            dispatcher.toml, relay URLs, --options
    ├── InputError (ValueError)             a user file: path, line and column
    │   ├── CampaignError                   campaign YAML: unknown key, bad value
    │   ├── TemplateError                   MJML/Jinja: syntax, undefined variable
    │   └── ListFileError                   CSV: unreadable file, no email column
    ├── RecipientError (ValueError)         one recipient: bad address, hostile value
    ├── StoreError (RuntimeError)           database unreachable, schema too new
    │   └── NotFoundError (LookupError)     no such campaign / list / subscriber
    ├── DeliveryError (RuntimeError)        sending as a whole cannot go on
    │   └── SMTPError (ConnectionError)     one relay conversation failed
    │       ├── SMTPConnectError            could not connect / TLS handshake
    │       ├── SMTPTimeoutError (TimeoutError)
    │       ├── SMTPAuthError               AUTH refused
    │       └── SMTPReplyError              an unexpected reply; carries code/text
    └── FeedbackError (ValueError)          a bounce or unsubscribe we cannot use

Errors carry where they happened (``path``, ``line``, ``column``, ``recipient``)
and render as ``path:line:column: message`` so editors and terminals can jump
to the spot.
"""

from __future__ import annotations


class DispatcherError(Exception):
    """Root of every error dispatcher raises on purpose."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
        recipient: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.column = column
        self.recipient = recipient

    @property
    def location(self) -> str:
        """``path:line:column`` (as much of it as is known), or ``""``."""
        if self.path is None:
            return ""
        parts = [self.path]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def __str__(self) -> str:
        text = self.message
        if self.recipient is not None:
            text = f"{self.recipient}: {text}"
        location = self.location
        return f"{location}: {text}" if location else text


class ConfigError(DispatcherError, ValueError):
    """The workspace configuration, a relay URL or a command-line option is wrong."""


class InputError(DispatcherError, ValueError):
    """A file the user gave us cannot be used as it is."""


class CampaignError(InputError):
    """A campaign definition is invalid."""


class TemplateError(InputError):
    """A template does not compile or render."""


class ListFileError(InputError):
    """A subscriber file cannot be read at all (single bad rows are rejects, not errors)."""


class RecipientError(DispatcherError, ValueError):
    """One recipient cannot be mailed: invalid address or a value that would inject headers."""


class StoreError(DispatcherError, RuntimeError):
    """The store cannot be opened or used."""


class NotFoundError(StoreError, LookupError):
    """A named campaign, list or subscriber does not exist."""


class DeliveryError(DispatcherError, RuntimeError):
    """Sending cannot go on."""


class SMTPError(DeliveryError, ConnectionError):
    """A conversation with a relay failed."""

    def __init__(self, message: str, *, code: int | None = None, text: str = "", **kw: str) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.code = code
        self.text = text


class SMTPConnectError(SMTPError):
    """The relay could not be reached, or the TLS handshake failed."""


class SMTPTimeoutError(SMTPError, TimeoutError):
    """The relay did not answer within the phase's timeout."""


class SMTPAuthError(SMTPError):
    """The relay refused our credentials."""


class SMTPReplyError(SMTPError):
    """The relay answered a command with a reply we cannot go on from."""


class FeedbackError(DispatcherError, ValueError):
    """A returned message, complaint or unsubscribe request cannot be used."""
