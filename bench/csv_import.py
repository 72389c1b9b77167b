"""Benchmark: import a practice-management export of 100k referrals (issue 4: <= 30 s).

    .venv/bin/python bench/csv_import.py                      # SQLite (a temporary file)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/liaison_bench .venv/bin/python bench/csv_import.py
    .venv/bin/python bench/csv_import.py --rows 20000         # smaller

It creates a throw-away database (Django's test-database machinery: `test_<name>`), a directory
of 2,000 referring providers, and a CSV of N rows (80% of referrers known by NPI, a status on a
third of the rows). Then it measures, in the same run:
- baseline: csv.reader + building Referral rows from the raw strings + bulk_create of the
  referrals and their history rows, no validation, no look-ups (the floor for landing the rows);
- import: `liaison.interop.bulk.import_table`, the path the upload page and `liaison import
  referrals` use (same per-row checks as the intake form, referrer/site look-ups, idempotency
  keys, history rows, one audit row), all or nothing in one transaction, with its automatic
  number of worker processes (`--workers N` to force one; 0 = all in one process);
- re-import of the same file (every row recognised as already imported, nothing written);
- the preview of the upload page (the first 5,000 rows checked).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TMP = Path(tempfile.mkdtemp(prefix="liaison-bench-"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "liaison.settings")
os.environ.setdefault("LIAISON_VAR_DIR", str(TMP))
os.environ.setdefault("LIAISON_TEST_SQLITE", str(TMP / "bench.sqlite3"))  # a file, not :memory:
os.environ.setdefault("LOG_LEVEL", "WARNING")

LAST = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
]
FIRST = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
]
REASONS = [
    "Knee pain, failed PT",
    "Hip osteoarthritis",
    "Rotator cuff tear",
    "Low back pain with radiculopathy",
    "Carpal tunnel syndrome",
    "ACL tear",
    "Ankle fracture follow-up",
    "Shoulder impingement",
]
CODES = ["M17.11", "M16.12", "M75.121", "M54.16", "G56.01", "S83.511A", "S82.891D", "M75.41"]
PAYERS = ["Medicare", "Aetna", "Anthem BCBS", "UnitedHealthcare", "Medical Mutual", "CareSource", "Humana"]
STATUSES = ["", "", "", "", "Pending", "Scheduled", "Seen", "Declined", "No show", "Closed"]
HEADER = [
    "Referral ID",
    "Last Name",
    "First Name",
    "DOB",
    "Phone",
    "MRN",
    "Insurance",
    "Member ID",
    "Referring NPI",
    "Referring Provider",
    "Received",
    "Reason",
    "ICD10",
    "Priority",
    "Status",
    "Appointment",
]


def npi(seed: int) -> str:
    from liaison.directory.validators import npi_check_digit_ok

    body = f"1{seed:08d}"
    return next(body + d for d in "0123456789" if npi_check_digit_ok(body + d))


def make_csv(rows: int, npis: list[str], rng: random.Random) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(HEADER)
    today = dt.date.today()
    for i in range(rows):
        known = rng.random() < 0.8
        ref_npi = rng.choice(npis) if known else npi(500_000 + rng.randrange(100_000))
        received = today - dt.timedelta(days=rng.randrange(1, 700))
        status = rng.choice(STATUSES)
        appointment = ""
        if status in ("Scheduled", "Seen", "No show", "Closed"):
            appointment = (received + dt.timedelta(days=rng.randrange(3, 30))).strftime("%m/%d/%Y") + " 09:30"
        w.writerow(
            [
                f"R{i:07d}",
                rng.choice(LAST),
                rng.choice(FIRST),
                dt.date(1930 + rng.randrange(80), 1 + rng.randrange(12), 1 + rng.randrange(28)).strftime(
                    "%m/%d/%Y"
                ),
                f"614-555-{rng.randrange(10000):04d}",
                f"MRN{rng.randrange(10**8):08d}",
                rng.choice(PAYERS),
                f"XQ{rng.randrange(10**9):09d}",
                ref_npi,
                f"{rng.choice(LAST)}, {rng.choice(FIRST)}",
                received.strftime("%m/%d/%Y"),
                rng.choice(REASONS),
                rng.choice(CODES),
                rng.choice(["Routine", "Routine", "Routine", "Urgent", "STAT"]),
                status,
                appointment,
            ]
        )
    return out.getvalue().encode()


def baseline(content: bytes) -> float:
    """Parse and insert the same rows with no validation and no look-ups: csv.reader, Referral
    objects from the raw strings, and the bulk path's INSERTs (which encrypt the patient fields)."""
    from django.db import transaction

    from liaison.referrals.models import Referral

    started = time.perf_counter()
    reader = csv.reader(io.StringIO(content.decode()))
    next(reader)
    with transaction.atomic():
        batch: list[Referral] = []
        for row in reader:
            batch.append(
                Referral(
                    patient_last_name=row[1],
                    patient_first_name=row[2],
                    patient_dob=dt.datetime.strptime(row[3], "%m/%d/%Y").date(),
                    patient_phone=row[4],
                    patient_mrn=row[5],
                    payer=row[6],
                    member_id=row[7],
                    reason=row[11],
                    icd10_codes=row[12],
                    source_system="baseline",
                    external_id=row[0],
                    referrer_to_match=True,
                )
            )
            if len(batch) == 900:
                _insert(batch)
                batch = []
        _insert(batch)
        transaction.set_rollback(True)
    return time.perf_counter() - started


