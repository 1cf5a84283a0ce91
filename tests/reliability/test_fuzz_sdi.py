"""Every rule of the SdI · Sandbox's URL map, every method, hostile everything (the generator of
tests/reliability/urlmap.py, half the requests signed with the shared secret): no 5xx, and a
refused request (4xx) leaves the sandbox's tables as they were."""

from __future__ import annotations

import base64
import json
import random
import time

import pytest
from sqlalchemy import select

from tests.reliability import urlmap
from tests.reliability.test_fuzz_urlmap import BANK_REQUESTS, SEED, _report, fire
from webapp.signing import sign_request

pytestmark = pytest.mark.reliability
SECRET = "fuzz-sdi-secret"
TABLES = ("sdi_file", "sdi_message", "sdi_setting")


@pytest.fixture
def sandbox(tmp_path):
    from webapp.sdi import create_sdi_app
    from webapp.sdi.extensions import db

    app = create_sdi_app(
        {
            "TESTING": True,
            "SDI_DATABASE_URL": f"sqlite:///{tmp_path / 'sdi.db'}",
            "SDI_SHARED_SECRET": SECRET,
            "SDI_NOTIFY_ENABLED": False,
        }
    )
    body = json.dumps(
        {"nome_file": "IT01234560157_00001.xml", "file": base64.b64encode(b"<x/>").decode()}
    ).encode()
    headers = sign_request(SECRET, "pec-shop", "POST", "/api/v1/fatture", body, int(time.time()))
    assert app.test_client().post("/api/v1/fatture", data=body, headers=headers).status_code == 201
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_fuzz_the_sandbox_from_its_url_map(sandbox) -> None:
    from webapp.sdi.extensions import db
    from webapp.sdi.models import Notification, ReceivedFile

    rng = random.Random(SEED)
    with sandbox.app_context():
        names = list(db.session.scalars(select(ReceivedFile.file_name)))
        notes = [str(n) for n in db.session.scalars(select(Notification.id))]
        db.session.remove()

    def state() -> tuple:
        with sandbox.app_context():
            fp = urlmap.fingerprint(db.session, db.metadata, TABLES)
            db.session.remove()
        return fp

    values = [*names, *notes, "0", "1", "15"]
    client = sandbox.test_client()
    gen = urlmap.Generator(
        sandbox,
        rng,
        urlmap.harvest_fields(sandbox, client, ["/"]),
        {"file_name": names, "note_id": notes, "*": notes},
        lambda: values,
        secret=SECRET,
        merchant="pec-shop",
        sign_rate=0.5,
    )
    tally = urlmap.Tally()
    before = state()
    for _ in range(BANK_REQUESTS):
        draw = gen.draw()
        with sandbox.app_context():
            status = fire(client, draw, tally, db.session)
            db.session.remove()
        tally.by_rule[(draw.rule, draw.method, status)] += 1
        after = state()
        if after != before and 400 <= status < 500:
            tally.changed.append((str(draw), status, urlmap.changed(before, after)))
        before = after
    urlmap.TALLIES["SdI sandbox"] = tally
    assert not tally.errors and not tally.changed, _report(tally)
