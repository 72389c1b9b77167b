"""Writes of analytics: starting a refresh (the job itself is `refresh.refresh`)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction

from liaison.audit.services import record
from liaison.core.jobs import start_job
from liaison.core.models import JobRun


def start_refresh(*, actor: Any) -> JobRun:
    """Queue a refresh of the dashboards' figures; the job page shows its progress."""
    from liaison.analytics.tasks import refresh_job

    if not getattr(actor, "can_refresh_analytics", False):
        raise PermissionDenied("Only managers and admins refresh the analytics.")
    with transaction.atomic():
        run = start_job(kind="analytics.refresh", label="Refresh analytics", actor=actor, task=refresh_job)
        record(actor, "start_refresh", run, object_repr="Refresh analytics")
    return run
