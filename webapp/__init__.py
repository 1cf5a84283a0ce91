"""The shop: `create_app` builds it; the mock bank has its own factory in webapp.bank."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from flask import Flask, abort, flash, request, session, url_for
from flask_compress import Compress
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.exceptions import NotFound as HTTPNotFound
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from webapp import security
from webapp.assets import cache_static, static_url
from webapp.config import (
    DEFAULT_BANK_SECRET,
    DEFAULT_SDI_SECRET,
    DEFAULT_SECRET_KEY,
    DEV_ENVIRONMENTS,
    PROJECT_DIR,
    Config,
)
from webapp.dbtypes import MAX_ID
from webapp.errors import NotFound
from webapp.extensions import (
    babel,
    csrf,
    db,
    limiter,
    login_manager,
    mail,
    migrate,
    ping_idle_connections,
)
from webapp.health import bp as health_bp
from webapp.htmx import is_htmx, redirect_to
from webapp.i18n import lazy_gettext as _l
from webapp.logs import configure_logging
from webapp.security import content_security_policy
from webapp.sessions import KeptSignerSessions

# On every response unless the view set its own (added by the WSGI wrapper in webapp.logs),
# after the Content-Security-Policy (webapp.security: it names the configured bank).
SECURITY_HEADERS = (
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
)


def create_app(config: type[Config] = Config, overrides: Mapping | None = None) -> Flask:
    """Build the shop application from a Config class and optional overrides."""
    app = Flask(
        __name__,
        template_folder=str(PROJECT_DIR / "templates"),
        static_folder=str(PROJECT_DIR / "static"),
        instance_path=str(PROJECT_DIR / "instance"),
    )
    app.url_map.converters["int"] = IdConverter  # before any route is added
    app.config.from_object(config)
    app.config.update(overrides or {})
    app.session_interface = KeptSignerSessions()  # Flask's signed cookie, signer built once
    _refuse_default_secrets(app)
    (PROJECT_DIR / "instance").mkdir(exist_ok=True)

    from webapp.metrics import observe

    csp = content_security_policy(app.config.get("BANK_PUBLIC_URL") or app.config["BANK_API_URL"])
    # Every answer also says which node served it (several app servers behind one balancer).
    served_by = ("X-Served-By", app.config["NODE_NAME"])
    headers = (("Content-Security-Policy", csp), *SECURITY_HEADERS, served_by)
    configure_logging(app, headers, observe)
    _trust_proxies(app)
    register_extensions(app)
    register_subscribers()
    register_blueprints(app)
    _limit_only_decorated_views(app)  # after the blueprints: they may carry limits
    register_errorhandlers(app)
    register_commands(app)
    register_template_helpers(app)
    app.before_request(_refuse_nul_bytes)
    security.install(app)  # the body limits run first of all before_request hooks
    # after_request hooks run last-registered first: cache_static, then Flask-Compress.
    Compress(app)
    app.after_request(cache_static)
    return app


def compile_templates(app: Flask) -> int:
    """Compile every template into the app's Jinja cache now; returns how many.

    Called where gunicorn imports the app (`wsgi.py`) before it forks its workers
    (`preload_app`): each worker, and each one that replaces a recycled worker, starts with the
    templates compiled instead of compiling each on its first request (a few hundred ms of CPU
    for the customer area, paid inside someone's request)."""
    names = app.jinja_env.list_templates()
    for name in names:
        app.jinja_env.get_template(name)
    return len(names)


class IdConverter(IntegerConverter):
    """`<int:...>` ids: a number no id column can hold is simply not found (404), not a 500."""

    def __init__(self, url_map, *args, **kwargs) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(url_map, *args, **kwargs)


def _trust_proxies(app: Flask) -> None:
    """Behind TRUSTED_PROXY_HOPS balancers, the client is the address they forwarded.

    Rate limits key on the client's address: without this, behind HAProxy every customer would
    be the balancer's one address (and share one login limit). Only as many hops as are really
    in front are trusted, or a client could pick its own address with X-Forwarded-For.
    """
    hops = app.config["TRUSTED_PROXY_HOPS"]
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)


