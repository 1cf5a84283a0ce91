"""The customer area: I miei servizi (switch, frequency, card), saved cards, orders and receipts.

Pages and htmx fragments, 422 for bad input with nothing changed, 404 for what is not yours.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from tests.unit.bank_browser import BankBrowser
from tests.unit.renewal_fakes import FAKE_SECRET, emails, make_card, make_service
from webapp import signing
from webapp.extensions import db
from webapp.payments.gateway import (
    CardDetails,
    GatewayRefused,
    GatewayStatus,
    GatewayUnavailable,
)
from webapp.payments.models import SavedCard
from webapp.renewals.engine import run_renewals
from webapp.renewals.models import Renewal, RenewalStatus, Service
from webapp.shop.order_models import Order, OrderKind, OrderStatus

HX = {"HX-Request": "true"}
EXPIRES = datetime(2027, 1, 20, 10, 0, tzinfo=UTC)
TODAY = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


class Clock:
    now = TODAY


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """The area's clock, settable (the views read it through now_utc)."""
    import webapp.account.area

    clock = Clock()
    monkeypatch.setattr(webapp.account.area, "now_utc", lambda: clock.now)
    return clock


@pytest.fixture
def shopper(client, auth, dummy_customer, clock):
    response = auth.login()
    assert response.status_code == 303
    return dummy_customer


@pytest.fixture
def card(shopper):
    return make_card(shopper)


@pytest.fixture
def pec(shopper, catalogue, card):
    return make_service(shopper, catalogue["products"]["PEC-STD"], expires_at=EXPIRES, card=card)


@pytest.fixture
def stranger(create_customer, catalogue):
    other = create_customer(email="luigi@example.it", name="Luigi Verdi")
    other_card = make_card(other, last4="9999")
    service = make_service(
        other, catalogue["products"]["SPID-PF"], expires_at=EXPIRES, card=other_card
    )
    return other, other_card, service


def fresh(obj):
    db.session.expire_all()
    return db.session.get(type(obj), obj.id)


def toggle(client, service, *values, htmx=True):
    return client.post(
        f"/area-clienti/servizi/{service.id}/rinnovo-automatico",
        data={"auto_renew": list(values)},
        headers=HX if htmx else {},
    )


def assert_fragment(response, element_id: str) -> None:
    assert "<html" not in response.text
    assert re.match(rf'\s*<\w+ id="{element_id}"[ >]', response.text), response.text[:300]
    assert "HX-Request" in response.headers.get("Vary", "")


# --- access ------------------------------------------------------------------------------------


def test_the_area_needs_a_login(client, fake):
    response = client.get("/area-clienti/")
    assert response.status_code in (302, 303)
    assert "/accedi" in response.headers["Location"]


def test_services_page(client, fake, shopper, pec, catalogue):
    firma = make_service(
        shopper, catalogue["products"]["FIRMA-R"], expires_at=EXPIRES, auto_renew=False
    )
    page = client.get("/area-clienti/")
    assert page.status_code == 200
    assert "<html" in page.text
    assert "I miei servizi" in page.text
    assert "Area clienti" in page.text  # the header link
    row = page.text[
        page.text.index(f'id="service-{pec.id}"') : page.text.index(f'id="service-{firma.id}"')
    ]
    assert "PEC Standard" in row
    assert f'id="service-{pec.id}-expiry">20/01/2027' in row
    assert "Attivo" in row
    switch = rf'<input type="checkbox" role="switch" id="auto-renew-{pec.id}"[^>]* checked>'
    assert re.search(switch, row)
    assert "Rinnovo automatico" in row
    assert "Frequenza di rinnovo" in row
    assert "Il 05/01/2027 addebiteremo <strong>€ 6,10</strong>" in row
    assert "Visa •••• 4242" in row
    assert "Il rinnovo automatico non è disponibile per Firma Digitale" in page.text
    assert f'id="auto-renew-{firma.id}"' not in page.text


def test_services_page_reads_in_a_constant_number_of_queries(
    client, fake, shopper, catalogue, pec, card
):
    """Each row is priced from what the page read (the buyer's split payment too): no N+1."""
    first = _statements(client, "/area-clienti/")
    products = catalogue["products"]
    for sku in ("SPID-PF", "CONS-1", "PEC-PROMO"):
        make_service(shopper, products[sku], expires_at=EXPIRES, card=card)
    assert _statements(client, "/area-clienti/") == first
    assert client.get("/area-clienti/").text.count('class="panel service"') == 4


# --- the switch ---------------------------------------------------------------------------------


