"""Reads of campaigns, shared by the pages and the API, with the access rules in one place.

Who sees what (docs/campaigns.md, "Who sees what"): every active user reads campaigns, segments,
templates and results (none of it is patient data); admins, managers and liaisons build and send;
a liaison changes the drafts, segments and templates they made, a manager or admin any of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.http import Http404
from django.utils import timezone

from liaison.accounts.models import User
from liaison.campaigns.models import (
    Campaign,
    Quiz,
    QuizAnswer,
    QuizDraw,
    Recipient,
    RecipientStatus,
    Rsvp,
    RsvpAnswer,
    Segment,
    Suppression,
    SuppressionReason,
    Template,
)

REACHED = (RecipientStatus.SENT, RecipientStatus.PRINTED, RecipientStatus.UNCERTAIN, RecipientStatus.BOUNCED)


def _manager(user: User) -> bool:
    return user.is_active and user.has_role("admin", "manager")


def can_edit(user: User, obj: Campaign | Segment | Template) -> bool:
    return user.can_send_campaigns and (_manager(user) or obj.created_by_id == user.pk)


def campaigns_for(user: User) -> QuerySet[Campaign]:
    return Campaign.objects.all() if user.can_read_campaigns else Campaign.objects.none()


def get_campaign_for_user(user: User, pk: int) -> Campaign:
    campaign = (
        campaigns_for(user)
        .select_related(
            "segment", "template", "featured_physician__primary_taxonomy", "created_by", "job_run"
        )
        .filter(pk=pk)
        .first()
    )
    if campaign is None:
        raise Http404("No such campaign.")
    return campaign


def campaign_list(user: User) -> QuerySet[Campaign]:
    """Campaigns with their counts, in one query."""
    unsubscribed = (
        Suppression.objects.filter(campaign=OuterRef("pk"), reason=SuppressionReason.UNSUBSCRIBED)
        .order_by()
        .values("campaign")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return (
        campaigns_for(user)
        .select_related("segment", "created_by")
        .annotate(
            n_recipients=Count("recipients"),
            n_sent=Count("recipients", filter=Q(recipients__status=RecipientStatus.SENT)),
            n_printed=Count("recipients", filter=Q(recipients__status=RecipientStatus.PRINTED)),
            n_bounced=Count("recipients", filter=Q(recipients__status=RecipientStatus.BOUNCED)),
            n_failed=Count("recipients", filter=Q(recipients__status=RecipientStatus.FAILED)),
            n_unsubscribed=Subquery(unsubscribed),
        )
        .order_by("-created_at", "-pk")
    )


def segments_for(user: User) -> QuerySet[Segment]:
    return Segment.objects.all() if user.can_read_campaigns else Segment.objects.none()


def templates_for(user: User) -> QuerySet[Template]:
    return Template.objects.all() if user.can_read_campaigns else Template.objects.none()


def recipients_of(campaign: Campaign, status: str = "") -> QuerySet[Recipient]:
    qs = Recipient.objects.filter(campaign=campaign).select_related("practice").order_by("pk")
    if status:
        qs = qs.filter(status=status)
    latest_rsvp = Rsvp.objects.filter(recipient=OuterRef("pk")).order_by("-at", "-pk").values("answer")[:1]
    return qs.annotate(
        rsvp=Subquery(latest_rsvp),
        suppressed=Subquery(Suppression.objects.filter(email=OuterRef("email")).values("reason")[:1]),
        answered=Exists(QuizAnswer.objects.filter(recipient=OuterRef("pk"))),
    )


@dataclass
class ReferralEffect:
    before: int
    after: int
    days_after: int
    offices: int
    since: datetime


def referral_effect(campaign: Campaign, days: int = 90, now: datetime | None = None) -> ReferralEffect | None:
    """Referrals received from the recipients' offices (practices) in the `days` after the campaign
    started, against as many days before (while the campaign is younger than `days`, the days it
    has had so far: windows of the same length). Counts only: no referral is read, so no patient
    data."""
    from liaison.referrals.models import Referral

    if campaign.started_at is None:
        return None
    now = now or timezone.now()
    start = campaign.started_at
    end = min(now, start + timedelta(days=days))
    practices = (
        Recipient.objects.filter(campaign=campaign, status__in=REACHED, practice__isnull=False)
        .values("practice_id")
        .distinct()
    )
    from_offices = Q(referring_location__practice_id__in=practices) | Q(
        referring_location__isnull=True, referring_provider__locations__practice_id__in=practices
    )
    base = Referral.objects.filter(from_offices)

    def count(lo: datetime, hi: datetime) -> int:
        return base.filter(received_at__gte=lo, received_at__lt=hi).aggregate(n=Count("pk", distinct=True))[
            "n"
        ]

    span = max(end - start, timedelta(days=1))
    return ReferralEffect(
        before=count(start - span, start),
        after=count(start, end),
        days_after=max(0, (end - start).days),
        offices=practices.count(),
        since=start,
    )


def results(campaign: Campaign) -> dict[str, Any]:
    """Delivered, bounced, unsubscribed, quiz answers, RSVPs, attendance, referrals before/after."""
    by_status = dict(
        Recipient.objects.filter(campaign=campaign).order_by().values_list("status").annotate(n=Count("pk"))
    )
    out: dict[str, Any] = {
        "by_status": [
            (s.value, s.label, by_status.get(s.value, 0)) for s in RecipientStatus if by_status.get(s.value)
        ],
        "recipients": sum(by_status.values()),
        "delivered": by_status.get(RecipientStatus.SENT, 0),
        "printed": by_status.get(RecipientStatus.PRINTED, 0),
        "bounced": by_status.get(RecipientStatus.BOUNCED, 0),
        "failed": by_status.get(RecipientStatus.FAILED, 0),
        "uncertain": by_status.get(RecipientStatus.UNCERTAIN, 0),
        "unsubscribed": Suppression.objects.filter(
            campaign=campaign, reason=SuppressionReason.UNSUBSCRIBED
        ).count(),
        "audience": campaign.audience,
    }
    if campaign.tracking:
        tracked = Recipient.objects.filter(campaign=campaign).aggregate(
            opened=Count("pk", filter=Q(opened_at__isnull=False)),
            clicked=Count("pk", filter=Q(clicked_at__isnull=False)),
        )
        out.update(tracked)
    quiz = Quiz.objects.filter(campaign=campaign).first()
    if quiz is not None:
        answers = quiz.answers.aggregate(n=Count("pk"), right=Count("pk", filter=Q(all_correct=True)))
        draw = QuizDraw.objects.filter(quiz=quiz).select_related("winner__recipient").first()
        out["quiz"] = {"quiz": quiz, "answers": answers["n"], "all_correct": answers["right"], "draw": draw}
    if hasattr(campaign, "event"):
        latest = Rsvp.objects.filter(recipient=OuterRef("recipient")).order_by("-at", "-pk").values("pk")[:1]
        rsvps = dict(
            Rsvp.objects.filter(recipient__campaign=campaign, pk=Subquery(latest))
            .order_by()
            .values_list("answer")
            .annotate(n=Count("pk"))
        )
        out["event"] = {
            "event": campaign.event,
            "yes": rsvps.get(RsvpAnswer.YES, 0),
            "no": rsvps.get(RsvpAnswer.NO, 0),
            "attended": campaign.event.attendances.count(),
        }
    out["referrals"] = referral_effect(campaign)
    return out


def suppressions(q: str = "") -> QuerySet[Suppression]:
    qs = Suppression.objects.select_related("campaign").order_by("-at", "-pk")
    if q:
        qs = qs.filter(email__icontains=q.strip().lower())
    return qs


def recipient_for_token(token: str) -> Recipient | None:
    from liaison.campaigns.mail import recipient_pk

    pk = recipient_pk(token)
    if pk is None:
        return None
    return (
        Recipient.objects.select_related("campaign", "contact", "provider", "practice", "location", "account")
        .filter(pk=pk)
        .first()
    )
