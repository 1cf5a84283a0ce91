"""The card picker's reads (webapp.payments.picker): whose order, which cards, in which order."""

from __future__ import annotations

import pytest

from tests.unit.backoffice_world import make_order
from webapp.errors import NotFound
from webapp.payments.cards import list_cards
from webapp.payments.models import SavedCard
from webapp.payments.picker import CardRow, OrderTotal, card_rows, order_and_cards


def saved(db, customer, last4, now, removed=False, brand="visa"):
    card = SavedCard(
        customer_id=customer.id,
        gateway_token=f"tok_{customer.id}_{last4}",
        brand=brand,
        last4=last4,
        exp_month=3,
        exp_year=2029,
        holder=customer.name,
        removed_at=now if removed else None,
    )
    db.session.add(card)
    db.session.flush()
    return card


@pytest.fixture
def shopper(create_customer):
    return create_customer(email="picker@example.com")


def test_the_order_and_the_customers_cards_newest_first_removed_ones_left_out(
    db, catalogue, shopper, dummy_customer, now
):
    order = make_order(shopper, catalogue["products"]["PEC-STD"], "card", now)
    first = saved(db, shopper, "1111", now)
    saved(db, shopper, "2222", now, removed=True)
    last = saved(db, shopper, "3333", now, brand="mastercard")
    saved(db, dummy_customer, "4444", now)  # another customer's
    db.session.commit()

    total, cards = order_and_cards(order.id, shopper.id)

    assert total == OrderTotal(order.id, order.total_cents)
    assert [card.id for card in cards] == [last.id, first.id]
    assert [card.id for card in cards] == [card.id for card in list_cards(shopper.id)]
    assert cards[0] == CardRow(last.id, "mastercard", "3333", 3, 2029, shopper.name)
    assert (cards[0].masked, cards[0].expiry_label) == (last.masked, last.expiry_label)
    assert cards[0].removed_at is None


def test_an_order_without_cards_still_shows_its_total(db, catalogue, shopper, now):
    order = make_order(shopper, catalogue["products"]["PEC-STD"], "card", now)
    db.session.commit()
    assert order_and_cards(order.id, shopper.id) == (OrderTotal(order.id, order.total_cents), [])


def test_another_customers_order_is_not_found(db, catalogue, shopper, dummy_customer, now):
    order = make_order(dummy_customer, catalogue["products"]["PEC-STD"], "card", now)
    saved(db, shopper, "1111", now)
    db.session.commit()
    with pytest.raises(NotFound):
        order_and_cards(order.id, shopper.id)
    with pytest.raises(NotFound):
        order_and_cards(order.id + 1000, dummy_customer.id)


def test_card_rows_are_the_customers_saved_cards_as_list_cards_lists_them(
    db, shopper, dummy_customer, now
):
    first = saved(db, shopper, "1111", now)
    saved(db, shopper, "2222", now, removed=True)
    last = saved(db, shopper, "3333", now)
    saved(db, dummy_customer, "4444", now)
    db.session.commit()
    rows = card_rows(shopper.id)
    assert [row.id for row in rows] == [last.id, first.id]
    assert [row.last4 for row in rows] == [card.last4 for card in list_cards(shopper.id)]
    assert card_rows(shopper.id + 1000) == []