def test_switch_off_and_on_in_place_with_an_email_each_time(client, fake, shopper, pec):
    response = toggle(client, pec, "0")
    assert response.status_code == 200
    assert_fragment(response, f"service-{pec.id}")
    assert 'data-auto-renew="off"' in response.text
    assert "Rinnovo automatico disattivato. Ti abbiamo inviato una e-mail" in response.text
    assert f'id="auto-renew-{pec.id}" name="auto_renew" value="1">' in response.text  # unchecked
    assert not fresh(pec).auto_renew
    [mail] = emails("Rinnovo automatico disattivato")
    assert mail.to_addr == shopper.email
    assert "non addebiteremo nulla" in mail.body_text
    assert "scadrà il 20/01/2027" in mail.body_text

    # The same click again (a double click): no change, no second e-mail.
    response = toggle(client, pec, "0")
    assert "era già disattivato" in response.text
    assert len(emails("Rinnovo automatico disattivato")) == 1

    response = toggle(client, pec, "0", "1")
    assert response.status_code == 200
    assert "Rinnovo automatico attivato." in response.text
    assert 'data-auto-renew="on"' in response.text
    assert fresh(pec).auto_renew
    [mail] = emails("Rinnovo automatico attivato")
    assert "€ 6,10" in mail.body_text and "Visa •••• 4242" in mail.body_text


def test_a_twin_switch_that_read_the_old_state_changes_nothing_and_sends_no_email(
    fake, shopper, pec
):
    """The switch is a compare-and-set: of twins that all read "on", one turns it off."""
    from sqlalchemy import update

    from webapp.renewals import manage
    from webapp.renewals.models import Service

    assert pec.auto_renew  # this request read "on" ...
    db.session.execute(  # ... and its twin turned it off and committed meanwhile
        update(Service)
        .where(Service.id == pec.id)
        .values(auto_renew=False)
        .execution_options(synchronize_session=False)
    )
    assert manage.set_auto_renew(pec, False, [], TODAY) is False
    assert pec.auto_renew is False  # reloaded: the page shows what the twin did
    assert emails("Rinnovo automatico") == []
    # The next real change still moves the row and sends its e-mail.
    assert manage.set_auto_renew(pec, True, [], TODAY) is True
    db.session.commit()
    assert fresh(pec).auto_renew
    assert len(emails("Rinnovo automatico attivato")) == 1


def test_the_switch_moves_only_its_own_service(
    client, fake, shopper, pec, catalogue, card, stranger
):
    spid = make_service(shopper, catalogue["products"]["SPID-PF"], expires_at=EXPIRES, card=card)
    _, _, other_service = stranger
    assert toggle(client, pec, "0").status_code == 200
    assert not fresh(pec).auto_renew
    assert fresh(spid).auto_renew and fresh(other_service).auto_renew
    assert len(emails("Rinnovo automatico disattivato")) == 1


def test_switching_off_needs_no_valid_card(client, fake, shopper, catalogue):
    expired = make_card(shopper, exp_month=1, exp_year=2025, last4="0069")
    service = make_service(
        shopper, catalogue["products"]["PEC-STD"], expires_at=EXPIRES, card=expired
    )
    response = toggle(client, service, "0")
    assert response.status_code == 200
    assert "Rinnovo automatico disattivato." in response.text
    assert not fresh(service).auto_renew
    assert len(emails("Rinnovo automatico disattivato")) == 1


def _off_on_an_expired_card(shopper, catalogue) -> Service:
    """A PEC with auto-renewal off whose card expired in January 2025."""
    expired = make_card(shopper, exp_month=1, exp_year=2025, last4="0069")
    return make_service(
        shopper,
        catalogue["products"]["PEC-STD"],
        expires_at=EXPIRES,
        card=expired,
        auto_renew=False,
    )


def test_the_service_in_hand_says_the_switch_and_the_card_it_now_has(
    fake, shopper, catalogue, card
):
    """set_auto_renew leaves the caller's object as the row is, without a reload."""
    from webapp.renewals import manage

    service = _off_on_an_expired_card(shopper, catalogue)
    assert manage.set_auto_renew(service, True, [card], TODAY) is True
    assert service.auto_renew is True
    assert (service.saved_card_id, service.saved_card) == (card.id, card)
    assert manage.set_auto_renew(service, False, [card], TODAY) is True
    assert service.auto_renew is False
    assert service.saved_card_id == card.id  # turning it off keeps the card
    db.session.commit()
    row = fresh(service)
    assert (row.auto_renew, row.saved_card_id) == (False, card.id)


