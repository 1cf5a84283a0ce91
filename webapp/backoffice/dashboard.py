"""What the back office's dashboard reads: sales and refunds, revenue by day, renewals due."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select

from webapp.backoffice.forms import start_of_day
from webapp.clock import rome_date
from webapp.extensions import db
from webapp.payments.models import Refund, RefundStatus
from webapp.renewals.models import Renewal, RenewalStatus, Service, ServiceStatus
from webapp.renewals.services import renewal_price, settings
from webapp.shop.order_models import Order, OrderStatus


@dataclass
class Dashboard:
    today_orders: int
    today_revenue: int
    month_orders: int
    month_revenue: int
    due_count: int
    due_amount: int
    failed_renewals: int
    refunds_count: int
    refunds_amount: int
    days: list[tuple[date, int]]

    @property
    def max_day(self) -> int:
        return max([v for _, v in self.days] + [1])

    @property
    def days_total(self) -> int:
        return sum(v for _, v in self.days)

    @property
    def best_day(self) -> tuple[date, int]:
        """The day with the most revenue (the latest of equals)."""
        return max(reversed(self.days), key=lambda day: day[1])

    @property
    def ticks(self) -> list[str]:
        return day_ticks(len(self.days))


#: The chart writes a day's date under every TICK_WIDE-th bar counted back from today, and on a
#: phone (under 760 px, CSS) under every TICK_NARROW-th only, a multiple, so that a phone's
#: labels are some of the wide screen's: 30 bars are about 33 px each in the 1080 px page and
#: 11 px on a 390 px phone, and a "07/12" needs about 36 px, so labels never overlap.
TICK_WIDE, TICK_NARROW = 2, 6


def day_ticks(count: int) -> list[str]:
    """The CSS class of each day's label, oldest first: "tick tick-narrow" (shown at every
    width), "tick" (shown from 760 px up) or "" (no label). Today is always labelled."""
    classes = []
    for i in range(count):
        back = count - 1 - i
        if back % TICK_NARROW == 0:
            classes.append("tick tick-narrow")
        elif back % TICK_WIDE == 0:
            classes.append("tick")
        else:
            classes.append("")
    return classes


def dashboard(now: datetime) -> Dashboard:
    """Today's and this month's paid orders, renewals due in 30 days, failures, refunds, chart."""
    today = rome_date(now)
    month_start = start_of_day(today.replace(day=1))
    due = _renewals_due(now, timedelta(days=30))
    return Dashboard(
        *_paid_since(start_of_day(today)),
        *_paid_since(month_start),
        len(due),
        sum(renewal_price(s).total_cents for s in due),
        db.session.scalar(
            select(func.count(Renewal.id)).where(Renewal.status == RenewalStatus.FAILED)
        ),
        *_refunded_since(month_start),
        _revenue_by_day(today, 30),
    )


def _paid_since(start: datetime) -> tuple[int, int]:
    """How many orders were paid since `start`, and their total."""
    count, total = db.session.execute(
        select(func.count(Order.id), func.coalesce(func.sum(Order.total_cents), 0)).where(
            Order.status == OrderStatus.PAID, Order.paid_at >= start
        )
    ).one()
    return count, total


def _revenue_by_day(today: date, days: int) -> list[tuple[date, int]]:
    """The paid orders' totals by Italian calendar day, the last `days` days up to today."""
    by_day: dict[date, int] = {today - timedelta(days=i): 0 for i in range(days)}
    for paid_at, total in db.session.execute(
        select(Order.paid_at, Order.total_cents).where(
            Order.status == OrderStatus.PAID,
            Order.paid_at >= start_of_day(today - timedelta(days=days - 1)),
        )
    ):
        by_day[rome_date(paid_at)] = by_day.get(rome_date(paid_at), 0) + total
    return sorted(by_day.items())


def _renewals_due(now: datetime, within: timedelta) -> list[Service]:
    """Active auto-renewing services whose renewal window opens within `within`."""
    window = settings().window
    due = db.session.scalars(
        select(Service).where(
            Service.status == ServiceStatus.ACTIVE,
            Service.auto_renew,
            Service.expires_at <= now + within + window,
            Service.expires_at > now,
        )
    ).all()
    return [s for s in due if s.renewable and s.expires_at - window <= now + within]


def _refunded_since(start: datetime) -> tuple[int, int]:
    """How many refunds succeeded since `start`, and their total."""
    count, total = db.session.execute(
        select(func.count(Refund.id), func.coalesce(func.sum(Refund.amount_cents), 0)).where(
            Refund.status == RefundStatus.SUCCEEDED, Refund.created_at >= start
        )
    ).one()
    return count, total
