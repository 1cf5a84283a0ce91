"""The bank's app factory: configuration sources, SQLite settings, public URL, headers."""

from sqlalchemy import text

from webapp.bank.extensions import db


def test_config_from_environment_then_dict(make_app, monkeypatch) -> None:
    monkeypatch.setenv("BANK_OTP_MAX_ATTEMPTS", "5")
    monkeypatch.setenv("BANK_MERCHANT_ID", "env-shop")
    monkeypatch.setenv("BANK_NOTIFY_ENABLED", "false")
    app = make_app(BANK_MERCHANT_ID="dict-shop")
    assert app.config["BANK_OTP_MAX_ATTEMPTS"] == 5
    assert app.config["BANK_MERCHANT_ID"] == "dict-shop"  # the dict wins over the environment
    assert "bank_notifier" not in app.extensions


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(app) -> None:
    with app.app_context():
        assert db.session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert db.session.execute(text("PRAGMA busy_timeout")).scalar() == 5000
        assert db.session.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_tables_are_created_on_start(app) -> None:
    with app.app_context():
        names = set(db.inspect(db.engine).get_table_names())
    assert {"bank_payment", "bank_card", "bank_charge", "bank_notification"} <= names


def test_public_url_for_the_hosted_page(make_app, api_for, payment_body) -> None:
    app = make_app(BANK_PUBLIC_URL="https://banca.example/")
    response = api_for(app).post("/api/payments", payment_body())
    pid = response.json["payment_id"]
    assert response.json["redirect_url"] == f"https://banca.example/pay/{pid}"


def test_pages_are_not_cached_static_files_are(client, create_payment) -> None:
    pid = create_payment()
    assert client.get(f"/pay/{pid}").headers["Cache-Control"] == "no-store"
    css = client.get("/static/bank.css")
    assert css.status_code == 200
    assert css.headers.get("Cache-Control") != "no-store"
    css.close()


def test_home_lists_every_test_card_with_its_outcome(client) -> None:
    from webapp.bank.cards import TEST_CARDS

    response = client.get("/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "4111 1111 1111 1111" in page
    assert "3782 822463 10005" in page  # American Express grouping
    assert page.count('<td class="mono">') == len(TEST_CARDS)
    assert "Fondi insufficienti" in page and "Carta scaduta" in page


def test_card_numbers_are_grouped_as_printed() -> None:
    from webapp.bank.cards import grouped

    assert grouped("5555555555554444") == "5555 5555 5555 4444"
    assert grouped("378282246310005") == "3782 822463 10005"