def test_switching_back_on_inside_the_window_makes_the_renewal_due_at_once(
    client, fake, shopper, catalogue, card, clock
):
    """A renewal the engine set aside while the switch was off (no next attempt) is due again."""
    service = make_service(
        shopper, catalogue["products"]["PEC-STD"], expires_at=EXPIRES, card=card, auto_renew=False
    )
    spid = make_service(
        shopper, catalogue["products"]["SPID-PF"], expires_at=EXPIRES, card=card, auto_renew=False
    )
    retry_on = EXPIRES - timedelta(days=5)
    set_aside, planned = (
        Renewal(service_id=s.id, period_expires_at=EXPIRES, status=status, next_attempt_at=at)
        for s, status, at in (
            (service, RenewalStatus.PENDING, None),
            (spid, RenewalStatus.FAILED, retry_on),
        )
    )
    db.session.add_all([set_aside, planned])
    db.session.commit()
    clock.now = EXPIRES - timedelta(days=12)
    assert toggle(client, service, "0", "1").status_code == 200
    assert toggle(client, spid, "0", "1").status_code == 200
    assert fresh(set_aside).next_attempt_at == clock.now
    assert fresh(planned).next_attempt_at == retry_on  # its retry day stays as planned
    run_renewals(clock.now)
    assert [call["token"] for call in fake.calls] == [card.gateway_token]
    assert fresh(service).expires_at == datetime(2028, 1, 20, 10, 0, tzinfo=UTC)


def test_the_switch_email_announces_the_price_of_the_renewal_day(client, fake, shopper, pec):
    """A price change in force before the renewal day is the amount the e-mail says, as the page."""
    from webapp.shop.models import ProductPrice

    db.session.add(
        ProductPrice(
            product_id=pec.product_id, effective_from=date(2027, 1, 1), yearly_price_cents=800
        )
    )
    db.session.commit()
    toggle(client, pec, "0")
    response = toggle(client, pec, "0", "1")
    assert "Il 05/01/2027 addebiteremo <strong>€ 9,76</strong>" in response.text  # 8,00 + 22%
    [mail] = emails("Rinnovo automatico attivato")
    assert "Il 05/01/2027 addebiteremo € 9,76" in mail.body_text
    assert "6,10" not in mail.body_text


def test_switch_without_htmx_renders_the_page(client, fake, shopper, pec):
    response = toggle(client, pec, "0", htmx=False)
    assert response.status_code == 200
    assert "<html" in response.text
    assert f'id="service-{pec.id}-message"' in response.text
    assert not fresh(pec).auto_renew


def test_switch_on_without_a_valid_card_says_how_to_add_one(client, fake, shopper, catalogue):
    service = _off_on_an_expired_card(shopper, catalogue)
    response = toggle(client, service, "0", "1")
    assert response.status_code == 422
    assert_fragment(response, f"service-{service.id}")
    assert "serve una carta di pagamento valida" in response.text
    assert 'href="/area-clienti/carte#add-card"' in response.text
    assert 'data-auto-renew="off"' in response.text
    assert not fresh(service).auto_renew
    assert emails("Rinnovo automatico") == []


def test_switch_on_takes_a_valid_card_of_the_customer(client, fake, shopper, catalogue, card):
    service = make_service(
        shopper, catalogue["products"]["SPID-PF"], expires_at=EXPIRES, card=None, auto_renew=False
    )
    response = toggle(client, service, "0", "1")
    assert response.status_code == 200
    service = fresh(service)
    assert service.auto_renew and service.saved_card_id == card.id


@pytest.mark.parametrize("data", [{}, {"auto_renew": "si"}])
def test_bad_switch_input_is_422_and_changes_nothing(client, fake, shopper, pec, data):
    response = client.post(
        f"/area-clienti/servizi/{pec.id}/rinnovo-automatico", data=data, headers=HX
    )
    assert response.status_code == 422
    assert "Richiesta non valida" in response.text
    assert fresh(pec).auto_renew


def test_no_switch_for_firma_digitale_or_an_expired_service(client, fake, shopper, catalogue, card):
    firma = make_service(
        shopper, catalogue["products"]["FIRMA-R"], expires_at=EXPIRES, auto_renew=False
    )
    response = toggle(client, firma, "0", "1")
    assert response.status_code == 422
    assert "non è disponibile per Firma Digitale" in response.text
    assert not fresh(firma).auto_renew

    gone = make_service(
        shopper, catalogue["products"]["PEC-STD"], expires_at=EXPIRES, card=card, auto_renew=False
    )
    gone.status = gone.status.EXPIRED
    db.session.commit()
    response = toggle(client, gone, "0", "1")
    assert response.status_code == 422
    assert "Il servizio è scaduto" in response.text
    assert not fresh(gone).auto_renew


# --- frequency and card -------------------------------------------------------------------------


def test_frequency_changes_in_place_within_the_allowed_years(
    client, fake, shopper, catalogue, card
):
    promo = make_service(shopper, catalogue["products"]["PEC-PROMO"], expires_at=EXPIRES, card=card)
    url = f"/area-clienti/servizi/{promo.id}/frequenza"
    for bad in ("3", "0", "abc", ""):
        response = client.post(url, data={"frequency_years": bad}, headers=HX)
        assert response.status_code == 422, bad
        assert "scegli da 1 a 2 anni" in response.text
    assert fresh(promo).frequency_years == 1
    response = client.post(url, data={"frequency_years": "2"}, headers=HX)
    assert response.status_code == 200
    assert_fragment(response, f"service-{promo.id}")
    assert "ogni 2 anni, € 6,10 IVA inclusa" in response.text  # 2 x 2,50 + 22%
    assert fresh(promo).frequency_years == 2
    assert '<option value="2" selected>' in response.text


