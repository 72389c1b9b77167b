"""The one background-job API of Liaison.

- `job` declares a task (django-tasks, the backport of Django 6's task framework); the
  database backend queues it on SQLite or PostgreSQL, and `liaison worker` runs it.
- `enqueue_on_commit` is how services enqueue: the job only exists if the write committed.
- `periodic` registers a job the worker's scheduler enqueues every interval, exactly once per
  slot however many workers run.
- `start_job` + `Progress` give long jobs a `JobRun` row whose progress a page polls; the same
  `Progress` interface drives a progress bar on the command line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django_tasks import task as job
from django_tasks.base import Task

from liaison.core.models import JobRun, PeriodicSlot

__all__ = [
    "ConsoleProgress",
    "JobProgress",
    "Progress",
    "enqueue_on_commit",
    "job",
    "periodic",
    "periodic_jobs",
    "schedule_due",
    "start_job",
]

logger = logging.getLogger(__name__)
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def enqueue_on_commit(task: Task, *args: Any, **kwargs: Any) -> None:
    transaction.on_commit(lambda: task.enqueue(*args, **kwargs))


@dataclass(frozen=True)
class Periodic:
    name: str
    task: Task
    every: timedelta
    offset: timedelta

    def slot(self, now: datetime) -> datetime:
        """The start of the interval `now` falls in (intervals aligned to a fixed epoch + offset)."""
        elapsed = now - _EPOCH - self.offset
        return _EPOCH + self.offset + self.every * (elapsed // self.every)


_PERIODIC: dict[str, Periodic] = {}


def periodic(every: timedelta, *, offset: timedelta = timedelta(0)) -> Callable[[Task], Task]:
    """Register a task to run once per `every` (e.g. daily at 06:00 UTC: every=1 day, offset=6 h)."""

    def register(task: Task) -> Task:
        _PERIODIC[task.module_path] = Periodic(task.module_path, task, every, offset)
        return task

    return register


def periodic_jobs() -> list[Periodic]:
    return sorted(_PERIODIC.values(), key=lambda p: p.name)


def schedule_due(now: datetime | None = None) -> list[str]:
    """Enqueue every periodic job whose current slot has not been enqueued yet."""
    now = now or timezone.now()
    enqueued = []
    for p in periodic_jobs():
        try:
            with transaction.atomic():
                PeriodicSlot.objects.create(name=p.name, slot=p.slot(now))
                p.task.enqueue()
        except IntegrityError:
            continue  # another scheduler took this slot
        enqueued.append(p.name)
    return enqueued


class Progress:
    """Progress of a long piece of work. Subclasses show it somewhere; this one shows nothing."""

    def start(self, total: int | None = None, message: str = "") -> None:
        self.total, self.done, self.message = total, 0, message

    def advance(self, n: int = 1, message: str | None = None) -> None:
        self.done = getattr(self, "done", 0) + n

    def finish(self, message: str = "", result: dict | None = None) -> None:
        pass


class ConsoleProgress(Progress):
    """A rich progress bar on stderr for commands (silent when stderr is not a terminal)."""

    def __init__(self, description: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import (
            Progress as RichProgress,
        )

        self._bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self._description = description
        self._task_id = None

    def start(self, total: int | None = None, message: str = "") -> None:
        super().start(total, message)
        self._bar.start()
        self._task_id = self._bar.add_task(message or self._description, total=total)

    def advance(self, n: int = 1, message: str | None = None) -> None:
        super().advance(n, message)
        self._bar.update(self._task_id, advance=n, description=message or None)

    def finish(self, message: str = "", result: dict | None = None) -> None:
        if self._task_id is not None:
            self._bar.update(
                self._task_id, completed=self.done, total=self.done if self.total is None else None
            )
        self._bar.stop()


class JobProgress(Progress):
    """Writes progress to a JobRun row, at most every half second, for the page that polls it."""

    def __init__(self, run: JobRun) -> None:
        self.run = run
        self._last_write = 0.0

    def _save(self, force: bool = False, **fields: Any) -> None:
        now = time.monotonic()
        if force or now - self._last_write > 0.5:
            JobRun.objects.filter(pk=self.run.pk).update(progress_done=self.done, **fields)
            self._last_write = now

    def start(self, total: int | None = None, message: str = "") -> None:
        super().start(total, message)
        self._save(force=True, progress_total=total, message=message[:500])

    def advance(self, n: int = 1, message: str | None = None) -> None:
        super().advance(n, message)
        extra = {"message": message[:500]} if message else {}
        self._save(**extra)

    def finish(self, message: str = "", result: dict | None = None) -> None:
        fields: dict[str, Any] = {"message": message[:500]}
        if result is not None:
            fields["result"] = result
        self._save(force=True, **fields)


def start_job(*, kind: str, label: str, actor: Any, task: Task, **kwargs: Any) -> JobRun:
    """Create the JobRun a page can watch and enqueue `task(job_run_id=..., **kwargs)` on commit."""
    run = JobRun.objects.create(kind=kind, label=label[:200], created_by=actor)

    def enqueue() -> None:
        result = task.enqueue(job_run_id=run.pk, **kwargs)
        JobRun.objects.filter(pk=run.pk).update(task_result_id=str(result.id))

    transaction.on_commit(enqueue)
    return run


class JobFailed(Exception):
    """An expected failure whose message is safe to show (never patient data)."""


@contextmanager
def running_job(job_run_id: int) -> Iterator[JobProgress]:
    """Inside a task: mark the JobRun running, hand out its Progress, record success or failure."""
    run = JobRun.objects.get(pk=job_run_id)
    JobRun.objects.filter(pk=run.pk).update(status=JobRun.Status.RUNNING, started_at=timezone.now())
    progress = JobProgress(run)
    try:
        yield progress
    except JobFailed as exc:
        JobRun.objects.filter(pk=run.pk).update(
            status=JobRun.Status.FAILED, message=str(exc)[:500], finished_at=timezone.now()
        )
        raise
    except Exception as exc:
        # The exception text may quote input (possibly patient data): keep only its type on the page.
        logger.exception("job %s failed", run.pk)
        JobRun.objects.filter(pk=run.pk).update(
            status=JobRun.Status.FAILED,
            message=f"Failed with an internal error ({type(exc).__name__}); see the worker log.",
            finished_at=timezone.now(),
        )
        raise
    else:
        JobRun.objects.filter(pk=run.pk).update(
            status=JobRun.Status.SUCCEEDED, progress_done=progress.done, finished_at=timezone.now()
        )
