"""gunicorn settings for production: `gunicorn wsgi:app` (read from this file automatically).

Several workers, each with a few threads: a request that waits on the bank's API does not
block the others. The renewal scheduler is NOT started here (it is its own process:
`flask renewals scheduler`), so more workers never mean more renewal passes.
"""

import logging
import multiprocessing
import os

# The log lines' formats (webapp/logs.py) never print where a line was logged from: the server
# skips the stack walk that finds it for every line (the logging HOWTO's "Optimization"), about
# a third of what each access line costs. Tests and the CLI keep it.
logging._srcfile = None

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5
# The app is built once in the master and forked: workers start warm (imports, templates'
# compiled code shared copy-on-write), and a recycled worker does not rebuild it. The app opens
# no database connection while being built, so no socket is shared across the fork.
preload_app = True
max_requests = 20000
max_requests_jitter = 2000
# The app writes one access line per request itself, with its request id (webapp/logs.py):
# gunicorn's own line would be a second one, formatted and written on every request too.
# GUNICORN_ACCESSLOG=- (or a file) turns it on.
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
# Behind a reverse proxy that terminates TLS: trust its X-Forwarded-* headers.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# Metrics (webapp/metrics.py): with PROMETHEUS_MULTIPROC_DIR set, each worker writes its counters
# to files in that folder and /metrics adds them up. The folder is emptied when gunicorn starts
# (old workers' files would count twice) and a dead worker's live gauges are dropped.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")


def on_starting(server):
    if _metrics_dir:
        os.makedirs(_metrics_dir, exist_ok=True)
        for name in os.listdir(_metrics_dir):
            if name.endswith(".db"):
                os.remove(os.path.join(_metrics_dir, name))


def child_exit(server, worker):
    if _metrics_dir:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