def test_card_changes_in_place_and_an_expired_card_is_refused(client, fake, shopper, pec):
    other = make_card(shopper, last4="4444", exp_year=2029)
    expired = make_card(shopper, last4="0069", exp_month=1, exp_year=2025)
    url = f"/area-clienti/servizi/{pec.id}/carta"
    response = client.post(url, data={"card_id": str(other.id)}, headers=HX)
    assert response.status_code == 200
    assert "I prossimi rinnovi useranno la carta Visa •••• 4444" in response.text
    assert fresh(pec).saved_card_id == other.id

    response = client.post(url, data={"card_id": str(expired.id)}, headers=HX)
    assert response.status_code == 422
    assert "è scaduta" in response.text
    response = client.post(url, data={"card_id": "x"}, headers=HX)
    assert response.status_code == 422
    assert fresh(pec).saved_card_id == other.id


def test_a_retry_on_the_new_card_declined_again_tells_this_periods_reason(
    client, fake, shopper, pec, catalogue, clock
):
    """The reason told is the one of the service's current renewal row, not of last year's row
    nor of another service's row for the same expiry."""
    other = make_service(
        shopper, catalogue["products"]["SPID-PF"], expires_at=EXPIRES, auto_renew=False
    )
    db.session.add_all(
        [
            Renewal(
                service_id=pec.id,
                period_expires_at=EXPIRES.replace(year=2026),
                status=RenewalStatus.SUCCEEDED,
                failure_reason="Motivo dell'anno scorso.",
            ),
            Renewal(
                service_id=other.id,
                period_expires_at=EXPIRES,
                status=RenewalStatus.ABANDONED,
                failure_reason="Motivo di un altro servizio.",
            ),
        ]
    )
    db.session.commit()
    fake.mode = "insufficient_funds"
    run_renewals(EXPIRES - timedelta(days=15))
    clock.now = EXPIRES - timedelta(days=13)
    new = make_card(shopper, last4="4444", exp_year=2029)
    response = client.post(
        f"/area-clienti/servizi/{pec.id}/carta", data={"card_id": str(new.id)}, headers=HX
    )
    assert response.status_code == 200
    assert [call["token"] for call in fake.calls][-1] == new.gateway_token
    message = re.search(rf'id="service-{pec.id}-message">([^<]*)<', response.text).group(1)
    assert message == (
        "I prossimi rinnovi useranno la carta Visa •••• 4444. "
        "Rinnovo di PEC Standard non riuscito: La carta non ha fondi sufficienti."
    )


def test_set_card_refuses_another_customers_card_even_when_called_directly(
    fake, shopper, pec, card, stranger
):
    from webapp.errors import NotFound
    from webapp.renewals import manage

    _, other_card, _ = stranger
    with pytest.raises(NotFound) as refused:
        manage.set_card(pec, other_card, TODAY)
    assert refused.value.message == "Carta non trovata."
    db.session.rollback()
    assert fresh(pec).saved_card_id == card.id


def test_another_customers_things_are_not_found(client, fake, shopper, pec, stranger):
    _, other_card, other_service = stranger
    base = f"/area-clienti/servizi/{other_service.id}"
    assert toggle(client, other_service, "0").status_code == 404
    assert client.post(f"{base}/frequenza", data={"frequency_years": "2"}).status_code == 404
    assert client.post(f"{base}/carta", data={"card_id": str(other_card.id)}).status_code == 404
    # My service, their card.
    response = client.post(
        f"/area-clienti/servizi/{pec.id}/carta", data={"card_id": str(other_card.id)}, headers=HX
    )
    assert response.status_code == 404
    assert client.post(f"/area-clienti/carte/{other_card.id}/rimuovi").status_code == 404
    other_order = db.session.scalar(select(Order).where(Order.customer_id == stranger[0].id))
    assert client.get(f"/area-clienti/ordini/{other_order.id}").status_code == 404
    other_service = fresh(other_service)
    assert other_service.auto_renew and other_service.frequency_years == 1
    assert fresh(other_card).removed_at is None
    assert fresh(pec).saved_card_id != other_card.id


# --- saved cards ---------------------------------------------------------------------------------


def _statements(client, url: str) -> int:
    from sqlalchemy import event

    counted = []
    listener = lambda *_args: counted.append(1)  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        assert client.get(url).status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    return len(counted)


