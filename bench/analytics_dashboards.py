"""Benchmark: the analytics dashboards and drill-downs with 1M referrals, 100k providers, 200k activities.

    .venv/bin/python bench/analytics_dashboards.py              # SQLite, then PostgreSQL if reachable
    .venv/bin/python bench/analytics_dashboards.py --referrals 100000 --providers 10000 --activities 20000

For each database it generates its own data in a scratch database (the referrals as in
bench/referral_pages.py, then appointment, visit and note dates, payers, specialties, outreach
accounts and activities), runs the refresh job once (timed: it is what makes the pages cheap),
then times each page over repeated requests (the full page: middleware, auth, selectors,
template). As the floor it loads the same referrals into DuckDB (in memory) and times the same
aggregate there: referrals by month for the dashboard, and one referrer's latest 50 referrals
with their count for a drill-down. Prints p50/p95 in ms and the page/floor ratio.
Goals: every dashboard <= 1 s, drill-down p95 <= 200 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
_spec = importlib.util.spec_from_file_location("referral_pages", ROOT / "bench" / "referral_pages.py")
referral_pages = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(referral_pages)
percentile, timed = referral_pages.percentile, referral_pages.timed


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--referrals", type=int, default=1_000_000)
    p.add_argument("--providers", type=int, default=100_000)
    p.add_argument("--activities", type=int, default=200_000)
    p.add_argument("--requests", type=int, default=20, help="timed requests per page")
    p.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/liaison_bench"),
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args()


def enrich(n_activities: int) -> dict:
    """Outcome dates, payers and specialties on the generated referrals; accounts and activities."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from liaison.directory.models import Practice, Provider, Taxonomy
    from liaison.outreach.models import Account, Activity, Stage
    from liaison.referrals.models import Referral

    t0 = time.perf_counter()
    table = Referral._meta.db_table
    if connection.vendor == "postgresql":
        plus = "received_at + make_interval(days => {})"
    else:
        plus = "datetime(received_at, '+{} days')"
    payers = ["Medicare", "Aetna", "Anthem", "UnitedHealthcare", "Medicaid", "Self-pay"]
    with connection.cursor() as c:
        c.execute(
            f"UPDATE {table} SET appointment_at = {plus.format(9)}, seen_at = {plus.format(12)}, "
            f"note_sent_at = {plus.format(14)} WHERE status IN ('closed', 'note_sent')"
        )
        c.execute(
            f"UPDATE {table} SET appointment_at = {plus.format(9)} WHERE status IN ('scheduled', 'seen')"
        )
        for i, payer in enumerate(payers):
            c.execute(f"UPDATE {table} SET payer = %s WHERE id %% 6 = %s", [payer, i])
    codes = list(Taxonomy.objects.values_list("code", flat=True)[:15])
    ProviderT = Provider._meta.db_table
    with connection.cursor() as c:
        for i, code in enumerate(codes):
            c.execute(
                f"UPDATE {ProviderT} SET primary_taxonomy_id = %s WHERE is_ours = %s AND id %% 15 = %s",
                [code, False, i],
            )
    User = get_user_model()
    liaisons = [
        User.objects.create_user(f"l{i}@example.org", "x" * 16, full_name=f"Liaison {i}", role="liaison")
        for i in range(8)
    ]
    practices = list(Practice.objects.filter(is_ours=False).values_list("pk", flat=True))
    now = timezone.now()
    accounts = Account.objects.bulk_create(
        [
            Account(practice_id=p, owner=liaisons[i % 8], stage=Stage.REFERRING, stage_changed_at=now)
            for i, p in enumerate(practices[:20000])
        ],
        batch_size=5000,
    )
    rng = random.Random(11)
    kinds = ["visit"] * 6 + ["lunch"] * 2 + ["call", "email"]
    rows = []
    for i in range(n_activities):
        account = accounts[rng.randrange(len(accounts))]
        kind = kinds[i % len(kinds)]
        rows.append(
            Activity(
                kind=kind,
                account_id=account.pk,
                occurred_at=now - dt.timedelta(minutes=rng.randrange(2 * 365 * 24 * 60)),
                liaison=liaisons[i % 8],
                cost=150 if kind == "lunch" else 0,
            )
        )
        if len(rows) == 20000:
            Activity.objects.bulk_create(rows)
            rows.clear()
    Activity.objects.bulk_create(rows)
    with connection.cursor() as c:
        c.execute("ANALYZE")
    return {"seconds": time.perf_counter() - t0}


def duckdb_floor(n_requests: int, provider_id: int) -> dict[str, list[float]]:
    """The same aggregates in DuckDB over the same referrals (loaded once, not timed)."""
    import duckdb
    import numpy as np

    from liaison.referrals.models import Referral

    rows = list(
        Referral.objects.order_by().values_list("id", "referring_provider_id", "site_id", "received_at")
    )
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    prov = np.array([r[1] or 0 for r in rows], dtype=np.int64)
    site = np.array([r[2] or 0 for r in rows], dtype=np.int64)
    received = np.array([r[3].replace(tzinfo=None) for r in rows], dtype="datetime64[us]")
    con = duckdb.connect()
    con.register("arrays", {"id": ids, "provider": prov, "site": site, "received": received})
    con.execute("CREATE TABLE referrals AS SELECT * FROM arrays")

    def by_month() -> None:
        con.execute(
            "SELECT date_trunc('month', received) m, count(*) FROM referrals GROUP BY m ORDER BY m"
        ).fetchall()

    def one_referrer() -> None:
        con.execute("SELECT count(*) FROM referrals WHERE provider = ?", [provider_id]).fetchall()
        con.execute(
            "SELECT * FROM referrals WHERE provider = ? ORDER BY received DESC LIMIT 50", [provider_id]
        ).fetchall()

    return {"dashboard": timed(by_month, n_requests), "drill-down": timed(one_referrer, n_requests)}


