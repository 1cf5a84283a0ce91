"""A local SMTP server for development and the e2e tests: keeps every message it receives.

It is a real SMTP peer (aiosmtpd), so the shop sends mail exactly as it would in production.
"""

from __future__ import annotations

import email
import email.policy
import threading
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller


class _Handler:
    def __init__(self, sink: MailSink):
        self.sink = sink

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.sink._store(message, envelope.content)
        return "250 OK"


class MailSink:
    """Start with `start()`; read `messages` (newest last); optionally saved as .eml files."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8025,
        folder: Path | None = None,
        echo: bool = False,
    ):
        self.messages: list[EmailMessage] = []
        self.folder = folder
        self.echo = echo
        self._lock = threading.Lock()
        self.controller = Controller(_Handler(self), hostname=host, port=port)

    @property
    def port(self) -> int:
        return self.controller.port

    def start(self) -> MailSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def _store(self, message: EmailMessage, raw: bytes) -> None:
        with self._lock:
            self.messages.append(message)
            count = len(self.messages)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{count:05d}.eml").write_bytes(raw)
        if self.echo:
            print(f"[mail] a {message['To']}: {message['Subject']}", flush=True)

    def to(self, address: str) -> list[EmailMessage]:
        """Messages received for one address."""
        with self._lock:
            return [m for m in self.messages if address in str(m["To"])]

    @staticmethod
    def text(message: EmailMessage) -> str:
        return message.get_body(preferencelist=("plain",)).get_content()