def test_cards_page_names_each_cards_services_in_a_constant_number_of_queries(
    client, shopper, catalogue, pec, card
):
    first = _statements(client, "/area-clienti/carte")
    products = catalogue["products"]
    mastercard = make_card(shopper, last4="4444")
    make_service(shopper, products["SPID-PF"], expires_at=EXPIRES, card=mastercard)
    make_service(shopper, products["CONS-1"], expires_at=EXPIRES, card=mastercard, auto_renew=False)
    for last4 in ("1111", "2222"):
        make_card(shopper, last4=last4)
    db.session.commit()

    assert _statements(client, "/area-clienti/carte") == first
    page = client.get("/area-clienti/carte").text
    used = dict(
        re.findall(r'id="saved-card-(\d+)".*?<td>([^<]*)</td>\s*<td class="actions">', page, re.S)
    )
    assert used[str(card.id)] == "PEC Standard"
    assert used[str(mastercard.id)] == "SPID Persona Fisica"  # CONS-1 does not renew: not listed
    assert sorted(used.values()).count("—") == 2


def test_a_card_in_use_cannot_be_removed_until_the_service_lets_it_go(
    client, fake, shopper, pec, card
):
    page = client.get("/area-clienti/carte")
    assert page.status_code == 200
    assert f'id="saved-card-{card.id}"' in page.text
    assert "PEC Standard" in page.text  # renews with it
    assert "Aggiungi una carta" in page.text

    url = f"/area-clienti/carte/{card.id}/rimuovi"
    response = client.post(url, headers=HX)
    assert response.status_code == 422
    assert_fragment(response, "card-list")
    assert "è usata per il rinnovo automatico di PEC Standard" in response.text
    assert "disattiva il rinnovo automatico" in response.text
    assert fresh(card).removed_at is None
    assert fake.forgotten == []

    toggle(client, pec, "0")
    response = client.post(url, headers=HX)
    assert response.status_code == 200
    assert "Carta Visa •••• 4242 rimossa." in response.text
    assert f'id="saved-card-{card.id}"' not in response.text
    assert fresh(card).removed_at is not None
    assert fresh(pec).saved_card_id is None
    assert fake.forgotten == [card.gateway_token]


def test_a_card_renewing_two_services_names_both_in_the_order_they_were_bought(
    client, fake, shopper, catalogue, pec, card
):
    spid = make_service(shopper, catalogue["products"]["SPID-PF"], expires_at=EXPIRES, card=card)
    pec.frequency_years = 2  # the first one's row written again after the second's
    db.session.commit()
    response = client.post(f"/area-clienti/carte/{card.id}/rimuovi", headers=HX)
    assert response.status_code == 422
    assert (
        "è usata per il rinnovo automatico di PEC Standard, SPID Persona Fisica:" in response.text
    )
    from webapp.renewals.manage import services_by_card

    assert [s.id for s in services_by_card([card])[card.id]] == [pec.id, spid.id]
    assert fresh(card).removed_at is None and fresh(spid).saved_card_id == card.id


def test_only_this_customers_active_auto_renewing_services_hold_a_card(
    client, fake, shopper, catalogue, card, stranger
):
    """An expired service, even with its switch on, neither shows on a card nor keeps it."""
    gone = make_service(shopper, catalogue["products"]["PEC-STD"], expires_at=EXPIRES, card=card)
    gone.status = gone.status.EXPIRED
    db.session.commit()
    page = client.get("/area-clienti/carte")  # the stranger's auto-renewing service exists too
    assert page.status_code == 200
    used = re.search(
        rf'id="saved-card-{card.id}".*?<td>([^<]*)</td>\s*<td class="actions">', page.text, re.S
    )
    assert used.group(1) == "—"
    response = client.post(f"/area-clienti/carte/{card.id}/rimuovi", headers=HX)
    assert response.status_code == 200
    assert fresh(card).removed_at is not None
    assert fresh(gone).saved_card_id is None
    _, other_card, other_service = stranger
    assert fresh(other_service).saved_card_id == other_card.id


def test_a_removed_card_leaves_the_services_in_hand_without_it(fake, shopper, pec, card):
    """remove_card's UPDATE is synchronised with the session: no reload needed to see it."""
    from webapp.renewals import manage

    manage.set_auto_renew(pec, False, [], TODAY)
    db.session.commit()
    service = db.session.get(type(pec), pec.id)
    assert service.saved_card_id == card.id
    manage.remove_card(card, TODAY)
    assert service.saved_card_id is None
    assert card.removed_at == TODAY


def _add_card(client, fake):
    response = client.post("/area-clienti/carte/nuova")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("http://bank.test/pay/")
    [(pid, info)] = fake.verifications.items()
    assert info.amount_cents == 0  # a verification: no money moves
    return pid


def test_adding_a_card_is_a_zero_amount_verification(client, fake, shopper):
    pid = _add_card(client, fake)
    params = fake.return_params(pid)
    response = client.get("/area-clienti/carte/aggiunta", query_string=params)
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/area-clienti/carte")
    cards = db.session.scalars(select(SavedCard).where(SavedCard.customer_id == shopper.id)).all()
    assert [c.gateway_token for c in cards] == ["tok_new"]
    assert "Carta Visa •••• 4242 aggiunta." in client.get("/area-clienti/carte").text
    # Reloading the return URL adds nothing.
    client.get("/area-clienti/carte/aggiunta", query_string=params)
    assert db.session.scalar(select(func.count(SavedCard.id))) == 1
    assert fake.calls == []


