"""The renewal batch's third stage: ask the bank for every recorded payment.

charge - the bank is asked from a bounded thread pool, one request per payment with its
key; the threads use no database session. A lost answer leaves the payment PENDING/UNKNOWN
and the next pass asks the bank for that key (charging.process_claimed), never a new charge.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from webapp.payments.gateway import ChargeResult
from webapp.payments.settlement import gateway
from webapp.renewals.batch_claim import Job

Answer = ChargeResult | Exception


def charge_all(jobs: list[Job], pool: ThreadPoolExecutor) -> list[Answer]:
    """Ask the bank for every job at once (at most the pool's size in flight); no DB session."""
    bank = gateway()  # resolved here: the threads have no app context

    def ask(job: Job) -> Answer:
        try:
            return bank.charge_token(
                token=job.token,
                amount_cents=job.total_cents,
                currency="EUR",
                order_ref=job.order_ref,
                description=f"Ordine {job.order_number}",
                initiator="merchant",
                idempotency_key=job.key,
            )
        except Exception as exc:  # settled below: an error here is an answer too
            return exc

    return list(pool.map(ask, jobs))
