"""Reads of outreach, shared by the pages and the API, with the access rules in one place.

Who sees what (docs/outreach.md, "Roles"):
- admin, manager: everything, and change anything.
- liaison: reads every account, activity and task (covering a colleague's territory is normal);
  changes the accounts they own and the activities they logged; logs activities anywhere.
- coordinator: like a liaison for reading; logs activities (calls) and issues; owns no accounts.
- analyst: reads everything, changes nothing.
- physician (one of ours): only their own tasks and the activities they attended.
None of it is patient data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Exists, Max, Min, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum
from django.http import Http404
from django.utils import timezone

from liaison.accounts.models import Role, User
from liaison.directory.models import Contact, Location, Practice, Provider
from liaison.outreach import cadence, ledger
from liaison.outreach.models import (
    Account,
    AccountStageChange,
    Activity,
    ActivityKind,
    ActivityStatus,
    Attendee,
    CollateralItem,
    LedgerEntry,
    MaterialLeft,
    Stage,
    Task,
    TaskStatus,
    Territory,
    Tier,
    Trend,
)

# Access -------------------------------------------------------------------------------------------


def accounts_for(user: User) -> QuerySet[Account]:
    return Account.objects.all() if user.can_read_outreach else Account.objects.none()


def get_account_for_user(user: User, pk: int) -> Account:
    account = accounts_for(user).select_related("practice", "location", "owner", "tier").filter(pk=pk).first()
    if account is None:
        raise Http404("No such account.")
    return account


def can_edit_account(user: User, account: Account) -> bool:
    return user.can_manage_outreach or (user.has_role(Role.LIAISON) and account.owner_id == user.pk)


def activities_for(user: User) -> QuerySet[Activity]:
    if user.can_read_outreach:
        return Activity.objects.all()
    if user.has_role(Role.PHYSICIAN) and user.provider_id:
        return Activity.objects.filter(
            Exists(Attendee.objects.filter(activity=OuterRef("pk"), provider_id=user.provider_id))
        )
    return Activity.objects.none()


def get_activity_for_user(user: User, pk: int) -> Activity:
    activity = (
        activities_for(user)
        .select_related("account__practice", "account__location", "location__practice", "liaison")
        .filter(pk=pk)
        .first()
    )
    if activity is None:
        raise Http404("No such activity.")
    return activity


def can_edit_activity(user: User, activity: Activity) -> bool:
    return user.can_manage_outreach or (user.can_log_outreach and activity.liaison_id == user.pk)


def tasks_for(user: User) -> QuerySet[Task]:
    if user.can_read_outreach:
        return Task.objects.all()
    if user.is_active:
        return Task.objects.filter(assignee=user)
    return Task.objects.none()


def get_task_for_user(user: User, pk: int) -> Task:
    task = tasks_for(user).select_related("account__practice", "assignee", "activity").filter(pk=pk).first()
    if task is None:
        raise Http404("No such task.")
    return task


def can_change_task(user: User, task: Task) -> bool:
    if user.is_read_only or not user.is_active:
        return False
    return (
        user.can_manage_outreach
        or task.assignee_id == user.pk
        or (user.can_log_outreach and task.created_by_id == user.pk)
        or (user.can_log_outreach and task.account_id is not None and task.account.owner_id == user.pk)
    )


# Accounts --------------------------------------------------------------------------------------------


def with_last_touch(qs: QuerySet[Account]) -> QuerySet[Account]:
    done = Activity.objects.filter(account=OuterRef("pk"), status=ActivityStatus.COMPLETED)
    planned = Activity.objects.filter(
        account=OuterRef("pk"), status=ActivityStatus.PLANNED, occurred_at__gte=timezone.now()
    )
    return qs.annotate(
        last_touch=Subquery(done.values("account").annotate(m=Max("occurred_at")).values("m")[:1]),
        next_planned=Subquery(planned.values("account").annotate(m=Min("occurred_at")).values("m")[:1]),
    )


@dataclass
class AccountFilters:
    q: str = ""
    stage: str = ""
    tier: Tier | None = None
    owner: str = ""  # a user id, "me" or "none"
    trend: str = ""


def search_accounts(user: User, f: AccountFilters) -> QuerySet[Account]:
    qs = accounts_for(user).select_related("practice", "location", "owner", "tier")
    for token in f.q.split():
        qs = qs.filter(
            Q(practice__name__icontains=token) | Q(practice__locations__city__iexact=token)
        ).distinct()
    if f.stage:
        qs = qs.filter(stage=f.stage)
    if f.tier is not None:
        qs = qs.filter(tier=f.tier)
    if f.owner == "me":
        qs = qs.filter(owner=user)
    elif f.owner == "none":
        qs = qs.filter(owner__isnull=True)
    elif f.owner.isdigit():
        qs = qs.filter(owner_id=int(f.owner))
    if f.trend:
        qs = qs.filter(trend=f.trend)
    return with_last_touch(qs).order_by("practice__name", "pk")


def pipeline_counts(user: User, owner: str = "") -> list[tuple[str, str, int]]:
    qs = accounts_for(user)
    if owner == "me":
        qs = qs.filter(owner=user)
    counts = dict(qs.values_list("stage").annotate(n=Count("pk")))
    return [(s.value, s.label, counts.get(s.value, 0)) for s in Stage]


def account_people(account: Account) -> tuple[list[Provider], list[Contact]]:
    """The office's referring providers and staff (the attendee choices), in two queries."""
    locations = [account.location] if account.location_id else None
    providers = (
        Provider.objects.referring().filter(status=Provider.Status.ACTIVE).select_related("primary_taxonomy")
    )
    if locations:
        providers = providers.filter(locations__in=locations)
    else:
        providers = providers.filter(locations__practice=account.practice_id)
    contacts = Contact.objects.filter(practice=account.practice_id, is_active=True)
    return (
        list(providers.distinct().order_by("last_name", "first_name")),
        list(contacts.order_by("last_name", "first_name")),
    )


