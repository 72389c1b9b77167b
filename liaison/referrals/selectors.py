"""Reads of referrals. Everything that shows patient data starts from `Referral.objects.for_user`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.paginator import Paginator
from django.db.models import (
    Count,
    Exists,
    F,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.http import Http404
from django.utils import timezone

from liaison.core.pagination import IdsFirstPaginator
from liaison.core.phi import phi_index
from liaison.referrals.models import (
    OPEN_STATUSES,
    Notification,
    NotifyBy,
    Referral,
    SlaBreach,
    SlaKind,
    Status,
    urgency_rank,
)

QUEUE_VIEWS = {
    "open": "All open",
    "mine": "Assigned to me",
    "unassigned": "Unassigned",
    "overdue": "Overdue",
    "not_contacted": "Not yet contacted",
    "awaiting_note": "Seen, note not sent",
    "to_match": "Referrer to match",
    "letters": "Letters to send",
    "closed": "Closed or ended",
}
WHOLE_QUEUE = ("", "open")  # the views of every open referral, read through `queue_rank`'s index
SORTS = {
    "urgency": "Urgency, then oldest",
    "oldest": "Oldest first",
    "newest": "Newest first",
    "appointment": "Appointment",
}


@dataclass
class QueueFilters:
    view: str = "open"
    site: int | None = None
    service_line: int | None = None
    urgency: str = ""
    patient: str = ""  # last name, matched exactly through its blind index
    sort: str = "urgency"
    step: str = ""  # with the overdue view: only this step (an SlaKind)
    referrer: int | None = None  # one referring provider's referrals


def _open_breach(step: str = "") -> Exists:
    breaches = SlaBreach.objects.filter(referral=OuterRef("pk"), resolved_at__isnull=True)
    return Exists(breaches.filter(kind=step) if step else breaches)


def _letter_to_send() -> Q:
    """Referrals with a letter still to fax or mail, read from the waiting letters' own index
    (an EXISTS per referral would read the whole referral table)."""
    waiting = Notification.objects.filter(channel=NotifyBy.LETTER, outcome=Notification.Outcome.READY)
    return Q(pk__in=waiting.values("referral_id"))


def work_queue(user: Any, f: QueueFilters) -> QuerySet[Referral]:
    qs = Referral.objects.for_user(user)
    if f.view == "closed":
        qs = qs.exclude(status__in=OPEN_STATUSES)
    elif f.view == "letters":  # a declined or cancelled referral's letter too: the office must hear
        qs = qs.filter(_letter_to_send())
    elif f.view in WHOLE_QUEUE:
        qs = qs.filter(queue_rank__isnull=False)  # every open referral: the queue's own index
    else:
        qs = qs.filter(status__in=OPEN_STATUSES)  # narrower views read their own indexes
    if f.view == "mine":
        qs = qs.filter(assigned_to=user)
    elif f.view == "unassigned":
        qs = qs.filter(assigned_to__isnull=True)
    elif f.view == "overdue":
        qs = qs.filter(_open_breach(f.step))
    elif f.view == "not_contacted":
        qs = qs.filter(first_contact_at__isnull=True, status__in=(Status.RECEIVED, Status.ACCEPTED))
    elif f.view == "awaiting_note":
        qs = qs.filter(status=Status.SEEN)
    elif f.view == "to_match":
        qs = qs.filter(referrer_to_match=True)
    if f.referrer:
        qs = qs.filter(referring_provider_id=f.referrer)
    if f.site:
        qs = qs.filter(site_id=f.site)
    if f.service_line:
        qs = qs.filter(service_line_id=f.service_line)
    if f.urgency:
        qs = qs.filter(urgency=f.urgency)
    if f.patient.strip():
        qs = qs.filter(patient_name_key=phi_index(f.patient))
    qs = qs.annotate(overdue=_open_breach())
    # Open referrals carry their urgency rank (`queue_rank`, indexed); ended ones are ranked here.
    rank = urgency_rank().asc() if f.view in ("closed", "letters") else "queue_rank"
    order = {
        "oldest": ["received_at", "pk"],
        "newest": ["-received_at", "-pk"],
        "appointment": [F("appointment_at").asc(nulls_last=True), "received_at", "pk"],
    }.get(f.sort, [rank, "received_at", "pk"])
    return qs.select_related(
        "referring_provider",
        "referring_location",
        "site",
        "referred_to_physician",
        "service_line",
        "assigned_to",
    ).order_by(*order)


def in_index_order(f: QueueFilters) -> bool:
    """Whether the database reads this view of the queue in an index's order (the default queue
    of open referrals); the others are paged by sorting their keys first (`ids_first`)."""
    return f.view in WHOLE_QUEUE and f.sort == "urgency"


def queue_paginator(user: Any, f: QueueFilters, per_page: int = 50) -> Paginator:
    """The work queue's pages (see in_index_order)."""
    return (Paginator if in_index_order(f) else IdsFirstPaginator)(work_queue(user, f), per_page)


def _count(qs: QuerySet[Referral]) -> Subquery:
    return Subquery(qs.order_by().annotate(n=Func(F("pk"), function="COUNT")).values("n")[:1])


def queue_counts(user: Any) -> dict[str, int]:
    """The numbers in the navigation: my open referrals, overdue ones, referrers to match.

    One query of three counts, each read through its own index (assignee, referrer-to-match flag,
    the few open breaches), so that it stays cheap on every page with a million referrals."""
    if not getattr(user, "can_see_phi", False):
        return {}
    from django.contrib.auth import get_user_model

    open_ = Referral.objects.for_user(user).filter(status__in=OPEN_STATUSES)
    breached = SlaBreach.objects.filter(resolved_at__isnull=True).values("referral_id")
    return (
        get_user_model()
        .objects.filter(pk=user.pk)
        .values(
            mine=_count(open_.filter(assigned_to=user)),
            overdue=_count(open_.filter(pk__in=breached)),
            to_match=_count(open_.filter(referrer_to_match=True)),  # the partial index "referral_to_match"
        )
        .get()
    )


def get_referral_for_user(user: Any, pk: int) -> Referral:
    """The referral with its timeline, or 404 when the user may not see it (or it does not exist)."""
    try:
        return (
            Referral.objects.for_user(user)
            .select_related(
                "referring_provider__primary_taxonomy",
                "referring_location__practice",
                "site",
                "referred_to_physician",
                "service_line",
                "assigned_to",
            )
            .get(pk=pk)
        )
    except Referral.DoesNotExist:
        raise Http404("No such referral") from None


def timeline(referral: Referral) -> list[Any]:
    return list(referral.events.select_related("actor").order_by("at", "pk"))


def overdue_summary() -> list[dict[str, Any]]:
    """Open breaches by kind and assignee, for the manager view (counts only, no patient data)."""
    rows = list(
        SlaBreach.objects.filter(resolved_at__isnull=True)
        .values("kind", "referral__assigned_to__full_name", "referral__assigned_to__email")
        .annotate(n=Count("pk"))
        .order_by("-n")
    )
    return [{**row, "label": SlaKind(row["kind"]).label} for row in rows]


def service_level_performance(since_days: int = 90) -> list[dict[str, Any]]:
    """Per service level: referrals due in the period, missed, met rate (no patient data)."""
    since = timezone.now() - timezone.timedelta(days=since_days)
    rows = (
        SlaBreach.objects.filter(due_at__gte=since)
        .values("kind")
        .annotate(missed=Count("pk"), still_open=Count("pk", filter=Q(resolved_at__isnull=True)))
        .order_by("kind")
    )
    return [{**row, "label": SlaKind(row["kind"]).label} for row in rows]
