"""A real `liaison worker` process sends a campaign to a real SMTP server, is killed with SIGKILL
half way, is restarted (and the send resumed, as an operator or the periodic job does): every
address receives the message at most once, and all but at most one (the one in flight at the
kill, marked uncertain) are marked sent. The 10,000-message version is bench/campaign_send.py."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import pytest
from django.db import connection
from django_tasks_db.models import DBTaskResult

from liaison.campaigns import services
from liaison.directory import services as directory
from liaison.directory.models import Contact
from tests.campaigns.smtp import SmtpServer

N = 200
pytestmark = pytest.mark.django_db(transaction=True)


def _database_url(tmp_path) -> str:
    if connection.vendor == "sqlite":
        # The test database is in memory: the worker gets a copy on disk, queue included.
        path = tmp_path / "worker.sqlite3"
        with connection.cursor() as cursor:
            cursor.execute("VACUUM INTO %s", [str(path)])
        return f"sqlite:///{path}"
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _statuses(url: str, campaign_id: int) -> Counter:
    sql = "SELECT status, COUNT(*) FROM campaigns_recipient WHERE campaign_id = %s GROUP BY status"
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            return Counter(dict(db.execute(sql.replace("%s", "?"), [campaign_id]).fetchall()))
    with connection.cursor() as cursor:
        cursor.execute(sql, [campaign_id])
        return Counter(dict(cursor.fetchall()))


def _liaison(*args: str, env: dict, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "liaison", *args], env=env, stdout=log, stderr=log)


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_a_worker_killed_half_way_and_restarted_sends_nothing_twice(tmp_path, our_practice, site, settings):
    from liaison.outreach.services import ensure_reference_data

    ensure_reference_data()
    practices = []
    for i in range(4):
        p = directory.create_practice(actor="test", name=f"Office {i}")
        directory.create_location(
            p, actor="test", address_line1="1 A St", city="Columbus", state="OH", zip_code="43215"
        )
        practices.append(p)
    Contact.objects.bulk_create(
        Contact(practice=practices[i % 4], first_name=f"Person{i}", last_name="Staff", role="referral_coordinator",
                email=f"person{i}@office.example", email_consent=True)
        for i in range(N)
    )  # fmt: skip
    segment = services.save_segment(
        None, actor="test", name="All coordinators", audiences=["referral_coordinator"]
    )
    template = services.save_template(
        None,
        actor="test",
        name="T",
        subject="Hello {{ practice.name }}",
        body_text="Dear {{ recipient.first_name }}",
    )
    campaign = services.create_campaign(
        actor="test", name="Big", kind="newsletter", segment=segment, template=template
    )
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    run = services.start_send(campaign, actor="test")  # queued in the database for the worker
    assert DBTaskResult.objects.filter(status="READY").count() == 1
    url = _database_url(tmp_path)
    logs = open(tmp_path / "workers.log", "wb")  # noqa: SIM115
    with SmtpServer() as smtp:
        env = {
            **{
                k: v
                for k, v in os.environ.items()
                if k not in ("DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE")
            },
            "DATABASE_URL": url,
            "EMAIL_URL": f"smtp://127.0.0.1:{smtp.port}",
            "SECRET_KEY": settings.SECRET_KEY,
            "LIAISON_VAR_DIR": str(tmp_path / "var"),
            "LIAISON_CAMPAIGN_RATE": "400",
            "LIAISON_CAMPAIGN_LEASE_SECONDS": "1",
            "LIAISON_POSTAL_ADDRESS": "1 Main St, Columbus, OH 43215",
            "LOG_LEVEL": "WARNING",
        }
        worker = _liaison("worker", "--no-scheduler", "--interval", "0.1", env=env, log=logs)
        try:
            _wait(lambda: smtp.recorder.count() >= N // 2, 60, "half the messages")
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            at_kill = smtp.recorder.count()
            assert at_kill < N, "the worker finished before it could be killed"
            # Restart the worker, and resume the send (the periodic job would, within two minutes).
            worker = _liaison("worker", "--no-scheduler", "--interval", "0.1", env=env, log=logs)
            resume = subprocess.run(
                [sys.executable, "-m", "liaison", "campaigns", "resume", "--wait"],
                env=env, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert f"resumed campaign(s) {campaign.pk}" in resume.stdout, resume.stdout + resume.stderr
            _wait(
                lambda: sum(_statuses(url, campaign.pk)[s] for s in ("queued", "sending")) == 0,
                60,
                "the restarted worker to finish",
            )
        finally:
            worker.kill()
            worker.wait(10)
            logs.close()
        received = Counter(a for m in smtp.recorder.messages for a in m.rcpt_tos)
    statuses = _statuses(url, campaign.pk)
    assert max(received.values()) == 1, "a recipient got the message twice"
    assert statuses["sent"] + statuses["uncertain"] == N and statuses["uncertain"] <= 1, statuses
    assert statuses["sent"] <= len(received) <= N
    assert at_kill < len(received)  # the restarted worker did send the rest
    assert run.pk
