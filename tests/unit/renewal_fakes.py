"""A fake card gateway and factories for the renewal and customer-area tests."""

from __future__ import annotations

import threading
import time
from datetime import datetime

from sqlalchemy import select

from webapp import signing
from webapp.extensions import db
from webapp.outbox.models import OutboxEmail
from webapp.payments.gateway import (
    CardDetails,
    ChargeResult,
    GatewayStatus,
    GatewayUnavailable,
    HostedPayment,
    PaymentStatusInfo,
    RefundResult,
)
from webapp.payments.models import SavedCard
from webapp.renewals.models import Service
from webapp.shop.models import PaymentMethod
from webapp.shop.order_models import Order, OrderKind, OrderLine, OrderStatus

FAKE_SECRET = "fake-gateway-secret"
FAKE_MERCHANT = "pec-shop"  # TestConfig's BANK_MERCHANT_ID: the fake answers as that merchant
DECLINE_MESSAGES = {
    "insufficient_funds": "Fondi insufficienti.",
    "card_declined": "Carta rifiutata dalla banca.",
}


class FakeGateway:
    """Implements the Gateway protocol in memory; honours idempotency keys like a real bank.

    mode: "ok", "insufficient_funds" or "card_declined" (charges declined), "down" (every call
    raises GatewayUnavailable), "timeout_after_charge" / "crash_after_charge" (the charge is
    made, then the answer is lost once: a timeout, or the shop's process dying).
    """

    def __init__(self) -> None:
        self.mode = "ok"
        self.latency = 0.0
        self.lock = threading.Lock()
        self.charges: dict[str, ChargeResult] = {}  # by idempotency key
        self.calls: list[dict] = []  # every charge_token request
        self.finds: list[str] = []
        self.forgotten: list[str] = []
        self.verifications: dict[str, PaymentStatusInfo] = {}
        self.refunds: dict[str, RefundResult] = {}  # by idempotency key
        self.next_card = CardDetails("tok_new", "visa", "4242", 12, 2030, "Mario Rossi")

    # --- what tests look at
    @property
    def succeeded(self) -> list[ChargeResult]:
        return [c for c in self.charges.values() if c.succeeded]

    # --- token charges
    def charge_token(
        self, *, token, amount_cents, currency, order_ref, description, initiator, idempotency_key
    ) -> ChargeResult:
        if self.mode == "down":
            raise GatewayUnavailable("connection refused (fake)")
        if self.latency:
            time.sleep(self.latency)  # a bank's response time, so that two workers overlap
        with self.lock:
            self.calls.append(
                dict(
                    token=token,
                    amount_cents=amount_cents,
                    currency=currency,
                    order_ref=order_ref,
                    description=description,
                    initiator=initiator,
                    key=idempotency_key,
                )
            )
            result = self.charges.get(idempotency_key)
            if result is None:
                declined = self.mode in DECLINE_MESSAGES
                result = ChargeResult(
                    charge_id=f"ch_{len(self.charges) + 1}",
                    status=GatewayStatus.DECLINED if declined else GatewayStatus.SUCCEEDED,
                    amount_cents=amount_cents,
                    currency=currency,
                    order_ref=order_ref,
                    decline_code=self.mode if declined else None,
                    decline_message=DECLINE_MESSAGES.get(self.mode),
                    merchant_id=FAKE_MERCHANT,
                )
                self.charges[idempotency_key] = result
        if self.mode == "timeout_after_charge":
            self.mode = "ok"
            raise GatewayUnavailable("read timeout (fake)")
        if self.mode == "crash_after_charge":
            self.mode = "ok"
            raise RuntimeError("the shop's process died (fake)")
        return result

    def find_charge(self, idempotency_key: str) -> ChargeResult | None:
        if self.mode == "down":
            raise GatewayUnavailable("connection refused (fake)")
        self.finds.append(idempotency_key)
        return self.charges.get(idempotency_key)

    # --- refunds (amounts are checked by the shop's own guard; a real bank checks them too)
    def refund(
        self, payment_ref_or_charge_id, amount_cents, currency, reason, idempotency_key
    ) -> RefundResult:
        if self.mode == "down":
            raise GatewayUnavailable("connection refused (fake)")
        with self.lock:
            result = self.refunds.get(idempotency_key)
            if result is None:
                result = RefundResult(
                    refund_id=f"re_{len(self.refunds) + 1}",
                    payment_ref=payment_ref_or_charge_id,
                    status=GatewayStatus.SUCCEEDED,
                    amount_cents=amount_cents,
                    currency=currency,
                    reason=reason,
                    merchant_id=FAKE_MERCHANT,
                )
                self.refunds[idempotency_key] = result
        return result

    def find_refund(self, idempotency_key: str) -> RefundResult | None:
        if self.mode == "down":
            raise GatewayUnavailable("connection refused (fake)")
        return self.refunds.get(idempotency_key)

    def forget_token(self, token: str) -> None:
        self.forgotten.append(token)

    # --- hosted payments (card verification in the customer area)
    def create_payment(
        self,
        *,
        amount_cents,
        currency,
        order_ref,
        description,
        return_url,
        notify_url,
        save_card,
        idempotency_key,
    ) -> HostedPayment:
        if self.mode == "down":
            raise GatewayUnavailable("connection refused (fake)")
        pid = f"pay_{len(self.verifications) + 1}"
        self.verifications[pid] = PaymentStatusInfo(
            pid,
            GatewayStatus.AUTHORISED,
            amount_cents,
            currency,
            order_ref,
            None,
            None,
            self.next_card,
            merchant_id=FAKE_MERCHANT,
        )
        return HostedPayment(pid, f"http://bank.test/pay/{pid}")

    def get_payment(self, payment_id: str) -> PaymentStatusInfo:
        return self.verifications[payment_id]

    def return_params(self, payment_id: str) -> dict[str, str]:
        """The signed query string of "torna al negozio" for a verification."""
        info = self.verifications[payment_id]
        params = dict(
            payment_id=payment_id,
            order_ref=info.order_ref,
            status=info.status,
            amount_cents=str(info.amount_cents),
            currency=info.currency,
            ts="1",
        )
        params["sig"] = signing.sign_params(FAKE_SECRET, params)
        return params

    def verify_return(self, params) -> None:
        signing.verify_params(FAKE_SECRET, params)

    def verify_notification(self, path, body, headers) -> None:
        raise signing.BadSignature("not used")


