"""Referral jobs: notify the referring office at each milestone; check service levels hourly."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from liaison.core.jobs import job, periodic
from liaison.referrals.models import Referral, ReferralEvent, SlaBreach, Status
from liaison.referrals.sla import due_dates, holidays_between


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
                opened += 1
            elif breach is not None and breach.resolved_at is None and due.done_at is not None:
                SlaBreach.objects.filter(pk=breach.pk).update(resolved_at=due.done_at)
                resolved += 1
    return {"opened": opened, "resolved": resolved}
