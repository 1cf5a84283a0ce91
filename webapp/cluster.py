"""The production shape on one machine: `make cluster` (`python -m webapp.cluster`).

PostgreSQL (DATABASE_URL, or the throwaway server of scripts/with-postgres.sh), Redis for the
shared rate limits, two app nodes (gunicorn, each on its own loopback port and with its own
NODE_NAME), HAProxy in front with active health checks on /healthz, two renewal schedulers, the
mock bank and a mail sink, with the demo data. Ctrl-C stops everything.

The pieces (`RedisServer`, `HAProxy`, `app_node`) are also what tests/reliability/test_cluster.py
starts, so the test proves the shape that `make cluster` runs.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess  # nosec B404 # starts this project's own processes and Debian's tools
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from webapp.config import INSTANCE_DIR, PROJECT_DIR

HAPROXY_CFG = """\
global
    maxconn 4000

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # Requests over a node's capacity wait here, not in gunicorn: the health check is never
    # stuck behind a flood (at 60 customers on one node it was, and the only node went DOWN).
    timeout queue 30s
    timeout check 3s
    option forwardfor
    # A node that dies mid-request: the request goes to the other node. Every action that moves
    # money or state is guarded in the database (README: "Never twice"), so a retried POST
    # lands on the outcome of the first one instead of doing it twice.
    option redispatch
    retries 3
    retry-on conn-failure empty-response

frontend shop
    bind 127.0.0.1:{port}
    default_backend nodes

backend nodes
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server inter 1s fall 2 rise 2 maxconn {maxconn}
{servers}
"""


def wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Until something listens on the loopback port (or the process dies, or time runs out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


def _find(binary: str) -> str | None:
    for folder in ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"):
        if os.access(f"{folder}/{binary}", os.X_OK):
            return f"{folder}/{binary}"
    return shutil.which(binary)


def require(binary: str, package: str) -> str:
    """The path of a Debian binary, installed with apt-get when missing and we are root."""
    found = _find(binary)
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"Installing {package} from Debian's packages...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        # apt-get from PATH with fixed arguments and a package name of this module's own.
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)  # nosec B603 B607
        subprocess.run(  # nosec B603 B607
            ["apt-get", "install", "-y", "-q", package], env=env, capture_output=True, check=False
        )
        found = _find(binary)
    if found is None:
        raise RuntimeError(f"{binary} not found: install the Debian package {package}")
    return found


class Process:
    """A child process in its own process group (kill() takes its workers too)."""

    def __init__(self, name: str, args: list[str], env: dict, log: Path) -> None:
        self.name, self.args, self.env, self.log = name, args, env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> Process:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(  # nosec B603 # this project's own commands, no shell
                self.args,
                cwd=PROJECT_DIR,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signum)

    def kill(self) -> None:
        """SIGKILL to the whole group: requests in flight are cut, nothing is flushed."""
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self, timeout: float = 10) -> None:
        self.signal(signal.SIGTERM)
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()


class RedisServer(Process):
    """A throwaway redis-server on loopback: no persistence, no config file."""

    def __init__(self, port: int, folder: Path) -> None:
        binary = require("redis-server", "redis-server")
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(folder)]
        super().__init__("redis", args, dict(os.environ), folder / "redis.log")
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self) -> RedisServer:
        super().start()
        wait_for_port(self.port, 20, self.proc)
        return self


class HAProxy(Process):
    """HAProxy in the foreground, round robin over `backends` with health checks on /healthz."""

    def __init__(self, port: int, backends: dict[str, int], folder: Path, maxconn: int = 8) -> None:
        """`maxconn`: requests one node serves at once (gunicorn's workers x threads)."""
        servers = "\n".join(
            f"    server {name} 127.0.0.1:{p} check" for name, p in backends.items()
        )
        config = folder / "haproxy.cfg"
        config.write_text(HAPROXY_CFG.format(port=port, servers=servers, maxconn=maxconn))
        binary = require("haproxy", "haproxy")
        super().__init__(
            "haproxy", [binary, "-f", str(config), "-db"], dict(os.environ), folder / "haproxy.log"
        )
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> HAProxy:
        super().start()
        wait_for_port(self.port, 20, self.proc)
        return self


def app_node(name: str, port: int, env: dict, folder: Path, workers: int = 2) -> Process:
    """One app server: gunicorn with the production settings of gunicorn.conf.py."""
    node_env = {
        **env,
        "NODE_NAME": name,
        "PROMETHEUS_MULTIPROC_DIR": str(folder / f"metrics-{name}"),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
    }
    args = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
    return Process(name, args, node_env, folder / f"{name}.log")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "WERKZEUG_"))}


@dataclass(frozen=True)
class Ports:
    front: int
    nodes: list[int]
    bank: int
    sdi: int
    mail: int
    redis: int

    @classmethod
    def from_env(cls) -> Ports:
        front = int(os.environ.get("CLUSTER_PORT", "8080"))
        count = int(os.environ.get("CLUSTER_NODES", "2"))  # 1 to compare one node with two
        nodes = [int(os.environ.get(f"NODE{i}_PORT", str(front + i))) for i in range(1, count + 1)]
        return cls(
            front=front,
            nodes=nodes,
            bank=int(os.environ.get("CLUSTER_BANK_PORT", "8090")),
            sdi=int(os.environ.get("CLUSTER_SDI_PORT", "8091")),
            mail=int(os.environ.get("CLUSTER_MAIL_PORT", "8026")),
            redis=int(os.environ.get("CLUSTER_REDIS_PORT", "6390")),
        )