def test_a_forged_or_foreign_card_return_is_refused(client, fake, shopper, stranger):
    pid = _add_card(client, fake)
    params = fake.return_params(pid)
    forged = {**params, "payment_id": "pay_other"}
    assert client.get("/area-clienti/carte/aggiunta", query_string=forged).status_code == 400
    # A correctly signed return of someone else's verification.
    info = fake.verifications[pid]
    fake.verifications[pid] = info.__class__(**{**info.__dict__, "order_ref": "CARTA-999-x"})
    params = fake.return_params(pid)
    assert client.get("/area-clienti/carte/aggiunta", query_string=params).status_code == 404
    assert (
        db.session.scalar(
            select(func.count(SavedCard.id)).where(SavedCard.customer_id == shopper.id)
        )
        == 0
    )


def test_a_new_card_fixes_a_failed_renewal_at_once(client, fake, shopper, catalogue, clock):
    expired = make_card(shopper, exp_month=12, exp_year=2026, last4="0069")
    service = make_service(
        shopper, catalogue["products"]["PEC-STD"], expires_at=EXPIRES, card=expired
    )
    run_renewals(EXPIRES - timedelta(days=15))  # fails: the card has expired by January
    renewal = db.session.scalar(select(Renewal).where(Renewal.service_id == service.id))
    assert renewal.status is RenewalStatus.FAILED
    page = client.get("/area-clienti/")
    assert f'id="service-{service.id}-failure"' in page.text
    assert "la carta di pagamento è scaduta" in page.text.lower()

    clock.now = EXPIRES - timedelta(days=13)  # the next retry would be in 3 days
    pid = _add_card(client, fake)
    response = client.get("/area-clienti/carte/aggiunta", query_string=fake.return_params(pid))
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/area-clienti/")
    [call] = fake.calls
    assert call["token"] == "tok_new" and call["initiator"] == "merchant"
    service = fresh(service)
    assert service.saved_card.gateway_token == "tok_new"
    assert service.expires_at == datetime(2028, 1, 20, 10, 0, tzinfo=UTC)
    page = client.get("/area-clienti/")
    assert "Rinnovo di PEC Standard riuscito: il servizio ora scade il 20/01/2028." in page.text
    # Replaying the return charges nothing more.
    client.get("/area-clienti/carte/aggiunta", query_string=fake.return_params(pid))
    assert len(fake.calls) == 1


def test_a_new_card_goes_to_the_services_whose_card_will_have_expired_and_no_other(
    client, fake, shopper, catalogue, pec, card
):
    """Before the window no renewal has failed yet: the new card is given, nothing is charged."""
    products = catalogue["products"]
    december = make_card(shopper, exp_month=12, exp_year=2026, last4="0069")
    spid = make_service(shopper, products["SPID-PF"], expires_at=EXPIRES, card=december)
    off = make_service(
        shopper, products["CONS-1"], expires_at=EXPIRES, card=december, auto_renew=False
    )
    pid = _add_card(client, fake)
    response = client.get("/area-clienti/carte/aggiunta", query_string=fake.return_params(pid))
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/area-clienti/carte")  # nothing retried
    assert fresh(spid).saved_card.gateway_token == "tok_new"
    assert fresh(pec).saved_card_id == card.id  # valid through the renewal day: kept
    assert fresh(off).saved_card_id == december.id  # renews nothing: left alone
    assert fake.calls == []


def test_twin_card_returns_save_the_card_once_and_retry_the_renewal_once(
    client, fake, shopper, catalogue, clock, monkeypatch
):
    """A twin return that read "no such card" loses the token's unique key: no 500, it reruns."""
    import webapp.account.area as area
    from webapp.payments import cards as payments_cards

    expired = make_card(shopper, exp_month=12, exp_year=2026, last4="0069")
    service = make_service(
        shopper, catalogue["products"]["PEC-STD"], expires_at=EXPIRES, card=expired
    )
    run_renewals(EXPIRES - timedelta(days=15))  # fails: the card has expired by January
    clock.now = EXPIRES - timedelta(days=13)
    pid = _add_card(client, fake)

    real = payments_cards.save_card
    twin_done = []

    def save_after_the_twin(customer_id, details):
        if not twin_done:  # the twin committed this token after this request looked for it
            twin_done.append(real(customer_id, details))
            db.session.commit()
            db.session.add(SavedCard(**{**_card_row(twin_done[0]), "id": None}))
            db.session.flush()  # this request's own insert of the same token
        return real(customer_id, details)

    monkeypatch.setattr(area.payments_cards, "save_card", save_after_the_twin)
    response = client.get("/area-clienti/carte/aggiunta", query_string=fake.return_params(pid))
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/area-clienti/")
    tokens = db.session.scalars(
        select(SavedCard.gateway_token).where(SavedCard.customer_id == shopper.id)
    ).all()
    assert sorted(tokens) == sorted([expired.gateway_token, "tok_new"])
    assert len(fake.calls) == 1
    assert fresh(service).expires_at == datetime(2028, 1, 20, 10, 0, tzinfo=UTC)