def make_card(
    customer,
    *,
    exp_month: int = 12,
    exp_year: int = 2030,
    last4: str = "4242",
    token: str | None = None,
) -> SavedCard:
    card = SavedCard(
        customer_id=customer.id,
        gateway_token=token or f"tok_{customer.id}_{last4}_{exp_month}_{exp_year}",
        brand="visa",
        last4=last4,
        exp_month=exp_month,
        exp_year=exp_year,
        holder=customer.name,
    )
    db.session.add(card)
    db.session.commit()
    return card


def make_service(
    customer,
    product,
    *,
    expires_at: datetime,
    years: int = 1,
    auto_renew: bool = True,
    card: SavedCard | None = None,
    discount_cents: int = 0,
) -> Service:
    """A service bought (and paid) `years` before `expires_at`, with its purchase order."""
    started = expires_at.replace(year=expires_at.year - years)
    list_cents = product.yearly_price_cents * years
    net = list_cents - discount_cents
    vat = round(net * 22 / 100)
    order = Order(
        customer_id=customer.id,
        kind=OrderKind.PURCHASE,
        status=OrderStatus.PAID,
        payment_method=PaymentMethod.CARD,
        discount_code="SCONTO" if discount_cents else None,
        subtotal_cents=list_cents,
        discount_cents=discount_cents,
        net_cents=net,
        vat_cents=vat,
        total_cents=net + vat,
        created_at=started,
        paid_at=started,
    )
    line = OrderLine(
        product_id=product.id,
        product_name=product.name,
        kind=product.kind,
        years=years,
        yearly_price_cents=product.yearly_price_cents,
        list_cents=list_cents,
        discount_cents=discount_cents,
        net_cents=net,
        auto_renew=auto_renew,
    )
    order.lines.append(line)
    db.session.add(order)
    db.session.flush()
    service = Service(
        customer_id=customer.id,
        product_id=product.id,
        order_line_id=line.id,
        started_at=started,
        expires_at=expires_at,
        auto_renew=auto_renew,
        frequency_years=years,
        saved_card_id=card.id if card else None,
    )
    db.session.add(service)
    db.session.commit()
    return service


def emails(subject: str) -> list[OutboxEmail]:
    """The outbox's e-mails whose subject contains `subject`, oldest first, read afresh."""
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(OutboxEmail)
            .where(OutboxEmail.subject.contains(subject))
            .order_by(OutboxEmail.id)
        )
    )
