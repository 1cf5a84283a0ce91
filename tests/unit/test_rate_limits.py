"""Login attempts are rate limited (Flask-Limiter); the limit answers 429 in Italian."""

from webapp import create_app
from webapp.config import TestConfig
from webapp.extensions import db


def test_login_is_rate_limited(database_url):
    app = create_app(
        TestConfig, {"SQLALCHEMY_DATABASE_URI": database_url, "RATELIMIT_ENABLED": True}
    )
    client = app.test_client()
    with app.app_context():
        db.create_all()  # alone on PostgreSQL the schema may not exist yet
        statuses = [
            client.post("/accedi", data={"email": "x@example.it", "password": "wrong"}).status_code
            for _ in range(11)
        ]
        last = client.post("/accedi", data={"email": "x@example.it", "password": "wrong"})
        db.session.remove()
        db.engine.dispose()  # close its pooled connection (a leaked one warns, as an error)
    assert statuses[:10] == [422] * 10
    assert statuses[10] == 429
    assert "Troppe richieste" in last.text
