"""The back office's staff forms answer one way (blueprint.save): refused -> the form again with
422 and nothing written; saved -> one commit, the success message flashed, back to a page (a
303, or HX-Redirect for htmx). A page with no fragment is rendered whole, htmx or not."""

from __future__ import annotations

from sqlalchemy import select

from tests.unit.backoffice_world import make_staff, staff_session
from tests.unit.helpers import HX
from webapp.backoffice.models import AuditEntry, StaffUser
from webapp.clock import now_utc


def _audit_actions(db) -> list[str]:
    return list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_disabling_a_code_commits_flashes_and_goes_back_to_its_page(client, db, catalogue):
    code = catalogue["codes"]["BENVENUTO10"]
    assert code.valid_until > now_utc()
    staff_session(client, make_staff())
    response = client.post(f"/backoffice/sconti/{code.id}/disattiva")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/backoffice/sconti/{code.id}")
    db.session.expire_all()
    assert code.valid_until <= now_utc()  # ended, and committed
    assert "codice sconto disattivato" in _audit_actions(db)
    assert "Codice sconto BENVENUTO10 disattivato." in client.get(response.headers["Location"]).text


def test_htmx_is_sent_on_with_hx_redirect(client, db, catalogue):
    code = catalogue["codes"]["PEC5"]
    staff_session(client, make_staff())
    response = client.post(f"/backoffice/sconti/{code.id}/disattiva", headers=HX)
    assert response.status_code == 200
    assert response.headers["HX-Redirect"].endswith(f"/backoffice/sconti/{code.id}")


def test_a_refused_form_comes_back_with_422_and_nothing_is_written(client, db, catalogue):
    member = make_staff("op@pecshop.test", "operatore")
    staff_session(client, make_staff())
    refused = client.post(f"/backoffice/staff/{member.id}/link", data={"purpose": "nessuno"})
    assert refused.status_code == 422
    assert "Scegli un account attivo e il tipo di link da inviare." in refused.text
    assert "<html" in refused.text  # the staff page again, with the error
    db.session.expire_all()
    assert [a for a in _audit_actions(db) if a.startswith("link inviato")] == []


def test_a_saved_form_flashes_its_message_on_the_page_it_goes_back_to(client, db, catalogue):
    member = make_staff("op@pecshop.test", "operatore")
    staff_session(client, make_staff())
    sent = client.post(f"/backoffice/staff/{member.id}/link", data={"purpose": "password"})
    assert sent.status_code == 303 and sent.headers["Location"].endswith("/backoffice/staff")
    assert "link inviato: password" in _audit_actions(db)
    page = client.get(sent.headers["Location"]).text
    assert "Link inviato per e-mail a op@pecshop.test" in page
    assert db.session.get(StaffUser, member.id) is not None


def test_a_page_without_a_fragment_is_the_whole_page_for_htmx_too(client, catalogue):
    staff_session(client, make_staff())
    plain = client.get("/backoffice/catalogo")
    boosted = client.get("/backoffice/catalogo", headers=HX)
    assert plain.status_code == boosted.status_code == 200
    assert "<html" in boosted.text and boosted.text == plain.text
    assert "HX-Request" not in boosted.headers.get("Vary", "")
