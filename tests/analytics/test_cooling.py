"""Cooling detection on histories with known answers (pure statistics: no database)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from liaison.analytics import cooling

AS_OF = date(2025, 9, 1)


def history(rng, per_month, start, end, factor=None) -> list[date]:
    """Poisson referrals at `per_month`, times `factor(day)` when given, from start to end."""
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    lam = np.full(len(days), per_month * 12 / 365.25)
    if factor is not None:
        lam *= np.array([factor(d) for d in days])
    return [d for d, k in zip(days, rng.poisson(lam), strict=True) for _ in range(k)]


def biweekly(first: date, last: date) -> list[date]:
    return [first + timedelta(days=14 * i) for i in range((last - first).days // 14 + 1)]


def test_a_steady_referrer_gives_no_alert_in_a_year_of_runs():
    rng = np.random.default_rng(1)
    dates = history(rng, 6, date(2022, 1, 1), date(2025, 12, 31))
    for as_of in biweekly(date(2025, 1, 6), date(2025, 12, 22)):
        v = cooling.detect(dates, as_of)
        assert v is not None and not v.cooling, v


def test_few_steady_referrers_alert_in_a_year_of_runs():
    rng = np.random.default_rng(11)
    hist = {f"R{i}": history(rng, 6, date(2022, 1, 1), date(2025, 12, 31)) for i in range(150)}
    alerted = set()
    for as_of in biweekly(date(2025, 1, 6), date(2025, 12, 22)):
        alerted |= {
            v.referrer_id for v in cooling.detect_many(hist, as_of, seasonality=[1.0] * 52) if v.cooling
        }
    assert len(alerted) <= 12  # 8 %; measured about 3 % a year


def test_few_steady_referrers_alert_in_one_run():
    rng = np.random.default_rng(2)
    rates = np.exp(rng.uniform(np.log(1), np.log(25), 400))
    hist = {f"R{i}": history(rng, r, date(2022, 6, 1), AS_OF) for i, r in enumerate(rates)}
    verdicts = cooling.detect_many(hist, AS_OF, seasonality=[1.0] * 52)
    assert len(verdicts) == 400
    assert sum(v.cooling for v in verdicts) <= 4  # 1 % of a run (measured about 0.2 %)
    assert all(0 <= v.p_value <= 1 for v in verdicts)


def test_a_referrer_going_from_6_a_month_to_0_alerts_within_8_weeks_and_says_why():
    rng = np.random.default_rng(3)
    drop_on = date(2025, 3, 3)
    dates = history(rng, 6, date(2023, 1, 1), drop_on - timedelta(days=1))
    first = next(
        d for d in (drop_on + timedelta(days=7 * k) for k in range(1, 20)) if cooling.detect(dates, d).cooling
    )
    assert (first - drop_on).days <= 56

    v = cooling.detect(dates, drop_on + timedelta(days=60), referrer_id="7", name="Dr Ada Moss")
    assert v.cooling and not v.recovered and v.p_value <= cooling.ALPHA
    assert v.recent_count <= 2 and v.recent_days in cooling.WINDOWS
    assert 5 <= v.baseline_per_month <= 7 and 23 <= v.history_months <= 25
    assert v.expected_recent == pytest.approx(v.baseline_per_month * v.recent_days / 30.44, rel=0.25)
    assert v.explanation.startswith(f"Dr Ada Moss averaged {v.baseline_per_month:.1f} referrals/month over 2")
    assert (
        f"{v.recent_count} in the last {v.recent_days} days against {v.expected_recent:.1f} expected"
        in v.explanation
    )
    assert "probability under the baseline" in v.explanation and v.referrer_id == "7"


def test_recovery_clears_the_alert_once_without_flapping():
    rng = np.random.default_rng(4)
    gap_from, gap_to = date(2025, 2, 1), date(2025, 5, 15)
    dates = history(rng, 8, date(2023, 1, 1), gap_from) + history(rng, 8, gap_to, date(2025, 12, 31))
    is_open, opened, cleared = False, [], []
    for as_of in biweekly(date(2025, 1, 6), date(2025, 12, 22)):
        v = cooling.detect(dates, as_of)
        assert not (v.cooling and v.recovered)
        if v.cooling and not is_open:
            is_open = True
            opened.append(as_of)
        elif is_open and v.recovered:
            is_open = False
            cleared.append(as_of)
    assert len(opened) == 1 and len(cleared) == 1
    # opened within 6 weeks of the gap; cleared once the last 4 and 8 weeks are back in line
    assert gap_from < opened[0] <= gap_from + timedelta(days=42)
    assert gap_to < cleared[0] <= gap_to + timedelta(days=98)
    v = cooling.detect(dates, cleared[0])
    assert v.recent_days == 56 and "in line with the baseline" in v.explanation


def test_not_enough_history_gives_none():
    rng = np.random.default_rng(5)
    recent = history(rng, 10, AS_OF - timedelta(days=200), AS_OF)  # baseline of 88 days only
    assert cooling.detect(recent, AS_OF) is None
    sparse = [date(2023, 10, 1), date(2024, 3, 1), date(2024, 9, 1)]  # 2 years, 3 referrals
    assert cooling.detect(sparse, AS_OF) is None
    assert cooling.detect([], AS_OF) is None
    later = history(rng, 10, date(2023, 1, 1), date(2026, 1, 1))
    assert cooling.detect(later, date(2022, 12, 31)) is None  # only dates <= as_of count
    # 26 weeks of baseline after the first referral is the minimum
    start = AS_OF - timedelta(days=112 + 182)
    assert cooling.detect([start, *history(rng, 10, start + timedelta(days=1), AS_OF)], AS_OF) is not None
    start += timedelta(days=7)
    assert cooling.detect([start, *history(rng, 10, start + timedelta(days=1), AS_OF)], AS_OF) is None


def summer(d: date) -> float:
    return 0.25 if date(d.year, 7, 1) <= d <= date(d.year, 8, 31) else 1.0


def test_a_seasonal_dip_alone_does_not_alert():
    rng = np.random.default_rng(6)
    start = date(2022, 1, 1)
    practice = {f"R{i}": history(rng, 5, start, AS_OF, summer) for i in range(150)}
    season = cooling.seasonal_index([d for v in practice.values() for d in v], AS_OF)
    july = season[(date(2025, 7, 15).timetuple().tm_yday - 1) // 7]
    march = season[(date(2025, 3, 15).timetuple().tm_yday - 1) // 7]
    assert july / march == pytest.approx(0.25, abs=0.08)

    dates = history(rng, 30, start, AS_OF, summer)
    flat = cooling.detect(dates, AS_OF, seasonality=[1.0] * 52)
    seasonal = cooling.detect(dates, AS_OF, seasonality=season)
    assert flat.cooling  # without seasonality, every summer looks like a drop
    assert not seasonal.cooling
    # detect_many pools the index itself when none is given
    many = cooling.detect_many({**practice, "X": dates}, AS_OF)
    assert not next(v for v in many if v.referrer_id == "X").cooling
    assert sum(v.cooling for v in many) <= 3
    assert sum(v.cooling for v in cooling.detect_many(practice, AS_OF, seasonality=[1.0] * 52)) >= 15


def test_seasonal_index_is_52_weekly_factors_with_mean_one():
    rng = np.random.default_rng(7)
    flat = [d for _ in range(40) for d in history(rng, 8, date(2021, 1, 1), AS_OF)]
    idx = cooling.seasonal_index(flat, AS_OF)
    assert len(idx) == 52
    assert np.average(idx, weights=[7] * 51 + [8]) == pytest.approx(1.0)
    assert max(abs(f - 1) for f in idx) < 0.25  # 40 referrers: about 7 % noise a week
    assert np.mean(np.abs(np.array(idx) - 1)) < 0.08
    assert cooling.seasonal_index(flat, date(2021, 6, 1)) == [1.0] * 52  # under a year: flat
    assert cooling.seasonal_index([], AS_OF) == [1.0] * 52


def test_a_growing_practice_is_not_mistaken_for_seasonality():
    rng = np.random.default_rng(8)
    growth = lambda d: 1.5 ** ((d - date(2022, 9, 1)).days / 365.25)  # noqa: E731
    dates = [d for _ in range(60) for d in history(rng, 6, date(2022, 9, 2), AS_OF, growth)]
    idx = np.array(cooling.seasonal_index(dates, AS_OF))
    # without the joint trend, August (just before as_of) would look 40 % above September
    assert abs(idx[31:35].mean() / idx[35:39].mean() - 1) < 0.12


def test_seasonality_must_be_52_weekly_or_12_monthly_factors():
    rng = np.random.default_rng(9)
    dates = history(rng, 6, date(2023, 1, 1), AS_OF)
    assert cooling.detect(dates, AS_OF, seasonality=[1.0] * 12) == cooling.detect(dates, AS_OF)
    for bad in ([1.0] * 53, [1.0] * 51 + [0.0]):
        with pytest.raises(ValueError):
            cooling.detect(dates, AS_OF, seasonality=bad)


def test_detect_many_agrees_with_detect_and_names_the_referrers():
    rng = np.random.default_rng(10)
    hist = {
        "a": history(rng, 4, date(2023, 1, 1), AS_OF),
        "b": history(rng, 12, date(2023, 1, 1), AS_OF - timedelta(days=50)),
        "c": [AS_OF],
    }
    season = [1.0 + 0.2 * np.sin(k / 8) for k in range(52)]
    many = cooling.detect_many(hist, AS_OF, names={"b": "Dr B"}, seasonality=season)
    assert [v.referrer_id for v in many] == ["a", "b"]  # "c" has no history to judge
    for v in many:
        assert v == cooling.detect(
            hist[v.referrer_id],
            AS_OF,
            referrer_id=v.referrer_id,
            name={"b": "Dr B"}.get(v.referrer_id, ""),
            seasonality=season,
        )
    assert many[1].cooling and many[1].explanation.startswith("Dr B averaged")
    assert many[0].explanation.startswith("a averaged")
    arrays = {k: np.array(v, dtype="datetime64[D]") for k, v in hist.items()}
    assert cooling.detect_many(arrays, AS_OF, names={"b": "Dr B"}, seasonality=season) == many


def test_threshold_rule_on_a_toy():
    as_of = date(2025, 6, 30)
    prev = [as_of - timedelta(days=90 + i) for i in range(10)]  # 10 in as_of-179 .. as_of-90
    assert cooling.threshold_rule(prev + [as_of - timedelta(days=i) for i in range(7)], as_of)  # 30 % down
    assert not cooling.threshold_rule(prev + [as_of - timedelta(days=i) for i in range(8)], as_of)  # 20 %
    assert cooling.threshold_rule(prev + [as_of - timedelta(days=89)] * 7, as_of)
    assert not cooling.threshold_rule([as_of - timedelta(days=180)] * 5, as_of)  # nothing to be down from
    last8 = [as_of - timedelta(days=i) for i in range(8)]
    assert cooling.threshold_rule(prev + last8[:7] + [as_of + timedelta(days=1)] * 3, as_of)  # future ignored
