"""Cooling detection: is a referrer sending improbably few referrals compared with its own history?

Pure statistics on plain dates (no ORM), vectorised with numpy: a run over 20,000 referrers and a
million referral dates takes about a second. The method (docs/analytics.md has the long form):

* **Seasonality** is pooled over all referrers (`seasonal_index`): 52 weekly factors of the
  practice's whole volume, with its own trend taken out, day-weighted mean 1.0 over the year. One
  referrer has far too few referrals to estimate its own summer or year-end dip.
* **Baseline**: each referrer's own rate over up to 104 weeks (`BASELINE_DAYS`) ending where the
  longest recent window starts (so 16 weeks before `as_of`), divided by the seasonal factors of
  those days. A log-linear trend is fitted to the baseline's weekly counts and shrunk towards zero
  (a normal prior of sd 10 % a year, `TREND_PRIOR`; capped at +-30 % over the gap): a noisy slope
  is damped away and only a well-measured drift is carried forward.
* **Test**: the referrals of the last 28, 56, 84 and 112 days (`WINDOWS`, whole weeks, so each
  weekday counts equally) against their expectation (baseline rate x seasonal factors of those
  days x trend). The lower tail is negative binomial: Poisson counts whose rate is uncertain by
  the baseline's own sampling error (1/N on the log scale), the trend's error, and 15 %
  extra-Poisson variation (`EXTRA_CV`). The smallest of the four tail probabilities times four
  (Bonferroni) is the verdict's `p_value`.
* **False-alarm rate**: `cooling` needs `p_value <= ALPHA` (0.015). That is the per-run bound for
  a referrer still referring at its baseline; measured, such a referrer is flagged in about 0.2 %
  of runs, and run every two weeks for a year, 3-4 % of referrers without a real drop get an alert
  (bench/cooling_accuracy.py; docs/analytics.md has the table).
* **Recovery** (hysteresis): `recovered` is true when the last 28 and the last 56 days are both in
  line with the baseline (lower-tail probability >= `RECOVERY_P` = 0.2 each). The caller opens an
  alert on `cooling` and clears it only on `recovered`; in between an open alert stays open, so
  alerts do not flap. A recovered verdict is never `cooling`, and reports its 56-day window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
from scipy import stats

ALPHA = 0.015
"""Per-run, per-referrer significance level of `cooling` (a Bonferroni bound over the four windows).
Measured on generated histories: a referrer with no real drop is flagged in about 0.2 % of runs,
and 3-4 % of them get an alert in a year of runs every two weeks (docs/analytics.md, "Accuracy")."""

WINDOWS = (28, 56, 84, 112)
BASELINE_DAYS = 728
MIN_BASELINE_DAYS = 182
MIN_BASELINE_REFERRALS = 4
RECOVERY_P = 0.2
TREND_PRIOR = 0.10
TREND_CAP = 1.3
EXTRA_CV = 0.15
SEASON_BINS = 52
SEASON_SHRINK = 30.0
DAYS_PER_MONTH = 365.25 / 12

_EPOCH = date(1970, 1, 1).toordinal()


@dataclass(frozen=True)
class CoolingVerdict:
    """One referrer's verdict on one day; `explanation` is a sentence a manager can read."""

    referrer_id: str
    as_of: date
    cooling: bool
    recovered: bool
    baseline_per_month: float
    history_months: float
    expected_recent: float
    recent_count: int
    recent_days: int
    p_value: float
    explanation: str


# Dates -------------------------------------------------------------------------------------------


def _ordinals(dates: Sequence[date] | np.ndarray) -> np.ndarray:
    """Proleptic ordinals as int64; numpy datetime64 arrays take a fast path."""
    if isinstance(dates, np.ndarray) and np.issubdtype(dates.dtype, np.datetime64):
        return dates.astype("datetime64[D]").astype(np.int64) + _EPOCH
    return np.fromiter((d.toordinal() for d in dates), dtype=np.int64, count=len(dates))


