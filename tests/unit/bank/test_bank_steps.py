"""Out-of-order and replayed posts on the hosted pages change nothing."""

from webapp.bank.extensions import db
from webapp.bank.models import Card, Notification, Payment

CARD_OTP = "4111 1111 1111 1111"
CARD_APP = "5555 5555 5555 4444"
CARD_FRICTIONLESS = "4242 4242 4242 4242"
CARD_DECLINED = "4000 0000 0000 0002"


def snapshot(app, pid: str) -> dict:
    with app.app_context():
        payment = db.session.get(Payment, pid)
        row = {c.name: getattr(payment, c.name) for c in Payment.__table__.columns}
        row["cards"] = db.session.query(Card).count()
        row["notifications"] = db.session.query(Notification).count()
        return row


def test_card_form_after_authorisation_shows_the_result(customer, create_payment, app, api):
    pid = create_payment(notify_url="http://shop.test/notifica")
    customer.pay(pid, CARD_FRICTIONLESS)
    before = snapshot(app, pid)
    response = customer.post(
        f"/pay/{pid}",
        {"holder": "X", "number": "4111111111111111", "exp_month": "1", "exp_year": "2031"}
        | {"cvv": "999"},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == f"/pay/{pid}/result"
    assert customer.get(f"/pay/{pid}").headers["Location"] == f"/pay/{pid}/result"
    assert customer.get(f"/pay/{pid}/edit").headers["Location"] == f"/pay/{pid}/result"
    assert snapshot(app, pid) == before


def test_invio_dati_twice_authorises_once(customer, create_payment, app, api) -> None:
    pid = create_payment(notify_url="http://shop.test/notifica")
    customer.pay(pid, CARD_FRICTIONLESS)
    before = snapshot(app, pid)
    assert before["cards"] == 1 and before["notifications"] == 1
    assert customer.confirm(pid).headers["Location"] == f"/pay/{pid}/result"
    assert snapshot(app, pid) == before
    assert api.get("/api/stats").json["payments_authorised"] == 1


def test_invio_dati_before_procedi_is_refused(customer, create_payment, app) -> None:
    pid = create_payment()
    customer.get(f"/pay/{pid}")
    before = snapshot(app, pid)
    response = customer.confirm(pid)
    assert response.status_code == 303 and response.headers["Location"] == f"/pay/{pid}"
    assert snapshot(app, pid) == before


def test_card_form_during_challenge_changes_nothing(customer, create_payment, app) -> None:
    pid = create_payment()
    customer.pay(pid, CARD_OTP)
    before = snapshot(app, pid)
    response = customer.post(f"/pay/{pid}", {"holder": "X", "number": CARD_FRICTIONLESS})
    assert response.status_code == 303
    assert customer.confirm(pid).status_code == 303
    assert snapshot(app, pid) == before
    assert "Codice OTP" in customer.get(f"/pay/{pid}").text


def test_otp_post_outside_an_sms_challenge(customer, create_payment, app) -> None:
    pid = create_payment()
    customer.pay(pid, CARD_APP)
    before = snapshot(app, pid)
    assert customer.post(f"/pay/{pid}/otp", {"otp": "123456"}).status_code == 303
    assert snapshot(app, pid) == before


def test_app_decision_only_once(customer, create_payment, app, api) -> None:
    pid = create_payment()
    customer.pay(pid, CARD_APP)
    customer.decide(pid, approve=False)
    before = snapshot(app, pid)
    assert "Hai rifiutato il pagamento." in customer.get(f"/app/{pid}").text
    response = customer.post(f"/app/{pid}/approve")
    assert response.status_code == 303
    assert snapshot(app, pid) == before
    assert api.get(f"/api/payments/{pid}").json["status"] == "failed"


def test_app_decision_for_a_non_app_payment(customer, create_payment, app) -> None:
    pid = create_payment()
    customer.pay(pid, CARD_OTP)
    before = snapshot(app, pid)
    customer.post(f"/app/{pid}/approve")
    assert snapshot(app, pid) == before
    assert "Nessuna richiesta da autorizzare." in customer.get(f"/app/{pid}").text


def test_result_before_the_end_goes_back_to_the_step(customer, create_payment) -> None:
    pid = create_payment()
    response = customer.get(f"/pay/{pid}/result")
    assert response.status_code == 303 and response.headers["Location"] == f"/pay/{pid}"


def test_declined_payment_cannot_be_retried(customer, create_payment, app) -> None:
    pid = create_payment()
    customer.pay(pid, CARD_DECLINED)
    before = snapshot(app, pid)
    customer.post(
        f"/pay/{pid}",
        {"holder": "X", "number": CARD_FRICTIONLESS, "exp_month": "1", "exp_year": "2031"}
        | {"cvv": "123"},
    )
    customer.confirm(pid)
    assert snapshot(app, pid) == before


def test_posts_without_csrf_token_are_refused(client, create_payment, app) -> None:
    pid = create_payment()
    client.get(f"/pay/{pid}")
    before = snapshot(app, pid)
    form = {"holder": "X", "number": CARD_FRICTIONLESS, "exp_month": "1", "exp_year": "2031"}
    response = client.post(f"/pay/{pid}", data=form | {"cvv": "123"})
    assert response.status_code == 400
    assert "La sessione è scaduta" in response.text
    assert snapshot(app, pid) == before


def test_session_cookie_is_not_the_shops(client, create_payment) -> None:
    pid = create_payment()
    response = client.get(f"/pay/{pid}")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("bank_session=")
