"""The wire protocol the shop and the bank both speak: HMAC-SHA256 signatures.

It plays the part of a payment gateway's published SDK: the bank imports this module and
nothing else from the shop, and the shop uses it only through its gateway client.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

TIMESTAMP_HEADER = "X-Signature-Timestamp"
SIGNATURE_HEADER = "X-Signature"
MERCHANT_HEADER = "X-Merchant-Id"
#: A signed request older (or newer) than this many seconds is refused as a replay.
MAX_SKEW_SECONDS = 300


class BadSignature(Exception):
    """A signature is missing, malformed, stale or wrong."""


def _mac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _request_message(method: str, path: str, body: bytes, timestamp: int) -> bytes:
    return b"\n".join([str(timestamp).encode(), method.upper().encode(), path.encode(), body])


def sign_request(
    secret: str, merchant_id: str, method: str, path: str, body: bytes, timestamp: int
) -> dict[str, str]:
    """Headers that authenticate a server-to-server request (method, path, body and time)."""
    return {
        MERCHANT_HEADER: merchant_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: _mac(secret, _request_message(method, path, body, timestamp)),
    }


def verify_request(
    secret: str,
    method: str,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    now: int,
    max_skew: int = MAX_SKEW_SECONDS,
) -> None:
    """Raise BadSignature unless the headers sign exactly this request, recently."""
    raw_ts = headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    if not (raw_ts.isascii() and raw_ts.isdigit()) or not given:  # "²".isdigit() is True
        raise BadSignature("missing signature")
    timestamp = int(raw_ts)
    if abs(now - timestamp) > max_skew:
        raise BadSignature("stale signature")
    expected = _mac(secret, _request_message(method, path, body, timestamp))
    if not hmac.compare_digest(expected.encode(), given.encode()):  # str: ASCII only
        raise BadSignature("wrong signature")


def _params_message(params: Mapping[str, str]) -> bytes:
    # Sorted key=value lines: the order the browser sends them in does not matter.
    return "\n".join(f"{k}={params[k]}" for k in sorted(params) if k != "sig").encode()


def sign_params(secret: str, params: Mapping[str, str]) -> str:
    """Signature for parameters that travel through the browser (a redirect's query string)."""
    return _mac(secret, _params_message(params))


def verify_params(secret: str, params: Mapping[str, str]) -> None:
    """Raise BadSignature unless params['sig'] signs every other parameter."""
    given = params.get("sig", "")
    # Bytes: compare_digest refuses (TypeError) a str with non-ASCII characters in it.
    if not given or not hmac.compare_digest(sign_params(secret, params).encode(), given.encode()):
        raise BadSignature("wrong signature")
