"""Housekeeping jobs of the core."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from liaison.core.jobs import job, periodic
from liaison.core.models import JobRun, PeriodicSlot


@periodic(every=timedelta(days=1), offset=timedelta(hours=7))  # 07:00 UTC, early morning in the US
@job
def prune_finished_jobs(keep_days: int = 90) -> dict[str, int]:
    """Forget finished jobs, task results and scheduler slots older than `keep_days`."""
    cutoff = timezone.now() - timedelta(days=keep_days)
    runs, _ = JobRun.objects.filter(finished_at__lt=cutoff).delete()
    results, _ = DBTaskResult.objects.finished().filter(finished_at__lt=cutoff).delete()
    slots, _ = PeriodicSlot.objects.filter(slot__lt=cutoff).delete()
    return {"job_runs": runs, "task_results": results, "slots": slots}
