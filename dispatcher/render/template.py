"""Templates: MJML compiled once per campaign, Jinja2 applied per recipient.

Templates are user content, so Jinja runs sandboxed, and immutably: campaign
variables are shared by every recipient's context, so a template that could
``append`` to one would leak one recipient's data into the next message; ``StrictUndefined``
turns a missing attribute into an error naming the recipient instead of an
empty greeting (``{{ first_name | default('there') }}`` is the way to allow it).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import concat
from mjml import mjml2html

from dispatcher.errors import TemplateError
from dispatcher.render.wire import prepare_html

# Block tags leave no blank or space-only lines behind in HTML (where they would not
# show anyway): fewer bytes, and DKIM's relaxed canonicalization has nothing to fix.
_html_env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=True,
                                 trim_blocks=True, lstrip_blocks=True)
_text_env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
_compiles = [0]  # MJML compilations in this process, for the benchmark's proof of "once"


def _read(path: Path, shown: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError("template file not found", path=shown) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"cannot read the template: {exc}", path=shown) from exc


def compile_source(source: str, *, path: str, html: bool) -> jinja2.Template:
    env = _html_env if html else _text_env
    try:
        template = env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(exc.message or "syntax error", path=path, line=exc.lineno) from exc
    template.name = path  # so render errors can name the file
    return template


def check_syntax(source: str, *, path: str) -> None:
    """Jinja syntax errors at the line of the file as written (not of MJML's output)."""
    try:
        _text_env.parse(source)  # untrimmed: Jinja's line numbers match the file as written
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(exc.message or "syntax error", path=path, line=exc.lineno) from exc


def load_html(path: Path, *, shown: str | None = None) -> jinja2.Template:
    """The HTML template at ``path``: ``.mjml`` is compiled to HTML first, once.

    ``shown`` is the name errors use (the path as the campaign file wrote it).
    """
    name = shown or str(path)
    source = _read(path, name)
    check_syntax(source, path=name)
    if path.suffix.lower() == ".mjml":
        # Jinja tags survive MJML compilation in text and attributes, so the
        # expensive step happens once per campaign, not once per recipient.
        _compiles[0] += 1
        written = source
        try:
            source = mjml2html(source, include_loader=lambda inc: _read(path.parent / inc, inc))
        except TemplateError:
            raise
        except Exception as exc:  # the Rust engine raises plain exceptions with its message
            raise TemplateError(f"MJML error: {exc}", path=name) from exc
        check_mjml_elements(source, original=written, path=name)
    elif "preheader" not in source:
        source = add_preheader(source)
    return compile_source(prepare_html(source), path=name, html=True)


# The MJML engine copies an element it does not know (<mj-txt>, <mj-colum>) into the
# HTML as it is: every recipient would get a broken layout, so it is an error here.
_MJ_ELEMENT = re.compile(r"<(mj-[A-Za-z0-9-]+)")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
MJML_ELEMENTS = (
    "mj-head", "mj-body", "mj-attributes", "mj-all", "mj-class", "mj-breakpoint", "mj-font",
    "mj-style", "mj-title", "mj-preview", "mj-include", "mj-raw", "mj-wrapper", "mj-section",
    "mj-group", "mj-column", "mj-text", "mj-button", "mj-image", "mj-divider", "mj-spacer",
    "mj-table", "mj-social", "mj-social-element", "mj-navbar", "mj-navbar-link",
    "mj-accordion", "mj-accordion-element", "mj-accordion-title", "mj-accordion-text",
    "mj-carousel", "mj-carousel-image", "mj-hero",
)


def check_mjml_elements(compiled: str, *, original: str, path: str) -> None:
    """A :class:`TemplateError` at the line of an ``<mj-...>`` element MJML left uncompiled."""
    found = _MJ_ELEMENT.search(_HTML_COMMENT.sub("", compiled))
    if found is None:
        return
    tag = found.group(1)
    # Comments blanked out, line breaks kept, so the position is the one in the file.
    visible = _HTML_COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), original)
    at = visible.find(f"<{tag}")
    close = difflib.get_close_matches(tag, MJML_ELEMENTS, n=1)
    hint = f" (did you mean <{close[0]}>?)" if close else ""
    raise TemplateError(f"MJML error: unknown element <{tag}>{hint}", path=path,
                        line=original.count("\n", 0, at) + 1 if at >= 0 else None)


_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_PREHEADER = ('{% if preheader %}<div style="display:none;font-size:1px;line-height:1px;'
              'max-height:0;max-width:0;opacity:0;overflow:hidden">{{ preheader }}</div>'
              '{% endif %}')


def add_preheader(source: str) -> str:
    """A hidden preheader right after ``<body>`` of an HTML template that shows none.

    (MJML templates say where it goes with ``<mj-preview>``.)
    """
    match = _BODY_OPEN.search(source)
    at = match.end() if match else 0
    return source[:at] + _PREHEADER + source[at:]


def load_text(path: Path, *, shown: str | None = None) -> jinja2.Template:
    name = shown or str(path)
    return compile_source(_read(path, name), path=name, html=False)


def mjml_compile_count() -> int:
    """How many MJML compilations this process has done (the benchmark shows it is one)."""
    return _compiles[0]


def base_context() -> dict[str, Any]:
    """Jinja's globals (range, dict, namespace ...), to start each recipient's context from."""
    return dict(_html_env.globals)


def render(template: jinja2.Template, context: dict[str, Any], *, recipient: str) -> str:
    """Render with ``context`` used as it is (no copy: it is built fresh per recipient and
    already holds the globals, see :func:`base_context`)."""
    try:
        return concat(template.root_render_func(template.new_context(context, shared=True)))
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"{exc.message}", path=template.name, recipient=recipient) from exc
    except jinja2.TemplateError as exc:
        raise TemplateError(str(exc), path=template.name, recipient=recipient) from exc
    except (ArithmeticError, LookupError, TypeError, ValueError) as exc:
        # {{ 1 / n }}, {{ items[5] }}, {{ 'a' + n }} ... fail this recipient, not the send.
        raise TemplateError(f"{type(exc).__name__}: {exc}", path=template.name,
                            recipient=recipient) from exc
