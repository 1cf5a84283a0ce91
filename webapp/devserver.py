"""Run the whole system for development: shop, mock bank, SdI sandbox, scheduler, mail sink.

`python -m webapp.devserver` (the README's `make run` calls it after migrating and seeding).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess  # nosec B404 # starts this project's own processes
import sys
import time
from pathlib import Path

from webapp.config import INSTANCE_DIR
from webapp.mailsink import MailSink

SHOP_PORT = int(os.environ.get("SHOP_PORT", "5000"))
BANK_PORT = int(os.environ.get("BANK_PORT", "5001"))
SDI_PORT = int(os.environ.get("SDI_PORT", "5002"))
MAIL_PORT = int(os.environ.get("MAIL_PORT", "8025"))


def sandbox_token(folder: Path = INSTANCE_DIR) -> str:
    """SANDBOX_TOKEN, or the development token kept in instance/sandbox-token (made once)."""
    if os.environ.get("SANDBOX_TOKEN"):
        return os.environ["SANDBOX_TOKEN"]
    path = folder / "sandbox-token"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
    return path.read_text().strip()


def qa_settings() -> dict[str, str]:
    """The sandbox for QA's browser suite (make qa), on in development, never in production."""
    if os.environ.get("APP_ENV", "development") == "production":
        return {}
    return {"SANDBOX": os.environ.get("SANDBOX", "1"), "SANDBOX_TOKEN": sandbox_token()}


def system_env(qa: dict[str, str]) -> dict[str, str]:
    """The settings the shop, the bank, the SdI sandbox and the scheduler share."""
    return {
        **os.environ,
        "FLASK_APP": "wsgi",
        "SHOP_BASE_URL": f"http://127.0.0.1:{SHOP_PORT}",
        "BANK_API_URL": f"http://127.0.0.1:{BANK_PORT}",
        "SDI_API_URL": f"http://127.0.0.1:{SDI_PORT}",
        # The sandbox pushes its notifications to the shop's webhook (and keeps them in its feed).
        "SDI_WEBHOOK_URL": f"http://127.0.0.1:{SHOP_PORT}/sdi/notifiche",
        "MAIL_PORT": str(MAIL_PORT),
        # A local demo that QA's browser suite may run against (make e2e BASE_URL=...).
        "LOGIN_RATE_LIMIT": os.environ.get("LOGIN_RATE_LIMIT", "300 per minute"),
        **qa,
    }


def _banner(qa: dict[str, str]) -> str:
    text = (
        f"\nNegozio:  http://127.0.0.1:{SHOP_PORT}\nBanca:    http://127.0.0.1:{BANK_PORT}\n"
        f"SdI:      http://127.0.0.1:{SDI_PORT}\n"
        f"E-mail:   salvate in {INSTANCE_DIR / 'mail'} (SMTP su 127.0.0.1:{MAIL_PORT})\n"
        "Ctrl-C per fermare tutto.\n"
    )
    if qa:
        text += (
            f"Sandbox QA attivo, token: {qa['SANDBOX_TOKEN']}\n"
            f"  make qa BASE_URL=http://127.0.0.1:{SHOP_PORT} BANK_URL=http://127.0.0.1:{BANK_PORT}"
            f" SANDBOX_TOKEN={qa['SANDBOX_TOKEN']}\n"
        )
    return text


def main() -> None:
    qa = qa_settings()
    env = system_env(qa)
    sink = MailSink(port=MAIL_PORT, folder=INSTANCE_DIR / "mail", echo=True).start()
    python = sys.executable
    commands = {
        "banca": [python, "-m", "webapp.bank", "--port", str(BANK_PORT)],
        "sdi": [python, "-m", "webapp.sdi", "--port", str(SDI_PORT)],
        "negozio": [python, "-m", "flask", "run", "--port", str(SHOP_PORT), "--no-reload"],
        "scheduler": [python, "-m", "flask", "renewals", "scheduler"],
    }
    processes = {
        name: subprocess.Popen(cmd, env=env)  # nosec B603 # this project's own commands
        for name, cmd in commands.items()
    }
    print(_banner(qa), flush=True)
    # A process manager's SIGTERM stops everything too, like Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while all(process.poll() is None for process in processes.values()):
            time.sleep(0.5)
        stopped = [name for name, process in processes.items() if process.poll() is not None]
        print(f"Processo terminato: {', '.join(stopped)}. Arresto gli altri.", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        sink.stop()


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
