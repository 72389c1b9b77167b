"""Outreach attribution on data with known answers (pure statistics: no database)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from liaison.analytics.attribution import ALL, AttributionReport, Touch, estimate

START, END = date(2024, 1, 1), date(2025, 6, 30)
UPLIFT = {"visit": 0.15, "lunch": 0.40}
COST = {"visit": 20.0, "lunch": 250.0}


def world(seed: int, scale: float = 1.0, n: int = 1500):
    """Accounts of 0.5-20 referrals a month over 2.5 years. The bigger ones are targeted: a touch every
    200 days (a random phase), so each touch is its own episode with a clean before-window. A touch
    raises the rate by UPLIFT[kind] * scale for the 90 days after it. Returns the touches, the
    referrals, the accounts and the planted incremental referrals of each touch's after-window."""
    rng = np.random.default_rng(seed)
    first = START.toordinal() - 365 - 90
    days = np.arange(first, END.toordinal() + 1)
    rate = np.exp(rng.uniform(np.log(0.5), np.log(20), n))
    season = 1 - 0.3 * np.isin([date.fromordinal(int(d)).month for d in days], [7, 8])
    lam = rate[:, None] * 12 / 365.25 * season[None, :]
    names = [f"A{i}" for i in range(n)]
    touches, planted = [], []
    extra = np.zeros_like(lam)
    for a in np.flatnonzero(rng.random(n) < 0.15 + 0.5 * np.log(rate / 0.5) / np.log(40)):
        for d in range(int(rng.integers(0, 200)), len(days), 200):
            kind = "lunch" if rng.random() < 0.4 else "visit"
            liaison = "Lee" if a % 2 else "Kim"
            doctors = () if kind == "visit" else ("Dr Ray", "Dr Sol") if a % 3 == 0 else ("Dr Ray",)
            hi = min(len(days), d + 91)
            extra[a, d + 1 : hi] += UPLIFT[kind] * scale * lam[a, d + 1 : hi]
            on = date.fromordinal(int(days[d]))
            touches.append(Touch(names[a], on, kind, COST[kind], liaison, doctors))
            if START <= on <= END - timedelta(days=90):
                planted.append((kind, liaison, doctors, float(extra[a, d + 1 : hi].sum())))
    counts = rng.poisson(lam + extra)
    referrals = {names[a]: [date.fromordinal(int(d)) for d in np.repeat(days, counts[a])] for a in range(n)}
    return touches, referrals, names, planted


def run(touches, referrals, accounts, by: str = "kind", **kw) -> AttributionReport:
    return estimate(touches, referrals, accounts, start=START, end=END, window_days=90, by=by, **kw)


def test_a_planted_uplift_is_recovered_within_20_percent():
    touches, referrals, accounts, planted = world(seed=1)
    report = run(touches, referrals, accounts)
    truth = sum(p[3] for p in planted)
    assert report.overall.group == ALL and report.window_days == 90
    assert report.overall.incremental == pytest.approx(truth, rel=0.2)
    assert report.overall.low < truth < report.overall.high
    rows = {r.group: r for r in report.rows}
    assert set(rows) == {"visit", "lunch"}
    for kind, row in rows.items():
        planted_kind = sum(p[3] for p in planted if p[0] == kind)
        assert row.incremental == pytest.approx(planted_kind, rel=0.2), kind
        assert row.touches == sum(1 for p in planted if p[0] == kind)
        assert row.cost == pytest.approx(COST[kind] * row.touches)
        assert row.cost_per_incremental == pytest.approx(row.cost / row.incremental, rel=1e-3)
        assert row.after_per_account > row.before_per_account
    # lunches add more per touch, but cost more per incremental referral
    assert (
        rows["lunch"].incremental / rows["lunch"].touches > rows["visit"].incremental / rows["visit"].touches
    )
    assert rows["lunch"].cost_per_incremental > rows["visit"].cost_per_incremental
    assert "Difference in differences" in report.method and "90 days" in report.method


def test_no_uplift_gives_an_estimate_near_zero_and_no_cost_per_referral():
    touches, referrals, accounts, _ = world(seed=14, scale=0.0)
    report = run(touches, referrals, accounts)
    before = report.overall.before_per_account * len(
        [t for t in touches if START <= t.on <= END - timedelta(days=90)]
    )
    for row in [report.overall, *report.rows]:
        assert row.low < 0 < row.high, row
        assert abs(row.incremental) < 0.03 * before
        assert row.cost_per_incremental is None


