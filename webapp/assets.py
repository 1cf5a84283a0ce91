"""Static files under content-hashed URLs, so the browser may cache them for a year."""

from __future__ import annotations

import hashlib
from pathlib import Path

from flask import current_app, request, url_for

_hashes: dict[Path, tuple[float, str]] = {}


def file_hash(filename: str) -> str | None:
    """A short hash of a static file's content (recomputed when the file changes on disk)."""
    folder = current_app.static_folder
    if folder is None:
        return None
    path = (Path(folder) / filename).resolve()
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    cached = _hashes.get(path)
    if cached and cached[0] == mtime:
        return cached[1]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    _hashes[path] = (mtime, digest)
    return digest


def static_url(filename: str) -> str:
    """`/static/app.css?v=<hash>`: a new content is a new URL, so an old copy never sticks."""
    digest = file_hash(filename)
    if digest is None:
        return url_for("static", filename=filename)
    return url_for("static", filename=filename, v=digest)


def cache_static(response):
    """A year of `immutable` caching for a static file asked for under its current hash."""
    if request.endpoint != "static" or response.status_code != 200:
        return response
    # Flask streams static files and Flask-Compress compresses streams only with its streaming
    # algorithms: read the file (they are small) so CSS, JS and SVG get brotli or gzip too.
    response.direct_passthrough = False
    response.make_sequence()
    version = request.args.get("v")
    filename = (request.view_args or {}).get("filename")
    if version and filename and version == file_hash(filename):
        max_age = current_app.config.get("STATIC_IMMUTABLE_MAX_AGE", 31_536_000)
        response.headers["Cache-Control"] = f"public, max-age={max_age}, immutable"
    return response
