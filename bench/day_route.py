"""Day routes: 12 visits with lunch windows, routed by OR-Tools in well under 2 seconds.

Generates its own days (random offices within ~8 miles of downtown Columbus: two lunches with
30-minute windows, two morning-only and two afternoon-only offices, six any time), routes each
one, checks every window, and compares with two baselines measured in the same run:
- driving the offices in the order they were picked (what a liaison does without a plan);
- the same solver with a 1-second guided local search (slower, sometimes shorter).

    .venv/bin/python bench/day_route.py [--days 30] [--stops 12]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "liaison.settings")

from liaison.outreach.routing import Stop, in_given_order, plan_day

DOWNTOWN = (39.9612, -82.9988)
ROAD_FACTOR, MPH = 1.3, 28.0


def hm(text: str) -> int:
    h, m = text.split(":")
    return int(h) * 60 + int(m)


def make_day(rng: random.Random, n: int) -> list[Stop]:
    windows = [
        ("11:30", "12:00"),
        ("12:45", "13:15"),
        ("08:30", "10:30"),
        ("08:30", "10:30"),
        ("14:00", "16:00"),
        ("14:00", "16:00"),
    ]
    windows = (windows + [None] * n)[:n]
    rng.shuffle(windows)
    stops = []
    for i, w in enumerate(windows):
        lat = DOWNTOWN[0] + rng.uniform(-0.11, 0.11)
        lon = DOWNTOWN[1] + rng.uniform(-0.14, 0.14)
        lunch = w is not None and w[0] >= "11:30" and w[1] <= "13:15"
        stops.append(
            Stop(i, f"Office {i}", lat, lon, 45 if lunch else 15, (hm(w[0]), hm(w[1])) if w else None)
        )
    return stops


def violations_in_given_order(stops: list[Stop], day_start: int) -> int:
    """Windows missed when driving the offices in the order picked (arriving early means waiting)."""
    from liaison.core.geo import haversine_miles

    t, here, missed = day_start, DOWNTOWN, 0
    for s in stops:
        t += round(haversine_miles(*here, s.latitude, s.longitude) * ROAD_FACTOR / MPH * 60)
        if s.window:
            t = max(t, s.window[0])
            missed += t > s.window[1]
        t += s.service_minutes
        here = (s.latitude, s.longitude)
    return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--stops", type=int, default=12)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    import django

    django.setup()
    rng = random.Random(args.seed)
    times, gls_times, ratios_given, ratios_gls, dropped, gls_dropped, given_missed = [], [], [], [], 0, 0, 0
    for _ in range(args.days):
        stops = make_day(rng, args.stops)
        plan = plan_day(
            DOWNTOWN, stops, day_start=hm("08:00"), day_end=hm("17:30"), road_factor=ROAD_FACTOR, mph=MPH
        )
        assert plan.windows_respected, "a window was violated"
        times.append(plan.solve_seconds)
        dropped += len(plan.dropped)
        ratios_given.append(plan.total_miles / in_given_order(DOWNTOWN, stops, road_factor=ROAD_FACTOR))
        given_missed += violations_in_given_order(stops, hm("08:00"))
        gls = plan_day(
            DOWNTOWN, stops, day_start=hm("08:00"), day_end=hm("17:30"), road_factor=ROAD_FACTOR, mph=MPH,
            time_limit_seconds=1.0, metaheuristic="GUIDED_LOCAL_SEARCH",
        )  # fmt: skip
        gls_times.append(gls.solve_seconds)
        gls_dropped += len(gls.dropped)
        if not gls.dropped and not plan.dropped:
            ratios_gls.append(plan.total_miles / gls.total_miles)
    q = statistics.quantiles(times, n=20)
    print(f"{args.days} days of {args.stops} visits (2 lunch windows, 4 half-day windows), seed {args.seed}")
    print(
        f"routing time      median {statistics.median(times) * 1000:7.1f} ms   p95 {q[-1] * 1000:7.1f} ms   max {max(times) * 1000:7.1f} ms   (budget 2000 ms)"
    )
    print(f"windows           all respected; visits that could not fit: {dropped} (guided LS: {gls_dropped})")
    print(
        f"vs order picked   {statistics.mean(ratios_given):.2f}x the miles (routed / as picked); as picked misses {given_missed} window(s) in all"
    )
    print(
        f"vs 1 s guided LS  {statistics.mean(ratios_gls):.3f}x the miles, {statistics.median(gls_times) / statistics.median(times):.0f}x faster"
    )
    if max(times) >= 2.0:
        sys.exit("FAIL: a day took 2 seconds or more")


if __name__ == "__main__":
    main()