def test_rows_by_liaison_and_by_physician():
    touches, referrals, accounts, planted = world(seed=3)
    by_liaison = {r.group: r for r in run(touches, referrals, accounts, by="liaison").rows}
    assert set(by_liaison) == {"Lee", "Kim"}
    for name, row in by_liaison.items():
        assert row.incremental == pytest.approx(sum(p[3] for p in planted if p[1] == name), rel=0.25)
    report = run(touches, referrals, accounts, by="physician")
    by_doctor = {r.group: r for r in report.rows}
    assert set(by_doctor) == {"Dr Ray", "Dr Sol"}  # visits without a physician are in no row
    ray = [p for p in planted if "Dr Ray" in p[2]]
    assert by_doctor["Dr Ray"].touches == len(ray)
    # a lunch with two physicians: each is credited with the touch and half its cost
    assert by_doctor["Dr Ray"].cost == pytest.approx(sum(COST["lunch"] / len(p[2]) for p in ray))
    assert by_doctor["Dr Sol"].cost == pytest.approx(COST["lunch"] / 2 * by_doctor["Dr Sol"].touches)
    assert report.overall.touches == len(planted)  # "All outreach" is the same whatever the grouping


def d(text: str) -> date:
    return date.fromisoformat(text)


def toy_referrals(before: int, after: int, after_on: str = "2025-03-10") -> list[date]:
    """10 referrals in June 2024 (the volume strata), `before` on 10 Feb 2025, `after` on `after_on`."""
    return [d("2024-06-15")] * 10 + [d("2025-02-10")] * before + [d(after_on)] * after


def test_the_difference_in_differences_on_a_toy():
    # T: lunch on 1 March, 2 referrals in the 30 days before, 6 in the 30 days after. Twelve untouched
    # accounts alike go from 2 to 3; so does Y, visited on 5 March (inside T's after-window: it stays
    # a control). X had a call on 15 Feb (before `start`, but inside T's before-window): not a control.
    referrals = {"T": toy_referrals(2, 6), "Y": toy_referrals(2, 3), "X": toy_referrals(0, 40)}
    referrals |= {f"C{i}": toy_referrals(2, 3) for i in range(12)}
    touches = [
        Touch("T", d("2025-03-01"), "lunch", 300.0, "Kim", ("Dr Ray",)),
        Touch("Y", d("2025-03-05"), "visit", 20.0, "Lee"),
        Touch("X", d("2025-02-15"), "call", 0.0, "Lee"),
    ]
    report = estimate(
        touches, referrals, list(referrals), start=d("2025-02-20"), end=d("2025-12-31"), window_days=30
    )
    rows = {r.group: r for r in report.rows}
    assert set(rows) == {"lunch", "visit"}  # the call is before `start`: no episode
    lunch = rows["lunch"]
    assert (lunch.touches, lunch.accounts, lunch.before_per_account, lunch.after_per_account) == (1, 1, 2, 6)
    assert lunch.control_change_per_account == pytest.approx(1.0)
    assert lunch.incremental == pytest.approx(3.0)
    assert lunch.cost == 300.0 and lunch.low is None and lunch.cost_per_incremental is None
    assert rows["visit"].incremental == pytest.approx(0.0, abs=1e-6)  # Y: +1, like its controls
    assert report.overall.incremental == pytest.approx(3.0) and report.overall.touches == 2
    assert report.overall.cost_per_incremental is None  # two episodes: the interval includes 0


def test_repeated_touches_form_episodes():
    referrals = {a: toy_referrals(2, 3) for a in ["A", *[f"C{i}" for i in range(12)]]}
    visits = ["2025-03-01", "2025-03-31", "2025-08-01", "2025-09-30", "2025-12-20"]
    touches = [Touch("A", d(v), "visit", 10.0) for v in visits]
    touches.append(Touch("A", d("2025-03-15"), "lunch", 200.0))
    report = estimate(
        touches, referrals, list(referrals), start=d("2025-02-20"), end=d("2026-02-28"), window_days=90
    )
    rows = {r.group: r for r in report.rows}
    # visits: 1 Mar + 31 Mar (30 days later: same episode); 1 Aug starts another (gap 123 days),
    # 30 Sep joins it; 20 Dec is 81 days after 30 Sep and 141 days after 1 Aug: it keeps the chain
    # going past the episode's end, so it is not evaluated again.
    assert (rows["visit"].touches, rows["visit"].cost) == (4, 40.0)
    assert (rows["lunch"].touches, rows["lunch"].cost) == (1, 200.0)
    # all outreach: 1 Mar (with 15 Mar and 31 Mar), 1 Aug (with 30 Sep); 20 Dec is a continuation
    assert (report.overall.touches, report.overall.cost) == (5, 240.0)
    # a touch in the last `window_days` before `end` has no full after-window: no episode
    late = estimate(
        [Touch("A", d("2025-12-15"), "visit")], referrals, list(referrals), start=START, end=d("2026-01-31")
    )
    assert late.rows == [] and late.overall.touches == 0 and late.overall.incremental == 0


def test_it_rejects_an_unknown_grouping():
    with pytest.raises(ValueError, match="kind, liaison, physician"):
        estimate([], {}, [], start=START, end=END, by="site")
    empty = estimate([], {}, ["A"], start=START, end=END)
    assert empty.overall.touches == 0 and empty.rows == []
