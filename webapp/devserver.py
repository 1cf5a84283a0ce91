"""Run the whole system for development: shop, mock bank, renewal scheduler and a mail sink.

`python -m webapp.devserver` (the README's `make run` calls it after migrating and seeding).
"""

from __future__ import annotations

import os
import signal
import subprocess  # nosec B404 # starts this project's own processes
import sys
import time

from webapp.config import INSTANCE_DIR
from webapp.mailsink import MailSink

SHOP_PORT = int(os.environ.get("SHOP_PORT", "5000"))
BANK_PORT = int(os.environ.get("BANK_PORT", "5001"))
MAIL_PORT = int(os.environ.get("MAIL_PORT", "8025"))


def main() -> None:
    env = {
        **os.environ,
        "FLASK_APP": "wsgi",
        "SHOP_BASE_URL": f"http://127.0.0.1:{SHOP_PORT}",
        "BANK_API_URL": f"http://127.0.0.1:{BANK_PORT}",
        "MAIL_PORT": str(MAIL_PORT),
        # A local demo that QA's browser suite may run against (make e2e BASE_URL=...).
        "LOGIN_RATE_LIMIT": os.environ.get("LOGIN_RATE_LIMIT", "300 per minute"),
    }
    sink = MailSink(port=MAIL_PORT, folder=INSTANCE_DIR / "mail", echo=True).start()
    python = sys.executable
    commands = {
        "banca": [python, "-m", "webapp.bank", "--port", str(BANK_PORT)],
        "negozio": [python, "-m", "flask", "run", "--port", str(SHOP_PORT), "--no-reload"],
        "scheduler": [python, "-m", "flask", "renewals", "scheduler"],
    }
    # B603: fixed argument lists (this Python, its own modules), no shell.
    processes = {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}  # nosec
    print(
        f"\nNegozio:  http://127.0.0.1:{SHOP_PORT}\nBanca:    http://127.0.0.1:{BANK_PORT}\n"
        f"E-mail:   salvate in {INSTANCE_DIR / 'mail'} (SMTP su 127.0.0.1:{MAIL_PORT})\n"
        "Ctrl-C per fermare tutto.\n",
        flush=True,
    )
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


if __name__ == "__main__":
    main()