def measure(n_requests: int) -> list[tuple[str, str, list[float]]]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from liaison.analytics.models import ReferrerStat, VolumeCell

    manager = get_user_model().objects.create_user("m@example.org", "x" * 16, full_name="M", role="manager")
    client = Client()
    client.force_login(manager)
    top = list(ReferrerStat.objects.order_by("-last_365").values_list("provider_id", flat=True)[:n_requests])
    site = VolumeCell.objects.exclude(site=None).values_list("site_id", flat=True).first()
    month = VolumeCell.objects.filter(grain="month").order_by("-period").values_list("period", flat=True)[2]
    pages = [
        ("dashboard", "dashboard", "/analytics/"),
        ("dashboard", "dashboard by week, one site", f"/analytics/?grain=week&site={site}&by=payer"),
        ("dashboard", "dashboard 36 months, one payer", "/analytics/?months=36&payer=Aetna&by=specialty"),
        ("dashboard", "leakage and turnaround", "/analytics/leakage/"),
        ("dashboard", "attribution", "/analytics/attribution/"),
        ("dashboard", "KPIs", "/analytics/kpis/"),
        ("dashboard", "reciprocity", "/analytics/reciprocity/"),
        ("drill-down", "referrals of one month", f"/analytics/referrals/?grain=month&period={month}"),
        (
            "drill-down",
            "one site, never scheduled",
            f"/analytics/referrals/?site={site}&outcome=never_scheduled",
        ),
    ]
    results = []
    for kind, name, url in pages:

        def get(url: str = url) -> None:
            assert client.get(url).status_code == 200, url

        results.append((kind, name, timed(get, n_requests)))
    referrers = iter(top * 10)

    def referrer_page() -> None:
        assert client.get(f"/analytics/referrers/{next(referrers)}/").status_code == 200

    def referrer_drill() -> None:
        assert client.get(f"/analytics/referrals/?provider={next(referrers)}").status_code == 200

    results.append(("drill-down", "a referrer's page", timed(referrer_page, n_requests)))
    results.append(("drill-down", "a referrer's referrals", timed(referrer_drill, n_requests)))
    # A liaison's drill-down: the month, no referral number, no payer.
    liaison = get_user_model().objects.create_user("l@example.org", "x" * 16, full_name="L", role="liaison")
    counts = Client()
    counts.force_login(liaison)
    for name, url in (
        ("referrals of one month (liaison)", f"/analytics/referrals/?grain=month&period={month}"),
        ("one site, never scheduled (liaison)", f"/analytics/referrals/?site={site}&outcome=never_scheduled"),
    ):

        def get_counts(url: str = url) -> None:
            assert counts.get(url).status_code == 200, url

        results.append(("drill-down", name, timed(get_counts, n_requests)))
    return results


def child(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from liaison.analytics.models import ReferrerStat
    from liaison.analytics.refresh import refresh

    call_command("migrate", verbosity=0)
    data = referral_pages.generate(args.referrals, args.providers, with_events=False)  # pages read none
    extra = enrich(args.activities)
    print(
        f"[{connection.vendor}] generated {args.referrals:,} referrals, {args.providers:,} providers, "
        f"{args.activities:,} activities in {data['seconds'] + extra['seconds']:.0f} s"
    )
    t = time.perf_counter()
    run = refresh()
    print(
        f"[{connection.vendor}] refresh job: {time.perf_counter() - t:.1f} s "
        f"({run.referrers:,} referrers, {run.alerts_opened} alerts)"
    )
    top = ReferrerStat.objects.order_by("-last_365").values_list("provider_id", flat=True).first()
    floor = duckdb_floor(args.requests, top)
    print(f"{'page':<34}{'p50 ms':>9}{'p95 ms':>9}{'floor p95':>11}{'ratio':>8}  goal")
    for kind, name, times in measure(args.requests):
        p95, f95 = percentile(times, 0.95), percentile(floor[kind], 0.95)
        goal = 1000 if kind == "dashboard" else 200
        flag = "ok" if p95 <= goal else f"OVER {goal} ms"
        print(f"{name:<34}{statistics.median(times):>9.1f}{p95:>9.1f}{f95:>11.2f}{p95 / f95:>8.0f}  {flag}")


def main() -> None:
    args = parse()
    if args.child:
        child(args)
        return
    import subprocess

    runs = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    for db in runs:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "liaison.settings",
            "STATICFILES_STORAGE": "django.contrib.staticfiles.storage.StaticFilesStorage",
            "LIAISON_VAR_DIR": tempfile.mkdtemp(prefix="liaison-bench-"),
            "TASKS_BACKEND": "django_tasks.backends.dummy.DummyBackend",
        }
        if db == "postgresql":
            import psycopg

            url = args.postgres_url
            admin, name = url.rsplit("/", 1)[0] + "/postgres", url.rsplit("/", 1)[1]
            try:
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
                    conn.execute(f'CREATE DATABASE "{name}"')
            except psycopg.OperationalError as exc:
                print(f"[postgresql] skipped: {exc}")
                continue
            env["DATABASE_URL"] = url
        else:
            env.pop("DATABASE_URL", None)
        cmd = [
            sys.executable,
            __file__,
            "--child",
            "--referrals",
            str(args.referrals),
            "--providers",
            str(args.providers),
            "--activities",
            str(args.activities),
            "--requests",
            str(args.requests),
        ]
        subprocess.run(cmd, env=env, check=True, cwd=ROOT)


if __name__ == "__main__":
    main()
