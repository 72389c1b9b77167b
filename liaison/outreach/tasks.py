"""Outreach jobs: the daily cadence run."""

from __future__ import annotations

from datetime import timedelta

from liaison.core.jobs import job, periodic


@periodic(every=timedelta(days=1), offset=timedelta(hours=9))  # 09:00 UTC: before the US working day
@job
def create_cadence_tasks() -> dict[str, int]:
    """Create a task for each touch that is due under the accounts' tier rules (once per touch)."""
    from liaison.outreach.services import create_due_tasks

    return create_due_tasks(actor="cadence job")
