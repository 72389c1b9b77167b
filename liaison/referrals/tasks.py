"""Referral jobs: notify the referring office at each milestone; check service levels hourly."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from liaison.core.jobs import job, periodic
from liaison.referrals.models import Referral, ReferralEvent, SlaBreach, SlaKind, Status
from liaison.referrals.sla import Due, due_dates, holidays_between


@job
def notify_referring_office(event_id: int) -> str:
    from liaison.referrals.notifications import notify

    event = ReferralEvent.objects.select_related(
        "referral__referring_location__referral_preference__contact"
    ).get(pk=event_id)
    notification = notify(event)
    return notification.outcome if notification else "not notified"


@periodic(every=timedelta(hours=1), offset=timedelta(minutes=5))
@job
def check_service_levels() -> dict[str, int]:
    """Record each service level a referral missed (overdue, or done late) as an `SlaBreach`;
    a breach is resolved when the step is done. Safe to run any number of times."""
    now = timezone.now()
    opened = resolved = 0
    candidates = Referral.objects.exclude(status__in=(Status.DECLINED, Status.CANCELLED, Status.CLOSED))
    oldest = candidates.order_by("received_at").values_list("received_at", flat=True).first()
    holidays = holidays_between((oldest or now).date() - timedelta(days=7), now.date() + timedelta(days=120))
    breaches = {(b.referral_id, b.kind): b for b in SlaBreach.objects.filter(referral__in=candidates)}
    for referral in candidates.select_related("service_line").iterator(chunk_size=2000):
        for due in due_dates(referral, holidays):
            breach = breaches.get((referral.pk, due.kind))
            if breach is None and (due.overdue(now) or due.met is False):
                SlaBreach.objects.create(
                    referral=referral, kind=due.kind, due_at=due.due_at, resolved_at=due.done_at
                )
                if due.done_at is None:
                    _task_for_assignee(referral, due.kind, now)
                opened += 1
            elif breach is not None and breach.resolved_at is None:
                resolved += _resolve_if_done(referral, breach, due)
    return {"opened": opened, "resolved": resolved}


def _resolve_if_done(referral: Referral, breach: SlaBreach, due: Due) -> int:
    """An open breach whose step has been done is resolved, with its coordinator's task."""
    if due.done_at is None:
        return 0
    SlaBreach.objects.filter(pk=breach.pk).update(resolved_at=due.done_at)
    _close_task(referral, due.kind)
    return 1


def resolve_done_steps(referral: Referral) -> int:
    """Resolve the referral's open breaches whose step is now done, as soon as it is done (the
    queue's "overdue" view and count would otherwise wait for the hourly check)."""
    open_breaches = {b.kind: b for b in SlaBreach.objects.filter(referral=referral, resolved_at__isnull=True)}
    if not open_breaches:
        return 0
    referral = Referral.objects.select_related("service_line").get(pk=referral.pk)
    start = timezone.localtime(referral.received_at).date() - timedelta(days=7)
    holidays = holidays_between(start, timezone.localdate() + timedelta(days=120))
    return sum(
        _resolve_if_done(referral, open_breaches[due.kind], due)
        for due in due_dates(referral, holidays)
        if due.kind in open_breaches
    )


def _task_for_assignee(referral: Referral, kind: str, now: datetime) -> None:
    """An overdue step becomes a task on the coordinator's list (no patient data in it)."""
    from liaison.outreach.models import TaskKind
    from liaison.outreach.services import ASSIGNEE_ROLES, create_task

    if referral.assigned_to is None or not referral.assigned_to.has_role(*ASSIGNEE_ROLES):
        return  # unassigned: the manager view and the queue's "overdue" list show it
    create_task(
        actor="service-level check",
        title=f"Referral #{referral.pk}: {SlaKind(kind).label.lower()} overdue",
        due_on=timezone.localtime(now).date(),
        assignee=referral.assigned_to,
        kind=TaskKind.SERVICE_LEVEL,
        details=f"/referrals/{referral.pk}/",
        referral=referral,
    )


def _title(referral: Referral, kind: str) -> str:
    return f"Referral #{referral.pk}: {SlaKind(kind).label.lower()} overdue"


def _close_task(referral: Referral, kind: str) -> None:
    from liaison.outreach.models import Task, TaskKind, TaskStatus
    from liaison.outreach.services import complete_task

    open_tasks = Task.objects.filter(
        referral=referral, kind=TaskKind.SERVICE_LEVEL, status=TaskStatus.OPEN, title=_title(referral, kind)
    )
    for task in open_tasks:
        complete_task(task, actor="service-level check")
