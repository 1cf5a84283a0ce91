"""One node of several: which node answered, the client behind the balancer, metrics, limits."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from webapp import create_app
from webapp.config import TestConfig
from webapp.extensions import db


@pytest.fixture
def make_app(app, database_url):
    """Apps with their own settings on the test database (`app` made its schema); their
    connections are closed after the test."""
    made = []

    def make(**overrides):
        app = create_app(TestConfig, {"SQLALCHEMY_DATABASE_URI": database_url, **overrides})
        made.append(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_every_answer_names_the_node_that_served_it(make_app):
    client = make_app(NODE_NAME="node-7").test_client()
    assert client.get("/healthz").headers["X-Served-By"] == "node-7"
    assert client.get("/no-such-page").headers["X-Served-By"] == "node-7"


def _remote_addr_seen(app, headers: dict) -> str:
    seen = []
    app.before_request(lambda: seen.append(__import__("flask").request.remote_addr))
    app.test_client().get("/healthz", headers=headers, environ_base={"REMOTE_ADDR": "10.9.9.9"})
    return seen[0]


def test_the_client_address_is_the_balancers_forward_only_for_trusted_hops(make_app):
    forwarded = {"X-Forwarded-For": "203.0.113.5"}
    # Behind one balancer: the address it forwarded is the client.
    assert _remote_addr_seen(make_app(TRUSTED_PROXY_HOPS=1), forwarded) == "203.0.113.5"
    # Reached directly: a client cannot choose its address with the header.
    assert _remote_addr_seen(make_app(TRUSTED_PROXY_HOPS=0), forwarded) == "10.9.9.9"
    # One hop trusted, two claimed: only the last (the balancer's own view) counts.
    two = {"X-Forwarded-For": "6.6.6.6, 203.0.113.5"}
    assert _remote_addr_seen(make_app(TRUSTED_PROXY_HOPS=1), two) == "203.0.113.5"


def test_metrics_answer_only_the_loopback_or_the_token(make_app):
    client = make_app().test_client()
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "192.0.2.1"}).status_code == 404
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1

    client = make_app(METRICS_TOKEN="s3cret").test_client()
    assert client.get("/metrics").status_code == 404  # loopback is not enough with a token
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 404
    right = client.get(
        "/metrics",
        headers={"Authorization": "Bearer s3cret"},
        environ_base={"REMOTE_ADDR": "192.0.2.1"},
    )
    assert right.status_code == 200
    assert right.headers["Cache-Control"] == "no-store"


def _value(text: str, name: str, **labels: str) -> float:
    """The sample of `name` with exactly these labels (in any order) in a scrape."""
    wanted = {f'{k}="{v}"' for k, v in labels.items()}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        series, value = line.rsplit(" ", 1)
        metric, _, rest = series.partition("{")
        if metric == name and set(filter(None, rest.rstrip("}").split(","))) == wanted:
            return float(value)
    raise AssertionError(f"{name} {labels} not in the metrics")


def test_requests_are_counted_by_route_not_by_path(app, client):
    before = client.get("/metrics").get_data(as_text=True)
    route = "/area-clienti/ordini/<int:order_id>"
    try:
        start = _value(
            before, "pecshop_http_requests_total", route=route, method="GET", status="303"
        )
    except AssertionError:
        start = 0.0
    for order_id in (1, 2, 3):  # three paths, one route: one series
        client.get(f"/area-clienti/ordini/{order_id}")
    client.get("/nothing-here-1")
    text = client.get("/metrics").get_data(as_text=True)
    assert (
        _value(text, "pecshop_http_requests_total", route=route, method="GET", status="303")
        == start + 3
    )
    assert "nothing-here" not in text
    assert (
        _value(text, "pecshop_http_requests_total", route="unmatched", method="GET", status="404")
        >= 1
    )


def test_business_gauges_read_the_database(app, db, client, create_customer, now):
    from webapp.outbox.models import OutboxEmail

    create_customer()
    db.session.add(
        OutboxEmail(
            to_addr="mario@example.it",
            subject="x",
            body_text="x",
            created_at=now - timedelta(hours=2),
            next_attempt_at=now,
        )
    )
    db.session.add(OutboxEmail(to_addr="b@example.it", subject="y", body_text="y", sent_at=now))
    db.session.commit()
    text = client.get("/metrics").get_data(as_text=True)
    assert _value(text, "pecshop_outbox_backlog") == 1
    assert _value(text, "pecshop_outbox_oldest_unsent_age_seconds") >= 7200
    assert _value(text, "pecshop_renewal_oldest_due_unclaimed_age_seconds") == 0
    assert _value(text, "pecshop_renewals", status="succeeded") == 0
    assert _value(text, "pecshop_duplicate_captures_refunded") == 0


@pytest.mark.parametrize("uri", ["redis://127.0.0.1:1/0"])
def test_login_limit_with_redis_down_falls_back_per_process_and_never_500(make_app, uri):
    """Redis unreachable: the login limit is counted in the process's memory, no 5xx."""
    app = make_app(
        RATELIMIT_ENABLED=True,
        RATELIMIT_STORAGE_URI=uri,
        RATELIMIT_STORAGE_OPTIONS={"socket_timeout": 0.2, "socket_connect_timeout": 0.2},
        LOGIN_RATE_LIMIT="3 per minute",
    )
    client = app.test_client()
    statuses = [
        client.post("/accedi", data={"email": "x@example.it", "password": "wrongwrong"}).status_code
        for _ in range(5)
    ]
    assert all(status < 500 for status in statuses), statuses
    assert statuses[:3].count(429) == 0
    assert statuses[3:] == [429, 429]


