"""After a load test: the money of the run's customers, the shop against the bank.

    python bench/loadtest_check.py --run-id RUN --shop-db URL --bank-db URL

For every order of the run's customers (`load-<run>-*@example.it`):
- a paid order holds exactly its total at the bank (charges and captures less refunds), once:
  one capture kept, any second one refunded in full;
- an order not paid holds nothing at the bank (no money taken for an order the shop lost);
- money at the bank for the run = the totals of the paid orders;
- one payment-confirmation e-mail per paid order.
Prints the figures and every violation; exits 1 if there is one.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

from sqlalchemy import create_engine, text

SHOP_ORDERS = text(
    "SELECT o.id, o.status, o.total_cents FROM orders o JOIN customer c ON c.id = o.customer_id "
    "WHERE c.email LIKE :pattern"
)
SHOP_MAILS = text(
    "SELECT dedupe_key, count(*) FROM outbox_email WHERE dedupe_key LIKE 'order-paid-%' "
    "GROUP BY dedupe_key"
)
BANK_MONEY = text(
    "SELECT order_ref, amount_cents, refunded_cents FROM bank_charge "
    "WHERE status = 'succeeded' AND order_ref LIKE 'ORD-%' "
    "UNION ALL SELECT order_ref, amount_cents, refunded_cents FROM bank_payment "
    "WHERE status = 'authorised' AND amount_cents > 0 AND order_ref LIKE 'ORD-%'"
)


def check(run_id: str, shop_db: str, bank_db: str) -> list[str]:
    """The violations found (empty: the money is right); prints the figures."""
    shop, bank = create_engine(shop_db), create_engine(bank_db)
    with shop.connect() as conn:
        orders = conn.execute(SHOP_ORDERS, {"pattern": f"load-{run_id}-%"}).all()
        mails = dict(conn.execute(SHOP_MAILS).all())
    with bank.connect() as conn:
        captures = defaultdict(list)
        for ref, amount, refunded in conn.execute(BANK_MONEY):
            captures[ref].append((amount, refunded))
    problems = []
    paid_total = held_total = paid = 0
    for order_id, status, total in orders:
        held = captures.get(f"ORD-{order_id}", [])
        kept = [amount - refunded for amount, refunded in held if amount > refunded]
        money = sum(kept)
        held_total += money
        if str(status) == "paid":
            paid += 1
            paid_total += total
            if kept != [total]:
                problems.append(f"order {order_id} paid {total}: at the bank {held}")
            if mails.get(f"order-paid-{order_id}", 0) != 1:
                problems.append(f"order {order_id}: {mails.get(f'order-paid-{order_id}', 0)} mails")
        elif money:
            problems.append(f"order {order_id} is {status} but the bank holds {money}")
    if held_total != paid_total:
        problems.append(f"money at the bank {held_total} != paid orders {paid_total}")
    print(
        f"Run {run_id}: {len(orders)} orders, {paid} paid; paid totals {paid_total / 100:.2f} EUR, "
        f"held at the bank {held_total / 100:.2f} EUR; {len(problems)} problems"
    )
    for problem in problems:
        print("  " + problem)
    shop.dispose()
    bank.dispose()
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--shop-db", required=True, help="the shop's DATABASE_URL")
    parser.add_argument("--bank-db", required=True, help="the bank's BANK_DATABASE_URL")
    args = parser.parse_args()
    sys.exit(1 if check(args.run_id, args.shop_db, args.bank_db) else 0)


if __name__ == "__main__":
    main()