def _insert(batch) -> None:
    from liaison.core.rows import insert_rows
    from liaison.referrals.models import EventKind, Referral, ReferralEvent, Status

    insert_rows(Referral, batch)
    insert_rows(
        ReferralEvent,
        [
            ReferralEvent(
                referral_id=r.pk, kind=EventKind.STATUS, actor_label="bench", to_status=Status.RECEIVED
            )
            for r in batch
        ],
    )


def _server_cpu(connection) -> float | None:
    """CPU seconds of this connection's PostgreSQL backend so far (it runs on this machine)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _children_cpu() -> float:
    """CPU seconds of the worker processes that have ended (the import waits for its pool)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--providers", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: automatic)")
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    old = setup_databases(verbosity=0, interactive=False)
    try:
        run(args, connection)
    finally:
        teardown_databases(old, verbosity=0)


def run(args: argparse.Namespace, connection) -> None:
    from liaison.directory.models import Location, Practice, Provider
    from liaison.interop.bulk import import_table
    from liaison.interop.tabular import MappingSpec, suggest_columns
    from liaison.referrals.models import Referral

    rng = random.Random(args.seed)
    practice = Practice.objects.create(name="Bench Family Medicine")
    office = Location.objects.create(
        practice=practice, address_line1="1 Main St", city="Columbus", state="OH", zip_code="43215"
    )
    npis = [npi(i) for i in range(10, 10 + args.providers)]
    Provider.objects.bulk_create(
        [Provider(npi=n, first_name=rng.choice(FIRST), last_name=rng.choice(LAST)) for n in npis],
        batch_size=500,
    )
    office.providers.set(Provider.objects.all())
    content = make_csv(args.rows, npis, rng)
    headers = HEADER
    columns = suggest_columns(headers)
    columns.update({"row_id": "Referral ID", "received_date": "Received", "urgency": "Priority"})
    spec = MappingSpec(
        columns=columns, dob_format="%m/%d/%Y", date_format="%m/%d/%Y", source_system="csv:bench"
    )

    vendor = connection.vendor
    print(
        f"database: {vendor} ({connection.settings_dict['NAME']}), rows: {args.rows:,}, "
        f"file: {len(content) / 1e6:.1f} MB, directory: {args.providers:,} referring providers"
    )

    from itertools import islice

    from liaison.interop.tabular import RowBuilder, read_table

    started = time.perf_counter()
    headers, rows = read_table(content, "csv")
    builder = RowBuilder(spec, headers)
    for start in range(0, 5000, 900):
        builder.build_chunk(list(islice(rows, min(900, 5000 - start))))
    print(f"preview (the first 5,000 rows checked):        {time.perf_counter() - started:6.2f} s")

    base = baseline(content)
    print(f"baseline (parse + insert, no validation):      {base:6.2f} s  {args.rows / base:8,.0f} rows/s")

    from liaison.interop.parallel import worker_count

    workers = worker_count(args.rows) if args.workers is None else args.workers
    server = _server_cpu(connection)
    started, cpu, children = time.perf_counter(), time.process_time(), _children_cpu()
    result = import_table(
        content, "csv", spec, actor="bench", total=args.rows, label="bench", workers=workers
    )
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    children = _children_cpu() - children
    server_cpu = "" if server is None else f", database server {_server_cpu(connection) - server:.1f} s"
    assert result.created == args.rows, result.summary()
    assert Referral.objects.filter(source_system="csv:bench").count() == args.rows
    to_match = Referral.objects.filter(referrer_to_match=True).count()
    print(
        f"import (validated, all or nothing):            {took:6.2f} s  {args.rows / took:8,.0f} rows/s  "
        f"ratio to baseline {took / base:.2f}  ({workers or 'no'} worker processes; CPU: main process "
        f"{cpu:.1f} s, workers {children:.1f} s{server_cpu}; referrer to match: {to_match:,})  "
        f"{'OK' if took <= 30 else 'OVER'} the 30 s goal"
    )

    started = time.perf_counter()
    again = import_table(
        content, "csv", spec, actor="bench", total=args.rows, label="bench again", workers=workers
    )
    took_again = time.perf_counter() - started
    assert again.created == 0 and again.existing == args.rows
    print(
        f"re-import of the same file (nothing written):  {took_again:6.2f} s  {args.rows / took_again:8,.0f} rows/s"
    )


if __name__ == "__main__":
    main()
