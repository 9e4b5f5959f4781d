"""Registration, login and logout, and how a cookie becomes a member."""

from __future__ import annotations

from contextlib import contextmanager

from flask import Blueprint, current_app, flash, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from limits import parse_many

from community import services
from community.forms import LoginForm, LogoutForm, RegisterForm
from community.identity import BadValue, split_contact
from community.models import User
from community.services import WrongPassword
from web.database import read_only
from web.errors import DomainError, TooManyAttempts, render_error
from web.extensions import db, limiter
from web.forms import form_error, render_form, safe_next_url
from web.logs import security_event

auth_blueprint = Blueprint("auth", __name__, url_prefix="/auth")


def configure_login(login_manager) -> None:
    login_manager.login_view = "auth.login"
    login_manager.login_message = None
    # "strong" would drop sessions when a phone changes network; the session version
    # check below is what ends stolen cookies.
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def load_user(token: str):
        user_id, _, version = token.partition(":")
        if not user_id.isdigit() or not version.isdigit():
            return None
        return services.load_user_for_session(int(user_id), int(version))

    @login_manager.unauthorized_handler
    def unauthorized():
        if request.method == "GET":
            flash(_("Please log in first."), "info")
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return render_error(401, _("Please log in first."))


def _account_key(contact: str) -> str:
    """Every way of writing one phone number or email counts against the same account."""
    try:
        phone, email = split_contact(contact)
    except BadValue:
        return contact.strip().casefold()[:254]
    return phone or email


def _failure_checks(account_key: str) -> list[tuple[str, str, str]]:
    """Failed password checks are counted per client address and per account: at login
    (by the typed name) and when a logged-in member confirms with their password (by
    their own), against the same counters. Shared storage (Redis) makes the count hold
    across processes."""
    config = current_app.config
    checks = [("login-ip", request.remote_addr or "?", config["LOGIN_LIMIT_PER_IP"])]
    if account_key:
        checks.append(("login-account", account_key, config["LOGIN_LIMIT_PER_ACCOUNT"]))
    return checks


def _limits_exceeded(account_key: str) -> bool:
    if not current_app.config["RATELIMIT_ENABLED"]:
        return False
    rate = limiter.limiter
    return any(
        not rate.test(item, scope, value)
        for scope, value, limits in _failure_checks(account_key)
        for item in parse_many(limits)
    )


def _count_failure(account_key: str) -> None:
    if not current_app.config["RATELIMIT_ENABLED"]:
        return
    rate = limiter.limiter
    for scope, value, limits in _failure_checks(account_key):
        for item in parse_many(limits):
            rate.hit(item, scope, value)


@contextmanager
def password_confirmation(user: User):
    """Around a service that checks a logged-in member's current password (changing it,
    deleting the account): refuses with 429 once this account or address has failed too
    often, and counts a wrong password, so that a stolen session cannot guess it."""
    key = _account_key(user.phone or user.email or f"user-{user.id}")
    if _limits_exceeded(key):
        security_event("password_check_limited", user_id=user.id)
        raise TooManyAttempts()
    try:
        yield
    except WrongPassword:
        _count_failure(key)
        raise


def start_session(user, remember: bool) -> None:
    # A fresh session at login: the old session id and CSRF secret die (fixation).
    language = session.get("language")
    session.clear()
    if language:
        session["language"] = language
    login_user(user, remember=remember)
    session.permanent = True


@auth_blueprint.route("/register", methods=["GET", "POST"])
def register():
    if current_user.is_authenticated:
        return redirect(url_for("community.home"))
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            from flask_babel import get_locale

            user = services.register(
                form.display_name.data,
                form.contact.data,
                form.password.data,
                cost=current_app.config["PASSWORD_COST"],
                locale=str(get_locale() or "zh"),
            )
        except DomainError as error:
            form.form_errors.append(str(error.message))
            return render_form("auth/register.html", form, status=error.status)
        db.session.commit()
        start_session(user, remember=False)
        flash(
            _(
                "Welcome, %(name)s! Find your community below and ask to join.",
                name=user.display_name,
            ),
            "success",
        )
        return redirect(url_for("community.browse"))
    return render_form("auth/register.html", form)


@auth_blueprint.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    if current_user.is_authenticated and request.method == "GET":
        return redirect(safe_next_url(form.next.data, url_for("community.home")))
    if form.validate_on_submit():
        contact = form.contact.data
        if _limits_exceeded(_account_key(contact)):
            security_event("login_locked_out")
            return form_error(form, TooManyAttempts(), "auth/login.html")
        cost = current_app.config["PASSWORD_COST"]
        try:
            with read_only():
                user_id = services.authenticate(contact, form.password.data, cost=cost).id
                db.session.rollback()  # end the read before taking the write lock
        except services.LoginFailed as error:
            db.session.rollback()
            _count_failure(_account_key(contact))
            form.form_errors.append(str(error.message))
            return render_form("auth/login.html", form, status=400)
        user = db.session.get(User, user_id)
        services.record_login(user, form.password.data, cost=cost)
        db.session.commit()
        start_session(user, remember=bool(form.remember.data))
        return redirect(safe_next_url(form.next.data, url_for("community.home")))
    return render_form("auth/login.html", form)


@auth_blueprint.post("/logout")
@login_required
def logout():
    form = LogoutForm()
    if not form.validate_on_submit():
        return render_error(400)
    user = current_user._get_current_object()
    services.end_all_sessions(user)
    db.session.commit()
    security_event("logout", user_id=user.id)
    # Clear first: logout_user() leaves the note that tells Flask-Login to delete the
    # remember-me cookie in the session.
    session.clear()
    logout_user()
    flash(_("You have logged out."), "info")
    return redirect(url_for("community.home"))
