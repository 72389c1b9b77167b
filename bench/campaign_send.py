"""Benchmark: a campaign of 10,000 emails through a real SMTP server, with the worker killed half way.

    .venv/bin/python bench/campaign_send.py                     # SQLite, then PostgreSQL if reachable
    .venv/bin/python bench/campaign_send.py --messages 2000 --database sqlite      # quicker

For each database it migrates a scratch database, generates 10,000 office contacts (with email
consent) in 500 practices, a segment and a template, and queues the campaign in the database
queue. An SMTP server (aiosmtpd, in this process, on loopback) receives the mail. A real worker
process (`liaison worker`) sends; the benchmark polls the JobRun's progress (what the progress page
shows), kills the worker with SIGKILL when half the messages have arrived, starts a new worker,
resumes the send (`liaison campaigns resume --wait`, what the periodic job does within two
minutes), waits for the end, then counts the messages received per recipient.

Baseline, measured in the same run: the same messages built the same way and handed to the same
SMTP server over one Django SMTP connection, with no database work at all (what a naive loop over
`send_messages` costs). The ratio shows the price of the claim-before-send bookkeeping.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=10_000)
    p.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--rate", type=float, default=0, help="LIAISON_CAMPAIGN_RATE for the worker (0: no limit)")
    p.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/liaison_bench_campaigns"
        ),
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args()


def generate(n: int) -> int:
    """Our practice and site, n consenting referral coordinators in n/20 practices, a campaign."""
    from liaison.campaigns import services
    from liaison.directory.models import Contact, Location, Practice

    ours = Practice.objects.create(name="Bench Orthopaedics", is_ours=True)
    Location.objects.create(
        practice=ours, address_line1="1 Main St", city="Columbus", state="OH", zip_code="43215"
    )
    practices = Practice.objects.bulk_create(Practice(name=f"Office {i:04d}") for i in range(max(1, n // 20)))
    Location.objects.bulk_create(
        Location(practice=p, address_line1=f"{i} Oak Ave", city="Columbus", state="OH", zip_code="43215",
                 county="Franklin County")
        for i, p in enumerate(practices)
    )  # fmt: skip
    Contact.objects.bulk_create(
        (
            Contact(practice=practices[i % len(practices)], first_name=f"Pat{i}", last_name="Coordinator",
                    role="referral_coordinator", email=f"pat{i}@office{i % len(practices)}.example",
                    email_consent=True)
            for i in range(n)
        ),
        batch_size=1000,
    )  # fmt: skip
    segment = services.save_segment(
        None, actor="bench", name="All coordinators", audiences=["referral_coordinator"]
    )
    template = services.save_template(
        None, actor="bench", name="Bench news", subject="News for {{ practice.name }}",
        body_text="Dear {{ recipient.first_name }},\n\nA short update for {{ practice.name }}.\n\n{{ organisation.name }}",
    )  # fmt: skip
    campaign = services.create_campaign(
        actor="bench", name="Bench", kind="newsletter", segment=segment, template=template
    )
    return campaign.pk


def baseline(campaign_id: int, port: int) -> float:
    """Messages per second handed to the SMTP server with no database work."""
    from django.core.mail import get_connection

    from liaison.campaigns.mail import Content, build_message
    from liaison.campaigns.models import Campaign, Recipient

    campaign = Campaign.objects.get(pk=campaign_id)
    content = Content.of(campaign)
    rows = list(Recipient.objects.filter(campaign=campaign).values("pk", "email", "name", "merge"))
    conn = get_connection("django.core.mail.backends.smtp.EmailBackend", host="127.0.0.1", port=port,
                          username="", password="", use_tls=False, use_ssl=False)  # fmt: skip
    conn.open()
    t = time.perf_counter()
    for r in rows:
        conn.send_messages(
            [build_message(content, pk=r["pk"], email=r["email"], name=r["name"], person_values=r["merge"])]
        )
    elapsed = time.perf_counter() - t
    conn.close()
    return len(rows) / elapsed


def child(args: argparse.Namespace) -> None:
    import logging

    import django

    django.setup()
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command
    from django.core.management import call_command

    from liaison.campaigns import services
    from liaison.campaigns.models import Campaign, Recipient
    from liaison.core.models import JobRun
    from tests.campaigns.smtp import SmtpServer

    label = "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite"
    n = args.messages
    t0 = time.perf_counter()
    call_command("migrate", verbosity=0)
    campaign_id = generate(n)
    run = services.start_send(Campaign.objects.get(pk=campaign_id), actor="bench")
    print(f"[{label}] {n} recipients queued in {time.perf_counter() - t0:.1f} s (migrate + generate + queue)")

    with SmtpServer() as base_server:
        base_rate = baseline(campaign_id, base_server.port)
    assert base_server.recorder.count() == n

    with SmtpServer() as smtp:
        env = {**os.environ, "EMAIL_URL": f"smtp://127.0.0.1:{smtp.port}", "LOG_LEVEL": "WARNING",
               "LIAISON_CAMPAIGN_RATE": str(args.rate)}  # fmt: skip
        logs = open(Path(os.environ["LIAISON_VAR_DIR"]) / "workers.log", "ab")  # noqa: SIM115

        def worker() -> subprocess.Popen:
            return subprocess.Popen(
                [sys.executable, "-m", "liaison", "worker", "--no-scheduler", "--interval", "0.2"],
                env=env, stdout=logs, stderr=logs, cwd=ROOT,
            )  # fmt: skip

        def progress() -> tuple[int, int | None, str]:
            return JobRun.objects.values_list("progress_done", "progress_total", "status").get(pk=run.pk)

        proc = worker()
        started = time.perf_counter()
        samples: list[tuple[float, int]] = []
        last_print = 0.0
        while smtp.recorder.count() < n // 2:
            done, total, _ = progress()
            now = time.perf_counter() - started
            samples.append((now, done))
            if now - last_print >= 2:
                print(
                    f"[{label}]   progress page: {done} of {total} ({100 * done // (total or 1)}%) at {now:5.1f} s"
                )
                last_print = now
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_at, received_at_kill = time.perf_counter() - started, smtp.recorder.count()
        print(f"[{label}] worker SIGKILLed at {killed_at:.1f} s with {received_at_kill} messages received")
        restart = time.perf_counter()
        proc = worker()
        resume = subprocess.run(
            [sys.executable, "-m", "liaison", "campaigns", "resume", "--wait"], env=env, capture_output=True,
            text=True, cwd=ROOT,
        )  # fmt: skip
        print(f"[{label}] restarted; `liaison campaigns resume --wait`: {resume.stdout.strip()}")
        while Campaign.objects.filter(pk=campaign_id, status="sending").exists():
            done, total, _ = progress()
            now = time.perf_counter() - started
            samples.append((now, done))
            if now - last_print >= 2:
                print(
                    f"[{label}]   progress page: {done} of {total} ({100 * done // (total or 1)}%) at {now:5.1f} s"
                )
                last_print = now
            time.sleep(0.1)
        finished = time.perf_counter() - started
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        logs.close()
        received = Counter(a for m in smtp.recorder.messages for a in m.rcpt_tos)

    statuses = Counter(Recipient.objects.filter(campaign_id=campaign_id).values_list("status", flat=True))
    done, total, status = progress()
    twice = sum(1 for c in received.values() if c > 1)
    rate = len(received) / finished  # wall time from the first worker's start, kill and restart included
    print(f"[{label}] finished at {finished:.1f} s: job {status}, progress {done} of {total}")
    print(f"[{label}] recipients: {dict(statuses)}")
    print(f"[{label}] messages received {sum(received.values())} by {len(received)} addresses; "
          f"received twice: {twice}; never received: {n - len(received)}")  # fmt: skip
    print(f"[{label}] throughput {rate:.0f} msg/s overall (kill + restart + resume included, "
          f"{time.perf_counter() - restart:.1f} s since the restart); baseline without the database "
          f"{base_rate:.0f} msg/s; ratio {rate / base_rate:.2f}")  # fmt: skip
    print(f"[{label}] progress samples read from the JobRun: {len(samples)} (the page polls the same row)")
    if (
        twice
        or statuses.get("sent", 0) + statuses.get("uncertain", 0) != n
        or statuses.get("uncertain", 0) > 1
    ):
        raise SystemExit(f"[{label}] FAILED: a message was sent twice or lost")


def main() -> None:
    args = parse()
    if args.child:
        child(args)
        return
    runs = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    for db in runs:
        scratch = tempfile.mkdtemp(prefix="liaison-bench-campaign-")
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "liaison.settings",
            "LIAISON_VAR_DIR": scratch,
            "LIAISON_CAMPAIGN_LEASE_SECONDS": "3",
            "LIAISON_POSTAL_ADDRESS": "1 Main St, Columbus, OH 43215",
            "LIAISON_CAMPAIGN_FROM": "Bench Orthopaedics <relations@bench.example>",
            "TASKS_BACKEND": "django_tasks_db.DatabaseBackend",
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
            "--messages",
            str(args.messages),
            "--rate",
            str(args.rate),
        ]
        subprocess.run(cmd, env=env, check=True, cwd=ROOT)


if __name__ == "__main__":
    main()
