"""Logging set up by the app factory: one line per request, plain text or JSON (LOG_FORMAT)."""

from __future__ import annotations

import json
import logging
import secrets
import time

from flask import Flask, Response, g, request

ACCESS_LOG = "webapp.access"


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


def configure_logging(app: Flask) -> None:
    """Root handler once per process (LOG_LEVEL, LOG_FORMAT=json|text) and the access line."""
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
    app.before_request(_start_timer)
    app.after_request(_log_request)


def _start_timer() -> None:
    g.request_started = time.perf_counter()
    g.request_id = request.headers.get("X-Request-ID", "")[:64] or secrets.token_hex(8)


def _log_request(response: Response) -> Response:
    started = g.get("request_started")
    if started is None:
        return response
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    response.headers.setdefault("X-Request-ID", g.request_id)
    logging.getLogger(ACCESS_LOG).info(
        "%s %s %s %.1fms [%s]",
        request.method,
        request.path,
        response.status_code,
        duration_ms,
        g.request_id,
        extra={
            "request_id": g.request_id,
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": duration_ms,
        },
    )
    return response
