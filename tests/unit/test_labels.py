"""Issue 26: the back office shows every state in Italian, through one label function."""

from __future__ import annotations

import enum

import pytest

from tests.unit.backoffice_world import make_staff, paid_by_card, staff_session
from webapp.backoffice.labels import LABELS, label
from webapp.payments.models import PaymentChannel, PaymentStatus, RefundKind, RefundStatus
from webapp.renewals.models import RenewalStatus, ServiceStatus
from webapp.shop.models import DiscountKind, PaymentMethod, ServiceKind
from webapp.shop.order_models import OrderKind, OrderStatus

SHOWN = [
    OrderStatus,
    OrderKind,
    PaymentChannel,
    PaymentStatus,
    RefundStatus,
    RefundKind,
    ServiceStatus,
    RenewalStatus,
    DiscountKind,
]


@pytest.mark.parametrize("kind", SHOWN, ids=lambda k: k.__name__)
def test_every_state_shown_has_italian_words(app, kind: type[enum.Enum]):
    for member in kind:
        assert member in LABELS, member
        assert label(member) != member.value, member  # never the internal code


def test_the_named_codes_read_as_the_issue_asks(app):
    assert label(OrderStatus.PAID) == "Pagato"
    assert label(OrderKind.PURCHASE) == "Acquisto"
    assert label(PaymentChannel.HOSTED_PAGE) == "Pagina della banca"
    assert label(PaymentStatus.SUCCEEDED) == "Riuscito"
    assert label(ServiceStatus.ACTIVE) == "Attivo"


def test_an_enum_with_its_own_label_keeps_it_and_anything_else_is_text(app):
    assert label(ServiceKind.FIRMA_DIGITALE) == "Firma Digitale"
    assert label(PaymentMethod.BANK_TRANSFER) == PaymentMethod.BANK_TRANSFER.label
    assert label(None) == ""
    assert label(12) == "12"


def test_the_order_page_shows_no_internal_code(client, db, catalogue, dummy_customer, now):
    staff_session(client, make_staff())
    order, _payment, _card = paid_by_card(dummy_customer, catalogue["products"]["PEC-STD"], now)
    page = client.get(f"/backoffice/ordini/{order.id}").text
    for words in ("Pagato", "Acquisto", "Pagina della banca", "Riuscito", "Attivo"):
        assert words in page, words
    visible = page.replace('data-status="', "")  # attributes may keep the codes
    for code in ("> paid", "· purchase", ">hosted_page", ">succeeded<", ">active<"):
        assert code not in visible, code
