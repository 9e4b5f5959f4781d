"""Domain errors and the one place that turns them (and HTTP errors) into pages.

Services raise these with a user-facing message; views never catch-and-ignore them."""

from __future__ import annotations

from flask import current_app, g, jsonify, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from web.extensions import db, htmx, login_manager
from web.logs import security_event


class DomainError(Exception):
    status = 400
    default_message = lazy_gettext("This request could not be completed.")
    headers: dict[str, str] = {}  # sent with the error's page (Retry-After, say)

    def __init__(self, message=None):
        self.message = message if message is not None else self.default_message
        super().__init__(str(self.message))


class InvalidInput(DomainError):
    status = 400
    default_message = lazy_gettext("Some of the information given is not valid.")


class PermissionDenied(DomainError):
    status = 403
    default_message = lazy_gettext("You do not have permission to do this.")


class NotFound(DomainError):
    status = 404
    default_message = lazy_gettext("We could not find that page.")


class Conflict(DomainError):
    status = 409
    default_message = lazy_gettext("This was changed by someone else in the meantime.")


class TooManyAttempts(DomainError):
    status = 429
    default_message = lazy_gettext("Too many attempts. Please wait a minute and try again.")
    headers = {"Retry-After": "60"}


TITLES = {
    400: lazy_gettext("Please check your request"),
    401: lazy_gettext("Please log in"),
    403: lazy_gettext("Not allowed"),
    404: lazy_gettext("Page not found"),
    405: lazy_gettext("Not allowed"),
    409: lazy_gettext("Already changed"),
    413: lazy_gettext("Too much data"),
    429: lazy_gettext("Too many attempts"),
    500: lazy_gettext("Something went wrong"),
    503: lazy_gettext("Busy, please try again"),
}

MESSAGES = {
    400: lazy_gettext("The request was not valid. Please go back and try again."),
    403: lazy_gettext("You do not have permission to see or do this."),
    404: lazy_gettext("We could not find that page. It may have moved, or the address is wrong."),
    405: lazy_gettext("This page cannot be used that way."),
    413: lazy_gettext("What you sent is too large. Please send less at a time."),
    429: lazy_gettext("Too many attempts. Please wait a minute and try again."),
    500: lazy_gettext("Something went wrong on our side. Please try again later."),
    503: lazy_gettext("The site is busy right now. Please try again in a few seconds."),
}


def render_error(status: int, message=None, headers: dict | None = None):
    title = TITLES.get(status, TITLES[400 if status < 500 else 500])
    message = message or MESSAGES.get(status, MESSAGES[400 if status < 500 else 500])
    if request.accept_mimetypes.best == "application/json" or request.path == "/healthz":
        response = jsonify(error=str(title), message=str(message), request_id=g.get("request_id"))
    else:
        template = "errors/_error.html" if htmx else "errors/error.html"
        response = current_app.make_response(
            render_template(template, status=status, title=title, message=message)
        )
    response.status_code = status
    if htmx and status >= 400:
        # Let htmx swap the message into the page's alert region instead of ignoring it.
        response.headers["HX-Retarget"] = "#alerts"
        response.headers["HX-Reswap"] = "innerHTML"
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _is_lock_timeout(error: Exception) -> bool:
    text = str(getattr(error, "orig", error)).lower()
    return "database is locked" in text or "database is busy" in text


def register_error_handlers(app) -> None:
    @app.errorhandler(DomainError)
    def _domain_error(error: DomainError):
        db.session.rollback()
        if error.status == 403:
            security_event("denied", path=request.path, reason=str(error.message))
        return render_error(error.status, error.message, error.headers)

    @app.errorhandler(CSRFError)
    def _csrf_error(error: CSRFError):
        security_event("csrf_failure", path=request.path, reason=error.description)
        return render_error(
            400, _("This form has expired or did not come from this site. Please try again.")
        )

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        headers = {}
        if error.code == 429:
            security_event("rate_limited", path=request.path)
            headers["Retry-After"] = "60"
        if error.code == 405 and error.response is None:
            valid = getattr(error, "valid_methods", None)
            if valid:
                headers["Allow"] = ", ".join(valid)
        return render_error(error.code or 500, None, headers)

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def _database_error(error: Exception):
        db.session.rollback()
        if "_login_user" not in g:
            # The page of the error must not query the database for the member again.
            g._login_user = login_manager.anonymous_user()
        if _is_lock_timeout(error) or getattr(error, "connection_invalidated", False):
            app.logger.warning("database unavailable: %s", type(error).__name__)
            return render_error(503, None, {"Retry-After": "5"})
        return _unexpected(error)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        db.session.rollback()
        app.logger.exception("unhandled error (request %s)", g.get("request_id"))
        return render_error(500)
