"""The few htmx rules in one place: page or fragment, and redirects that htmx follows."""

from __future__ import annotations

from flask import Response, make_response, redirect, render_template, request


def is_htmx() -> bool:
    """True for a request made by htmx (and not a history restore, which needs the page)."""
    return request.headers.get("HX-Request") == "true" and not request.headers.get(
        "HX-History-Restore-Request"
    )


def render(page: str, fragment: str, status: int = 200, **context) -> Response:
    """Render the whole page, or only the fragment for htmx; the answer varies on HX-Request."""
    template = fragment if is_htmx() else page
    response = make_response(render_template(template, **context), status)
    response.vary.add("HX-Request")
    return response


def redirect_to(url: str) -> Response:
    """A real navigation: HX-Redirect for htmx (a 3xx would be swapped in), 303 otherwise."""
    if is_htmx():
        response = make_response("", 200)
        response.headers["HX-Redirect"] = url
    else:
        response = redirect(url, code=303)
    response.vary.add("HX-Request")
    return response
