"""Languages: Simplified Chinese and English. The choice is remembered (a cookie, and the
member's profile when logged in); otherwise it follows the browser."""

from __future__ import annotations

from flask import g, has_request_context, request
from flask_babel import get_translations
from flask_login import current_user

LANGUAGES = {"zh": "中文", "en": "English"}
HTML_LANG = {"zh": "zh-Hans", "en": "en"}
LANGUAGE_COOKIE = "yishi_lang"
TEXT_SIZE_COOKIE = "yishi_text"


def select_locale() -> str:
    if not has_request_context():
        return "zh"
    if current_user and current_user.is_authenticated and current_user.locale in LANGUAGES:
        return current_user.locale
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(list(LANGUAGES), default="zh") or "zh"


def large_text_enabled() -> bool:
    if not has_request_context():
        return False
    if current_user and current_user.is_authenticated:
        return bool(current_user.large_text)
    return request.cookies.get(TEXT_SIZE_COOKIE) == "large"


def local_time(moment, zone: str | None = None, style: str = "medium", date_only: bool = False):
    """A UTC moment shown in a community's time zone, in the reader's language."""
    from zoneinfo import ZoneInfo

    from babel.dates import format_date, format_datetime
    from flask_babel import get_locale

    if moment is None:
        return ""
    tz = ZoneInfo(zone or "Asia/Shanghai")
    locale = get_locale() or "zh"
    if date_only:
        return format_date(moment.astimezone(tz).date(), style, locale=locale)
    return format_datetime(moment, style, tzinfo=tz, locale=locale)


def _translations():
    """The translations of the context's locale, looked up once per context and locale.

    Flask-Babel resolves them again on every call (several context lookups, about 30 µs),
    and a page with a long discussion translates several hundred strings. Its state for
    the context lives in `g._flask_babel`; `babel_locale` is set once the locale has been
    resolved, and replaced inside `force_locale`, so the cache is keyed on it."""
    state = g.get("_flask_babel") if g else None  # no context: Flask-Babel's default
    locale = getattr(state, "babel_locale", None)
    if locale is None:
        return get_translations()
    cached = getattr(state, "yishi_translations", None)
    if cached is None or cached[0] is not locale:
        cached = state.yishi_translations = (locale, get_translations())
    return cached[1]


def install_template_gettext(app) -> None:
    """Jinja's {% trans %} and _() through `_translations` (after babel.init_app, which
    installs the uncached ones)."""
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: _translations().ugettext(s),
        ngettext=lambda s, p, n: _translations().ungettext(s, p, n),
        newstyle=True,
        pgettext=lambda c, s: _translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: _translations().unpgettext(c, s, p, n),
    )
