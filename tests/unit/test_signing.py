"""The HMAC wire protocol between shop and bank."""

import pytest

from webapp import signing

SECRET = "s3cret"


def _headers(body=b'{"a":1}', ts=1_000_000, secret=SECRET, path="/api/payments"):
    return signing.sign_request(secret, "pec-shop", "POST", path, body, ts)


def test_request_signature_round_trip():
    signing.verify_request(SECRET, "POST", "/api/payments", b'{"a":1}', _headers(), now=1_000_010)


@pytest.mark.parametrize(
    ("body", "path", "now", "secret"),
    [
        (b'{"a":2}', "/api/payments", 1_000_010, SECRET),  # body altered
        (b'{"a":1}', "/api/charges", 1_000_010, SECRET),  # replayed on another endpoint
        (b'{"a":1}', "/api/payments", 1_000_000 + 301, SECRET),  # stale
        (b'{"a":1}', "/api/payments", 1_000_000 - 301, SECRET),  # from the future
        (b'{"a":1}', "/api/payments", 1_000_010, "other"),  # wrong key
    ],
)
def test_request_signature_refusals(body, path, now, secret):
    with pytest.raises(signing.BadSignature):
        signing.verify_request(secret, "POST", path, body, _headers(), now=now)


def test_missing_headers_are_refused():
    with pytest.raises(signing.BadSignature):
        signing.verify_request(SECRET, "POST", "/api/payments", b"", {}, now=1)


def test_params_signature_ignores_order_but_not_values():
    params = {"payment_id": "pay_1", "amount_cents": "1000", "status": "authorised"}
    params["sig"] = signing.sign_params(SECRET, params)
    signing.verify_params(SECRET, dict(reversed(list(params.items()))))
    for key, value in [("amount_cents", "1"), ("status", "declined"), ("sig", "")]:
        with pytest.raises(signing.BadSignature):
            signing.verify_params(SECRET, {**params, key: value})
    with pytest.raises(signing.BadSignature):
        signing.verify_params(SECRET, {**params, "extra": "1"})
