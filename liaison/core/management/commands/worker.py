from __future__ import annotations

import logging
import threading
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from liaison.core.jobs import periodic_jobs, schedule_due

logger = logging.getLogger("liaison.worker")


def _scheduler_loop(every: float, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            close_old_connections()
            for name in schedule_due():
                logger.info("enqueued periodic job %s", name)
        except Exception:
            logger.exception("periodic scheduler failed; retrying")
        finally:
            close_old_connections()
        stop.wait(every)


class Command(BaseCommand):
    help = (
        "Run background jobs (imports, reminders, SLA checks, notifications, digests): the database "
        "task queue plus the scheduler that enqueues periodic jobs. Run one or more per install."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--interval", type=float, default=1.0, help="seconds between queue polls (default 1)"
        )
        parser.add_argument("--batch", action="store_true", help="run what is queued, then exit")
        parser.add_argument("--no-scheduler", action="store_true", help="do not enqueue periodic jobs")
        parser.add_argument(
            "--schedule-every", type=float, default=30.0, help="seconds between scheduler checks"
        )
        parser.add_argument("--max-tasks", type=int, default=None, help="exit after this many tasks")
        parser.add_argument("--backend", default="default", help="task backend alias (settings.TASKS)")

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        if not options["no_scheduler"]:
            if options["batch"]:
                schedule_due()
            else:
                names = ", ".join(p.name.rsplit(".", 1)[-1] for p in periodic_jobs()) or "none"
                self.stdout.write(f"scheduler: periodic jobs {names}")
                threading.Thread(
                    target=_scheduler_loop,
                    args=(options["schedule_every"], stop),
                    daemon=True,
                    name="scheduler",
                ).start()
        self.stdout.write(
            "worker: waiting for jobs" if not options["batch"] else "worker: running queued jobs"
        )
        kwargs: dict[str, Any] = {
            "queue_name": "*",
            "interval": options["interval"],
            "batch": options["batch"],
            "reload": False,
            "startup_delay": False,
        }
        if options["max_tasks"]:
            kwargs["max_tasks"] = options["max_tasks"]
        try:
            # --backend as an argument: db_worker validates its default even when another is given.
            call_command("db_worker", f"--backend={options['backend']}", **kwargs)
        finally:
            stop.set()