def _card_row(card: SavedCard) -> dict:
    columns = ("customer_id", "gateway_token", "brand", "last4", "exp_month", "exp_year", "holder")
    return {c: getattr(card, c) for c in columns}


def test_a_retry_twin_that_read_the_failure_before_it_was_attempted_leaves_it_alone(
    fake, shopper, catalogue, clock
):
    """retry_renewal is a compare-and-set on the failure it saw (status and attempt count)."""
    from sqlalchemy import update

    from webapp.renewals.engine import retry_renewal

    expired = make_card(shopper, exp_month=12, exp_year=2026, last4="0069")
    service = make_service(
        shopper, catalogue["products"]["PEC-STD"], expires_at=EXPIRES, card=expired
    )
    run_renewals(EXPIRES - timedelta(days=15))
    renewal = db.session.scalar(select(Renewal).where(Renewal.service_id == service.id))
    assert (renewal.status, renewal.attempts) == (RenewalStatus.FAILED, 1)
    planned = renewal.next_attempt_at
    real_scalar = db.session.scalar

    def stale_then_twin(stmt, *args, **kw):
        found = real_scalar(stmt, *args, **kw)
        if isinstance(found, Renewal):  # read; then the twin attempts it (and fails again)
            db.session.execute(
                update(Renewal)
                .where(Renewal.id == found.id)
                .values(attempts=2, next_attempt_at=planned)
                .execution_options(synchronize_session=False)
            )
        return found

    now = EXPIRES - timedelta(days=13)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(db.session, "scalar", stale_then_twin)
        assert retry_renewal(service, now) == "skipped"
    row = fresh(renewal)
    assert (row.attempts, row.next_attempt_at) == (2, planned)  # not made due again
    assert fake.calls == []


def test_adding_a_card_through_the_bank_with_3d_secure(client, bank, shopper):
    """The real mock bank: the OTP card, verified for € 0,00, saved on the portal."""
    response = client.post("/area-clienti/carte/nuova")
    assert response.status_code == 303
    browser = BankBrowser(bank)
    page = browser.client.get(urlsplit(response.headers["Location"]).path).text
    assert "<dd>Verifica della carta: nessun addebito</dd>" in page  # the bank's page says
    back = browser.pay(response.headers["Location"], "4111111111111111")
    parts = urlsplit(back)
    assert parts.path == "/area-clienti/carte/aggiunta"
    response = client.get(parts.path, query_string=parts.query)
    assert response.status_code == 303
    [card] = db.session.scalars(select(SavedCard).where(SavedCard.customer_id == shopper.id))
    assert (card.brand, card.last4) == ("visa", "1111")
    assert ("POST", "/api/charges") not in bank.transport.calls  # nothing was charged


# --- orders and receipts -------------------------------------------------------------------------


def test_orders_and_the_renewal_receipt(client, fake, shopper, pec):
    run_renewals(EXPIRES - timedelta(days=15))
    renewal_order = db.session.scalar(select(Order).where(Order.kind == OrderKind.RENEWAL))
    assert renewal_order.status is OrderStatus.PAID
    page = client.get("/area-clienti/ordini")
    assert page.status_code == 200
    assert f'id="order-{renewal_order.id}" data-kind="renewal" data-status="paid"' in page.text
    assert "Rinnovo automatico" in page.text and "Acquisto" in page.text
    assert f'href="/area-clienti/ordini/{renewal_order.id}">Ricevuta' in page.text

    receipt = client.get(f"/area-clienti/ordini/{renewal_order.id}")
    assert receipt.status_code == 200
    assert "Ricevuta del rinnovo automatico n." in receipt.text
    assert 'id="receipt-total">€ 6,10' in receipt.text
    assert "ora scade il <strong>20/01/2028</strong>" in receipt.text
    assert "Addebito automatico con carta Visa •••• 4242" in receipt.text


def test_the_order_page_lists_the_services_of_that_order_only(
    client, fake, shopper, pec, catalogue, stranger
):
    from webapp.shop.order_models import OrderLine

    other = make_service(shopper, catalogue["products"]["SPID-PF"], expires_at=EXPIRES)
    for service, kept_out in ((pec, other), (other, pec)):
        order_id = db.session.get(OrderLine, service.order_line_id).order_id
        page = client.get(f"/ordini/{order_id}")
        assert page.status_code == 200
        section = re.search(r'id="order-services">(.*?)</section>', page.text, re.S).group(1)
        items = re.findall(r'<li data-status="active">([^<]*)</li>', section)
        assert len(items) == 1
        assert items[0].startswith(f"{service.product.name}: attivo fino al 20/01/2027")
        assert kept_out.product.name not in section
    assert "Rinnovo automatico attivo ogni anno sulla carta Visa •••• 4242" in (
        client.get(f"/ordini/{db.session.get(OrderLine, pec.order_line_id).order_id}").text
    )