def cluster_env(database_url: str, ports: Ports, redis_url: str, folder: Path) -> dict[str, str]:
    """The settings every process of the cluster shares."""
    from webapp.devserver import qa_settings

    front = f"http://127.0.0.1:{ports.front}"
    return {
        **_env(),
        **qa_settings(),  # the sandbox API for QA and the load test (never in production)
        "APP_ENV": os.environ.get("APP_ENV", "development"),
        "FLASK_APP": "wsgi",
        "DATABASE_URL": database_url,
        # One secret for every node: a session made on one node is read on the other.
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_hex(32),
        "BANK_SHARED_SECRET": os.environ.get("BANK_SHARED_SECRET") or secrets.token_hex(16),
        "BANK_API_URL": f"http://127.0.0.1:{ports.bank}",
        "BANK_DATABASE_URL": os.environ.get("BANK_DATABASE_URL", f"sqlite:///{folder / 'bank.db'}"),
        "SHOP_BASE_URL": front,
        "SDI_API_URL": f"http://127.0.0.1:{ports.sdi}",
        "SDI_DATABASE_URL": os.environ.get("SDI_DATABASE_URL", f"sqlite:///{folder / 'sdi.db'}"),
        "SDI_WEBHOOK_URL": f"{front}/sdi/notifiche",
        "MAIL_PORT": str(ports.mail),
        "RATELIMIT_STORAGE_URI": redis_url,
        "TRUSTED_PROXY_HOPS": "1",
    }


def start_cluster(ports: Ports, env: dict[str, str], folder: Path) -> list[Process]:
    """The bank, the nodes, HAProxy once the nodes listen, and two schedulers."""
    python = sys.executable
    bank_args = [python, "-m", "webapp.bank", "--port", str(ports.bank)]
    sdi_args = [python, "-m", "webapp.sdi", "--port", str(ports.sdi)]
    processes = [
        Process("bank", bank_args, env, folder / "bank.log").start(),
        Process("sdi", sdi_args, env, folder / "sdi.log").start(),
    ]
    nodes = [app_node(f"node{i}", p, env, folder).start() for i, p in enumerate(ports.nodes, 1)]
    for node, port in zip(nodes, ports.nodes, strict=True):
        wait_for_port(port, 60, node.proc)
    backends = {node.name: port for node, port in zip(nodes, ports.nodes, strict=True)}
    processes += [*nodes, HAProxy(ports.front, backends, folder).start()]
    scheduler = [python, "-m", "flask", "renewals", "scheduler"]
    processes += [
        Process(f"scheduler{i}", scheduler, env, folder / f"sched{i}.log").start() for i in (1, 2)
    ]
    return processes


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def main() -> None:  # pragma: no cover - the README's `make cluster`, run by hand
    from webapp.mailsink import MailSink

    database_url = os.environ.get("DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not database_url:
        sys.exit("Set DATABASE_URL (PostgreSQL), or run through `make cluster`.")
    ports = Ports.from_env()
    folder = INSTANCE_DIR / "cluster"
    folder.mkdir(parents=True, exist_ok=True)
    redis = RedisServer(ports.redis, folder).start()
    env = cluster_env(database_url, ports, redis.url, folder)
    # What `make loadtest` reads to check the money after a run against the cluster.
    (folder / "env").write_text(
        f"DATABASE_URL={database_url}\nBANK_DATABASE_URL={env['BANK_DATABASE_URL']}\n"
        f"SANDBOX_TOKEN={env.get('SANDBOX_TOKEN', '')}\n"
    )
    for command in (["db", "upgrade"], ["seed-demo"]):
        subprocess.run(  # nosec B603 # flask's own CLI, no shell
            [sys.executable, "-m", "flask", *command], cwd=PROJECT_DIR, env=env, check=True
        )
    sink = MailSink(port=ports.mail, folder=folder / "mail", echo=True).start()
    processes = [redis, *start_cluster(ports, env, folder)]
    front = f"http://127.0.0.1:{ports.front}"
    print(
        f"\nShop (HAProxy):  {front}  (X-Served-By: node1 .. node{len(ports.nodes)})\n"
        f"Nodes:           {'  '.join(f'http://127.0.0.1:{p}' for p in ports.nodes)}\n"
        f"Bank:            http://127.0.0.1:{ports.bank}\n"
        f"SdI sandbox:     http://127.0.0.1:{ports.sdi}\n"
        f"Sandbox token:   {env.get('SANDBOX_TOKEN', '(off)')}\n"
        f"Metrics:         {front}/metrics (from loopback)\n"
        f"Redis:           {redis.url}\nDatabase:        {database_url}\n"
        f"Logs and mail:   {folder}\n"
        "Demo login: demo@pecshop.test / demo12345 (staff logins printed above)\n"
        "Ctrl-C stops everything.\n",
        flush=True,
    )
    signal.signal(signal.SIGTERM, _interrupt)  # a process manager's stop, like Ctrl-C
    try:
        while all(p.alive() for p in processes):
            time.sleep(0.5)
        print("Stopped: " + ", ".join(p.name for p in processes if not p.alive()), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        for process in reversed(processes):
            process.stop()
        sink.stop()


if __name__ == "__main__":
    main()