def test_redis_lost_after_the_fallback_is_one_warning_line_never_a_traceback(
    make_app, caplog, monkeypatch
):
    """Threaded workers: a request meets Redis down after another thread already switched the
    process to its memory. Flask-Limiter serves it and logs the swallowed error; the log says
    so in one warning line, with no traceback (which reads as a 500 to whoever watches it)."""
    from webapp.extensions import limiter

    app = make_app(
        RATELIMIT_ENABLED=True,
        RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0",
        RATELIMIT_STORAGE_OPTIONS={"socket_timeout": 0.2, "socket_connect_timeout": 0.2},
    )
    monkeypatch.setattr(limiter, "_storage_dead", False)  # the process used Redis until now
    redis_hit = limiter._limiter.hit

    def other_thread_fell_back_first(*args, **kwargs):
        monkeypatch.setattr(limiter, "_storage_dead", True)  # what the other thread did
        return redis_hit(*args, **kwargs)  # and this one's call to Redis is refused

    monkeypatch.setattr(limiter._limiter, "hit", other_thread_fell_back_first)
    caplog.set_level(logging.INFO)
    answer = app.test_client().post(
        "/accedi", data={"email": "x@example.it", "password": "wrongwrong"}
    )
    assert answer.status_code == 422  # the login form again, served without the limit
    swallowed = [r for r in caplog.records if "Swallowing error" in r.getMessage()]
    assert len(swallowed) == 1
    assert swallowed[0].levelno == logging.WARNING and swallowed[0].exc_info is None
    assert "rate limit storage unreachable (Error 111 connecting to" in swallowed[0].getMessage()
    assert "Traceback" not in caplog.text


def test_any_other_error_of_the_limiter_keeps_its_traceback(make_app, caplog):
    make_app()  # installs the filter on Flask-Limiter's logger
    try:
        raise ValueError("a bug, not an outage")
    except ValueError:
        logging.getLogger("flask-limiter").exception("Failed to rate limit. Swallowing error")
    (record,) = [r for r in caplog.records if r.name == "flask-limiter"]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert "Traceback" in caplog.text and "a bug, not an outage" in caplog.text
