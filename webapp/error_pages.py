"""Error pages: the shop's, the back office's own, and a login refused for too many tries.

A 429 on a login form shows that form again with "riprova tra un minuto" (the limit is per
minute), not a dead end; anything under /backoffice/ gets the back office's page (no "Accedi /
Registrati" of the shop there); htmx requests get the fragment.
"""

from __future__ import annotations

from flask import render_template, request

from webapp.htmx import is_htmx
from webapp.i18n import lazy_gettext as _l

RETRY = _l("Troppi tentativi di accesso: riprova tra un minuto.")


def render_error(error) -> tuple[str, int]:
    """The page (or fragment) for an HTTP error, by where it happened."""
    code = getattr(error, "code", 500)
    if code == 429 and request.method == "POST" and not is_htmx():  # htmx: the fragment below
        page = _login_again()
        if page is not None:
            return page, 429
    if request.path.startswith("/backoffice"):
        template = "backoffice/_error.html" if is_htmx() else "backoffice/error.html"
    else:
        template = "_error.html" if is_htmx() else "error.html"
    return render_template(template, code=code, error=error), code


def _login_again() -> str | None:
    """The login form again, with what was typed (never the password) and the wait."""
    if request.endpoint == "account.login":
        from webapp.account.forms import LoginForm

        form = LoginForm()
        form.password.data = ""
        return render_template("account/login.html", form=form, error=str(RETRY))
    if request.endpoint == "backoffice.login":
        email = request.form.get("email", "")[:254]
        return render_template("backoffice/login.html", error=str(RETRY), email=email)
    return None
