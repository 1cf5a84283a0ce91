"""The OTP form is rate limited per client address, beyond the per-payment attempt limit."""

from webapp.bank.extensions import OTP_RATE_LIMIT

CARD_OTP = "4111111111111111"


def test_otp_posts_are_rate_limited(make_app, api):
    app = make_app(RATELIMIT_ENABLED=True, WTF_CSRF_ENABLED=False)
    client = app.test_client()
    limit = int(OTP_RATE_LIMIT.split()[0])
    statuses = [
        client.post("/pay/pay_missing/otp", data={"otp": "123456"}).status_code
        for _ in range(limit + 1)
    ]
    assert 429 not in statuses[:limit]
    assert statuses[-1] == 429
