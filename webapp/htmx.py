"""The few htmx rules in one place: page or fragment, and redirects that htmx follows."""

from __future__ import annotations

from collections.abc import Hashable
from urllib.parse import urlsplit

from flask import Response, current_app, make_response, redirect, render_template, request, session
from flask_babel import get_locale
from prometheus_client import Counter

#: On /metrics (webapp.metrics) with the other counters: what the fragment cache serves again.
FRAGMENT_CACHE = Counter(
    "pecshop_fragment_cache_total",
    "htmx fragments asked of the per-process fragment cache (render_cached), by template and "
    "result: hit (served again) or miss (rendered and kept).",
    ["fragment", "result"],
)


def is_htmx() -> bool:
    """True for an htmx request that wants a fragment.

    A history restore and a boosted navigation (hx-boost on <body>: links and plain forms) send
    HX-Request too, but they swap the whole body, so they get the whole page.
    """
    headers = request.headers
    return (
        headers.get("HX-Request") == "true"
        and headers.get("HX-Boosted") != "true"
        and not headers.get("HX-History-Restore-Request")
    )


def is_boosted() -> bool:
    """A boosted navigation: an XHR that swaps in the whole page and pushes its URL."""
    return (
        request.headers.get("HX-Boosted") == "true" and request.headers.get("HX-Request") == "true"
    )


def render(page: str, fragment: str, status: int = 200, **context) -> Response:
    """Render the whole page, or only the fragment for htmx; the answer varies on HX-Request."""
    template = fragment if is_htmx() else page
    return _varying(render_template(template, **context), status)


def render_cached(
    page: str, fragment: str, key: Hashable, status: int = 200, **context
) -> Response:
    """`render`, with the htmx fragment kept per process and served again while `key` (every
    value the fragment shows) is the same: a cart asked for again renders nothing.

    The cached markup holds a CSRF token signed for this session's token, so the session's
    token is part of the key, and a session without one yet is not cached. Only 200 answers
    are kept (an error answers one request). Off when FRAGMENT_CACHE_SIZE is 0, in debug, and
    when CSRF tokens expire (WTF_CSRF_TIME_LIMIT).
    """
    cache = _fragment_cache()
    token = session.get(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"))
    if cache is None or status != 200 or not is_htmx() or token is None:
        return render(page, fragment, status, **context)
    full_key = (fragment, key, token, str(get_locale()), request.script_root)
    html = cache.get(full_key)
    FRAGMENT_CACHE.labels(fragment, "miss" if html is None else "hit").inc()
    if html is None:
        html = render_template(fragment, **context)
        if len(cache) >= current_app.config["FRAGMENT_CACHE_SIZE"]:
            cache.clear()  # simple and thread-safe bound: a full cache starts over
        cache[full_key] = html
    return _varying(html, status)


def _varying(html: str, status: int) -> Response:
    """The answer, marked as varying with the htmx headers that chose page or fragment."""
    response = make_response(html, status)
    _vary_on_htmx(response)
    return response


VARY_HTMX = "HX-Request, HX-Boosted"


def _vary_on_htmx(response: Response) -> None:
    """Vary on the htmx headers."""
    vary_on(response, VARY_HTMX)


def vary_on(response: Response, names: str) -> None:
    """Add `names` ("A, B") to the answer's Vary, each once, written as one header:
    `response.vary.add` re-parses and re-writes the header at each call, a few percent of a
    cached fragment's answer."""
    existing = response.headers.get("Vary")
    if not existing:
        response.headers["Vary"] = names
        return
    present = {value.strip().lower() for value in existing.split(",")}
    missing = [name for name in names.split(", ") if name.lower() not in present]
    if missing:
        response.headers["Vary"] = ", ".join([existing, *missing])


def _fragment_cache() -> dict | None:
    config = current_app.config
    if (
        not config.get("FRAGMENT_CACHE_SIZE")
        or current_app.debug
        or config.get("TEMPLATES_AUTO_RELOAD")
        or config.get("WTF_CSRF_TIME_LIMIT") is not None
    ):
        return None
    return current_app.extensions.setdefault("webapp.fragments", {})


def _same_origin(url: str) -> bool:
    parts = urlsplit(url)
    return (not parts.scheme and not parts.netloc) or parts.netloc == request.host


def redirect_to(url: str) -> Response:
    """A real navigation: HX-Redirect for htmx (a 3xx would be swapped in), 303 otherwise.

    A boosted form post follows a 303 to the shop inside its XHR and swaps in the page (htmx
    pushes the final URL); to another origin (the bank) the XHR cannot follow, so HX-Redirect.
    """
    if is_htmx() or (is_boosted() and not _same_origin(url)):
        response = make_response("", 200)
        response.headers["HX-Redirect"] = url
    else:
        response = redirect(url, code=303)
    _vary_on_htmx(response)
    return response