def _refuse_default_secrets(app: Flask) -> None:
    """The development secrets would let anyone forge sessions or bank results: outside an
    APP_ENV explicitly `development` or `testing` (unset is production) the app refuses them."""
    if app.config["ENV_NAME"] in DEV_ENVIRONMENTS:
        return
    weak = {"", None, DEFAULT_SECRET_KEY, DEFAULT_BANK_SECRET}
    if app.config["SECRET_KEY"] in weak or app.config["BANK_SHARED_SECRET"] in weak:
        raise RuntimeError(
            f"APP_ENV={app.config['ENV_NAME']!r}: set SECRET_KEY and BANK_SHARED_SECRET to real "
            "secrets (the development defaults are accepted only with APP_ENV=development or "
            "testing)."
        )
    if app.config["SDI_SHARED_SECRET"] in weak | {DEFAULT_SDI_SECRET}:
        raise RuntimeError(
            f"APP_ENV={app.config['ENV_NAME']!r}: set SDI_SHARED_SECRET (the intermediary's) too."
        )


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the scheduler and the web app write without "database is locked".
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()


def register_extensions(app: Flask) -> None:
    from webapp.invoicing.sdi_gateway import HttpSdiGateway
    from webapp.payments.gateway import HttpGateway

    db.init_app(app)
    with app.app_context():
        ping_idle_connections(db.engine, app.config["DB_PING_AFTER_IDLE_SECONDS"])
    migrate.init_app(app, db, directory=str(PROJECT_DIR / "migrations"), render_as_batch=True)
    login_manager.init_app(app)
    mail.init_app(app)
    csrf.init_app(app)
    babel.init_app(app)
    limiter.init_app(app)
    app.extensions.setdefault(
        "gateway",
        HttpGateway(
            api_url=app.config["BANK_API_URL"],
            merchant_id=app.config["BANK_MERCHANT_ID"],
            secret=app.config["BANK_SHARED_SECRET"],
            timeout=app.config["BANK_TIMEOUT_SECONDS"],
        ),
    )
    app.extensions.setdefault(
        "sdi_gateway",
        HttpSdiGateway(
            api_url=app.config["SDI_API_URL"],
            client_id=app.config["SDI_CLIENT_ID"],
            secret=app.config["SDI_SHARED_SECRET"],
            timeout=app.config["SDI_TIMEOUT_SECONDS"],
        ),
    )
    login_manager.login_view = "account.login"
    login_manager.login_message = _l("Accedi per continuare.")
    login_manager.login_message_category = "info"

    from webapp.shop.customers import load_session_customer

    # "id:version": a session from before the last "Esci" has an old version: logged out.
    login_manager.user_loader(load_session_customer)

    @login_manager.unauthorized_handler
    def unauthorized():
        # For htmx a redirect would land the login page inside a fragment.
        flash(str(login_manager.login_message), "info")
        return redirect_to(url_for("account.login", next=_login_next()))


def _limit_only_decorated_views(app: Flask) -> None:
    """Rate limits only where a view asks for one (`@limiter.limit`: the logins).

    Flask-Limiter checks every request in a before_request hook, for limits on all routes or on
    a blueprint; the shop sets none (no RATELIMIT_DEFAULT or RATELIMIT_APPLICATION, no blueprint
    limit), and a decorated view checks its own limits when it runs. So the hook is dropped,
    unless such a limit is set (or Flask-Limiter's internals are not the ones known here).
    """
    if app.config.get("RATELIMIT_DEFAULT") or app.config.get("RATELIMIT_APPLICATION"):
        return
    blueprint_limits = getattr(limiter.limit_manager, "_blueprint_limits", None)
    if blueprint_limits is None or blueprint_limits:
        return
    hooks = app.before_request_funcs.get(None, [])
    hooks[:] = [hook for hook in hooks if hook != limiter._check_request_limit]


def _login_next() -> str:
    """The local page to come back to after logging in (the login view refuses full URLs)."""
    if request.method == "GET" and not is_htmx():
        return request.full_path.rstrip("?")
    # htmx and form posts: the page the customer was on, not the URL of the fragment or action.
    source = request.headers.get("HX-Current-URL") if is_htmx() else request.referrer
    try:
        parts = urlsplit(source or "/")
    except ValueError:  # "http://[": a header no browser sends; the login needs no next then
        return "/"
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def register_subscribers() -> None:
    """Connect the receivers of the domain events (importing them connects them, once)."""
    import webapp.invoicing.subscribers
    import webapp.notify.subscribers
    import webapp.payments.refunds
    import webapp.renewals.activation
    import webapp.renewals.cancellation  # noqa: F401