def activities_with_details(qs: QuerySet[Activity]) -> QuerySet[Activity]:
    return qs.select_related(
        "account__practice", "account__location", "liaison", "location"
    ).prefetch_related(
        Prefetch(
            "attendees",
            queryset=Attendee.objects.select_related("provider__primary_taxonomy", "contact"),
        ),
        Prefetch("materials", queryset=MaterialLeft.objects.select_related("item")),
        Prefetch("follow_ups", queryset=Task.objects.select_related("assignee")),
        "ledger_entries",
    )


@dataclass
class TimelineItem:
    at: datetime
    kind: str  # "activity", "stage", "issue", "survey"
    obj: Any


def account_timeline(account: Account, limit: int = 100) -> list[TimelineItem]:
    """Activities, stage changes, issues and survey answers of an account, newest first."""
    from liaison.feedback import selectors as feedback

    activities = activities_with_details(account.activities.all()).order_by("-occurred_at", "-pk")[:limit]
    items = [TimelineItem(a.occurred_at, "activity", a) for a in activities]
    items += [
        TimelineItem(s.at, "stage", s)
        for s in account.stage_changes.select_related("actor").order_by("-at", "-pk")[:limit]
    ]
    for issue in feedback.issues_of_practice(account.practice)[:limit]:
        items.append(TimelineItem(issue.created_at, "issue", issue))
    for response in feedback.responses_of_practice(account.practice)[:limit]:
        items.append(TimelineItem(response.submitted_at, "survey", response))
    items.sort(key=lambda i: i.at, reverse=True)
    return items[:limit]


@dataclass
class PhysicianContact:
    provider: Provider
    last_met: datetime
    times: int


def last_met_by_our_physicians(account: Account) -> list[PhysicianContact]:
    """For an account: when it last met each of our physicians (completed activities)."""
    rows = (
        Attendee.objects.filter(
            is_ours=True, activity__account=account, activity__status=ActivityStatus.COMPLETED
        )
        .values("provider_id")
        .annotate(last=Max("activity__occurred_at"), n=Count("activity", distinct=True))
    )
    rows = list(rows)
    providers = {p.pk: p for p in Provider.objects.filter(pk__in=[r["provider_id"] for r in rows])}
    out = [PhysicianContact(providers[r["provider_id"]], r["last"], r["n"]) for r in rows]
    return sorted(out, key=lambda c: c.last_met, reverse=True)


