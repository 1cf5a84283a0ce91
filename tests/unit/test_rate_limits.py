"""Login attempts are rate limited (Flask-Limiter); the limit answers 429 in Italian, with the
login form again (issue 26), and the back office has its own error pages."""

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
    assert last.status_code == 429
    assert "riprova tra un minuto" in last.text  # the login form again, not a dead end
    assert 'name="password"' in last.text and 'value="x@example.it"' in last.text
    assert "wrong" not in last.text  # never the password typed


def test_the_back_office_login_is_limited_and_shown_again(database_url):
    app = create_app(
        TestConfig, {"SQLALCHEMY_DATABASE_URI": database_url, "RATELIMIT_ENABLED": True}
    )
    client = app.test_client()
    with app.app_context():
        db.create_all()
        form = {"email": "staff@example.it", "password": "wrong"}
        for _ in range(10):
            client.post("/backoffice/accesso", data=form)
        last = client.post("/backoffice/accesso", data=form)
        db.session.remove()
        db.engine.dispose()
    assert last.status_code == 429
    assert "Accesso staff" in last.text and "riprova tra un minuto" in last.text
    assert 'value="staff@example.it"' in last.text


def test_the_back_office_has_its_own_404(client, db):
    from tests.unit.backoffice_world import make_staff, staff_session

    staff_session(client, make_staff())
    page = client.get("/backoffice/ordini/999999")
    assert page.status_code == 404
    assert "Torna al cruscotto" in page.text and "Registrati" not in page.text
    unknown = client.get("/backoffice/non-esiste")
    assert unknown.status_code == 404 and "Torna al cruscotto" in unknown.text
    assert "Registrati" in client.get("/non-esiste").text  # the shop's page, elsewhere
