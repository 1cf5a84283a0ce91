"""Two app nodes behind HAProxy on one PostgreSQL, the rate limits shared in Redis.

The production shape of `make cluster` (webapp/cluster.py starts the same HAProxy and Redis):
two gunicorn nodes on scratch PostgreSQL databases, HAProxy in front with health checks on
/healthz, Redis for Flask-Limiter. Twins are fired through the balancer, so they land on both
nodes; one node is killed with SIGKILL while customers pay; Redis is restarted while customers
log in. Customers log in from their own loopback addresses (127.0.0.x): the login limit is per
client address, and behind the balancer that address comes from X-Forwarded-For.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

import pytest
import requests
from requests.adapters import HTTPAdapter

from tests.reliability.conftest import PG, System, free_port, requires_postgres, scratch_databases
from tests.reliability.test_twins import (
    TwinWorld,
    _assert_paid_once_by_card,
    _pay_by_saved_card,
    assert_landed_paid,
)
from tests.reliability.twins import TALLY, THREADS, WORKERS, Browser, ShopServer, assert_no_5xx
from webapp.clock import now_utc
from webapp.cluster import HAProxy, RedisServer

pytestmark = [pytest.mark.reliability, requires_postgres]

LOGIN_LIMIT = 10  # a minute, per client address, across the whole cluster
_addresses = itertools.count(2)


def loopback_address() -> str:
    """A loopback address of its own (127.0.0.2, .3, ...): a client the limits tell apart."""
    n = next(_addresses)
    return f"127.0.{n // 250}.{n % 250 + 2}"


class SourceAdapter(HTTPAdapter):
    """requests from a chosen source address."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        return super().init_poolmanager(*args, **kwargs)


def client_from(address: str) -> requests.Session:
    session = requests.Session()
    session.mount("http://", SourceAdapter(address))
    return session


class ClusterWorld(TwinWorld):
    """The twin world, reached through the balancer; each customer logs in from its address."""

    def __init__(self, system: System, front: HAProxy, nodes: list[ShopServer], redis):
        super().__init__(system, front)
        self.nodes = nodes
        self.redis = redis

    def browser(self, email: str) -> Browser:
        browser = Browser(self.url)
        browser.http.close()
        browser.http = client_from(loopback_address())
        self.browsers.append(browser.login(email, "twins-password-1"))
        return browser


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not PG:
        pytest.skip("needs PostgreSQL (TEST_DATABASE_URL=postgresql+psycopg://...)")
    from webapp.demo import seed
    from webapp.extensions import db

    folder = tmp_path_factory.mktemp("cluster")
    with scratch_databases("shop", "bank") as (shop_url, bank_url):
        system = System(shop_url, bank_url, folder)
        redis = RedisServer(free_port(), folder).start()
        front_port = free_port()
        front_url = f"http://127.0.0.1:{front_port}"
        shared = dict(
            RATELIMIT_ENABLED=1,
            RATELIMIT_STORAGE_URI=redis.url,
            LOGIN_RATE_LIMIT=f"{LOGIN_LIMIT} per minute",
            TRUSTED_PROXY_HOPS=1,
            SHOP_BASE_URL=front_url,
        )
        nodes = [
            ShopServer(shop_url, "", folder / f"node{i}.log", NODE_NAME=f"node{i}", **shared)
            for i in (1, 2)
        ]
        front = None
        with system.app.app_context():
            db.create_all()
            seed(now_utc())
            db.session.commit()
            system.bank.start()
            try:
                for node in nodes:
                    node.bank_url = system.bank.url
                    node.start()
                backends = {f"node{i}": node.port for i, node in enumerate(nodes, start=1)}
                front = HAProxy(front_port, backends, folder, WORKERS * THREADS).start()
                world = ClusterWorld(system, front, nodes, redis)
                _wait_for_both_nodes(front.url)
                yield world
                world.close()
            finally:
                for node in nodes:
                    node.stop()
                if front is not None:
                    front.stop()
                redis.stop()
                system.close()
        errors = [e for node in nodes for e in node.errors_in_log()]
        assert not errors, "gunicorn logged errors:\n" + "\n".join(errors[:20])


def _served_by(url: str, n: int, session: requests.Session | None = None) -> Counter:
    http = session or requests.Session()
    return Counter(http.get(url, timeout=10).headers.get("X-Served-By") for _ in range(n))