def account_ledger(account: Account, year: int) -> list[ledger.Standing]:
    """This year's standing of the referring physicians of the account's office(s) and of anyone
    who attended its activities."""
    attended = Attendee.objects.filter(
        activity__account=account, provider__isnull=False, is_ours=False
    ).values("provider_id")
    q = Q(pk__in=attended)
    q |= Q(locations=account.location) if account.location_id else Q(locations__practice=account.practice_id)
    providers = [
        p
        for p in Provider.objects.referring()
        .filter(q)
        .select_related("primary_taxonomy")
        .distinct()
        .order_by("last_name", "first_name")
        if ledger.counts_against_limit(p)
    ]
    return ledger.standings(providers, year)


def account_location(account: Account) -> Location | None:
    if account.location_id:
        return account.location
    return account.practice.locations.filter(is_active=True).order_by("pk").first()


# Activities ------------------------------------------------------------------------------------------------


@dataclass
class ActivityFilters:
    kind: str = ""
    status: str = ""
    mine: bool = False
    account: Account | None = None
    since: date | None = None
    until: date | None = None


def search_activities(user: User, f: ActivityFilters) -> QuerySet[Activity]:
    qs = activities_for(user)
    if f.kind:
        qs = qs.filter(kind=f.kind)
    if f.status:
        qs = qs.filter(status=f.status)
    if f.mine:
        qs = qs.filter(liaison=user)
    if f.account is not None:
        qs = qs.filter(account=f.account)
    tz = timezone.get_current_timezone()
    if f.since:
        qs = qs.filter(occurred_at__gte=datetime(f.since.year, f.since.month, f.since.day, tzinfo=tz))
    if f.until:
        end = f.until + timedelta(days=1)
        qs = qs.filter(occurred_at__lt=datetime(end.year, end.month, end.day, tzinfo=tz))
    return activities_with_details(qs).order_by("-occurred_at", "-pk")


# Tasks -----------------------------------------------------------------------------------------------------


def search_tasks(user: User, *, assignee: str = "me", status: str = TaskStatus.OPEN) -> QuerySet[Task]:
    qs = tasks_for(user).select_related("account__practice", "account__location", "assignee", "activity")
    if assignee == "me" or not user.can_read_outreach:
        qs = qs.filter(assignee=user)
    elif assignee.isdigit():
        qs = qs.filter(assignee_id=int(assignee))
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("due_on", "pk") if status == TaskStatus.OPEN else qs.order_by("-due_on", "-pk")


def assignable_users() -> QuerySet[User]:
    return User.objects.filter(
        is_active=True, role__in=[Role.LIAISON, Role.COORDINATOR, Role.PHYSICIAN, Role.MANAGER]
    ).order_by("role", "full_name")


def liaisons() -> QuerySet[User]:
    return User.objects.filter(is_active=True, role__in=[Role.LIAISON, Role.MANAGER]).order_by("full_name")


# Needs attention -----------------------------------------------------------------------------------------


@dataclass
class Attention:
    due: list[cadence.Due] = field(default_factory=list)
    at_risk: list[Account] = field(default_factory=list)
    overdue_tasks: list[Task] = field(default_factory=list)
    overdue_issues: list[Any] = field(default_factory=list)
    unconfirmed: list[Activity] = field(default_factory=list)
    no_owner: int = 0

    @property
    def count(self) -> int:
        return (
            len(self.due)
            + len(self.at_risk)
            + len(self.overdue_tasks)
            + len(self.overdue_issues)
            + len(self.unconfirmed)
        )


