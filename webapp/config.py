"""Configuration from the environment, in one place."""

from __future__ import annotations

import os
import socket
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
INSTANCE_DIR = PROJECT_DIR / "instance"
# Development defaults, refused at start-up unless APP_ENV is development or testing.
DEFAULT_SECRET_KEY = "dev-secret-key-change-me"  # nosec B105 # refused outside development
DEFAULT_BANK_SECRET = "dev-bank-secret-change-me"  # nosec B105 # refused outside development
DEFAULT_SDI_SECRET = "dev-sdi-secret-change-me"  # nosec B105 # refused outside development
#: The only APP_ENV values under which the development secrets and `flask seed-demo` are allowed.
DEV_ENVIRONMENTS = frozenset({"development", "testing"})


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    return default if raw is None else raw.strip().lower() in {"1", "true", "yes", "on"}


def _int_list(name: str, default: str) -> list[int]:
    return [int(x) for x in os.environ.get(name, default).split(",") if x.strip()]


class Config:
    """Settings read from environment variables, with development defaults."""

    # Unset means production: the development secrets are refused unless APP_ENV is
    # explicitly one of DEV_ENVIRONMENTS (`make run` sets development, the tests testing).
    ENV_NAME = os.environ.get("APP_ENV", "production").strip().lower() or "production"
    SECRET_KEY = os.environ.get("SECRET_KEY", DEFAULT_SECRET_KEY)
    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'shop.db'}"
    )
    # No ping on every checkout (a round trip per request on PostgreSQL): connections are
    # recycled after half an hour, and one idle for longer than DB_PING_AFTER_IDLE_SECONDS is
    # pinged first and replaced if dead (webapp.extensions.ping_idle_connections).
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_recycle": 1800}
    DB_PING_AFTER_IDLE_SECONDS = float(os.environ.get("DB_PING_AFTER_IDLE_SECONDS", "30"))

    # Where the shop is reachable from the browser and from the bank (for return/notify URLs).
    SHOP_BASE_URL = os.environ.get("SHOP_BASE_URL", "http://127.0.0.1:5000")
    # The bank's API as the shop server reaches it, and its shared secret.
    BANK_API_URL = os.environ.get("BANK_API_URL", "http://127.0.0.1:5001")
    # Where the customer's browser reaches the bank's hosted page, if not at BANK_API_URL (the
    # Content-Security-Policy's form-action allows it).
    BANK_PUBLIC_URL = os.environ.get("BANK_PUBLIC_URL", "")
    BANK_MERCHANT_ID = os.environ.get("BANK_MERCHANT_ID", "pec-shop")
    BANK_SHARED_SECRET = os.environ.get("BANK_SHARED_SECRET", DEFAULT_BANK_SECRET)
    BANK_TIMEOUT_SECONDS = float(os.environ.get("BANK_TIMEOUT_SECONDS", "10"))

    # The accredited intermediary that takes the invoices to the Sistema di Interscambio: its
    # API, the shop's credentials there, and its name as the back office shows it. `make run`
    # points them at the SdI · Sandbox (webapp.sdi); a real intermediary replaces it here.
    SDI_API_URL = os.environ.get("SDI_API_URL", "http://127.0.0.1:5002")
    SDI_CLIENT_ID = os.environ.get("SDI_CLIENT_ID", "pec-shop")
    SDI_SHARED_SECRET = os.environ.get("SDI_SHARED_SECRET", DEFAULT_SDI_SECRET)
    SDI_TIMEOUT_SECONDS = float(os.environ.get("SDI_TIMEOUT_SECONDS", "10"))
    SDI_INTERMEDIARY = os.environ.get("SDI_INTERMEDIARY", "SdI · Sandbox")

    MAIL_SERVER = os.environ.get("MAIL_SERVER", "127.0.0.1")
    MAIL_PORT = int(os.environ.get("MAIL_PORT", "8025"))
    MAIL_USE_TLS = _bool("MAIL_USE_TLS", False)
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME")
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD")
    MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER", "PEC Shop <noreply@pecshop.test>")
    MAIL_SUPPRESS_SEND = _bool("MAIL_SUPPRESS_SEND", False)
    # Send an e-mail right after the commit that queued it (the outbox job retries failures).
    MAIL_SEND_AFTER_COMMIT = _bool("MAIL_SEND_AFTER_COMMIT", True)
    # The password reset's e-mail leaves from a thread after the answer (its time tells nothing).
    MAIL_SEND_IN_BACKGROUND = _bool("MAIL_SEND_IN_BACKGROUND", True)

    VAT_RATE_PERCENT = 22

    # The seller, as invoices (FatturaPA CedentePrestatore) and the site footer name it.
    SELLER_NAME = os.environ.get("SELLER_NAME", "PEC Shop S.r.l.")
    SELLER_VAT_NUMBER = os.environ.get("SELLER_VAT_NUMBER", "01234560157")  # partita IVA
    SELLER_TAX_CODE = os.environ.get("SELLER_TAX_CODE", SELLER_VAT_NUMBER)
    SELLER_ADDRESS = os.environ.get("SELLER_ADDRESS", "Via Roma 1")  # via e numero civico
    SELLER_CAP = os.environ.get("SELLER_CAP", "20121")
    SELLER_CITY = os.environ.get("SELLER_CITY", "Milano")
    SELLER_PROVINCE = os.environ.get("SELLER_PROVINCE", "MI")
    SELLER_REA_OFFICE = os.environ.get("SELLER_REA_OFFICE", "MI")
    SELLER_REA_NUMBER = os.environ.get("SELLER_REA_NUMBER", "1234567")
    SELLER_REA = os.environ.get("SELLER_REA", f"{SELLER_REA_OFFICE}-{SELLER_REA_NUMBER}")
    SELLER_EMAIL = os.environ.get("SELLER_EMAIL", "amministrazione@pecshop.test")
    SELLER_PHONE = os.environ.get("SELLER_PHONE", "0212345678")
    SELLER_IBAN = os.environ.get("SELLER_IBAN", "IT60X0542811101000000123456")
    SELLER_REGIME_FISCALE = "RF01"  # regime ordinario
    # Renewals: window and retry days before expiry, reminder days, scheduler period.
    RENEWAL_WINDOW_DAYS = int(os.environ.get("RENEWAL_WINDOW_DAYS", "15"))
    RENEWAL_RETRY_DAYS = _int_list("RENEWAL_RETRY_DAYS", "10,5,1")
    RENEWAL_REMINDER_DAYS = int(os.environ.get("RENEWAL_REMINDER_DAYS", "30"))
    # Renewal by hand (issue 28): reminders to services without auto-renewal this many days
    # before expiry (0: the day itself), "In scadenza" from this many days before, and the
    # notice before a service in its grace window ceases.
    RENEWAL_DUE_REMINDER_DAYS = _int_list("RENEWAL_DUE_REMINDER_DAYS", "60,30,7,0")
    SERVICE_EXPIRING_DAYS = int(os.environ.get("SERVICE_EXPIRING_DAYS", "30"))
    CEASE_NOTICE_DAYS = int(os.environ.get("CEASE_NOTICE_DAYS", "7"))
    SCHEDULER_INTERVAL_MINUTES = float(os.environ.get("SCHEDULER_INTERVAL_MINUTES", "5"))
    # How long a worker's claim on a renewal lasts: a killed worker's rows wait this long.
    RENEWAL_CLAIM_SECONDS = int(os.environ.get("RENEWAL_CLAIM_SECONDS", "300"))
    # PostgreSQL: renewals claimed, recorded, charged and settled this many at a time (0: one by
    # one, as on SQLite), with this many requests to the bank at once (webapp.renewals.batch).
    RENEWAL_BATCH_SIZE = int(os.environ.get("RENEWAL_BATCH_SIZE", "500"))
    RENEWAL_BANK_THREADS = int(os.environ.get("RENEWAL_BANK_THREADS", "8"))

    PASSWORD_HASH_METHOD = "scrypt"  # nosec B105 # the name of a hash function

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", ENV_NAME not in DEV_ENVIRONMENTS)
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"  # like the session: not sent on cross-site posts
    # Staff sessions: 30 minutes idle (webapp.backoffice.blueprint) and this absolute lifetime.
    STAFF_SESSION_MAX_HOURS = float(os.environ.get("STAFF_SESSION_MAX_HOURS", "12"))
    # Wrong TOTP codes per account: the pending login ends after the first number, the account
    # locks (e-mail to its owner, audit row) after the second; one-time staff links live this long.
    STAFF_TOTP_PENDING_FAILURES = int(os.environ.get("STAFF_TOTP_PENDING_FAILURES", "5"))
    STAFF_TOTP_LOCK_FAILURES = int(os.environ.get("STAFF_TOTP_LOCK_FAILURES", "10"))
    STAFF_LINK_HOURS = float(os.environ.get("STAFF_LINK_HOURS", "24"))

    # Request bodies: the forms need a few kilobytes; the bank's notifications (signed, small)
    # far less, read before the signature is checked (webapp.limits). Larger: 413.
    MAX_CONTENT_LENGTH = int(os.environ.get("MAX_CONTENT_LENGTH", str(256 * 1024)))
    WEBHOOK_MAX_CONTENT_LENGTH = int(os.environ.get("WEBHOOK_MAX_CONTENT_LENGTH", str(16 * 1024)))
    # Lines in one cart (a real order has a handful).
    CART_MAX_LINES = int(os.environ.get("CART_MAX_LINES", "30"))
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session: pages stay open long
    # Rendered htmx fragments kept per process by what they show (webapp.htmx.render_cached);
    # 0 turns the cache off.
    FRAGMENT_CACHE_SIZE = int(os.environ.get("FRAGMENT_CACHE_SIZE", "1000"))

    RATELIMIT_ENABLED = _bool("RATELIMIT_ENABLED", True)
    # memory:// counts per process (make run: one process); several nodes share the counts in
    # Redis (RATELIMIT_STORAGE_URI=redis://host:6379/0). When Redis does not answer, each
    # process falls back to counting in its own memory until Redis is back (limits stay on, per
    # process, never a 500), asking Redis again at most every few seconds.
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "memory://")
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_SWALLOW_ERRORS = True  # should the fallback itself fail: no limit, never a 500
    RATELIMIT_STORAGE_OPTIONS = (
        {"socket_timeout": 0.3, "socket_connect_timeout": 0.3}
        if RATELIMIT_STORAGE_URI.startswith("redis")
        else {}
    )
    RATELIMIT_HEADERS_ENABLED = True
    # Login attempts per client address (make run raises it: the e2e suite logs in often).
    LOGIN_RATE_LIMIT = os.environ.get("LOGIN_RATE_LIMIT", "10 per minute")
    # Password dimenticata?: per client address, and per e-mail address asked (any address).
    RESET_RATE_LIMIT_IP = os.environ.get("RESET_RATE_LIMIT_IP", "20 per hour")
    RESET_RATE_LIMIT_ADDRESS = os.environ.get("RESET_RATE_LIMIT_ADDRESS", "3 per hour")
    # "Invia di nuovo" of the confirmation link, per client address.
    CONFIRM_RESEND_RATE_LIMIT = os.environ.get("CONFIRM_RESEND_RATE_LIMIT", "10 per hour")

    # Which node answered (the X-Served-By header), and how many reverse proxies in front of
    # the app are trusted for the client's address and scheme (X-Forwarded-For/-Proto): 0 when
    # the app is reached directly, 1 behind one balancer.
    NODE_NAME = os.environ.get("NODE_NAME") or socket.gethostname()
    TRUSTED_PROXY_HOPS = int(os.environ.get("TRUSTED_PROXY_HOPS", "0"))
    # /metrics: with a token, only `Authorization: Bearer <token>`; without, only from loopback.
    METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")

    # One line per request (method, path, status, duration, request id); json for log shippers.
    LOG_FORMAT = os.environ.get("LOG_FORMAT", "text")
    LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")

    # Responses compressed (brotli when the browser takes it, else gzip); static files are
    # linked with a content hash (static_url) and then cached for a year.
    COMPRESS_ALGORITHM = ["br", "gzip"]
    COMPRESS_MIMETYPES = [
        "text/html",
        "text/css",
        "text/plain",
        "text/javascript",
        "application/javascript",
        "application/json",
        "image/svg+xml",
    ]
    COMPRESS_MIN_SIZE = 500
    COMPRESS_BR_LEVEL = 5
    STATIC_IMMUTABLE_MAX_AGE = 31_536_000

    # The sandbox API for QA (webapp.sandbox: test clock, e-mails, order states): on only with
    # SANDBOX=1 and a SANDBOX_TOKEN (the bearer token), and never with APP_ENV=production.
    SANDBOX = _bool("SANDBOX", False)
    SANDBOX_TOKEN = os.environ.get("SANDBOX_TOKEN", "")

    BABEL_DEFAULT_LOCALE = "it"
    BABEL_DEFAULT_TIMEZONE = "Europe/Rome"


class TestConfig(Config):
    """Settings for the test suite: temporary database, no real mail, no rate limits."""

    TESTING = True
    ENV_NAME = "testing"
    SECRET_KEY = "test-secret"  # nosec B105 # the test suite's (ENV_NAME testing)
    SQLALCHEMY_DATABASE_URI = "sqlite://"
    WTF_CSRF_ENABLED = False
    MAIL_SUPPRESS_SEND = True
    MAIL_SEND_IN_BACKGROUND = False  # no thread outliving a test's database
    RATELIMIT_ENABLED = False
    BANK_SHARED_SECRET = "test-bank-secret"  # nosec B105 # the test suite's
    SDI_SHARED_SECRET = "test-sdi-secret"  # nosec B105 # the test suite's
    SERVER_NAME = None
    # Hashing strength is not under test; scrypt's cost would dominate the suite's time.
    PASSWORD_HASH_METHOD = "pbkdf2:sha256:1000"  # nosec B105 # a hash method, tests only