def _season_bin(d: date) -> int:
    return min((d.timetuple().tm_yday - 1) // 7, SEASON_BINS - 1)


def _bin_days() -> np.ndarray:
    """Days of a 365-day year in each weekly bin (the last bin also takes 31 December)."""
    days = np.full(SEASON_BINS, 7.0)
    days[-1] = 365 - 7 * (SEASON_BINS - 1)
    return days


def _daily_factors(seasonality: Sequence[float] | None, as_of_ord: int, n_days: int) -> np.ndarray:
    """Seasonal factor of each day by age: index 0 is as_of, index a is a days before."""
    if seasonality is None:
        return np.ones(n_days)
    factors = np.asarray(seasonality, dtype=float)
    if factors.shape not in ((SEASON_BINS,), (12,)) or not np.all(np.isfinite(factors)) or factors.min() <= 0:
        raise ValueError("seasonality must be 52 weekly (or 12 monthly) positive factors")
    days = [date.fromordinal(as_of_ord - a) for a in range(n_days)]
    if factors.shape == (12,):
        return factors[[d.month - 1 for d in days]]
    return factors[[_season_bin(d) for d in days]]


# Seasonality -------------------------------------------------------------------------------------


def seasonal_index(all_dates: Sequence[date], as_of: date) -> list[float]:
    """52 weekly seasonal factors pooled over ALL referrers, day-weighted mean 1.0.

    Factor k covers days of the year 7k+1 .. 7k+7; the last one (k = 51) also takes 31 December
    (and 30 December in leap years). Estimated from the whole volume of up to three full years that
    end where the recent windows start (16 weeks before `as_of`: the weeks under test must not
    shape their own expectation, or a practice-wide drop would pass for a seasonal dip); only full
    years, so every week of the year is seen equally often. A log-linear trend of the whole volume
    is fitted jointly (with two years or more) so that growth is not mistaken for seasonality. Each
    factor is shrunk towards 1.0 by a pseudo-count of 30 referrals, so a small practice gets a
    flat-ish index rather than noise. Less than a year of data gives all ones.

    Compute it once per run and pass it to `detect_many` / `detect` as `seasonality=`.
    """
    as_of_ord = as_of.toordinal() - max(WINDOWS)
    ords = _ordinals(all_dates)
    ords = ords[ords <= as_of_ord]
    if len(ords) == 0:
        return [1.0] * SEASON_BINS
    years = min(3, int((as_of_ord - int(ords.min())) // 365))
    if years == 0:
        return [1.0] * SEASON_BINS
    n_days = 365 * years
    ages = as_of_ord - ords
    y = np.bincount(ages[ages < n_days], minlength=n_days).astype(float)
    bins = np.array([_season_bin(date.fromordinal(as_of_ord - a)) for a in range(n_days)])
    t = -np.arange(n_days) / 365.25
    t = t - t.mean()
    bin_days = _bin_days()
    factors = np.ones(SEASON_BINS)
    level, slope = math.log(max(y.mean(), 1e-9)), 0.0
    for _ in range(8):
        if years >= 2:
            offset = np.log(factors[bins])
            for _ in range(4):  # Newton steps of the Poisson regression log mu = level + slope t + offset
                mu = np.exp(level + slope * t + offset)
                g = np.array([np.sum(y - mu), np.sum(t * (y - mu))])
                h = np.array([[mu.sum(), (t * mu).sum()], [(t * mu).sum(), (t * t * mu).sum()]])
                level, slope = np.array([level, slope]) + np.linalg.solve(h, g)
        else:
            level = math.log(max(y.mean(), 1e-9))
        base = np.exp(level + slope * t)
        observed = np.bincount(bins, weights=y, minlength=SEASON_BINS)
        expected = np.bincount(bins, weights=base, minlength=SEASON_BINS)
        factors = (observed + SEASON_SHRINK) / (expected + SEASON_SHRINK)
        factors /= np.sum(factors * bin_days) / bin_days.sum()
    return [float(f) for f in factors]


# Detection ---------------------------------------------------------------------------------------


def _pct(p: float) -> str:
    if p < 0.0001:
        return "less than 0.01%"
    if p < 0.01:
        return f"{100 * p:.2f}%"
    if p < 0.1:
        return f"{100 * p:.1f}%"
    return f"{100 * p:.0f}%"


def _explain(who: str, v: CoolingVerdict) -> str:
    head = (
        f"{who} averaged {v.baseline_per_month:.1f} referrals/month over {v.history_months:.0f} months; "
        f"{v.recent_count} in the last {v.recent_days} days against {v.expected_recent:.1f} expected"
    )
    if v.cooling:
        return f"{head}; probability under the baseline {_pct(v.p_value)}."
    if v.recovered:
        return f"{head}; in line with the baseline."
    return f"{head}; lower than usual but not improbable (probability under the baseline {_pct(v.p_value)})."


@dataclass
class _Arrays:
    ok: np.ndarray
    cooling: np.ndarray
    recovered: np.ndarray
    per_month: np.ndarray
    months: np.ndarray
    expected: np.ndarray
    count: np.ndarray
    days: np.ndarray
    p_value: np.ndarray


def _detect_arrays(
    ref: np.ndarray, ords: np.ndarray, n_refs: int, as_of_ord: int, season: Sequence[float] | None
) -> _Arrays:
    """The whole detector on flat arrays: `ref[i]` is the referrer index of the referral on `ords[i]`."""
    wmax, nweeks = max(WINDOWS), BASELINE_DAYS // 7
    oldest = wmax + BASELINE_DAYS  # ages (days before as_of) 0 .. oldest - 1 are looked at
    ages = as_of_ord - ords
    keep = ages >= 0
    ref, ages = ref[keep], ages[keep]

    factor = _daily_factors(season, as_of_ord, oldest)
    cum = np.concatenate([[0.0], np.cumsum(factor)])  # exposure of ages [a, b) is cum[b] - cum[a]

    # History starts the day after the first referral (that referral is what made the referrer
    # known, so counting it would bias a short history upwards); the baseline stops at wmax.
    first = np.full(n_refs, -1, dtype=np.int64)
    np.maximum.at(first, ref, ages)
    hb = np.minimum(first, oldest)  # baseline covers ages [wmax, hb)
    in_base = (ages >= wmax) & (ages < hb[ref])
    week = (ages[in_base] - wmax) // 7
    y = np.bincount(ref[in_base] * nweeks + week, minlength=n_refs * nweeks).reshape(n_refs, nweeks)
    y = y.astype(float)
    a0 = wmax + 7 * np.arange(nweeks)
    hb_col = np.maximum(hb, wmax)[:, None]
    exposure = cum[np.minimum(a0 + 7, hb_col)] - cum[np.minimum(a0, hb_col)]
    n_base = y.sum(axis=1)
    e_base = exposure.sum(axis=1)
    days_base = np.maximum(hb - wmax, 0)
    ok = (days_base >= MIN_BASELINE_DAYS) & (n_base >= MIN_BASELINE_REFERRALS)
    e_safe = np.where(e_base > 0, e_base, 1.0)
    rate = n_base / e_safe  # referrals per day at seasonal factor 1

    # Trend: one Newton step of a Poisson log-linear regression from slope 0, shrunk to the prior.
    t = -(a0 + 3.5) / 365.25
    tbar = exposure @ t / e_safe
    mu = rate[:, None] * exposure
    dt = t[None, :] - tbar[:, None]
    info = np.sum(dt * dt * mu, axis=1)
    score = np.sum(dt * (y - mu), axis=1)
    prior = TREND_PRIOR**2
    shrink = prior * info / (prior * info + 1.0)  # prior / (prior + 1/info): 0 without information
    with np.errstate(divide="ignore", invalid="ignore"):
        slope_post = np.where(info > 0, score / info, 0.0) * shrink
    var_post = prior / (prior * info + 1.0)  # prior * var / (prior + var) with var = 1/info

    counts_by_age = np.bincount(ref[ages < wmax] * wmax + ages[ages < wmax], minlength=n_refs * wmax)
    recent_cum = np.cumsum(counts_by_age.reshape(n_refs, wmax), axis=1)
    n_safe = np.maximum(n_base, 1.0)
    pw, muw, nw = [], [], []
    for w in WINDOWS:
        ew = cum[w]
        tw = -np.sum(factor[:w] * (np.arange(w) + 0.5)) / ew / 365.25
        lag = tw - tbar
        trend = np.clip(slope_post * lag, -math.log(TREND_CAP), math.log(TREND_CAP))
        m = rate * ew * np.exp(trend)
        size = 1.0 / (1.0 / n_safe + lag * lag * var_post + EXTRA_CV**2)
        n = recent_cum[:, w - 1]
        pw.append(stats.nbinom.cdf(n, size, size / (size + np.maximum(m, 1e-12))))
        muw.append(m)
        nw.append(n)
    p = np.array(pw)
    # Recovery is judged on the most recent 4 and 8 weeks only, so that an old dip still inside the
    # 16-week window does not hold an alert open; a recovered verdict reports its 8-week window.
    recovered = (p[WINDOWS.index(28)] >= RECOVERY_P) & (p[WINDOWS.index(56)] >= RECOVERY_P)
    best = np.where(recovered, WINDOWS.index(56), np.argmin(p, axis=0))
    cols = np.arange(n_refs)
    p_adj = np.minimum(1.0, len(WINDOWS) * p[best, cols])
    cooling = (p_adj <= ALPHA) & ~recovered
    return _Arrays(
        ok=ok,
        cooling=cooling & ok,
        recovered=recovered & ok,
        per_month=n_base / np.maximum(days_base, 1) * DAYS_PER_MONTH,
        months=days_base / DAYS_PER_MONTH,
        expected=np.array(muw)[best, cols],
        count=np.array(nw)[best, cols],
        days=np.array(WINDOWS)[best],
        p_value=p_adj,
    )


def _verdicts(ids: Sequence[str], names: Mapping[str, str], as_of: date, r: _Arrays) -> list[CoolingVerdict]:
    out = []
    for i in np.flatnonzero(r.ok):
        rid = ids[i]
        v = CoolingVerdict(
            referrer_id=rid,
            as_of=as_of,
            cooling=bool(r.cooling[i]),
            recovered=bool(r.recovered[i]),
            baseline_per_month=round(float(r.per_month[i]), 3),
            history_months=round(float(r.months[i]), 1),
            expected_recent=round(float(r.expected[i]), 2),
            recent_count=int(r.count[i]),
            recent_days=int(r.days[i]),
            p_value=float(r.p_value[i]),
            explanation="",
        )
        who = names.get(rid) or rid or "This referrer"
        out.append(CoolingVerdict(**{**v.__dict__, "explanation": _explain(who, v)}))
    return out


def detect(
    dates: Sequence[date],
    as_of: date,
    *,
    referrer_id: str = "",
    name: str = "",
    seasonality: Sequence[float] | None = None,
) -> CoolingVerdict | None:
    """The verdict for one referrer's referral dates (only dates <= as_of count).

    None when there is not enough history to judge: the baseline (the history before the last
    112 days, starting the day after the first referral) must span at least 26 weeks and hold at
    least 4 referrals. `seasonality` is the pooled index from `seasonal_index` (None: flat).
    """
    ords = _ordinals(dates)
    r = _detect_arrays(np.zeros(len(ords), dtype=np.int64), ords, 1, as_of.toordinal(), seasonality)
    found = _verdicts([referrer_id], {referrer_id: name}, as_of, r)
    return found[0] if found else None


def detect_many(
    history: Mapping[str, Sequence[date]],
    as_of: date,
    *,
    names: Mapping[str, str] | None = None,
    seasonality: Sequence[float] | None = None,
) -> list[CoolingVerdict]:
    """Verdicts for every referrer with enough history (see `detect`), in the order of `history`.

    `seasonality` None means: pooled from these same histories with `seasonal_index` (pass a flat
    `[1.0] * 52` to switch seasonality off). Values may be lists of dates or numpy datetime64 arrays.
    """
    ids = list(history)
    parts = [_ordinals(history[k]) for k in ids]
    ords = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    ref = np.repeat(np.arange(len(ids), dtype=np.int64), [len(p) for p in parts])
    if seasonality is None:
        seasonality = seasonal_index((ords - _EPOCH).astype("datetime64[D]"), as_of)
    r = _detect_arrays(ref, ords, len(ids), as_of.toordinal(), seasonality)
    return _verdicts(ids, names or {}, as_of, r)


def threshold_rule(dates: Sequence[date], as_of: date) -> bool:
    """The vendor rule: the last 90 days are down 30 % or more on the 90 days before them.

    Last 90 days: as_of-89 .. as_of; the previous 90: as_of-179 .. as_of-90. False when the previous
    90 days had no referral (nothing to be down from).
    """
    ages = as_of.toordinal() - _ordinals(dates)
    last = int(np.sum((ages >= 0) & (ages < 90)))
    prev = int(np.sum((ages >= 90) & (ages < 180)))
    return prev > 0 and 10 * last <= 7 * prev