def _wait_for_both_nodes(front_url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if set(_served_by(front_url + "/healthz", 4)) == {"node1", "node2"}:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail("the balancer never sent requests to both nodes")


def test_the_balancer_spreads_requests_and_each_answer_names_its_node(cluster):
    served = _served_by(cluster.url + "/", 10)
    assert set(served) == {"node1", "node2"}, served
    assert min(served.values()) >= 3, served  # round robin, give or take the health checks


def test_saved_card_twins_across_both_nodes_charge_once(cluster):
    customer_id, email = cluster.customer()
    card_id = cluster.card(customer_id)
    browser = cluster.browser(email)
    order_id = cluster.order(browser, ["PEC-STD"])
    portal = f"/portale-pagamenti/ordini/{order_id}"
    tabs = [browser.token_of(portal, "attempt"), browser.token_of(portal, "attempt")]

    answers = _pay_by_saved_card(cluster, browser, order_id, card_id, tabs)

    assert_no_5xx(answers)
    assert_landed_paid(answers, order_id)
    _assert_paid_once_by_card(cluster, email, order_id, services=1)


def test_the_login_limit_holds_across_the_balancer(cluster):
    """10 a minute from one client in all, not 10 per node."""
    http = client_from(loopback_address())
    browser = Browser(cluster.url)
    browser.http = http
    browser.get("/accedi")
    statuses, nodes = [], Counter()
    for _ in range(LOGIN_LIMIT + 3):
        response = browser.post("/accedi", {"email": "nobody@example.it", "password": "wrong-1"})
        statuses.append(response.status_code)
        nodes[response.headers.get("X-Served-By")] += 1
    assert set(nodes) == {"node1", "node2"}, nodes
    assert 429 not in statuses[:LOGIN_LIMIT], statuses
    assert statuses[LOGIN_LIMIT:] == [429] * 3, statuses
    # Another client is not limited by this one's tries.
    other = Browser(cluster.url)
    other.http = client_from(loopback_address())
    other.get("/accedi")
    assert other.post("/accedi", {"email": "a@example.it", "password": "x"}).status_code != 429


def _traffic(cluster, stop: threading.Event, seen: Counter, cut: list, address: str) -> None:
    """Anonymous pages through the balancer until `stop`: what any visitor does. An answer cut
    off mid-body (its node died after sending the headers: no balancer can retry that) is
    noted with its time in `cut`."""
    http = client_from(address)
    for path in itertools.cycle(["/", "/carrello", "/healthz", "/condizioni-generali"]):
        if stop.is_set():
            return
        started = time.monotonic()
        try:
            status = http.get(cluster.url + path, timeout=10).status_code
        except requests.RequestException as exc:
            status = type(exc).__name__
            cut.append(started)
        seen[status] += 1


def test_a_node_killed_during_payments_loses_no_order_and_pays_none_twice(cluster):
    customers = [cluster.customer() for _ in range(6)]
    payers = []
    for customer_id, email in customers:
        card_id = cluster.card(customer_id)
        browser = cluster.browser(email)
        order_id = cluster.order(browser, ["PEC-STD"])
        attempt = browser.token_of(f"/portale-pagamenti/ordini/{order_id}", "attempt")
        total = cluster.total(order_id)  # read here: the threads below have no app context
        payers.append((browser, order_id, card_id, attempt, email, total))

    stop, seen, cut = threading.Event(), Counter(), []
    visitors = [
        threading.Thread(target=_traffic, args=(cluster, stop, seen, cut, loopback_address()))
        for _ in range(3)
    ]
    for thread in visitors:
        thread.start()
    outcomes, tries = {}, {p[1]: [] for p in payers}

    def pay(payer) -> None:
        browser, order_id, card_id, attempt, _, total = payer
        url = f"/portale-pagamenti/ordini/{order_id}/procedi"
        form = {"choice": str(card_id), "attempt": attempt, "amount_cents": str(total)}
        for _ in range(5):  # a customer who sees an error page tries again (the same form)
            try:
                response = browser.http.post(
                    cluster.url + url,
                    data={"csrf_token": browser.csrf, **form},
                    allow_redirects=False,
                    timeout=30,
                )
            except requests.RequestException as exc:
                tries[order_id].append(type(exc).__name__)
                continue
            tries[order_id].append(response.status_code)
            if response.status_code < 500:
                outcomes[order_id] = (response.status_code, response.headers.get("Location"))
                return
            time.sleep(0.2)

    payments = [threading.Thread(target=pay, args=(p,)) for p in payers]
    for i, thread in enumerate(payments):
        thread.start()
        if i == 2:
            killed_at = time.monotonic()
            cluster.nodes[0].kill()  # node1 dies with payments in flight
    for thread in payments:
        thread.join(120)
    time.sleep(2.5)  # the health checks have marked node1 down by now (2 x 1 s)
    stop.set()
    for thread in visitors:
        thread.join(30)

    # Routed around: the visitors' pages after the kill are all served, by node2.
    assert _served_by(cluster.url + "/", 6) == Counter({"node2": 6})
    # No 5xx at all; the only failures are answers cut by the kill itself, started before it.
    assert all(k < 500 for k in seen if isinstance(k, int)), seen
    assert all(started <= killed_at + 0.5 for started in cut), (seen, cut, killed_at)
    assert len(cut) <= 3, seen  # at most one request in flight per visitor
    for _, order_id, _, _, email, _ in payers:
        assert outcomes.get(order_id, (0,))[0] == 303, (order_id, tries[order_id])
        assert urlsplit(outcomes[order_id][1]).path == f"/ordini/{order_id}"
        _assert_paid_once_by_card(cluster, email, order_id, services=1)
    TALLY.lines.append(f"[cluster] node1 killed: payment tries {tries}; visitors saw {seen}")
    # node1 back: the balancer sends it requests again.
    cluster.nodes[0].start()
    _wait_for_both_nodes(cluster.url)


def test_redis_restarted_while_customers_log_in_gives_no_5xx(cluster):
    _, email = cluster.customer()
    statuses: Counter = Counter()

    def log_in_and_out(n: int) -> None:
        for _ in range(n):
            browser = Browser(cluster.url)
            browser.http = client_from(loopback_address())
            try:
                browser.get("/accedi")
                statuses[
                    browser.post(
                        "/accedi", {"email": email, "password": "twins-password-1"}
                    ).status_code
                ] += 1
            except (AssertionError, requests.RequestException) as exc:
                statuses[type(exc).__name__] += 1

    threads = [threading.Thread(target=log_in_and_out, args=(12,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    cluster.redis.stop()
    time.sleep(1.0)
    cluster.redis.start()
    for thread in threads:
        thread.join(120)
    TALLY.lines.append(f"[cluster] Redis restarted during logins: {dict(statuses)}")
    assert set(statuses) == {303}, statuses  # every login went through, none was a 5xx
    # With Redis back, the limit is shared again.
    assert cluster.redis.alive()
