"""Production refuses default secrets; every response carries the security headers."""

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
