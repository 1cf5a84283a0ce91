"""Production refuses default secrets; every response carries the security headers."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from webapp import create_app
from webapp.config import DEFAULT_SECRET_KEY, TestConfig


@pytest.mark.parametrize(
    "overrides",
    [
        {"SECRET_KEY": DEFAULT_SECRET_KEY, "BANK_SHARED_SECRET": "real-bank-secret"},
        {"SECRET_KEY": "real-secret", "BANK_SHARED_SECRET": "dev-bank-secret-change-me"},
    ],
)
def test_production_refuses_default_secrets(overrides):
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app(TestConfig, {"ENV_NAME": "production", **overrides})


def test_production_starts_with_real_secrets():
    app = create_app(
        TestConfig,
        {"ENV_NAME": "production", "SECRET_KEY": "x" * 32, "BANK_SHARED_SECRET": "y" * 32},
    )
    assert app.config["ENV_NAME"] == "production"


def test_security_headers(client):
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_pages_have_no_inline_script(client):
    """No inline JavaScript (the CSP allows none): scripts come from files; the only inline
    <script> is the catalogue's schema.org data block, which is JSON, never run."""
    import json
    import re

    page = client.get("/").text
    for attrs, body in re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S):
        if 'type="application/ld+json"' in attrs:
            assert json.loads(body)["@context"] == "https://schema.org"
            continue
        assert "src=" in attrs and not body.strip()


def _no_loading(environment, name):
    raise AssertionError(f"{name} was loaded and compiled during a request")


def test_templates_compiled_before_the_fork_serve_every_request(app, client, monkeypatch):
    """wsgi.py compiles every template in gunicorn's master: no worker compiles one inside a
    customer's request (the page, its fragment, the error page)."""
    from webapp import compile_templates

    count = compile_templates(app)
    assert count == len(app.jinja_env.list_templates()) > 100
    assert count <= app.jinja_env.cache.capacity  # all of them stay in the cache
    monkeypatch.setattr(app.jinja_env.loader, "get_source", _no_loading)
    assert "carrello" in client.get("/carrello").get_data(as_text=True).lower()
    assert client.get("/carrello", headers={"HX-Request": "true"}).status_code == 200
    assert client.get("/", headers={"HX-Request": "true"}).status_code == 200
    assert client.get("/pagina-che-non-esiste").status_code == 404


def test_wsgi_entry_point_compiles_the_templates():
    """What gunicorn imports holds every template compiled (in the master, before the fork)."""
    code = "import wsgi; env = wsgi.app.jinja_env; print(len(env.cache), len(env.list_templates()))"
    env = {**os.environ, "APP_ENV": "development", "DATABASE_URL": "sqlite://"}
    env["PYTHONPATH"] = str(Path(__file__).parents[2])
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=env["PYTHONPATH"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    cached, templates = map(int, done.stdout.split())
    assert cached == templates > 100
