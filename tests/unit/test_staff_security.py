"""Issue 19 (findings 2-4) and issue 21's staff part: staff sessions end for real, wrong TOTP
codes are counted per account, enrolment and password resets go through one-time links."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import func, select

from tests.unit.backoffice_world import STAFF_PASSWORD, make_staff, staff_session
from webapp.backoffice.models import AuditEntry, StaffLink, StaffUser
from webapp.outbox.models import OutboxEmail

LINK = re.compile(r"/backoffice/link/([A-Za-z0-9_-]+)")


def password_step(client, staff, password: str = STAFF_PASSWORD):
    return client.post("/backoffice/accesso", data={"email": staff.email, "password": password})


def full_login(client, staff, password: str = STAFF_PASSWORD) -> None:
    password_step(client, staff, password)
    code = pyotp.TOTP(staff.totp_secret).now()
    response = client.post("/backoffice/accesso/codice", data={"code": code})
    assert response.headers["Location"].endswith("/backoffice/")


def saved_cookie(client) -> str:
    return client.get_cookie("session").value


def reuse_cookie(app, value: str):
    other = app.test_client()
    other.set_cookie("session", value)
    return other


# --- finding 2: logout, deactivation, absolute lifetime --------------------------------------


def test_a_cookie_saved_before_logout_opens_nothing_after_it(app, client, db):
    staff = make_staff()
    full_login(client, staff)
    cookie = saved_cookie(client)
    assert client.post("/backoffice/esci").status_code == 303
    stolen = reuse_cookie(app, cookie)
    response = stolen.get("/backoffice/")
    assert response.status_code == 303 and response.headers["Location"].endswith("/accesso")


def test_logout_ends_the_other_sessions_too(app, client, db):
    staff = make_staff()
    full_login(client, staff)
    laptop = app.test_client()
    staff_session(laptop, db.session.get(StaffUser, staff.id))
    assert laptop.get("/backoffice/").status_code == 200
    client.post("/backoffice/esci")
    assert laptop.get("/backoffice/").status_code == 303


def test_deactivation_ends_the_members_sessions(app, client, db):
    admin = make_staff()
    operator = make_staff("op@pecshop.test", "operatore")
    op_client = app.test_client()
    staff_session(op_client, operator)
    assert op_client.get("/backoffice/").status_code == 200
    staff_session(client, admin)
    client.post(f"/backoffice/staff/{operator.id}/attivo", data={"active": "0"})
    assert op_client.get("/backoffice/").status_code == 303
    client.post(f"/backoffice/staff/{operator.id}/attivo", data={"active": "1"})
    assert op_client.get("/backoffice/").status_code == 303  # reactivation revives nothing


def test_a_session_lasts_at_most_the_configured_hours_even_if_used(app, client, db):
    from webapp.clock import now_utc

    staff = make_staff()
    staff_session(client, staff, now_utc() - timedelta(hours=11, minutes=50))
    with client.session_transaction() as session:
        session["staff_seen"] = now_utc().timestamp()  # used a minute ago
    assert client.get("/backoffice/").status_code == 200
    with client.session_transaction() as session:
        session["staff_since"] = (now_utc() - timedelta(hours=12, minutes=1)).timestamp()
    response = client.get("/backoffice/", follow_redirects=True)
    assert "dopo 12 ore" in response.text
    app.config["STAFF_SESSION_MAX_HOURS"] = 1
    staff_session(client, staff, now_utc() - timedelta(minutes=61))
    with client.session_transaction() as session:
        session["staff_seen"] = now_utc().timestamp()
    assert client.get("/backoffice/").status_code == 303


def test_a_forged_session_without_version_opens_nothing(client, db):
    from webapp.clock import now_utc

    staff = make_staff()
    with client.session_transaction() as session:  # finding 5's cookie: id and time only
        session["staff_id"] = staff.id
        session["staff_seen"] = now_utc().timestamp()
    assert client.get("/backoffice/staff").status_code == 303


# --- finding 3: wrong codes counted per account ----------------------------------------------


def wrong(client) -> int:
    return client.post("/backoffice/accesso/codice", data={"code": "000000"}).status_code


def test_the_pending_login_ends_after_five_wrong_codes_whatever_the_address(app, client, db):
    staff = make_staff()
    password_step(client, staff)
    cookie = saved_cookie(client)
    assert [wrong(client) for _ in range(4)] == [422] * 4
    assert wrong(client) == 303  # the fifth ends it
    assert client.get("/backoffice/accesso/codice").status_code == 303
    # The cookie of the pending login, saved before the failures, does not start afresh.
    replay = reuse_cookie(app, cookie)
    assert wrong(replay) == 303
    right = pyotp.TOTP(staff.totp_secret).now()
    assert replay.post("/backoffice/accesso/codice", data={"code": right}).status_code == 303
    assert replay.get("/backoffice/").status_code == 303


def test_ten_wrong_codes_lock_the_account_once_with_an_email_and_an_audit_row(client, db):
    staff = make_staff()
    for _ in range(2):
        password_step(client, staff)
        statuses = [wrong(client) for _ in range(5)]
        assert statuses == [422] * 4 + [303]
    db.session.expire_all()
    locked = db.session.get(StaffUser, staff.id)
    assert locked.locked_at is not None and locked.totp_failures == 10
    mails = db.session.scalars(select(OutboxEmail).where(OutboxEmail.to_addr == staff.email)).all()
    assert [m.subject for m in mails] == ["Il tuo account del back office è stato bloccato"]
    assert "10 codici TOTP errati" in mails[0].body_text
    assert (
        db.session.scalar(
            select(func.count(AuditEntry.id)).where(AuditEntry.action == "account staff bloccato")
        )
        == 1
    )
    # Even with the right password and code now: refused.
    response = password_step(client, staff)
    assert response.status_code == 422 and "Account bloccato" in response.text


def test_a_right_code_resets_the_count(client, db):
    staff = make_staff()
    password_step(client, staff)
    assert [wrong(client) for _ in range(3)] == [422] * 3
    right = pyotp.TOTP(staff.totp_secret).now()
    assert client.post("/backoffice/accesso/codice", data={"code": right}).status_code == 303
    db.session.expire_all()
    assert db.session.get(StaffUser, staff.id).totp_failures == 0


# --- finding 4: enrolment only through a one-time link ---------------------------------------


def sent_link(db, email: str) -> str:
    mail = db.session.scalar(
        select(OutboxEmail).where(OutboxEmail.to_addr == email).order_by(OutboxEmail.id.desc())
    )
    return LINK.search(mail.body_text).group(0)


def test_a_new_account_never_shows_its_secret_after_the_password(client, db):
    from webapp.backoffice.auth import create_staff

    staff = create_staff("nuovo@pecshop.test", "Nuovo", "operatore", STAFF_PASSWORD)
    db.session.commit()
    response = password_step(client, staff)
    assert response.status_code == 422
    assert "non è configurato" in response.text and staff.totp_secret not in response.text
    assert client.get("/backoffice/accesso/codice").status_code == 303


def test_an_administrator_creates_an_account_and_the_member_activates_it(app, client, db, now):
    admin = make_staff()
    staff_session(client, admin)
    response = client.post(
        "/backoffice/staff",
        data={"email": "Nuova@pecshop.test", "name": "Nuova", "role": "operatore"},
    )
    assert response.status_code == 303
    member = db.session.scalar(select(StaffUser).where(StaffUser.email == "nuova@pecshop.test"))
    url = sent_link(db, member.email)
    assert url not in client.get("/backoffice/staff").text  # the administrator never sees it
    newcomer = app.test_client()
    opened = newcomer.get(url)
    assert opened.status_code == 303 and opened.headers["Location"].endswith("/backoffice/link")
    page = newcomer.get("/backoffice/link").text
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    assert "data:image/svg+xml" in page
    form = {"password": "una-password-nuova", "password2": "una-password-nuova"}
    assert newcomer.post("/backoffice/link", data={**form, "code": "000000"}).status_code == 422
    code = pyotp.TOTP(secret).now()
    done = newcomer.post("/backoffice/link", data={**form, "code": code})
    assert done.status_code == 303 and done.headers["Location"].endswith("/backoffice/accesso")
    # Used: the link is dead, and the account logs in with what the member chose.
    assert newcomer.get(url, follow_redirects=True).status_code == 410
    db.session.expire_all()
    member = db.session.get(StaffUser, member.id)
    assert member.totp_confirmed and member.check_password("una-password-nuova")
    assert member.totp_secret == secret


def test_a_newer_link_kills_the_older_and_links_expire(app, client, db, now):
    from webapp.backoffice.links import LinkUnusable, find_link, issue_link
    from webapp.backoffice.models import StaffLinkPurpose

    member = make_staff("op@pecshop.test", "operatore")
    old = issue_link(member, StaffLinkPurpose.PASSWORD, now, timedelta(hours=24))
    new = issue_link(member, StaffLinkPurpose.PASSWORD, now, timedelta(hours=24))
    db.session.commit()
    with pytest.raises(LinkUnusable):
        find_link(old, now)
    assert find_link(new, now).staff_id == member.id
    with pytest.raises(LinkUnusable):
        find_link(new, now + timedelta(hours=24, seconds=1))
    with pytest.raises(LinkUnusable):
        find_link("x" * 5000, now)
    # Only the hash is stored.
    assert (
        db.session.scalar(select(func.count(StaffLink.id)).where(StaffLink.token_hash == new)) == 0
    )


# --- issue 21: an administrator resets an operator's password or authenticator ---------------


def test_a_password_reset_link_sets_a_new_password_and_ends_the_sessions(app, client, db):
    admin = make_staff()
    operator = make_staff("op@pecshop.test", "operatore")
    op_client = app.test_client()
    staff_session(op_client, operator)
    staff_session(client, admin)
    response = client.post(f"/backoffice/staff/{operator.id}/link", data={"purpose": "password"})
    assert response.status_code == 303
    assert "Link inviato per e-mail" in client.get("/backoffice/staff").text
    url = sent_link(db, operator.email)
    entry = db.session.scalar(
        select(AuditEntry).where(AuditEntry.action == "link inviato: password")
    )
    assert entry.staff_id == admin.id and entry.object_id == str(operator.id)
    assert op_client.get("/backoffice/").status_code == 200  # until the link is used
    member = app.test_client()
    member.get(url)
    page = member.get("/backoffice/link").text
    assert 'name="password"' in page and "totp-secret" not in page
    mismatch = {"password": "nuova-password-1", "password2": "nuova-password-2"}
    assert member.post("/backoffice/link", data=mismatch).status_code == 422
    same = {"password": "nuova-password-1", "password2": "nuova-password-1"}
    assert member.post("/backoffice/link", data=same).status_code == 303
    assert op_client.get("/backoffice/").status_code == 303
    db.session.expire_all()
    assert db.session.get(StaffUser, operator.id).check_password("nuova-password-1")
    assert (
        db.session.scalar(
            select(func.count(AuditEntry.id)).where(AuditEntry.action == "link usato: password")
        )
        == 1
    )


def test_a_totp_reset_disables_the_lost_phone_at_once_and_unlocks(app, client, db, now):
    admin = make_staff()
    operator = make_staff("op@pecshop.test", "operatore")
    operator.locked_at = now
    db.session.commit()
    op_client = app.test_client()
    staff_session(op_client, operator)
    staff_session(client, admin)
    assert (
        client.post(f"/backoffice/staff/{operator.id}/link", data={"purpose": "totp"}).status_code
        == 303
    )
    assert op_client.get("/backoffice/").status_code == 303  # sessions ended at once
    db.session.expire_all()
    assert not db.session.get(StaffUser, operator.id).totp_confirmed
    member = app.test_client()
    member.get(sent_link(db, operator.email))
    page = member.get("/backoffice/link").text
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    assert 'name="password"' not in page
    assert (
        member.post("/backoffice/link", data={"code": pyotp.TOTP(secret).now()}).status_code == 303
    )
    db.session.expire_all()
    fixed = db.session.get(StaffUser, operator.id)
    assert fixed.locked_at is None and fixed.totp_confirmed and fixed.totp_secret == secret


def test_operators_cannot_send_links(client, db):
    operator = make_staff("op@pecshop.test", "operatore")
    staff_session(client, operator)
    response = client.post(f"/backoffice/staff/{operator.id}/link", data={"purpose": "password"})
    assert response.status_code == 403


def test_the_link_leaves_the_address_bar(client, db, now):
    from webapp.backoffice.links import issue_link
    from webapp.backoffice.models import StaffLinkPurpose

    member = make_staff("op@pecshop.test", "operatore")
    token = issue_link(member, StaffLinkPurpose.PASSWORD, now, timedelta(hours=24))
    db.session.commit()
    response = client.get(f"/backoffice/link/{token}")
    assert response.status_code == 303 and token not in response.headers["Location"]
    assert token not in client.get("/backoffice/link").text


# --- the demo staff of `make run` -------------------------------------------------------------


def test_seed_demo_enrols_the_demo_staff_with_the_printed_secrets(app, client, db):
    from webapp.backoffice.cli import DEMO_STAFF

    with app.app_context():
        result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    email, _name, _role, password, secret = DEMO_STAFF[0]
    assert f"{email} / {password} · segreto TOTP {secret} (solo sviluppo)" in result.output
    staff = db.session.scalar(select(StaffUser).where(StaffUser.email == email))
    full_login(client, staff, password)
    assert client.get("/backoffice/").status_code == 200


def test_the_access_log_never_prints_a_links_token(client, db, now, caplog):
    from webapp.backoffice.links import issue_link
    from webapp.backoffice.models import StaffLinkPurpose

    member = make_staff("op@pecshop.test", "operatore")
    token = issue_link(member, StaffLinkPurpose.PASSWORD, now, timedelta(hours=24))
    db.session.commit()
    with caplog.at_level("INFO", logger="webapp.access"):
        client.get(f"/backoffice/link/{token}")
    lines = [r.getMessage() for r in caplog.records if r.name == "webapp.access"]
    assert lines and all(token not in line for line in lines)
    assert any("/backoffice/link/[redatto]" in line for line in lines)


def test_an_audit_row_keeps_no_nul_byte_of_a_typed_email(app, db):
    """A refused login's row holds the e-mail as typed: PostgreSQL stores no NUL (a 500)."""
    from webapp.backoffice.audit import record

    entry = record(None, "rifiutata: backoffice.login", email="a\x00b", reason="x\x00y")
    db.session.commit()
    assert (entry.staff_email, entry.reason) == ("ab", "xy")
