"""Logging set up by the app factory: one line per request, plain text or JSON (LOG_FORMAT)."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import Callable

from flask import Flask

ACCESS_LOG = "webapp.access"
LIMITER_LOG = "flask-limiter"
Observer = Callable[[dict, int, float], None]


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request fields when the record carries them."""

    FIELDS = ("request_id", "method", "path", "status", "duration_ms")

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: getattr(record, k) for k in self.FIELDS if hasattr(record, k)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(
    app: Flask, headers: tuple[tuple[str, str], ...] = (), observe: Observer | None = None
) -> None:
    """Root handler once per process (LOG_LEVEL, LOG_FORMAT=json|text) and the access line.

    The access line and the fixed response `headers` (security headers, added when the app did
    not set them) come from a WSGI wrapper around the app: plain lists, no request hooks.
    `observe(environ, status, seconds)`, when given, is told of every answered request (metrics).
    """
    root = logging.getLogger()
    if not any(getattr(h, "_webapp", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler._webapp = True  # so a second app in the same process adds no second handler
        if app.config.get("LOG_FORMAT") == "json":
            handler.setFormatter(JsonFormatter())
        else:
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
            )
        root.addHandler(handler)
        root.setLevel(app.config.get("LOG_LEVEL", "INFO"))
    # The access line below replaces werkzeug's own.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    limiter_log = logging.getLogger(LIMITER_LOG)
    if not any(isinstance(f, StorageOutage) for f in limiter_log.filters):
        limiter_log.addFilter(StorageOutage())
    app.wsgi_app = AccessLog(app.wsgi_app, headers, observe)


class StorageOutage(logging.Filter):
    """Flask-Limiter's swallowed errors when Redis does not answer: one warning line each.

    Under threaded workers a request can meet Redis down after another thread already switched
    the process to the in-memory fallback; Flask-Limiter then serves that one request without
    counting it and logs the connection error with its traceback. A Redis outage is an event of
    operations, not a bug of the shop: it is one warning line with the error's own words, and the
    traceback (which reads as a 500 to whoever watches the log) is left out. Any other error
    keeps its traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and _is_outage(error):
            record.msg = f"{record.getMessage()}: rate limit storage unreachable ({error})"
            record.args = None
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _is_outage(error: BaseException) -> bool:
    """Redis (or the socket under any storage) not answering: down, refused or too slow."""
    from redis.exceptions import ConnectionError as RedisDown
    from redis.exceptions import TimeoutError as RedisSlow

    return isinstance(error, (RedisDown, RedisSlow, ConnectionError, TimeoutError))


# Paths that carry a one-time token (a password reset, an address confirmation, a staff
# member's enrolment or reset link): the
# log keeps the route, never the token, which opens the account until it is used.
_SECRET_PATHS = re.compile(r"^(/password/nuova/|/conferma-email/|/backoffice/link/)(?!invia$)[^/]+")


def redact(path: str) -> str:
    """The path as the access log prints it: a link's token replaced by [redatto]."""
    return _SECRET_PATHS.sub(r"\1[redatto]", path)


class AccessLog:
    """WSGI wrapper: a request id (X-Request-ID), fixed headers, one access line per request."""

    def __init__(
        self, wsgi_app, headers: tuple[tuple[str, str], ...], observe: Observer | None = None
    ) -> None:
        self.wsgi_app = wsgi_app
        self.headers = headers
        self.observe = observe
        self.log = logging.getLogger(ACCESS_LOG)

    def __call__(self, environ: dict, start_response):
        started = time.perf_counter()
        request_id = environ.get("HTTP_X_REQUEST_ID", "")[:64] or secrets.token_hex(8)
        status = []

        def start(code: str, headers: list, exc_info=None):
            names = {name.lower() for name, _ in headers}
            headers.extend(h for h in self.headers if h[0].lower() not in names)
            if "x-request-id" not in names:
                headers.append(("X-Request-ID", request_id))
            status.append(code)
            # The matched URL rule, while the request is still there (Flask clears it after).
            request = environ.get("werkzeug.request")
            environ["webapp.url_rule"] = getattr(request, "url_rule", None)
            return start_response(code, headers, exc_info)

        body = self.wsgi_app(environ, start)
        if status and self.observe is not None:
            self.observe(environ, int(status[0][:3]), time.perf_counter() - started)
        if status and self.log.isEnabledFor(logging.INFO):
            self._line(environ, int(status[0][:3]), started, request_id)
        return body

    def _line(self, environ: dict, status: int, started: float, request_id: str) -> None:
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        method = environ.get("REQUEST_METHOD", "")
        # WSGI passes the path as latin-1 characters of its bytes: back to the UTF-8 text.
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
        path = redact(path)  # a one-time link's token is never logged
        self.log.info(
            "%s %s %s %.1fms [%s]",
            method,
            path,
            status,
            duration_ms,
            request_id,
            extra={
                "request_id": request_id,
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": duration_ms,
            },
        )
