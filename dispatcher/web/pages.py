"""The few HTML pages a subscriber sees: plain HTML, one small stylesheet, no JavaScript.

Readable on a phone (viewport meta, fluid width, large tap targets); every
value is escaped.
"""

from __future__ import annotations

from html import escape

_STYLE = (
    "body{font:17px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;"
    "background:#f4f4f5;color:#18181b}main{max-width:34rem;margin:0 auto;padding:1.5rem}"
    "h1{font-size:1.4rem}form{margin:1.25rem 0}button{font:inherit;width:100%;padding:.9rem;"
    "border:0;border-radius:.5rem;background:#b91c1c;color:#fff;cursor:pointer}"
    "button.secondary{background:#3f3f46}fieldset{border:1px solid #d4d4d8;border-radius:.5rem;"
    "padding:1rem}label{display:flex;gap:.6rem;align-items:center;padding:.4rem 0}"
    "input[type=checkbox]{width:1.3rem;height:1.3rem}p.small{font-size:.9rem;color:#52525b}"
)


def page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<meta name=\"robots\" content=\"noindex\">"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>\n"
    )


def mask(email: str) -> str:
    """``j***@example.com``: enough for the owner to recognise, little for anyone else."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def confirm(action: str, email: str, lists: list[tuple[int, str, bool]]) -> str:
    """The confirmation page: one button to leave everything, and a form to choose lists."""
    a = escape(action, quote=True)
    boxes = "".join(
        f'<label><input type="checkbox" name="keep" value="{lid}"'
        f'{" checked" if subscribed else ""}> {escape(name)}</label>'
        for lid, name, subscribed in lists)
    prefs = (
        f'<form method="post" action="{a}"><fieldset><legend>Or choose what you receive'
        f'</legend>{boxes}</fieldset><input type="hidden" name="action" value="preferences">'
        f'<p><button class="secondary" type="submit" name="save" value="1">Save my choices'
        f'</button></p></form>' if lists else "")
    return page("Unsubscribe", (
        f"<p>Stop sending newsletters to <strong>{escape(mask(email))}</strong>?</p>"
        f'<form method="post" action="{a}"><input type="hidden" name="action" value="all">'
        f'<button type="submit" name="confirm" value="1">Unsubscribe from everything</button>'
        f"</form>{prefs}"))


def done(message: str) -> str:
    return page("Done", f"<p>{escape(message)}</p>"
                        "<p class=\"small\">You can close this page.</p>")


INVALID = page("Link not valid", "<p>This link is not valid, or it has already been used.</p>"
                                 "<p class=\"small\">If you keep receiving mail you did not "
                                 "ask for, reply to it and tell us.</p>")
