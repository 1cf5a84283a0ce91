"""The intermediary's REST API (signed like the bank's: webapp.signing) and its pages.

POST /api/v1/fatture                 {"nome_file", "file" (base64)} -> 201 {"identificativo_sdi"}
GET  /api/v1/fatture/<nome_file>     the file received under that name, or 404
GET  /api/v1/notifiche?dopo=<n>      the notifications after cursor n (XML in base64)
POST /api/v1/orologio                {"avanza_giorni": n}  (sandbox control: the clock)
POST /api/v1/servizio                {"disponibile": bool} (sandbox control: an outage)
"""

from __future__ import annotations

import base64
import binascii
import json
import time

from flask import Blueprint, Response, abort, current_app, g, jsonify, render_template, request

from webapp.signing import MERCHANT_HEADER, BadSignature, sign_request, verify_request

from . import checks, services
from .extensions import db, sdi_now
from .models import Notification, ReceivedFile
from .notifier import wake

api = Blueprint("sdi_api", __name__, url_prefix="/api/v1")
pages = Blueprint("sdi_pages", __name__)


@api.before_request
def authenticate() -> None:
    """Every API call is signed with the seller's shared secret (401 otherwise)."""
    cfg = current_app.config
    if request.headers.get(MERCHANT_HEADER) != cfg["SDI_CLIENT_ID"]:
        abort(401)
    try:
        verify_request(
            cfg["SDI_SHARED_SECRET"],
            request.method,
            request.path,
            request.get_data(),
            request.headers,
            int(time.time()),
        )
    except BadSignature:
        abort(401)
    g.signed = True


@api.after_request
def sign_answer(response: Response) -> Response:
    """The answer is signed too: the seller trusts no unsigned outcome."""
    cfg = current_app.config
    body = response.get_data()
    method = f"RESPONSE {response.status_code} {request.method.upper()}"
    response.headers.update(
        sign_request(
            cfg["SDI_SHARED_SECRET"],
            cfg["SDI_CLIENT_ID"],
            method,
            request.path,
            body,
            int(time.time()),
        )
    )
    return response


def _json() -> dict:
    try:
        data = json.loads(request.get_data() or b"{}")
    except ValueError:
        abort(400)
    if not isinstance(data, dict):
        abort(400)
    return data


def _file(received: ReceivedFile) -> dict:
    return {
        "identificativo_sdi": received.sdi_id,
        "nome_file": received.file_name,
        "ricevuto_il": received.received_at.isoformat(),
        "esito": received.outcome,
    }


def _error(code: str, status: int, detail: str) -> tuple[Response, int]:
    return jsonify(error=code, detail=detail), status


@api.post("/fatture")
def send_file():
    data = _json()
    name, content = data.get("nome_file"), data.get("file")
    if not isinstance(name, str) or not isinstance(content, str) or not name or len(name) > 200:
        return _error("richiesta_non_valida", 400, "nome_file e file sono obbligatori")
    try:
        raw = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        return _error("richiesta_non_valida", 400, "file non è base64")
    try:
        received = services.receive(name, raw, sdi_now())
    except services.EmptyFile:
        return _error("file_vuoto", 400, "Il file è vuoto")
    except services.Unavailable:
        return _error("servizio_non_disponibile", 503, "Servizio temporaneamente non disponibile")
    db.session.commit()
    wake(current_app)
    return jsonify(_file(received)), 201


@api.get("/fatture/<path:file_name>")
def find_file(file_name: str):
    received = services.find_by_name(file_name)
    if received is None:
        return _error("non_trovato", 404, "Nessun file con questo nome")
    return jsonify(_file(received))


@api.get("/notifiche")
def list_notifications():
    since = request.args.get("dopo", "0")
    if not (since.isascii() and since.isdigit()) or len(since) > 12:
        return _error("richiesta_non_valida", 400, "dopo: un numero")
    notes = services.feed(int(since))
    items = [
        {
            "cursore": note.id,
            "tipo": note.kind,
            "identificativo_sdi": note.file.sdi_id,
            "nome_file": note.file.file_name,
            "xml": base64.b64encode(note.xml).decode(),
        }
        for note in notes
    ]
    return jsonify(notifiche=items, cursore=items[-1]["cursore"] if items else int(since))


@api.post("/orologio")
def move_clock():
    days = _json().get("avanza_giorni")
    if not isinstance(days, int | float) or isinstance(days, bool) or not 0 <= days <= 3650:
        return _error("richiesta_non_valida", 400, "avanza_giorni: da 0 a 3650")
    moved = services.advance_clock(days, sdi_now())
    db.session.commit()
    wake(current_app)
    return jsonify(ora=moved.isoformat())


@api.post("/servizio")
def set_service():
    available = _json().get("disponibile")
    if not isinstance(available, bool):
        return _error("richiesta_non_valida", 400, "disponibile: true o false")
    services.set_available(available)
    db.session.commit()
    return jsonify(disponibile=available)


TEST_CODES = [
    (checks.DELIVERED, "Impresa raggiungibile", "RC (Consegnata)"),
    (checks.UNREACHABLE, "Impresa con canale non raggiungibile", "MC (Non consegnata)"),
    (checks.CONSUMER, "Consumatore o impresa senza canale", "MC (Non consegnata)"),
    ("TESTNS1", "Codice non valido: forza lo scarto", "NS 00311 (Scartata)"),
    (checks.PA_ACCEPTS, "Ufficio PA che accetta", "RC, poi NE EC01 (Accettata)"),
    (checks.PA_REFUSES, "Ufficio PA che rifiuta", "RC, poi NE EC02 (Rifiutata)"),
    (checks.PA_SILENT, "Ufficio PA che non risponde", "RC, poi DT dopo 15 giorni"),
    (checks.PA_UNREACHABLE, "Ufficio PA non raggiungibile", "MC, poi AT dopo 10 giorni"),
]


@pages.get("/")
def home():
    """The files received, each one's notifications, the test codes and the clock."""
    return render_template(
        "sdi/home.html", files=services.recent_files(), codes=TEST_CODES, now=sdi_now()
    )


@pages.get("/notifiche/<int:note_id>.xml")
def notification_xml(note_id: int):
    note = db.session.get(Notification, note_id)
    if note is None:
        abort(404)
    return Response(note.xml, mimetype="application/xml")
