"""Legal pages (Privacy, Cookie) and the favicon: static pages, outside the feature packages."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template

from webapp.assets import static_url

bp = Blueprint("legal", __name__)


@bp.get("/privacy")
def privacy():
    return render_template("legal/privacy.html")


@bp.get("/cookie")
def cookies():
    return render_template("legal/cookie.html")


@bp.get("/favicon.ico")
def favicon():
    """Browsers ask for /favicon.ico whatever the page links: send them to the SVG icon."""
    return redirect(static_url("favicon.svg"), code=301)
