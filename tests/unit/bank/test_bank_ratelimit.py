"""The code form is limited per payment; the per-address limit is loose (shared NATs)."""

from webapp.bank.extensions import OTP_RATE_LIMIT_PER_IP, OTP_RATE_LIMIT_PER_PAYMENT
from webapp.bank.models import Payment

CARD_OTP = "4111111111111111"


def _limit(rule: str) -> int:
    return int(rule.split()[0])


def test_per_payment_limit_is_tight_and_per_address_limit_loose() -> None:
    assert _limit(OTP_RATE_LIMIT_PER_PAYMENT) <= 10
    assert _limit(OTP_RATE_LIMIT_PER_IP) >= 10 * _limit(OTP_RATE_LIMIT_PER_PAYMENT)


def test_one_hammered_payment_does_not_block_another_from_the_same_address(make_app) -> None:
    app = make_app(RATELIMIT_ENABLED=True, WTF_CSRF_ENABLED=False)
    client = app.test_client()
    limit = _limit(OTP_RATE_LIMIT_PER_PAYMENT)
    statuses = [
        client.post("/pay/pay_one/otp", data={"otp": "123456"}).status_code
        for _ in range(limit + 1)
    ]
    assert 429 not in statuses[:limit]
    assert statuses[-1] == 429
    # Same address, another payment: not limited (404: it does not exist, but it was served).
    assert client.post("/pay/pay_two/otp", data={"otp": "123456"}).status_code == 404


def test_per_address_limit_still_exists(make_app) -> None:
    app = make_app(RATELIMIT_ENABLED=True, WTF_CSRF_ENABLED=False)
    client = app.test_client()
    limit = _limit(OTP_RATE_LIMIT_PER_IP)
    statuses = [
        client.post(f"/pay/pay_{i}/otp", data={"otp": "123456"}).status_code
        for i in range(limit + 1)
    ]
    assert 429 not in statuses[:limit]
    assert statuses[-1] == 429


def test_wrong_codes_count_per_payment_from_one_address(make_app, customer_factory) -> None:
    """Two customers behind one address: each payment has its own three attempts."""
    app = make_app(RATELIMIT_ENABLED=True)
    customer, create = customer_factory(app)
    first, second = create(idempotency_key="k1"), create(idempotency_key="k2", order_ref="O2")
    for pid in (first, second):
        customer.pay(pid, CARD_OTP)
    right = {pid: customer.otp_code(pid) for pid in (first, second)}
    wrong = {pid: f"{(int(code) + 1) % 1_000_000:06d}" for pid, code in right.items()}
    for _ in range(2):  # interleaved: two wrong codes each
        for pid in (first, second):
            response = customer.send_otp(pid, wrong[pid])
            assert response.status_code == 422
            assert "Codice errato" in response.text
    third = customer.send_otp(first, wrong[first])
    assert third.status_code == 303  # the third wrong code fails 3-D Secure for this payment
    assert customer.send_otp(second, right[second]).status_code == 303
    with app.app_context():
        from webapp.bank.extensions import db

        assert db.session.get(Payment, first).status == "failed"
        assert db.session.get(Payment, first).decline_code == "authentication_failed"
        assert db.session.get(Payment, second).status == "authorised"