def test_unpaid_renewal_orders_are_not_listed(client, fake, shopper, pec):
    fake.mode = "insufficient_funds"
    run_renewals(EXPIRES - timedelta(days=15))
    order = db.session.scalar(select(Order).where(Order.kind == OrderKind.RENEWAL))
    assert order.status is OrderStatus.PENDING_PAYMENT
    assert f'id="order-{order.id}"' not in client.get("/area-clienti/ordini").text
    assert client.get(f"/area-clienti/ordini/{order.id}").status_code == 404


def test_htmx_posts_need_the_csrf_token(app, client, fake, shopper, pec):
    app.config["WTF_CSRF_ENABLED"] = True
    assert toggle(client, pec, "0").status_code == 400
    assert fresh(pec).auto_renew
    page = client.get("/area-clienti/")
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page.text).group(1)
    response = client.post(
        f"/area-clienti/servizi/{pec.id}/rinnovo-automatico",
        data={"auto_renew": "0"},
        headers={**HX, "X-CSRFToken": token},
    )
    assert response.status_code == 200
    assert not fresh(pec).auto_renew


def test_service_is_listed_once_per_customer(fake, shopper, pec, stranger):
    from webapp.renewals.services import list_services

    assert [s.id for s in list_services(shopper.id)] == [pec.id]


def test_a_card_return_without_its_reference_or_payment_is_not_found(app, fake, shopper):
    from webapp.errors import NotFound
    from webapp.payments import flows

    pid = _add_card_service(fake, shopper)
    params = fake.return_params(pid)
    known = fake.get_payment

    def like_the_bank(payment_id):  # an unknown payment: 404 not_found
        if payment_id not in fake.verifications:
            raise GatewayRefused("not_found", 404)
        return known(payment_id)

    fake.get_payment = like_the_bank
    for missing in ("order_ref", "payment_id"):
        partial = {k: v for k, v in params.items() if k not in (missing, "sig")}
        partial["sig"] = signing.sign_params(FAKE_SECRET, partial)
        with pytest.raises(NotFound):
            flows.finish_card_verification(partial, shopper.id)


def _add_card_service(fake, customer) -> str:
    from webapp.payments import flows

    flows.start_card_verification(customer.id, "http://shop.test/carte/aggiunta", "n1")
    [(pid, _)] = fake.verifications.items()
    return pid


@pytest.mark.parametrize(
    "change",
    [
        {"amount_cents": 1},  # money taken: not a verification
        {"merchant_id": "another-shop"},
        {"order_ref": "CARTA-999-n1"},
    ],
    ids=["amount", "merchant", "reference"],
)
def test_a_verification_answer_that_is_not_this_one_adds_no_card(app, fake, shopper, change):
    from webapp.errors import NotFound
    from webapp.payments import flows

    pid = _add_card_service(fake, shopper)
    params = fake.return_params(pid)
    info = fake.verifications[pid]
    fake.verifications[pid] = info.__class__(**{**info.__dict__, **change})
    with pytest.raises(NotFound):
        flows.finish_card_verification(params, shopper.id)
    assert db.session.scalar(select(func.count(SavedCard.id))) == 0


@pytest.mark.parametrize(
    ("status", "card", "final"),
    [
        (GatewayStatus.DECLINED, CardDetails("tok_d", "visa", "0002", 12, 2030, "M R"), True),
        (GatewayStatus.AUTHORISED, None, True),
        (GatewayStatus.CHALLENGE, None, False),
    ],
    ids=["declined-with-card", "authorised-without-card", "in-3ds"],
)
def test_only_an_authorised_verification_with_a_card_adds_it(
    app, fake, shopper, status, card, final
):
    from webapp.payments import flows

    pid = _add_card_service(fake, shopper)
    params = fake.return_params(pid)
    info = fake.verifications[pid]
    fake.verifications[pid] = info.__class__(**{**info.__dict__, "status": status, "card": card})
    with pytest.raises(flows.CardNotAdded) as refused:
        flows.finish_card_verification(params, shopper.id)
    assert refused.value.final is final
    assert db.session.scalar(select(func.count(SavedCard.id))) == 0


def test_a_bank_that_cannot_be_asked_leaves_the_card_to_a_reload(app, fake, shopper):
    from webapp.payments import flows

    pid = _add_card_service(fake, shopper)
    params = fake.return_params(pid)

    def down(_payment_id):
        raise GatewayUnavailable("timeout (fake)")

    fake.get_payment = down
    with pytest.raises(flows.CardNotAdded, match="ricarica questa pagina") as refused:
        flows.finish_card_verification(params, shopper.id)
    assert refused.value.final is False
