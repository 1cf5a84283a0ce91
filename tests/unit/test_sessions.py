"""The shop's session interface (webapp.sessions) keeps its signer between requests: the cookie
stays Flask's own, and a change of the secret is never answered with the signer of the old one."""

from __future__ import annotations

from flask import Flask, session
from flask.sessions import SecureCookieSessionInterface

from webapp.sessions import KeptSignerSessions


def _app(interface, secret: str = "first secret", vary: str | None = None) -> Flask:
    """A bare app with the interface; `vary`: a Vary header its views' answers already carry
    (as webapp.htmx writes one before the session is saved)."""
    app = Flask(__name__)
    app.secret_key = secret
    app.session_interface = interface

    if vary is not None:

        @app.after_request
        def varying(response):
            response.headers["Vary"] = vary
            return response

    @app.get("/set/<value>")
    def set_value(value: str):
        session["value"] = value
        return "ok"

    @app.get("/get")
    def get_value():
        return session.get("value", "none")

    @app.get("/untouched")
    def untouched():
        return "no session read"

    return app


def _cookie(app: Flask, value: str) -> str:
    client = app.test_client()
    client.get(f"/set/{value}")
    return client.get_cookie("session").value


def _read(app: Flask, cookie: str) -> str:
    client = app.test_client()
    client.set_cookie("session", cookie)
    return client.get("/get").get_data(as_text=True)


def test_cookies_are_flasks_own_both_ways():
    ours, flasks = _app(KeptSignerSessions()), _app(SecureCookieSessionInterface())
    assert _read(flasks, _cookie(ours, "from-ours")) == "from-ours"
    assert _read(ours, _cookie(flasks, "from-flask")) == "from-flask"
    assert _read(ours, _cookie(ours, "again")) == "again"  # the kept signer reads its own


def test_a_tampered_cookie_is_an_empty_session():
    ours = _app(KeptSignerSessions())
    cookie = _cookie(ours, "paid")
    assert _read(ours, cookie) == "paid"
    assert _read(ours, cookie[:-2] + ("AA" if cookie[-2:] != "AA" else "BB")) == "none"


def test_a_new_secret_is_not_answered_with_the_kept_signer():
    interface = KeptSignerSessions()
    app = _app(interface)
    old_cookie = _cookie(app, "before")
    assert _read(app, old_cookie) == "before"  # the signer for "first secret" is now kept

    app.secret_key = "second secret"  # rotated without a fallback: old sessions end
    assert _read(app, old_cookie) == "none"
    new_cookie = _cookie(app, "after")
    assert _read(app, new_cookie) == "after"
    assert _read(_app(SecureCookieSessionInterface(), "second secret"), new_cookie) == "after"

    app.config["SECRET_KEY_FALLBACKS"] = ["first secret"]  # rotated with the old key kept
    assert _read(app, old_cookie) == "before"
    assert _read(app, new_cookie) == "after"
    app.config["SECRET_KEY_FALLBACKS"] = None
    assert _read(app, old_cookie) == "none"


def test_vary_cookie_is_written_once_and_only_when_the_session_was_read():
    app = _app(KeptSignerSessions())
    client = app.test_client()
    client.get("/set/x")
    assert client.get("/get").headers.get_all("Vary") == ["Cookie"]
    assert "Vary" not in client.get("/untouched").headers

    htmx = _app(KeptSignerSessions(), vary="HX-Request, HX-Boosted").test_client()
    htmx.get("/set/x")
    assert htmx.get("/get").headers["Vary"] == "HX-Request, HX-Boosted, Cookie"
    assert htmx.get("/untouched").headers["Vary"] == "HX-Request, HX-Boosted"


def test_vary_cookie_is_not_repeated():
    app = _app(KeptSignerSessions(), vary="cookie")
    assert app.test_client().get("/get").headers["Vary"] == "cookie"


def test_the_shop_installs_it(app):
    assert isinstance(app.session_interface, KeptSignerSessions)
