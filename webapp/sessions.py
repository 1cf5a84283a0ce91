"""Flask's signed-cookie session, with its signer built once instead of on every request.

Flask's `SecureCookieSessionInterface` builds a new `URLSafeTimedSerializer` for each request
(and itsdangerous test-serialises an empty dict to learn that the serializer writes text), then
derives the signing key from the secret again at each signature checked. Neither depends on the
request: the serializer is kept until the secret or its fallbacks change, and each derived key is
kept by the secret and salt it comes from. The cookie, its signature and its checks are Flask's
and itsdangerous' own, byte for byte (a session signed by either one is read by the other).

`Vary: Cookie` is written as one header by `webapp.htmx.vary_on`: Flask's `response.vary.add`
parses and writes the header again at each call.
"""

from __future__ import annotations

from flask import Flask, Response
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from webapp.htmx import vary_on


class _KeptKeySigner(TimestampSigner):
    """A TimestampSigner that derives each (secret, salt) key once per process."""

    _derived: dict[tuple, bytes] = {}  # a few entries: one per secret (and fallback) and salt

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        secret = secret_key or self.secret_keys[-1]
        kept = (secret, self.salt, self.key_derivation, self.digest_method)
        key = self._derived.get(kept)
        if key is None:
            key = self._derived[kept] = super().derive_key(secret_key)
        return key


class KeptSignerSessions(SecureCookieSessionInterface):
    """The session interface the shop installs (`app.session_interface`)."""

    def __init__(self) -> None:
        self._kept: tuple[tuple, URLSafeTimedSerializer] | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if not app.secret_key:
            return None
        # itsdangerous wants the current key last, after the fallbacks (as Flask passes them).
        keys = (*(app.config["SECRET_KEY_FALLBACKS"] or ()), app.secret_key)
        kept = self._kept
        if kept is None or kept[0] != keys:
            serializer = URLSafeTimedSerializer(
                list(keys),
                salt=self.salt,
                serializer=self.serializer,
                signer=_KeptKeySigner,
                signer_kwargs={
                    "key_derivation": self.key_derivation,
                    "digest_method": self.digest_method,
                },
            )
            kept = self._kept = (keys, serializer)  # one assignment: safe between threads
        return kept[1]

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if session.accessed:
            vary_on(response, "Cookie")
            session.accessed = False  # written: Flask's save_session need not add it again
        super().save_session(app, session, response)
