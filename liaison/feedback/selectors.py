"""Reads of feedback. Issues and survey answers hold no patient data: every outreach reader sees
them (admin, manager, liaison, coordinator, analyst); physicians do not use these pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from liaison.accounts.models import User
from liaison.directory.models import Practice
from liaison.feedback.models import (
    OPEN_STATUSES,
    Issue,
    IssueEvent,
    IssueStatus,
    Severity,
    Survey,
    SurveyInvitation,
    SurveyResponse,
)

SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.HIGH: 1, Severity.MEDIUM: 2, Severity.LOW: 3}


def issues_for(user: User) -> QuerySet[Issue]:
    return Issue.objects.all() if user.can_read_outreach else Issue.objects.none()


def get_issue_for_user(user: User, pk: int) -> Issue:
    issue = (
        issues_for(user)
        .select_related("practice", "location", "reporter", "assignee", "opened_by")
        .prefetch_related(
            Prefetch(
                "events",
                queryset=IssueEvent.objects.select_related("actor", "informed_contact").order_by("at", "pk"),
            )
        )
        .filter(pk=pk)
        .first()
    )
    if issue is None:
        raise Http404("No such issue.")
    return issue


def can_change_issue(user: User, issue: Issue | None = None) -> bool:
    return user.can_log_outreach


@dataclass
class IssueFilters:
    status: str = "open"  # "open" (every open status), "all", or one status
    category: str = ""
    severity: str = ""
    assignee: str = ""  # "me", "none" or a user id
    practice: Practice | None = None
    overdue: bool = False


def search_issues(user: User, f: IssueFilters) -> QuerySet[Issue]:
    qs = issues_for(user).select_related("practice", "reporter", "assignee", "location")
    if f.status == "open":
        qs = qs.filter(status__in=OPEN_STATUSES)
    elif f.status in IssueStatus.values:
        qs = qs.filter(status=f.status)
    if f.category:
        qs = qs.filter(category=f.category)
    if f.severity:
        qs = qs.filter(severity=f.severity)
    if f.assignee == "me":
        qs = qs.filter(assignee=user)
    elif f.assignee == "none":
        qs = qs.filter(assignee__isnull=True)
    elif f.assignee.isdigit():
        qs = qs.filter(assignee_id=int(f.assignee))
    if f.practice is not None:
        qs = qs.filter(practice=f.practice)
    if f.overdue:
        qs = qs.filter(
            status__in=(IssueStatus.OPEN, IssueStatus.IN_PROGRESS), due_on__lt=timezone.localdate()
        )
    return qs.order_by("due_on", "-pk")


def issues_of_practice(practice: Practice) -> QuerySet[Issue]:
    return (
        Issue.objects.filter(practice=practice)
        .select_related("assignee", "reporter")
        .order_by("-created_at", "-pk")
    )


def open_issues_of_practice(practice: Practice) -> QuerySet[Issue]:
    return issues_of_practice(practice).filter(status__in=OPEN_STATUSES)


def overdue_issues(*, practices: Any = None, today: date | None = None) -> QuerySet[Issue]:
    today = today or timezone.localdate()
    qs = Issue.objects.filter(status__in=(IssueStatus.OPEN, IssueStatus.IN_PROGRESS), due_on__lt=today)
    if practices is not None:
        qs = qs.filter(practice__in=practices)
    return qs.select_related("practice", "assignee").order_by("due_on")


def issue_counts() -> dict[str, int]:
    today = timezone.localdate()
    return Issue.objects.aggregate(
        open=Count("pk", filter=Q(status__in=OPEN_STATUSES)),
        overdue=Count(
            "pk", filter=Q(status__in=(IssueStatus.OPEN, IssueStatus.IN_PROGRESS), due_on__lt=today)
        ),
        awaiting_office=Count("pk", filter=Q(status=IssueStatus.RESOLVED)),
    )


# Surveys ----------------------------------------------------------------------------------------


def responses_of_practice(practice: Practice) -> QuerySet[SurveyResponse]:
    return (
        SurveyResponse.objects.filter(practice=practice)
        .select_related("invitation__contact")
        .order_by("-submitted_at")
    )


def nps(scores: list[int]) -> int | None:
    """Net promoter score: % promoters (9-10) minus % detractors (0-6), or None without answers."""
    if not scores:
        return None
    promoters = sum(1 for s in scores if s >= 9)
    detractors = sum(1 for s in scores if s <= 6)
    return round(100 * (promoters - detractors) / len(scores))


def _quarter(at: datetime) -> str:
    d = timezone.localdate(at)
    return f"{d.year} Q{(d.month - 1) // 3 + 1}"


@dataclass
class QuarterScore:
    quarter: str
    responses: int
    nps: int | None
    averages: dict[str, float]


def scores_by_quarter(responses: list[SurveyResponse]) -> list[QuarterScore]:
    """NPS and the average of each question per calendar quarter, oldest first."""
    groups: dict[str, list[SurveyResponse]] = {}
    for r in responses:
        groups.setdefault(_quarter(r.submitted_at), []).append(r)
    out = []
    for quarter in sorted(groups):
        rows = groups[quarter]
        sums: dict[str, list[int]] = {}
        for r in rows:
            for k, v in r.answers.items():
                sums.setdefault(k, []).append(v)
        out.append(
            QuarterScore(
                quarter,
                len(rows),
                nps([r.nps for r in rows]),
                {k: round(sum(v) / len(v), 1) for k, v in sums.items()},
            )
        )
    return out


@dataclass
class PracticeScores:
    practice: Practice
    responses: int
    nps: int | None
    last_nps: int | None
    last_at: datetime | None
    quarters: list[QuarterScore]


def scores_per_practice(since: datetime | None = None) -> list[PracticeScores]:
    """Responses per practice over time (two queries)."""
    qs = SurveyResponse.objects.all()
    if since is not None:
        qs = qs.filter(submitted_at__gte=since)
    by_practice: dict[int, list[SurveyResponse]] = {}
    for r in qs.order_by("submitted_at"):
        by_practice.setdefault(r.practice_id, []).append(r)
    practices = Practice.objects.in_bulk(list(by_practice))
    out = [
        PracticeScores(
            practices[pid],
            len(rows),
            nps([r.nps for r in rows]),
            rows[-1].nps,
            rows[-1].submitted_at,
            scores_by_quarter(rows),
        )
        for pid, rows in by_practice.items()
    ]
    return sorted(out, key=lambda p: (p.nps if p.nps is not None else 999, p.practice.name))


def survey_totals(survey: Survey | None = None) -> dict[str, Any]:
    inv = SurveyInvitation.objects.all() if survey is None else survey.invitations.all()
    counts = inv.aggregate(
        sent=Count("pk", filter=Q(sent_at__isnull=False)),
        answered=Count("pk", filter=Q(responded_at__isnull=False)),
    )
    scores = list(SurveyResponse.objects.values_list("nps", flat=True))
    return {**counts, "nps": nps(scores), "responses": len(scores)}