def needs_attention(user: User, *, owner: str = "me", today: date | None = None) -> Attention:
    """What needs doing now: touches due under the cadence, accounts at risk or cooling, overdue
    tasks, overdue issues of their offices."""
    from liaison.feedback import selectors as feedback

    today = today or timezone.localdate()
    accounts = accounts_for(user)
    if owner == "me":
        accounts = accounts.filter(owner=user)
    elif owner.isdigit():
        accounts = accounts.filter(owner_id=int(owner))
    due = [
        d
        for d in cadence.due_touches(cadence.accounts_for_cadence(accounts), today)
        if d.due_on <= today + timedelta(days=7)
    ]
    at_risk = list(
        accounts.filter(Q(stage=Stage.AT_RISK) | Q(trend=Trend.COOLING))
        .exclude(stage=Stage.LAPSED)
        .select_related("practice", "location", "owner", "tier")
        .order_by("practice__name")
    )
    tasks = tasks_for(user).filter(status=TaskStatus.OPEN, due_on__lt=today)
    tasks = tasks.filter(assignee=user) if owner == "me" else tasks.filter(account__in=accounts)
    issues = feedback.overdue_issues(practices=accounts.values("practice"), today=today)
    # Planned visits whose day has passed: done (say so, it counts) or cancelled?
    unconfirmed = activities_for(user).filter(
        status=ActivityStatus.PLANNED, occurred_at__lt=timezone.now() - timedelta(hours=12)
    )
    unconfirmed = (
        unconfirmed.filter(liaison=user) if owner == "me" else unconfirmed.filter(account__in=accounts)
    )
    return Attention(
        unconfirmed=list(
            unconfirmed.select_related("account__practice", "account__location").order_by("occurred_at")[:100]
        ),
        due=due,
        at_risk=at_risk,
        overdue_tasks=list(
            tasks.select_related("account__practice", "account__location", "assignee").order_by("due_on")
        ),
        overdue_issues=list(issues),
        no_owner=accounts_for(user).filter(owner__isnull=True).count() if user.can_manage_outreach else 0,
    )


# Physicians -------------------------------------------------------------------------------------------------


@dataclass
class PhysicianSummary:
    provider: Provider
    lunches: int
    activities: int
    offices: int
    last: datetime | None


def physicians_participation(year: int) -> list[PhysicianSummary]:
    tz = timezone.get_current_timezone()
    start, end = datetime(year, 1, 1, tzinfo=tz), datetime(year + 1, 1, 1, tzinfo=tz)
    rows = {
        r["provider_id"]: r
        for r in Attendee.objects.filter(
            is_ours=True,
            activity__status=ActivityStatus.COMPLETED,
            activity__occurred_at__gte=start,
            activity__occurred_at__lt=end,
        )
        .values("provider_id")
        .annotate(
            n=Count("activity", distinct=True),
            lunches=Count("activity", filter=Q(activity__kind=ActivityKind.LUNCH), distinct=True),
            offices=Count("activity__account", distinct=True),
            last=Max("activity__occurred_at"),
        )
    }
    out = []
    for p in Provider.objects.ours().select_related("primary_taxonomy").order_by("last_name", "first_name"):
        r = rows.get(p.pk, {})
        out.append(
            PhysicianSummary(p, r.get("lunches", 0), r.get("n", 0), r.get("offices", 0), r.get("last"))
        )
    return out


@dataclass
class OfficeMet:
    account: Account
    last_met: datetime
    times: int
    lunches: int


def offices_met(provider: Provider) -> list[OfficeMet]:
    """For one of our physicians: each account met, when last and how often."""
    rows = list(
        Attendee.objects.filter(
            provider=provider, activity__status=ActivityStatus.COMPLETED, activity__account__isnull=False
        )
        .values("activity__account")
        .annotate(
            last=Max("activity__occurred_at"),
            n=Count("activity", distinct=True),
            lunches=Count("activity", filter=Q(activity__kind=ActivityKind.LUNCH), distinct=True),
        )
    )
    accounts = {
        a.pk: a
        for a in Account.objects.select_related("practice", "location").filter(
            pk__in=[r["activity__account"] for r in rows]
        )
    }
    out = [OfficeMet(accounts[r["activity__account"]], r["last"], r["n"], r["lunches"]) for r in rows]
    return sorted(out, key=lambda o: o.last_met, reverse=True)


