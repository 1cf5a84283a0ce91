"""`flask renewals run --as-of` (time travel for QA and tests) and the scheduler's jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click
import pytest
from apscheduler.triggers.interval import IntervalTrigger

from tests.unit.renewal_fakes import make_card, make_service
from webapp.clock import add_years, now_utc
from webapp.extensions import db
from webapp.renewals.models import Service
from webapp.renewals.scheduler import build_scheduler, parse_as_of

EXPIRES = datetime(2027, 1, 20, 10, 0, tzinfo=UTC)


def test_parse_as_of_is_noon_in_italy_or_the_given_italian_time():
    assert parse_as_of("2027-11-20") == datetime(2027, 11, 20, 11, 0, tzinfo=UTC)
    assert parse_as_of("2027-07-20") == datetime(2027, 7, 20, 10, 0, tzinfo=UTC)  # summer time
    assert parse_as_of("2027-11-20T08:30") == datetime(2027, 11, 20, 7, 30, tzinfo=UTC)
    with pytest.raises(click.BadParameter):
        parse_as_of("20/11/2027")


def test_run_as_of_a_date_renews_what_is_due_that_day(app, fake, dummy_customer, catalogue):
    card = make_card(dummy_customer)
    service = make_service(
        dummy_customer, catalogue["products"]["PEC-STD"], expires_at=EXPIRES, card=card
    )
    runner = app.test_cli_runner()

    result = runner.invoke(args=["renewals", "run", "--as-of", "2027-01-04"])
    assert result.exit_code == 0, result.output
    assert "addebitati 0" in result.output
    assert fake.calls == []

    result = runner.invoke(args=["renewals", "run", "--as-of", "2027-01-05"])
    assert result.exit_code == 0, result.output
    assert "Passata rinnovi al 05/01/2027" in result.output
    assert "addebitati 1" in result.output
    db.session.expire_all()
    assert db.session.get(Service, service.id).expires_at == datetime(
        2028, 1, 20, 10, 0, tzinfo=UTC
    )
    # Run again for the same day (a rerun, or the CLI beside the scheduler): nothing more.
    result = runner.invoke(args=["renewals", "run", "--as-of", "2027-01-05"])
    assert "addebitati 0" in result.output
    assert len(fake.calls) == 1


def test_run_refuses_a_bad_date(app, fake):
    result = app.test_cli_runner().invoke(args=["renewals", "run", "--as-of", "domani"])
    assert result.exit_code != 0
    assert "AAAA-MM-GG" in result.output


def test_scheduler_runs_the_pass_and_the_outbox_once_at_a_time(app):
    app.config["SCHEDULER_INTERVAL_MINUTES"] = 7
    scheduler = build_scheduler(app)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    # the invoices' transmission to the SdI (webapp.cli adds it) runs every minute too
    assert set(jobs) == {"renewals", "outbox", "fatture"}
    for job in jobs.values():
        assert job.max_instances == 1
        assert job.coalesce is True
        assert isinstance(job.trigger, IntervalTrigger)
    assert jobs["renewals"].trigger.interval.total_seconds() == 7 * 60
    assert jobs["outbox"].trigger.interval.total_seconds() == 60
    assert jobs["fatture"].trigger.interval.total_seconds() == 60


def test_scheduler_job_runs_a_pass_in_its_own_app_context(app, fake, dummy_customer, catalogue):
    card = make_card(dummy_customer)
    soon = now_utc().replace(microsecond=0) + timedelta(days=10)  # in the window today
    service = make_service(
        dummy_customer, catalogue["products"]["SPID-PF"], expires_at=soon, card=card
    )
    job = build_scheduler(app).get_job("renewals")
    job.func()  # what the scheduler calls, on the real clock
    assert len(fake.calls) == 1
    db.session.expire_all()
    assert db.session.get(Service, service.id).expires_at == add_years(soon, 1)
