"""Day routes: OR-Tools orders the visits so that every window is respected, fast."""

import random

import pytest

from liaison.core.geo import haversine_miles
from liaison.outreach.routing import Stop, clock, in_given_order, plan_day

DOWNTOWN = (39.9612, -82.9988)


def hm(text):
    h, m = text.split(":")
    return int(h) * 60 + int(m)


def twelve_visits(seed=7):
    """12 offices within ~12 miles of downtown Columbus: two lunches, some morning-only or
    afternoon-only offices, the rest any time."""
    rng = random.Random(seed)
    stops = []
    windows = [
        ("11:30", "12:00"),  # lunch 1
        ("12:45", "13:15"),  # lunch 2
        ("08:30", "10:30"),
        ("08:30", "10:30"),
        ("14:00", "16:00"),
        ("14:00", "16:00"),
    ] + [None] * 6
    for i, w in enumerate(windows):
        lat = DOWNTOWN[0] + rng.uniform(-0.15, 0.15)
        lon = DOWNTOWN[1] + rng.uniform(-0.2, 0.2)
        service = 45 if i < 2 else 15
        stops.append(Stop(i, f"Office {i}", lat, lon, service, (hm(w[0]), hm(w[1])) if w else None))
    return stops


def test_a_day_of_12_visits_with_lunch_windows_respects_every_window_in_under_2_seconds():
    stops = twelve_visits()
    plan = plan_day(DOWNTOWN, stops, day_start=hm("08:00"), day_end=hm("17:30"))
    assert plan.solve_seconds < 2.0
    assert not plan.dropped and len(plan.legs) == 12
    for leg in plan.legs:
        assert leg.in_window, (leg.stop.label, clock(leg.arrival), leg.stop.window)
    # Times add up: each arrival is after the previous departure plus the drive.
    previous = hm("08:00")
    for leg in plan.legs:
        assert leg.arrival >= previous + leg.drive_minutes
        assert leg.departure == leg.arrival + leg.stop.service_minutes
        previous = leg.departure
    assert plan.end_minute <= hm("17:30")
    lunches = [leg for leg in plan.legs if leg.stop.key in (0, 1)]
    assert [clock(leg.arrival) >= "11:30" for leg in lunches] == [True, True]
    # Better than driving them in the order picked.
    assert plan.total_miles < in_given_order(DOWNTOWN, stops)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_other_days_respect_their_windows_too(seed):
    plan = plan_day(DOWNTOWN, twelve_visits(seed), day_start=hm("08:00"), day_end=hm("17:30"))
    assert plan.windows_respected and plan.solve_seconds < 2.0
    assert len(plan.legs) + len(plan.dropped) == 12


def test_distances_are_straight_lines_times_the_road_factor():
    a, b = Stop("a", "A", 40.0, -83.0, 10), Stop("b", "B", 40.1, -83.0, 10)
    plan = plan_day((40.0, -83.0), [a, b], road_factor=1.5, mph=30, return_to_start=False)
    straight = haversine_miles(40.0, -83.0, 40.1, -83.0)
    assert plan.legs[1].miles == pytest.approx(straight * 1.5, abs=0.1)
    assert plan.legs[1].drive_minutes == pytest.approx(straight * 1.5 / 30 * 60, abs=1)
    assert plan.return_miles == 0


def test_a_visit_that_cannot_fit_is_dropped_and_named_not_squeezed():
    far = Stop("far", "Far office", 41.5, -81.7, 30, (hm("11:30"), hm("11:45")))  # Cleveland at lunch
    near = Stop("near", "Near office", 39.97, -83.0, 45, (hm("11:30"), hm("11:45")))
    plan = plan_day(DOWNTOWN, [near, far], day_start=hm("08:00"), day_end=hm("17:00"))
    assert [leg.stop.key for leg in plan.legs] == ["near"]
    assert [s.key for s in plan.dropped] == ["far"] and "Far office" in plan.notes[-1]
