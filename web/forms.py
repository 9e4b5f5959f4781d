"""Form helpers shared by every package."""

from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit

from flask import render_template
from flask_babel import lazy_gettext as _l
from wtforms.fields.choices import SelectChoice
from wtforms.validators import ValidationError


def render_form(template: str, form, status: int | None = None, **context):
    """Render a form page: 200 when shown fresh, 400 when it comes back with errors."""
    if status is None:
        status = 400 if form.errors else 200
    return render_template(template, form=form, **context), status


def form_error(form, error, template: str, **context):
    """Show a form again with a domain error's message, with the error's 4xx status."""
    form.form_errors.append(str(error.message))
    body, status = render_form(template, form, status=error.status, **context)
    return body, status, error.headers


def options(pairs) -> list[SelectChoice]:
    """Choices for SelectField/RadioField from (value, label) pairs."""
    return [SelectChoice(str(value), label) for value, label in pairs]


class PlainText:
    """Refuses control and invisible format characters (bidi overrides, zero-width)."""

    def __init__(self, allow_newlines: bool = False):
        self.allow_newlines = allow_newlines

    def __call__(self, form, field):
        value = field.data or ""
        for ch in value:
            if self.allow_newlines and ch in "\r\n\t":
                continue
            if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
                raise ValidationError(_l("Please remove invisible or control characters."))


def safe_next_url(target: str | None, default: str) -> str:
    """Only same-site relative paths are followed after login and similar redirects."""
    if not target:
        return default
    target = target.strip()
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    if any(ord(ch) < 0x20 for ch in target):
        return default
    return target
