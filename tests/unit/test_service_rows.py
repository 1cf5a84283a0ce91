""" "I miei servizi" read as plain rows (webapp.renewals.rows): each row must say what its objects
say, the price of the day in SQL must be shop.catalogue.price_on's, and a customer sees only
their own services and the cards they can still renew with."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, update

from tests.unit.renewal_fakes import make_card, make_service
from webapp.errors import NotFound
from webapp.payments.models import SavedCard
from webapp.renewals.manage import service_views
from webapp.renewals.models import Renewal, RenewalStatus, Service, ServiceStatus
from webapp.renewals.rows import service_of, services_of
from webapp.renewals.services import announced_price, list_services, renewal_price, settings
from webapp.shop.catalogue import forget_prices, price_on
from webapp.shop.models import BillingProfile, CustomerType, ProductPrice

EXPIRES = datetime(2027, 1, 20, 10, 0, tzinfo=UTC)
TODAY = date(2026, 11, 30)


@pytest.fixture
def pec(db, catalogue, dummy_customer):
    card = make_card(dummy_customer)
    return make_service(
        dummy_customer, catalogue["products"]["PEC-STD"], expires_at=EXPIRES, card=card
    )


def test_a_row_says_what_its_objects_say(db, pec, dummy_customer, now):
    db.session.add(
        Renewal(
            service_id=pec.id,
            period_expires_at=pec.expires_at,
            status=RenewalStatus.FAILED,
            attempts=1,
            last_attempt_at=now,
            next_attempt_at=now + timedelta(days=2),
            failure_code="insufficient_funds",
            failure_reason="Fondi insufficienti.",
        )
    )
    db.session.commit()
    read, cards = service_of(pec.id, dummy_customer.id, TODAY)
    row, service = read.service, db.session.get(Service, pec.id)
    assert (row.id, row.status, row.expires_at, row.auto_renew, row.frequency_years) == (
        service.id,
        service.status,
        service.expires_at,
        service.auto_renew,
        service.frequency_years,
    )
    assert (row.renewable, row.active, row.renews) == (True, True, True)
    assert row.product.name == service.product.name and row.product.kind is service.product.kind
    assert row.product.allowed_years == service.product.allowed_years == [1, 2, 3, 4, 5]
    assert row.saved_card.masked == service.saved_card.masked == "Visa •••• 4242"
    assert [card.id for card in cards] == [service.saved_card_id]
    assert read.renewal.status is RenewalStatus.FAILED
    assert read.renewal.failure_reason == "Fondi insufficienti."
    (view,) = service_views([read], now)
    assert view.failed and view.card_ok
    assert view.price.total_cents == 610  # 5,00 + 22% IVA


def test_the_price_of_the_day_is_price_on(db, pec, dummy_customer):
    product = pec.product
    for day, cents in ((date(2026, 6, 1), 600), (date(2027, 1, 1), 800)):
        db.session.add(
            ProductPrice(product_id=product.id, effective_from=day, yearly_price_cents=cents)
        )
    db.session.commit()
    days = [date(2026, 5, 31), date(2026, 6, 1), date(2026, 12, 31), date(2027, 1, 1)]
    for day in days:
        forget_prices()
        expected = price_on(product, day)
        assert service_of(pec.id, dummy_customer.id, day)[0].yearly_cents == expected
        assert services_of(dummy_customer.id, day)[0][0].yearly_cents == expected
    assert [price_on(product, day) for day in days] == [500, 600, 600, 800]


def test_a_public_administration_is_charged_the_net(db, pec, dummy_customer, now):
    (private,) = service_views([service_of(pec.id, dummy_customer.id, TODAY)[0]], now)
    db.session.execute(
        update(BillingProfile)
        .where(BillingProfile.customer_id == dummy_customer.id)
        .values(customer_type=CustomerType.PUBLIC)
    )
    db.session.commit()
    read = service_of(pec.id, dummy_customer.id, TODAY)[0]
    (public,) = service_views([read], now)
    assert (private.price.split_payment, private.price.total_cents) == (False, 610)
    assert read.split_payment and (public.price.total_cents, public.price.vat_cents) == (500, 110)


def test_removed_and_expired_cards_are_not_offered(db, pec, dummy_customer, now):
    expired = make_card(dummy_customer, last4="1111", exp_month=1, exp_year=2026)
    spare = make_card(dummy_customer, last4="2222")
    db.session.execute(
        update(SavedCard).where(SavedCard.id == pec.saved_card_id).values(removed_at=now)
    )
    db.session.commit()
    read, cards = service_of(pec.id, dummy_customer.id, TODAY)
    assert read.service.saved_card is None  # a removed card renews nothing
    assert [card.id for card in cards] == [spare.id]
    assert expired.id not in [card.id for card in services_of(dummy_customer.id, TODAY)[1]]
    (view,) = service_views([read], now)
    assert not view.card_ok


def test_another_customers_service_is_not_found(pec, create_customer):
    other = create_customer(email="luigi@example.it", name="Luigi Verdi")
    with pytest.raises(NotFound):
        service_of(pec.id, other.id, TODAY)
    assert services_of(other.id, TODAY) == ([], [])


def test_services_are_listed_as_list_services_lists_them(db, pec, catalogue, dummy_customer):
    products = catalogue["products"]
    soon = make_service(dummy_customer, products["SPID-PF"], expires_at=EXPIRES - timedelta(days=9))
    gone = make_service(dummy_customer, products["CONS-1"], expires_at=EXPIRES - timedelta(days=99))
    db.session.execute(
        update(Service).where(Service.id == gone.id).values(status=ServiceStatus.EXPIRED)
    )
    db.session.commit()
    db.session.expire_all()
    reads, _ = services_of(dummy_customer.id, TODAY)
    assert [r.service.id for r in reads] == [s.id for s in list_services(dummy_customer.id)]
    assert [r.service.id for r in reads] == [soon.id, pec.id, gone.id]
    assert db.session.scalar(select(Service.status).where(Service.id == gone.id)) == "expired"


def test_a_price_given_with_its_list_price_reads_split_payment_unless_told(
    db, pec, dummy_customer, now
):
    """announced_price with the yearly list price already read: a public administration pays
    the net, read from its billing data when the caller does not pass it; a value passed wins."""
    db.session.execute(
        update(BillingProfile)
        .where(BillingProfile.customer_id == dummy_customer.id)
        .values(customer_type=CustomerType.PUBLIC)
    )
    db.session.commit()
    cfg = settings()
    read = announced_price(pec, now, cfg, yearly_cents=700)
    assert (read.years, read.net_cents, read.vat_cents) == (1, 700, 154)
    assert (read.split_payment, read.total_cents) == (True, 700)
    told = announced_price(pec, now, cfg, split_payment=False, yearly_cents=700)
    assert (told.split_payment, told.total_cents) == (False, 854)


def test_a_rate_and_split_payment_passed_by_the_caller_are_the_ones_priced(
    db, pec, dummy_customer, now
):
    """renewal_price and announced_price read the rate and split payment only when not given:
    a caller pricing with its own settings, or with the billing data it read once, is obeyed."""
    db.session.execute(
        update(BillingProfile)
        .where(BillingProfile.customer_id == dummy_customer.id)
        .values(customer_type=CustomerType.PUBLIC)
    )
    db.session.commit()
    read = renewal_price(pec, day=TODAY)  # the app's 22% and the customer's split payment
    assert (read.net_cents, read.vat_cents, read.split_payment, read.total_cents) == (
        500,
        110,
        True,
        500,
    )
    told = renewal_price(pec, 10, TODAY, False)
    assert (told.net_cents, told.vat_cents, told.split_payment, told.total_cents) == (
        500,
        50,
        False,
        550,
    )
    cfg = dataclasses.replace(settings(), vat_rate=10)
    announced = announced_price(pec, now, cfg, split_payment=False)
    assert (announced.vat_cents, announced.split_payment, announced.total_cents) == (50, False, 550)


def test_the_services_page_offers_the_customers_valid_cards_newest_first(
    db, pec, dummy_customer, create_customer
):
    """services_of's cards: this customer's own, not removed, valid today (through the card's
    expiry month), newest first; another customer's cards are never offered."""
    through_november = make_card(dummy_customer, last4="1130", exp_month=11, exp_year=2026)
    make_card(dummy_customer, last4="1031", exp_month=10, exp_year=2026)  # expired in October
    other = create_customer(email="luigi@example.it", name="Luigi Verdi")
    make_card(other, last4="9999")
    _, cards = services_of(dummy_customer.id, TODAY)
    assert [card.id for card in cards] == [through_november.id, pec.saved_card_id]
    assert [card.last4 for card in cards] == ["1130", "4242"]
    # The same cards as the one service's card menu.
    assert [card.id for card in service_of(pec.id, dummy_customer.id, TODAY)[1]] == [
        card.id for card in cards
    ]


