"""The benches' verdicts (issue 25): what they call met, broken, or refuse to judge."""

from __future__ import annotations

from bench import fragments, renewals


def _row(route: str, worst: float, worst_p99: float, reference="lean reference") -> dict:
    return dict(
        route=route, reference=reference, ratio=(1.0, worst, 1.2), p99_ratio=(1.0, 0.9, worst_p99)
    )


def _run(rows: list[dict], load=(0.2, [0.3, 0.4], 0.3)) -> dict:
    return dict(name="sqlite", rows=rows, load=load)


def test_a_fragment_meets_the_target_only_in_its_worst_round():
    lines = fragments.verdict(
        _run(
            [
                _row("lean reference", 1.0, 1.0),
                _row("cart fragment, anonymous", 0.80, 2.0),
                _row("card picker (POST scelta)", 0.79, 1.1, "lean POST reference"),
                _row("renewal frequency (POST)", 0.95, 2.1, "lean POST reference"),
            ]
        )
    )
    assert len(lines) == 3  # the references are not judged
    assert "cart fragment, anonymous: MET" in lines[0]
    assert "card picker (POST scelta): NOT MET" in lines[1] and "lean POST reference" in lines[1]
    assert "renewal frequency (POST): NOT MET" in lines[2]  # its p99 went over 2x once


def test_no_verdict_when_the_rest_of_the_machine_moved_by_more_than_a_core():
    rows = [_row("cart fragment, anonymous", 0.9, 1.0)]
    assert "MET" in fragments.verdict(_run(rows, load=(0.1, [0.2, 1.0], 0.5)))[0]
    [line] = fragments.verdict(_run(rows, load=(0.1, [0.2, 1.3], 0.5)))
    assert "NO VERDICT" in line and "1.2 cores" in line


def test_the_renewal_engine_verdict_compares_each_run_with_its_own_raw_floor():
    rows = [
        dict(n=10_000, workers=1, rate=700.0, raw=1000.0),
        dict(n=10_000, workers=2, rate=1200.0, raw=1100.0),
        dict(n=100_000, workers=1, rate=500.0, raw=1000.0),
        dict(n=100_000, workers=2, rate=450.0, raw=1000.0),
    ]
    lines = renewals.verdict(rows)
    assert lines[0].startswith("10,000 services, 1 worker: MET (0.70")
    assert lines[1].startswith("10,000 services, 2 workers beat 1: MET (1.09 vs 0.70")
    assert lines[2].startswith("100,000 services, 1 worker: BROKEN (0.50")
    assert lines[3].startswith("100,000 services, 2 workers beat 1: BROKEN")


def test_each_reference_brackets_its_fragments_in_a_round():
    data = dict(logged="x", csrf="c", anon="a", service_id=1, order_id=2, card_id=3, order_total=4)
    labels = [route[0] for route in fragments.targets("s", "b", "l", data)]
    order = fragments.schedule(labels)
    assert sorted(set(order)) == sorted(labels)
    for label in labels:
        if label in fragments.REFERENCES:
            continue
        reference = fragments.reference_of(label)
        runs = [i for i, name in enumerate(order) if name == reference]
        assert len(runs) == 2 and runs[0] < order.index(label) < runs[1], (label, order)


def test_a_references_two_runs_count_as_their_mean():
    before = (1000.0, 10.0, 0, 4000, 1.0, None)
    after = (800.0, 14.0, 1, 3200, 1.2, None)
    rate, p99, errors, requests, cpu, hit = fragments.bracketed([before, after])
    assert (rate, p99, errors, requests, hit) == (900.0, 12.0, 1, 7200, None)
    assert abs(cpu - 1.1) < 1e-9
    assert fragments.bracketed([after]) == after


def test_a_fragment_whose_floor_misses_the_target_is_said_out_of_reach():
    lines = fragments.verdict(
        _run(
            [
                _row(fragments.GET_FLOOR, 0.75, 1.0),
                _row(fragments.POST_FLOOR, 0.95, 1.0, "lean POST reference"),
                _row("cart fragment, logged in", 0.60, 1.0),
                _row("renewal frequency (POST)", 0.60, 1.0, "lean POST reference"),
                _row("cart fragment, anonymous", 0.60, 1.0),
            ]
        )
    )
    assert len(lines) == 3  # the floors are not judged
    assert "NOT MET" in lines[0] and "out of reach" in lines[0] and "at 0.75" in lines[0]
    assert "NOT MET" in lines[1] and "out of reach" not in lines[1]  # its floor reaches 0.95
    assert "out of reach" not in lines[2]  # no anonymous floor measured in this run


def test_the_floors_are_measured_against_their_own_reference():
    data = dict(logged="x", csrf="c", anon="a", service_id=1, order_id=2, card_id=3, order_total=4)
    routes = {r[0]: r for r in fragments.targets("s", "b", "l", data, floor="f")}
    for fragment, floor in fragments.FLOOR_OF.items():
        assert routes[floor][1].startswith("f/")  # on the floor's server
        assert routes[floor][2]["Cookie"] == routes[fragment][2]["Cookie"]  # the same visitor
        assert fragments.reference_of(floor) == fragments.reference_of(fragment)
    assert not any(r[1].startswith("f/") for r in fragments.targets("s", "b", "l", data))
