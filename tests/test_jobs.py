"""Background jobs: the database queue and its worker, periodic jobs once per slot, progress."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django_tasks_db.models import DBTaskResult

from liaison.core.jobs import JobFailed, job, periodic_jobs, running_job, schedule_due, start_job
from liaison.core.models import JobRun, PeriodicSlot
from liaison.core.tasks import prune_finished_jobs


@job
def count_to(job_run_id: int, n: int) -> None:
    with running_job(job_run_id) as progress:
        progress.start(n, "counting")
        for _ in range(n):
            progress.advance()
        progress.finish("counted", {"counted": n})


@job
def refuse(job_run_id: int) -> None:
    with running_job(job_run_id):
        raise JobFailed("The file has 3 bad rows: nothing was imported.")


@job
def crash(job_run_id: int) -> None:
    with running_job(job_run_id):
        raise ValueError("patient Jane Doe DOB 1950-01-01")


def test_periodic_jobs_are_registered():
    assert "liaison.core.tasks.prune_finished_jobs" in [p.name for p in periodic_jobs()]


def test_each_periodic_slot_is_enqueued_once_however_many_schedulers(db, settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert "liaison.core.tasks.prune_finished_jobs" in schedule_due(now)
    assert schedule_due(now + timedelta(hours=1)) == []  # same daily slot: another scheduler finds it taken
    assert DBTaskResult.objects.filter(task_path="liaison.core.tasks.prune_finished_jobs").count() == 1
    slot = PeriodicSlot.objects.get(name="liaison.core.tasks.prune_finished_jobs")
    assert slot.slot == datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    assert "liaison.core.tasks.prune_finished_jobs" in schedule_due(now + timedelta(days=1))


@pytest.mark.django_db(transaction=True)  # the worker checks connections between jobs, as in production
def test_the_worker_runs_queued_jobs_from_the_database():
    old = JobRun.objects.create(kind="x", label="old", status="succeeded")
    JobRun.objects.filter(pk=old.pk).update(finished_at=datetime(2020, 1, 1, tzinfo=UTC))
    result = prune_finished_jobs.using(backend="database").enqueue(keep_days=30)
    call_command("worker", "--batch", "--no-scheduler", "--backend", "database")
    result.refresh()
    assert result.status == "SUCCESSFUL"
    assert result.return_value["job_runs"] == 1
    assert not JobRun.objects.filter(pk=old.pk).exists()


def test_a_started_job_reports_progress_and_its_result(make_user, django_capture_on_commit_callbacks):
    user = make_user("manager")
    with django_capture_on_commit_callbacks(execute=True):
        run = start_job(kind="test", label="Counting to 7", actor=user, task=count_to, n=7)
    run.refresh_from_db()
    assert (run.status, run.progress_done, run.progress_total, run.percent) == ("succeeded", 7, 7, 100)
    assert run.result == {"counted": 7} and run.task_result_id


def test_an_expected_failure_shows_its_message_and_a_crash_hides_its_text(
    make_user, django_capture_on_commit_callbacks
):
    user = make_user("manager")
    # The worker records the task as failed; the JobRun says why, in words fit for the page.
    with django_capture_on_commit_callbacks(execute=True):
        refused = start_job(kind="test", label="refuse", actor=user, task=refuse)
        crashed = start_job(kind="test", label="crash", actor=user, task=crash)
    refused.refresh_from_db()
    crashed.refresh_from_db()
    assert refused.status == "failed" and refused.message == "The file has 3 bad rows: nothing was imported."
    assert crashed.status == "failed" and "Jane" not in crashed.message and "ValueError" in crashed.message


def test_the_progress_page_polls_until_done_and_is_private(client_for, make_user):
    c = client_for("liaison")
    run = JobRun.objects.create(
        kind="test",
        label="Importing",
        created_by=c.user,
        status="running",
        progress_done=3,
        progress_total=12,
    )
    html = c.get(reverse("core:job", args=[run.pk])).content.decode()
    assert "every 1s" in html and "3 of 12 (25%)" in html
    JobRun.objects.filter(pk=run.pk).update(status="succeeded", progress_done=12)
    partial = c.get(reverse("core:job", args=[run.pk]), headers={"HX-Request": "true"}).content.decode()
    assert "every 1s" not in partial and "<html" not in partial
    other = make_user("coordinator", email="other@example.org")
    theirs = JobRun.objects.create(kind="test", label="Theirs", created_by=other)
    assert c.get(reverse("core:job", args=[theirs.pk])).status_code == 404