@pytest.mark.parametrize(
    ("status", "code", "failed"),
    [
        (RenewalStatus.FAILED, "insufficient_funds", True),
        (RenewalStatus.ABANDONED, "insufficient_funds", True),  # gave up at expiry
        (RenewalStatus.ABANDONED, None, False),  # expired never attempted (the switch was off)
        (RenewalStatus.PENDING, "bank_unavailable", False),  # to be asked again: not failed
        (RenewalStatus.PENDING, None, False),
    ],
)
def test_the_failure_banner_is_for_a_failed_automatic_renewal_only(
    db, pec, dummy_customer, now, status, code, failed
):
    db.session.add(
        Renewal(
            service_id=pec.id,
            period_expires_at=pec.expires_at,
            status=status,
            attempts=1 if code else 0,
            failure_code=code,
        )
    )
    if status is RenewalStatus.ABANDONED:
        pec.status = ServiceStatus.EXPIRED
    db.session.commit()
    (view,) = service_views([service_of(pec.id, dummy_customer.id, TODAY)[0]], now)
    assert view.auto_failed is failed


@pytest.mark.parametrize(
    ("service_status", "renewal_status", "shown"),
    [
        (ServiceStatus.ACTIVE, RenewalStatus.PENDING, True),
        (ServiceStatus.ACTIVE, RenewalStatus.FAILED, True),
        # Its renewal order refunded: the expiry went back to the period that closed row renewed.
        (ServiceStatus.ACTIVE, RenewalStatus.SUCCEEDED, False),
        (ServiceStatus.EXPIRED, RenewalStatus.ABANDONED, False),
    ],
)
def test_a_view_shows_the_renewal_of_an_active_service_while_it_is_open(
    db, pec, dummy_customer, now, service_status, renewal_status, shown
):
    renewal = Renewal(service_id=pec.id, period_expires_at=pec.expires_at, status=renewal_status)
    db.session.add(renewal)
    pec.status = service_status
    db.session.commit()
    (view,) = service_views([service_of(pec.id, dummy_customer.id, TODAY)[0]], now)
    assert (view.renewal is not None) is shown
    if shown:
        assert view.renewal.status is renewal.status


def test_the_frequency_menu_prices_whole_cents_per_year(db, pec, dummy_customer, now):
    db.session.execute(update(Service).where(Service.id == pec.id).values(frequency_years=3))
    db.session.commit()
    (view,) = service_views([service_of(pec.id, dummy_customer.id, TODAY)[0]], now)
    assert (view.price.years, view.price.net_cents) == (3, 1500)
    assert view.yearly_cents == 500 and type(view.yearly_cents) is int  # money is int cents
