"""The SdI's notifications as the shop reads them: each field parsed and each malformed one
refused, stored once, applied to the right attempt only forward, the feed's cursor; and what
the back office reads from them (the correction queue, the refusals, what waits)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from webapp.invoicing.sdi_inbox import BadNotification, parse
from webapp.invoicing.sdi_states import SdiState
from webapp.sdi.messages import build

SECOND = timedelta(seconds=1)


def note(kind: str, now, **fields) -> bytes:
    values = dict(
        sdi_id="123456",
        file_name="IT01234560157_00001.xml",
        message_id="900",
        received_at=now,
        now=now,
        secret="s",
    )
    values.update(fields)
    return build(kind, **values)


def test_each_kind_is_parsed_with_its_fields(now):
    rc = parse(note("RC", now, sdi_id="000000000012", message_id="12345678901234"))
    assert (rc.kind, rc.sdi_id, rc.file_name, rc.message_id) == (
        "RC",
        "000000000012",
        "IT01234560157_00001.xml",
        "12345678901234",
    )
    assert rc.outcome is None and rc.errors == [] and rc.state is SdiState.DELIVERED
    ns = parse(note("NS", now, errors=[("00311", "Codice " + "x" * 300), ("00404", "dup")]))
    assert ns.state is SdiState.REJECTED
    assert ns.errors == [["00311", ("Codice " + "x" * 300)[:255]], ["00404", "dup"]]
    assert parse(note("NE", now, esito="EC02")).state is SdiState.REFUSED
    ne = parse(note("NE", now, esito="EC01"))
    assert (ne.kind, ne.outcome, ne.state) == ("NE", "EC01", SdiState.ACCEPTED)
    kinds = {k: parse(note(k, now)).state for k in ("MC", "AT", "DT")}
    assert kinds == {
        "MC": SdiState.NOT_DELIVERED,
        "AT": SdiState.UNDELIVERABLE,
        "DT": SdiState.EXPIRED,
    }


@pytest.mark.parametrize(
    "fields",
    [
        {"sdi_id": ""},
        {"sdi_id": "12a"},
        {"sdi_id": "1234567890123"},
        {"message_id": ""},
        {"message_id": "123456789012345"},
        {"file_name": ""},
    ],
)
def test_a_notification_with_a_malformed_field_is_refused(now, fields):
    with pytest.raises(BadNotification):
        parse(note("RC", now, **fields))


def test_an_esito_other_than_ec01_or_ec02_and_a_scarto_without_errors_are_refused(now):
    with pytest.raises(BadNotification):
        parse(note("NE", now, esito="EC03"))
    with pytest.raises(BadNotification):
        parse(note("NS", now, errors=[]))