def lunches_by_year(provider: Provider) -> list[tuple[int, int]]:
    rows = Attendee.objects.filter(
        provider=provider, activity__status=ActivityStatus.COMPLETED, activity__kind=ActivityKind.LUNCH
    ).values_list("activity__occurred_at", flat=True)
    counts: dict[int, int] = {}
    for at in rows:
        y = timezone.localdate(at).year
        counts[y] = counts.get(y, 0) + 1
    return sorted(counts.items(), reverse=True)


# Collateral -----------------------------------------------------------------------------------------------


def collateral_with_usage() -> QuerySet[CollateralItem]:
    return CollateralItem.objects.annotate(
        handed_out=Sum("left_at__quantity"), places=Count("left_at__activity__account", distinct=True)
    ).order_by("-is_active", "title")


def where_left(item: CollateralItem) -> QuerySet[MaterialLeft]:
    return item.left_at.select_related(
        "activity__account__practice", "activity__account__location", "activity__liaison"
    ).order_by("-activity__occurred_at")


# Map -----------------------------------------------------------------------------------------------------


def map_markers(user: User) -> list[dict]:
    """Accounts with a position (their office, else the practice's first active office)."""
    first_location = Location.objects.filter(
        practice=OuterRef("practice"), is_active=True, latitude__isnull=False
    ).order_by("pk")
    qs = (
        accounts_for(user)
        .select_related("practice", "location", "owner", "tier")
        .annotate(
            lat=Subquery(first_location.values("latitude")[:1]),
            lon=Subquery(first_location.values("longitude")[:1]),
        )
    )
    out = []
    for a in qs:
        lat, lon = (a.location.latitude, a.location.longitude) if a.location_id else (a.lat, a.lon)
        if lat is None or lon is None:
            continue
        out.append(
            {
                "id": a.pk,
                "name": str(a),
                "lat": lat,
                "lon": lon,
                "tier": a.tier.code if a.tier_id else "",
                "stage": a.stage,
                "stage_label": a.get_stage_display(),
                "trend": a.trend or "unknown",
                "owner": str(a.owner) if a.owner_id else "",
                "url": f"/outreach/accounts/{a.pk}/",
            }
        )
    return out


def site_markers() -> list[dict]:
    return [
        {"name": str(s), "lat": s.latitude, "lon": s.longitude}
        for s in Location.objects.sites().select_related("practice").exclude(latitude__isnull=True)
    ]


def practices_not_in_pipeline() -> QuerySet[Practice]:
    return Practice.objects.referring().filter(is_active=True).exclude(outreach_accounts__isnull=False)


def territories() -> QuerySet[Territory]:
    return (
        Territory.objects.select_related("liaison")
        .annotate(accounts=Count("liaison__owned_accounts"))
        .order_by("name")
    )


def stage_history(account: Account) -> QuerySet[AccountStageChange]:
    return account.stage_changes.select_related("actor").order_by("-at", "-pk")


def ledger_entries_of(provider: Provider, year: int) -> QuerySet[LedgerEntry]:
    return (
        LedgerEntry.objects.filter(provider=provider, year=year)
        .select_related("activity__account__practice", "activity__account__location", "activity__liaison")
        .order_by("on", "pk")
    )


def years_with_entries() -> list[int]:
    years = set(LedgerEntry.objects.values_list("year", flat=True).distinct())
    years.add(timezone.localdate().year)
    return sorted(years, reverse=True)


def money(value: Decimal | None) -> str:
    return f"${(value or Decimal('0')):,.2f}"


def upcoming_for(user: User, days: int = 14) -> QuerySet[Activity]:
    now = timezone.now()
    qs = activities_for(user).filter(
        status=ActivityStatus.PLANNED,
        occurred_at__gte=now - timedelta(hours=12),
        occurred_at__lt=now + timedelta(days=days),
    )
    if not user.has_role(Role.PHYSICIAN):  # a physician's are already those they attend
        qs = qs.filter(liaison=user)
    return qs.select_related("account__practice", "account__location").order_by("occurred_at")


def participation_years() -> Iterable[int]:
    this = timezone.localdate().year
    return range(this, this - 4, -1)
