"""Yishi 议事 — the application factory. Only entry points import this module."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from flask import Flask, g, request
from flask_login import current_user
from werkzeug.middleware.proxy_fix import ProxyFix

from crypto import passwords
from web import database
from web.errors import register_error_handlers
from web.extensions import babel, csrf, db, htmx, limiter, login_manager, migrate
from web.i18n import (
    HTML_LANG,
    LANGUAGES,
    install_template_gettext,
    large_text_enabled,
    local_time,
    select_locale,
)
from web.logs import configure_logging, register_request_log
from web.metrics import health, register_metrics
from web.security import register_request_guards

ROOT = Path(__file__).resolve().parent


def _secret_key(instance_path: Path) -> str:
    """SECRET_KEY from the environment, else one generated once and kept in instance/."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    key_file = instance_path / "secret_key"
    if not key_file.exists():
        instance_path.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return key_file.read_text().strip()


def _default_config(app: Flask) -> dict:
    instance = Path(app.instance_path)
    production = os.environ.get("YISHI_ENV") == "production"
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{instance / 'yishi.db'}"
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]
    return {
        "SECRET_KEY": None,
        # The key that seals secrets at rest (round keys), else one derived from SECRET_KEY.
        "YISHI_KEY_FILE": os.environ.get("YISHI_KEY_FILE") or None,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "PRODUCTION": production,
        # How long a SQLite writer waits for another one before the request gets a 503.
        "SQLITE_BUSY_TIMEOUT_MS": database.SQLITE_BUSY_TIMEOUT_MS,
        "PASSWORD_COST": passwords.INTERACTIVE,
        # Flask-Limiter: memory by default; redis://127.0.0.1:6379 when several processes.
        "RATELIMIT_STORAGE_URI": os.environ.get("RATELIMIT_STORAGE_URI", "memory://"),
        "RATELIMIT_ENABLED": True,
        "RATELIMIT_HEADERS_ENABLED": False,
        "LOGIN_LIMIT_PER_IP": "20 per minute;100 per hour",
        "LOGIN_LIMIT_PER_ACCOUNT": "5 per minute;30 per hour",
        # Writing (proposals, comments, reports): people do not post faster than this.
        "WRITE_LIMIT_PER_MEMBER": "10 per minute;200 per day",
        "WRITE_LIMIT_PER_ADDRESS": "60 per minute",
        "TRUSTED_PROXIES": int(os.environ.get("TRUSTED_PROXIES", "0")),
        # /metrics: who may read it (addresses or CIDRs, after TRUSTED_PROXIES), and where
        # its counters live (default: the rate limiter's storage; Redis when several processes).
        "METRICS_ALLOWED": os.environ.get("METRICS_ALLOWED", "127.0.0.1,::1"),
        "METRICS_STORAGE_URI": os.environ.get("METRICS_STORAGE_URI"),
        "METRICS_KEY_PREFIX": os.environ.get("METRICS_KEY_PREFIX", "yishi:metrics"),
        # JSON-lines logs go to stderr, or stdout (`make serve-prod`).
        "LOG_STREAM": os.environ.get("YISHI_LOG_STREAM", "stderr"),
        "SESSION_COOKIE_NAME": "__Host-yishi" if production else "yishi_session",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "PERMANENT_SESSION_LIFETIME": 60 * 60 * 12,
        "REMEMBER_COOKIE_NAME": "__Host-yishi_remember" if production else "yishi_remember",
        "REMEMBER_COOKIE_DURATION": 60 * 60 * 24 * 30,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": production,
        "WTF_CSRF_TIME_LIMIT": 60 * 60 * 4,
        "WTF_CSRF_SSL_STRICT": True,
        # Bodies: the largest legitimate POST is a proposal with 6 photos of up to 8 MB.
        "MAX_CONTENT_LENGTH": 50 * 1024 * 1024,
        "UPLOAD_DIR": None,  # default: instance/uploads
        # E-mail copies of notifications: SMTP when MAIL_SERVER is set, else the log.
        "MAIL_SERVER": os.environ.get("MAIL_SERVER"),
        "MAIL_PORT": int(os.environ.get("MAIL_PORT", "587")),
        "MAIL_USE_TLS": os.environ.get("MAIL_USE_TLS", "1") != "0",
        "MAIL_USERNAME": os.environ.get("MAIL_USERNAME"),
        "MAIL_PASSWORD": os.environ.get("MAIL_PASSWORD"),
        "MAIL_FROM": os.environ.get("MAIL_FROM", "Yishi <no-reply@localhost>"),
        "SITE_URL": os.environ.get("SITE_URL", "http://127.0.0.1:5000"),
        "MAX_FORM_MEMORY_SIZE": 512 * 1024,
        "MAX_FORM_PARTS": 200,
        "BABEL_DEFAULT_LOCALE": "zh",
        "BABEL_DEFAULT_TIMEZONE": "Asia/Shanghai",
        "BABEL_TRANSLATION_DIRECTORIES": str(ROOT / "translations"),
        "DEMO_PASSWORDS_SHOWN": not production,
    }


