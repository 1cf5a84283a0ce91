"""POST /sdi/notifiche: the intermediary's signed webhook with one SdI notification (XML).

400 on a bad signature or body, 200 otherwise (also for a replay or an unknown file, which
change nothing: answering an error would only make the intermediary retry it forever).
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from webapp.clock import now_utc
from webapp.invoicing.sdi_inbox import BadNotification, receive
from webapp.invoicing.transmission import gateway
from webapp.signing import BadSignature
from webapp.transaction import commit, rollback

bp = Blueprint("sdi_webhook", __name__)


@bp.post("/sdi/notifiche")
def receive_notification() -> Response | tuple[str, int]:
    body = request.get_data(cache=False)
    try:
        gateway().verify_webhook(request.path, body, request.headers)
        outcome = receive(body, now_utc())
    except (BadSignature, BadNotification):
        rollback()
        return "richiesta non valida", 400
    commit()
    return Response(outcome, mimetype="text/plain")
