"""A request fuzzer generated from an app's URL map: rules, methods, converters, form fields.

Nothing here names an endpoint of the shop or of the bank. The rules come from
`app.url_map`; the form fields from the pages the app renders (`<input name=...>`,
`<select name=...>`, `<textarea name=...>`, `<button name=...>`, grouped by the form's action)
plus a table of names the apps are known to read; the values from a table of hostile classes
mixed with values that mean something in the world under test (ids, tokens, totals, e-mails).
Requests are drawn from a seeded `random.Random`, so a run is reproducible and a failure
names the seed and the request.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import MetaData, Text, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter, PathConverter, Rule

from webapp.signing import sign_params, sign_request

# --- hostile values, by class ----------------------------------------------------------------

HOSTILE: dict[str, list[str]] = {
    "empty": [""],
    "whitespace": [" ", "\t", " \t\n ", "\u00a0", "\u2003", "1 ", " 1"],
    "very long": ["A" * 5000, "9" * 5000, "è" * 5000, "1 " * 2500],
    "NUL": ["\x00", "a\x00b", "1\x00"],
    "CR/LF": ["\r\n", "x\r\nSet-Cookie: pwned=1", "/\r\nLocation: //evil.example", "\n1"],
    "control": ["\x01", "\x1b[31m", "\x7f", "/\t/evil.example"],
    "unicode digits": ["²", "٣", "１２", "𝟙", "١٢", "Ⅻ", "⁵"],
    "emoji": ["🙂", "💳🔥", "👨‍👩‍👧"],
    "RTL override": ["\u202eabc", "\u202e1", "\u200f"],
    "bidi/zero width": ["\ufeff1", "\u200b", "e\u0301"],
    "SQL quotes": ["'", "' OR '1'='1", "1; DROP TABLE orders; --", '"', "\\'"],
    "path traversal": ["../", "../../etc/passwd", "..%2f..%2fetc", "..\\..\\boot.ini"],
    "HTML/script": ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "{{ 7*7 }}"],
    "JSON fragments": ["{", "}", "[]", "{}", '{"a": 1}', "[1, 2]", '"x"', "null", "true"],
    "huge numbers": [str(2**31), str(2**63), str(2**64), "9" * 40, "1e309", str(10**100)],
    "negative numbers": ["-1", "-0", str(-(2**31)), str(-(2**63) - 1), "-99999999999"],
    "floats": ["1.5", "0.1", "1e3", "NaN", "inf", "-inf", "1,5", "1.0"],
    "other numbers": ["0", "00", "01", "0x10", "+1", "1_000"],
    "urls": [
        "//evil.example",
        "\\\\evil.example",
        "/\\evil.example",
        "javascript:alert(1)",
        "https://evil.example/",
        "http://[::1",
        "http://[",
        "/%0d%0aX: 1",
    ],
    "percent": ["%", "%ZZ", "%00", "%2e%2e%2f"],
    "latin/odd": ["è", "ß", "ǅ", "İ", "\U0010fffd"],
}
HOSTILE_VALUES = [v for values in HOSTILE.values() for v in values]

# Long and pathological values (issue 19: a PEC pattern took 18 s on 60,000 dots): each is sent
# alone in one field of one route, the route's other fields keeping the values its form renders.
LONG = 40_000
PATHOLOGICAL: dict[str, str] = {
    "letters": "a" * LONG,
    "dots": "a" + "." * LONG + "a",
    "spaces": "a" + " " * LONG + "a",
    "digits": "9" * LONG,
    "e-mail-like": "a@" + "." * LONG + "@",
    "e-mails": "a.b@c.it " * (LONG // 9),
}

# Names the apps read (request.form / request.args / JSON) that a rendered page may not show.
KNOWN_FIELDS = (
    "email",
    "password",
    "password2",
    "name",
    "tax_code",
    "remember",
    "next",
    "code",
    "payment_method",
    "years",
    "terms",
    "checkout_token",
    "choice",
    "amount_cents",
    "attempt",
    "auto_renew",
    "frequency_years",
    "card_id",
    "otp",
    "holder",
    "number",
    "exp_month",
    "exp_year",
    "cvv",
    "payment_id",
    "order_ref",
    "status",
    "currency",
    "ts",
    "sig",
    "token",
    "idempotency_key",
    "return_url",
    "notify_url",
    "description",
    "save_card",
    "decision",
)

# Hostile ints for `<int:...>` path parameters (the real ids are added by the caller).
HOSTILE_INTS = [0, -1, 1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64, 10**30, 10**400]
EXTRA_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


# --- fields from rendered pages ---------------------------------------------------------------


class _FormParser(HTMLParser):
    """Field names, grouped by the path their form posts to (or hx-post/hx-get targets)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.by_action: dict[str, set[str]] = {}
        self.all: set[str] = set()
        self.values: dict[str, str] = {}  # what the page fills in (a checked radio wins)
        self._actions: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        target = a.get("hx-post") or a.get("hx-get") or a.get("action") or ""
        if tag == "form":
            self._actions.append(target)
            self.by_action.setdefault(urlsplit(target).path, set())
        elif target and tag != "form":  # an element that posts on its own (hx-post on a button)
            self.by_action.setdefault(urlsplit(target).path, set())
        if tag in ("input", "select", "textarea", "button") and a.get("name"):
            self.all.add(a["name"])
            if a.get("value") and (a["name"] not in self.values or "checked" in a):
                self.values[a["name"]] = a["value"]
            for action in self._actions[-1:]:
                self.by_action[urlsplit(action).path].add(a["name"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._actions:
            self._actions.pop()


@dataclass
class Fields:
    """Per-rule field names (from the forms that post to it) and the pool of all names."""

    by_rule: dict[str, set[str]] = field(default_factory=dict)
    pool: set[str] = field(default_factory=lambda: set(KNOWN_FIELDS))
    values: dict[str, str] = field(default_factory=dict)

    def harvest(self, app: Flask, html: str) -> None:
        parser = _FormParser()
        parser.feed(html)
        self.pool |= parser.all
        for name, value in parser.values.items():
            self.values.setdefault(name, value)
        adapter = app.url_map.bind("localhost")
        for path, names in parser.by_action.items():
            if not path:
                continue
            for method in ("POST", "GET"):
                try:
                    endpoint, _ = adapter.match(path, method=method)
                except HTTPException:
                    continue
                self.by_rule.setdefault(endpoint, set()).update(names)


def harvest_fields(app: Flask, client: FlaskClient, paths: Iterable[str]) -> Fields:
    """Render each page (as `client`) and collect the names of its forms' fields."""
    fields = Fields()
    for path in paths:
        for headers in ({}, {"HX-Request": "true"}):
            try:
                response = client.get(path, headers=headers)
            except Exception:  # noqa: BLE001 - a page that breaks is the fuzzer's job to report
                continue
            if response.mimetype == "text/html":
                fields.harvest(app, response.get_data(as_text=True))
    return fields


def sample_paths(app: Flask, ids: dict[str, Sequence[Any]]) -> list[str]:
    """Every GET rule built with real arguments (ids by converter kind, else strings)."""
    paths = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static":
            continue
        options = [_real_args(rule, ids)]
        for args in options:
            try:
                paths.append(rule.build(args, append_unknown=False)[1])
            except Exception:  # noqa: BLE001,S112 - an argument the rule does not take
                continue
    return paths


def _real_args(rule: Rule, ids: dict[str, Sequence[Any]]) -> dict[str, Any]:
    args = {}
    for name, conv in rule._converters.items():
        pool = ids.get(name) or ids.get("*") or ["1"]
        args[name] = pool[0] if not isinstance(conv, IntegerConverter) else int(pool[0])
    return args


# --- the request generator --------------------------------------------------------------------


@dataclass
class Draw:
    """One request to make."""

    method: str
    path: str
    rule: str
    data: Any = None
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None

    def __str__(self) -> str:
        body = self.data if isinstance(self.data, (str, bytes)) else self.data
        return (
            f"{self.method} {self.path[:300]!r} rule={self.rule} query={_short(self.query)} "
            f"data={_short(body)} headers={_short(self.headers)}"
        )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 400 else text[:400] + "…"


def _header_safe(value: str) -> str:
    """What a real HTTP server can hand over: no CR/LF, UTF-8 bytes seen as latin-1."""
    value = value.replace("\r", "").replace("\n", "")[:2000]
    return value.encode("utf-8", "replace").decode("latin-1")


@dataclass
class Generator:
    """Draws requests for the rules of `app`."""

    app: Flask
    rng: random.Random
    fields: Fields
    ids: dict[str, Sequence[Any]]  # by path-argument name ("*" for any), real values
    meaningful: Callable[[], Sequence[str]]
    secret: str | None = None  # sign requests and parameters with it, sometimes
    merchant: str = ""
    sign_rate: float = 0.25  # how often a request is signed (when there is a secret)
    skip: Callable[[Rule, str], bool] = lambda rule, method: False

    def __post_init__(self) -> None:
        self.rules = [
            (rule, method)
            for rule in sorted(self.app.url_map.iter_rules(), key=lambda r: r.rule)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
            if not self.skip(rule, method)
        ]

    # -- values
    def value(self) -> str:
        r = self.rng.random()
        if r < 0.55:
            return self.rng.choice(HOSTILE_VALUES)
        if r < 0.9:
            meaningful = self.meaningful()
            return str(self.rng.choice(meaningful)) if meaningful else "1"
        return str(self.rng.randint(-3, 12))

    def _path_arg(self, name: str, conv: Any) -> str:
        real = list(self.ids.get(name) or self.ids.get("*") or [])
        r = self.rng.random()
        if isinstance(conv, IntegerConverter):
            if r < 0.45 and real:
                return str(self.rng.choice(real))
            if r < 0.85:
                return str(self.rng.choice(HOSTILE_INTS))
            return quote(self.value()[:200], safe="")
        if r < 0.5 and real:
            return quote(str(self.rng.choice(real)), safe="")
        text = self.value()[:300]
        if isinstance(conv, PathConverter):
            return quote(text, safe="/")
        if hasattr(conv, "items") and r < 0.8:  # any(a, b): a listed value, else anything
            return self.rng.choice(sorted(conv.items))
        return quote(text, safe="")

    def path_for(self, rule: Rule) -> str:
        # The rule's own string, each converter replaced (quoted: the client would re-split it).
        parts = re.split(r"<(?:[^:<>]+:)?([^<>]+)>", rule.rule)
        out = []
        for i, part in enumerate(parts):
            if i % 2 == 0:
                out.append(part)
            else:
                out.append(self._path_arg(part, rule._converters[part]))
        return "".join(out)

    def form(self, rule: Rule) -> dict[str, list[str]]:
        own = sorted(self.fields.by_rule.get(rule.endpoint, set()) - {"csrf_token"})
        names = [n for n in own if self.rng.random() < 0.85]
        # Not csrf_token: each mode decides the token (a junk one here would only mean 400s).
        pool = sorted(self.fields.pool - {"csrf_token"})
        names += self.rng.sample(pool, self.rng.randint(0, 2))
        form: dict[str, list[str]] = {}
        for name in names:
            n = 2 if self.rng.random() < 0.1 else 1
            form[name] = [self.value() for _ in range(n)]
        return form

    def headers(self) -> dict[str, str]:
        h: dict[str, str] = {}
        if self.rng.random() < 0.5:
            h["HX-Request"] = self.rng.choice(["true", "true", "true", "false", "TRUE", ""])
            if self.rng.random() < 0.4:
                h["HX-Boosted"] = "true"
            if self.rng.random() < 0.5:
                h["HX-Current-URL"] = self.rng.choice(
                    [self.value(), "http://[", "http://[::1", "//evil.example/x", "/area-clienti/"]
                )
            if self.rng.random() < 0.4:
                h["HX-Target"] = self.value()
            if self.rng.random() < 0.05:
                h["HX-History-Restore-Request"] = "true"
        if self.rng.random() < 0.15:
            h["Referer"] = self.rng.choice([self.value(), "http://[", "http://localhost/x?y=1"])
        if self.rng.random() < 0.05:
            h["Accept"] = self.value()
        return {k: _header_safe(v) for k, v in h.items()}

    def draw(self) -> Draw:
        rule, method = self.rng.choice(self.rules)
        if self.rng.random() < 0.04:  # a method the rule may not allow: 405, never 500
            method = self.rng.choice(EXTRA_METHODS)
        d = Draw(method, self.path_for(rule), rule.endpoint, headers=self.headers())
        fields = self.form(rule)
        if method in ("GET", "HEAD", "DELETE", "OPTIONS") or self.rng.random() < 0.15:
            d.query = fields
            if d.query and self.secret and self.rng.random() < 0.3:
                flat = {k: v[0] for k, v in d.query.items()}
                d.query = {k: [v] for k, v in flat.items()}
                d.query["sig"] = [sign_params(self.secret, {**flat, "sig": ""})]
        else:
            r = self.rng.random()
            if r < 0.8:
                d.data = fields
            elif r < 0.92:
                d.data = self.json_body(fields)
                d.content_type = "application/json"
            else:
                d.data = self.value().encode("utf-8", "replace")
                d.content_type = self.rng.choice(
                    ["application/json", "multipart/form-data", "text/plain", "x/y; charset=zz"]
                )
        if self.secret and self.rng.random() < self.sign_rate:
            self._sign(d)
        return d

    def _sign(self, d: Draw) -> None:
        """Sign the request as the bank or the shop would (the body as bytes, so it is exact)."""
        if isinstance(d.data, dict):
            d.data = urlencode(d.data, doseq=True)
            d.content_type = "application/x-www-form-urlencoded"
        if isinstance(d.data, str):
            d.data = d.data.encode("utf-8", "replace")
        body = d.data or b""
        path = unquote(urlsplit(d.path).path, errors="replace")
        ts = int(time.time()) + self.rng.choice([0, 0, 0, -1000, 10**6])
        d.headers.update(sign_request(self.secret, self.merchant, d.method, path, body, ts))

    def json_body(self, fields: dict[str, list[str]]) -> str:
        r = self.rng.random()
        if r < 0.3:
            return self.rng.choice(["[1, 2]", '"text"', "42", "null", "true", "[]", '{"a": [}'])
        body: dict[str, Any] = {}
        for name, values in fields.items():
            v = values[0]
            choice = self.rng.random()
            if choice < 0.5:
                body[name] = v
            elif choice < 0.7:
                body[name] = self.rng.choice([2**64, -1, 0, 1.5, True, None, [], {}, 10**30])
            else:
                try:
                    body[name] = int(v)
                except ValueError:
                    body[name] = v
        return json.dumps(body)


# --- long values, one field at a time ---------------------------------------------------------


def long_value_draws(
    app: Flask,
    fields: Fields,
    ids: dict[str, Sequence[Any]],
    rng: random.Random,
    values: dict[str, str] = PATHOLOGICAL,
) -> Iterator[Draw]:
    """Every rule and method; each field of its forms in turn (a route without a form: three
    of the known names at once) with each long value, the others as the page fills them."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static":
            continue
        try:
            path = rule.build(_real_args(rule, ids), append_unknown=False)[1]
        except Exception:  # noqa: BLE001,S112 - an argument the rule does not take
            continue
        own = sorted(fields.by_rule.get(rule.endpoint, set()) - {"csrf_token"})
        groups = [[name] for name in own] or [rng.sample(sorted(KNOWN_FIELDS), 3)]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for group in groups:
                for label, value in values.items():
                    form = {name: [fields.values.get(name, "")] for name in own}
                    form.update({name: [value] for name in group})
                    d = Draw(method, path, rule.endpoint, headers={"X-Long-Value": label})
                    if method in ("GET", "DELETE"):
                        d.query = form
                    else:
                        d.data = form
                    yield d


# --- fingerprints ---------------------------------------------------------------------------


def fingerprint(session: Session, metadata: MetaData, tables: Sequence[str]) -> tuple:
    """Every row (all columns but long texts) of `tables`, ordered by primary key."""
    out = []
    for name in tables:
        table = metadata.tables[name]
        cols = [c for c in table.columns if not isinstance(c.type, Text)]
        order = list(table.primary_key.columns) or cols
        out.append((name, tuple(tuple(r) for r in session.execute(select(*cols).order_by(*order)))))
    return tuple(out)


class CommitCounter:
    """Counts the commits on every engine: a request that committed nothing changed nothing,
    so its fingerprint is the one before it (saves most of the comparisons' queries)."""

    def __init__(self) -> None:
        self.count = 0

    def _on_commit(self, _conn) -> None:
        self.count += 1

    def __enter__(self) -> CommitCounter:
        event.listen(Engine, "commit", self._on_commit)
        return self

    def __exit__(self, *exc) -> None:
        event.remove(Engine, "commit", self._on_commit)


def changed(before: tuple, after: tuple) -> list[str]:
    return [b[0] for b, a in zip(before, after, strict=True) if b != a]


# --- results (the reliability conftest prints them at the end of the run) -------------------------


@dataclass
class Tally:
    """What a run saw: requests, statuses, 5xx (with the request), refused-and-changed."""

    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (request, exception)
    changed: list[tuple[str, int, list[str]]] = field(default_factory=list)
    by_rule: Counter = field(default_factory=Counter)  # (rule, method, status): how many

    @property
    def n5xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def add(self, other: Tally) -> None:
        self.requests += other.requests
        self.statuses.update(other.statuses)
        self.errors += other.errors
        self.changed += other.changed

    def distinct_errors(self) -> dict[str, str]:
        """One example request per (rule, exception type and message head)."""
        seen: dict[str, str] = {}
        for request, error in self.errors:
            rule = request.split(" rule=", 1)[1].split(" ", 1)[0] if " rule=" in request else ""
            seen.setdefault(f"{rule}: {error[:160]}", request)
        return seen


TALLIES: dict[str, Tally] = {}