def create_app(config: dict | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_path=os.environ.get("YISHI_INSTANCE_PATH") or str(ROOT / "instance"),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    app.config.update(_default_config(app))
    app.config.update(config or {})
    # Sweeps run in serving processes; tests switch them on where they need them.
    app.config.setdefault(
        "SCHEDULER_ENABLED", not app.testing and os.environ.get("YISHI_SCHEDULER") != "off"
    )
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(Path(app.instance_path))
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    busy_ms = app.config["SQLITE_BUSY_TIMEOUT_MS"]
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", database.engine_options(uri, busy_ms))
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)

    if app.config["TRUSTED_PROXIES"]:
        n = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)

    configure_logging(app)
    if not app.debug:
        app.logger.setLevel(logging.INFO)

    db.init_app(app)
    with app.app_context():
        database.install_sqlite_pragmas(db.engine, busy_ms)
        database.forget_connections_after_fork(db.engine)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    # Request ids and raw-input checks run before CSRF reads the form.
    register_request_guards(app)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    install_template_gettext(app)
    htmx.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)

    register_error_handlers(app)
    register_request_log(app)
    register_metrics(app)

    from ballots import cli as ballots_cli
    from ballots.views import blueprint as ballots_blueprint
    from community import cli as community_cli
    from community.audit_views import blueprint as audit_blueprint
    from community.auth import auth_blueprint, configure_login
    from community.privacy_views import blueprint as privacy_blueprint
    from community.views import blueprint as community_blueprint
    from deliberation.views import blueprint as deliberation_blueprint

    configure_login(login_manager)
    app.register_blueprint(auth_blueprint)
    app.register_blueprint(community_blueprint)
    app.register_blueprint(deliberation_blueprint)
    app.register_blueprint(ballots_blueprint)
    app.register_blueprint(audit_blueprint)
    app.register_blueprint(privacy_blueprint)
    community_cli.register(app)
    ballots_cli.register(app)

    @app.before_request
    def _remember_user_for_logs():
        if current_user.is_authenticated:
            g.user_id = current_user.id

    app.add_template_filter(local_time, "local_time")

    @app.context_processor
    def _layout_values():
        from flask_babel import get_locale

        locale = str(get_locale() or "zh")
        return {
            "languages": LANGUAGES,
            "current_language": locale,
            "html_lang": HTML_LANG.get(locale, locale),
            "large_text": large_text_enabled(),
            "request_path": request.full_path.rstrip("?") if request else "/",
        }

    @app.get("/healthz")
    def healthz():
        return health(app)

    import ballots.jobs  # noqa: F401  (registers its sweeps)
    import community.jobs  # noqa: F401  (registers its sweeps)
    import deliberation.jobs  # noqa: F401  (registers its sweeps)
    import deliberation.privacy  # noqa: F401  (reacts to deleted accounts)
    from web import scheduler

    scheduler.register_cli(app)
    if scheduler.is_serving_process():
        scheduler.start_scheduler(app)
    return app
