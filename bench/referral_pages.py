"""Benchmark: the coordinators' work queue and a referral's page with 1M referrals, 100k providers.

    .venv/bin/python bench/referral_pages.py                 # SQLite, then PostgreSQL if reachable
    .venv/bin/python bench/referral_pages.py --referrals 100000 --providers 10000   # quicker

For each database it generates its own data in a scratch database, then times, over repeated
requests, the full page (middleware, auth, selector, template, audit row) and, as the baseline,
the same database work without the page around it (the work queue's paginator: count and first
page; or the referral + its timeline). Prints p50/p95 in ms and the page/baseline ratio.

Generation writes rows in bulk. Patient fields hold real ciphertext (AES-GCM, same size as in
use) drawn from a pool of pre-encrypted values, because encrypting 1M x 9 values one by one
would take minutes and measures nothing about the pages.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--referrals", type=int, default=1_000_000)
    p.add_argument("--providers", type=int, default=100_000)
    p.add_argument("--requests", type=int, default=40, help="timed requests per page")
    p.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/liaison_bench"),
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args()


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def timed(fn, n: int) -> list[float]:
    fn()  # warm caches
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def generate(n_referrals: int, n_providers: int, with_events: bool = True) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from liaison.core.phi import encrypt_text, phi_index
    from liaison.directory.models import Location, Practice, Provider
    from liaison.referrals.models import Referral, ReferralEvent, ServiceLine, Status

    rng = random.Random(7)
    t0 = time.perf_counter()
    ours = Practice.objects.create(name="Bench Ortho", is_ours=True)
    sites = [
        Location.objects.create(
            practice=ours,
            name=f"Site {i}",
            address_line1="1 A",
            city="Columbus",
            state="OH",
            zip_code="43215",
            latitude=39.96,
            longitude=-83.0,
        )
        for i in range(3)
    ]
    physicians = [
        Provider.objects.create(first_name="Our", last_name=f"Surgeon{i}", is_ours=True) for i in range(8)
    ]
    lines = [ServiceLine.objects.create(name=f"Line {i}") for i in range(6)]
    practices = Practice.objects.bulk_create(
        [Practice(name=f"Practice {i}") for i in range(n_providers // 3)], batch_size=5000
    )
    locations = Location.objects.bulk_create(
        [
            Location(
                practice=p,
                address_line1="1 A",
                city="Columbus",
                state="OH",
                zip_code="43215",
                fax="(614) 555-0100",
            )
            for p in practices
        ],
        batch_size=5000,
    )
    providers = Provider.objects.bulk_create(
        [Provider(first_name="Ref", last_name=f"Provider{i}", npi="") for i in range(n_providers)],
        batch_size=5000,
    )
    Through = Provider.locations.through
    Through.objects.bulk_create(
        [
            Through(provider_id=p.pk, location_id=locations[i % len(locations)].pk)
            for i, p in enumerate(providers)
        ],
        batch_size=10000,
    )
    User = get_user_model()
    coordinator = User.objects.create_user(
        "bench@example.org", "x" * 16, full_name="Bench Coordinator", role="coordinator"
    )
    others = [
        User.objects.create_user(f"c{i}@example.org", "x" * 16, full_name=f"C{i}", role="coordinator")
        for i in range(9)
    ]
    names = [encrypt_text(f"Name{i}") for i in range(500)]
    dobs = [encrypt_text(dt.date(1950 + i % 60, 1 + i % 12, 1 + i % 28).isoformat()) for i in range(500)]
    reason = encrypt_text("Knee osteoarthritis, failed conservative care")
    now = timezone.now()
    statuses = [
        (Status.CLOSED, 80),
        (Status.CANCELLED, 8),
        (Status.DECLINED, 5),
        (Status.RECEIVED, 1),
        (Status.ACCEPTED, 1),
        (Status.SCHEDULED, 3),
        (Status.SEEN, 1),
        (Status.NOTE_SENT, 1),
    ]
    pop, weights = [s for s, _ in statuses], [w for _, w in statuses]
    fields = [
        "patient_first_name",
        "patient_last_name",
        "patient_dob",
        "patient_phone",
        "patient_mrn",
        "patient_zip",
        "member_id",
        "reason",
        "icd10_codes",
        "patient_key",
        "patient_name_key",
        "mrn_key",
        "payer",
        "referring_provider_id",
        "referring_location_id",
        "referrer_to_match",
        "referrer_as_received",
        "site_id",
        "referred_to_physician_id",
        "service_line_id",
        "urgency",
        "channel",
        "assigned_to_id",
        "status",
        "received_at",
        "source_system",
        "external_id",
        "created_at",
        "updated_at",
    ]
    table = Referral._meta.db_table
    qn = connection.ops.quote_name
    sql = f"INSERT INTO {qn(table)} ({', '.join(qn(f) for f in fields)}) VALUES ({', '.join(['%s'] * len(fields))})"
    batch: list[tuple] = []
    users = [coordinator, *others]
    for i in range(n_referrals):
        provider = providers[rng.randrange(len(providers))]
        received = now - dt.timedelta(minutes=rng.randrange(2 * 365 * 24 * 60))
        last = rng.randrange(500)
        batch.append(
            (
                names[rng.randrange(500)],
                names[last],
                dobs[rng.randrange(500)],
                "",
                "",
                "",
                "",
                reason,
                "",
                phi_index(f"Name{last}", str(i)),
                phi_index(f"Name{last}"),
                "",
                "Medicare",
                provider.pk,
                locations[provider.pk % len(locations)].pk,
                False,
                "{}",
                sites[i % 3].pk,
                physicians[i % 8].pk,
                lines[i % 6].pk,
                rng.choice(["routine"] * 8 + ["urgent", "stat"]),
                "fax",
                users[i % 10].pk if rng.random() < 0.8 else None,
                rng.choices(pop, weights)[0],
                received,
                "",
                "",
                now,
                now,
            )
        )
        if len(batch) == 20000:
            with connection.cursor() as c:
                c.executemany(sql, batch)
            batch.clear()
    if batch:
        with connection.cursor() as c:
            c.executemany(sql, batch)
    ids = list(Referral.objects.values_list("pk", flat=True))
    event_rows = []
    for pk in ids if with_events else ():
        event_rows.append(
            ReferralEvent(
                referral_id=pk, kind="status", at=now, actor_label="bench", to_status="received", data={}
            )
        )
        if len(event_rows) >= 20000:
            ReferralEvent.objects.bulk_create(event_rows, batch_size=20000)
            event_rows.clear()
    sample_ids = rng.sample(ids, min(200, len(ids)))
    for pk in sample_ids:  # full timelines for the referrals whose page is timed
        for step in ("accepted", "scheduled", "seen", "note_sent", "closed"):
            event_rows.append(
                ReferralEvent(
                    referral_id=pk, kind="status", at=now, actor_label="bench", to_status=step, data={"n": 1}
                )
            )
    ReferralEvent.objects.bulk_create(event_rows, batch_size=20000)
    with connection.cursor() as c:
        # Statistics, and on PostgreSQL the visibility map that index-only scans need: what
        # autovacuum keeps on a live database, missing right after a bulk load.
        c.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    return {"seconds": time.perf_counter() - t0, "coordinator": coordinator, "sample_ids": sample_ids}


def measure(n_requests: int, data: dict) -> list[tuple[str, list[float], list[float]]]:
    from django.test import Client

    from liaison.referrals import selectors
    from liaison.referrals.selectors import QueueFilters

    user = data["coordinator"]
    client = Client()
    client.force_login(user)
    results = []
    for view in ("open", "mine", "overdue", "not_contacted"):

        def page(view: str = view) -> None:
            response = client.get("/referrals/", {"view": view})
            assert response.status_code == 200

        def bare(view: str = view) -> None:
            list(selectors.queue_paginator(user, QueueFilters(view=view)).page(1).object_list)

        results.append((f"work queue ({view})", timed(page, n_requests), timed(bare, n_requests)))
    ids = iter(data["sample_ids"] * 10)

    def detail_page() -> None:
        assert client.get(f"/referrals/{next(ids)}/").status_code == 200

    def detail_bare() -> None:
        referral = selectors.get_referral_for_user(user, next(ids))
        selectors.timeline(referral)
        list(referral.documents.all())
        list(referral.notifications.all())

    results.append(("referral page", timed(detail_page, n_requests), timed(detail_bare, n_requests)))
    return results


def child(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    data = generate(args.referrals, args.providers)
    print(
        f"[{connection.vendor}] generated {args.referrals:,} referrals, {args.providers:,} providers in {data['seconds']:.0f} s"
    )
    print(f"{'page':<28}{'p50 ms':>9}{'p95 ms':>9}{'bare p95':>10}{'ratio':>8}")
    for name, page, bare in measure(args.requests, data):
        p95, b95 = percentile(page, 0.95), percentile(bare, 0.95)
        flag = "" if p95 <= 200 else "  OVER 200 ms"
        print(f"{name:<28}{statistics.median(page):>9.1f}{p95:>9.1f}{b95:>10.1f}{p95 / b95:>8.2f}{flag}")


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
        }
        scratch = tempfile.mkdtemp(prefix="liaison-bench-")
        env["LIAISON_VAR_DIR"] = scratch
        env["TASKS_BACKEND"] = "django_tasks.backends.dummy.DummyBackend"
        if db == "postgresql":
            import psycopg

            url = args.postgres_url
            admin = url.rsplit("/", 1)[0] + "/postgres"
            name = url.rsplit("/", 1)[1]
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
            "--requests",
            str(args.requests),
        ]
        subprocess.run(cmd, env=env, check=True, cwd=ROOT)


if __name__ == "__main__":
    main()