def register_blueprints(app: Flask) -> None:
    from webapp.account.area import bp as area_bp
    from webapp.account.billing import bp as billing_bp
    from webapp.account.invoices import bp as invoices_bp
    from webapp.account.orders import bp as orders_bp
    from webapp.account.profile import bp as profile_bp
    from webapp.account.recovery import bp as recovery_bp
    from webapp.account.views import bp as account_bp
    from webapp.account.withdrawal import bp as withdrawal_bp
    from webapp.backoffice.views import bp as backoffice_bp
    from webapp.invoicing.webhook import bp as sdi_webhook_bp
    from webapp.legal import bp as legal_bp
    from webapp.metrics import bp as metrics_bp
    from webapp.payments.views import bp as payments_bp
    from webapp.payments.views import portal_bp
    from webapp.sandbox import register_sandbox
    from webapp.shop.views import bp as shop_bp

    app.register_blueprint(shop_bp)
    app.register_blueprint(account_bp)
    app.register_blueprint(recovery_bp)
    app.register_blueprint(profile_bp)
    app.register_blueprint(payments_bp)
    app.register_blueprint(portal_bp)
    app.register_blueprint(area_bp)
    app.register_blueprint(orders_bp)
    app.register_blueprint(withdrawal_bp)
    app.register_blueprint(backoffice_bp)
    app.register_blueprint(billing_bp)
    app.register_blueprint(invoices_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(legal_bp)
    app.register_blueprint(metrics_bp)
    register_sandbox(app)  # only when SANDBOX=1 with a token, never in production
    csrf.exempt(sdi_webhook_bp)  # signed by the intermediary, no browser session involved
    app.register_blueprint(sdi_webhook_bp)


def register_errorhandlers(app: Flask) -> None:
    from webapp.error_pages import render_error

    for code in (400, 403, 404, 405, 413, 422, 429, 500):
        app.register_error_handler(code, render_error)
    # A domain NotFound (another customer's order, an unknown card) is a 404, page or fragment.
    app.register_error_handler(NotFound, lambda error: render_error(HTTPNotFound()))


def register_commands(app: Flask) -> None:
    from webapp.cli import register

    register(app)


def register_template_helpers(app: Flask) -> None:
    from flask_wtf.csrf import generate_csrf

    from webapp.clock import format_day
    from webapp.i18n import every_years_label, years_label
    from webapp.money import format_eur

    app.jinja_env.filters["eur"] = format_eur
    app.jinja_env.filters["day"] = format_day
    app.jinja_env.filters["years_label"] = years_label
    app.jinja_env.filters["every_years_label"] = every_years_label
    _install_request_translations(app)
    # Fixed for the app's life: globals, not a context processor run for every template.
    app.jinja_env.globals.update(
        static_url=static_url,
        csrf_token=generate_csrf,
        has_area="area.overview" in app.view_functions,
        seller={
            key.removeprefix("SELLER_").lower(): value
            for key, value in app.config.items()
            if key.startswith("SELLER_")
        },
    )
    app.context_processor(_cart_badge)


def _cart_badge() -> dict:
    from flask_login import current_user

    from webapp.shop.cart import cart_count

    def count() -> int:
        try:
            customer_id = current_user.id if current_user.is_authenticated else None
            return cart_count(customer_id, session.get("cart_token"))
        except Exception:  # a broken database must not hide the real error page
            return 0

    return {"cart_count": _Lazy(count)}


def _install_request_translations(app: Flask) -> None:
    """Templates' gettext with the catalogue looked up once per template render, not at every
    `_()`: Flask-Babel finds the locale and catalogue again for each string (a fragment has a
    dozen), and the locale cannot change while a template renders."""
    from flask_babel import get_translations
    from jinja2 import pass_context

    def catalogue(context):
        found = getattr(context, "_webapp_translations", None)
        if found is None:
            found = context._webapp_translations = get_translations()
        return found

    app.jinja_env.install_gettext_callables(
        gettext=pass_context(lambda c, s: catalogue(c).ugettext(s)),
        ngettext=pass_context(lambda c, s, p, n: catalogue(c).ungettext(s, p, n)),
        newstyle=True,
        pgettext=pass_context(lambda c, x, s: catalogue(c).upgettext(x, s)),
        npgettext=pass_context(lambda c, x, s, p, n: catalogue(c).unpgettext(x, s, p, n)),
    )


class _Lazy:
    """A template value computed only if the template prints it (fragments mostly do not)."""

    def __init__(self, compute):
        self.compute = compute

    def __str__(self) -> str:
        return str(self.compute())

    __html__ = __str__


def _refuse_nul_bytes() -> None:
    """No field needs a NUL byte, and PostgreSQL can neither store nor compare one: 400."""
    # The query string only when there is one, the form only when a body was sent.
    sources = (request.args,) if request.query_string else ()
    if request.content_length or request.headers.get("Transfer-Encoding"):
        sources += (request.form,)
    for fields in sources:
        if any("\x00" in key or "\x00" in value for key, value in fields.items(multi=True)):
            abort(400)
