"""Outreach pages. Thin: parse, fetch through the selectors' access helpers, call one service."""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import time, timedelta
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from liaison.accounts.models import Role
from liaison.core.forms import apply_errors
from liaison.core.pagination import paginate
from liaison.core.views import next_url
from liaison.directory.models import Practice, Provider
from liaison.outreach import calendar as ical
from liaison.outreach import ledger, routing, selectors, services
from liaison.outreach.forms import (
    AccountForm,
    AccountPickForm,
    AccountSearchForm,
    ActivityForm,
    AddToPipelineForm,
    CadenceRuleFormSet,
    CollateralForm,
    LimitForm,
    RouteForm,
    StageForm,
    TaskForm,
    TerritoryForm,
)
from liaison.outreach.models import (
    Account,
    ActivityKind,
    ActivityStatus,
    CalendarFeed,
    CollateralItem,
    CompensationLimit,
    TaskStatus,
    Territory,
    Tier,
)


def capability_required(capability: str) -> Callable:
    """The view is for users with this capability (see accounts.models.User); others get 403."""

    def decorate(view: Callable) -> Callable:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not getattr(request.user, capability):
                raise PermissionDenied("Your role does not give access to this page.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


reader_required = capability_required("can_read_outreach")
writer_required = capability_required("can_log_outreach")
manager_required = capability_required("can_manage_outreach")
admin_required = capability_required("is_admin")


def _list_page(request: HttpRequest, template: str, results: str, ctx: dict) -> HttpResponse:
    if request.htmx and not request.htmx.boosted:
        return render(request, results, ctx)
    return render(request, template, ctx)


def _year(request: HttpRequest) -> int:
    value = request.GET.get("year", "")
    return int(value) if value.isdigit() and 2000 <= int(value) <= 2100 else timezone.localdate().year


# Today ------------------------------------------------------------------------------------------


TODAY_TASKS = 15  # tasks listed on Today (the most urgent first); the task list has them all


@login_required
def today(request: HttpRequest) -> HttpResponse:
    """The liaison's start page (a physician's: their tasks and lunches)."""
    user = request.user
    tasks = list(selectors.search_tasks(user, assignee="me")[: TODAY_TASKS + 1])
    upcoming = list(selectors.upcoming_for(user))
    today = timezone.localdate()
    ctx: dict[str, Any] = {
        "nav": "outreach",
        "tasks": tasks[:TODAY_TASKS],
        "more_tasks": len(tasks) > TODAY_TASKS,
        # What is booked for today comes first; the days after, at the end.
        "plan_today": [a for a in upcoming if timezone.localtime(a.occurred_at).date() == today],
        "upcoming": [a for a in upcoming if timezone.localtime(a.occurred_at).date() != today],
        "today": today,
    }
    if user.has_role(Role.PHYSICIAN):
        recent = (
            selectors.activities_for(user)
            .filter(status=ActivityStatus.COMPLETED)
            .order_by("-occurred_at")[:20]
        )
        ctx["recent"] = selectors.activities_with_details(recent)
        ctx["upcoming"] = upcoming  # a physician's lunches, today's included
        return render(request, "outreach/physician_home.html", ctx)
    if not user.can_read_outreach:
        raise PermissionDenied("Your role does not give access to outreach.")
    ctx["attention"] = selectors.needs_attention(user, owner="me" if user.has_role(Role.LIAISON) else "")
    ctx["pipeline"] = selectors.pipeline_counts(user, owner="me" if user.has_role(Role.LIAISON) else "")
    return render(request, "outreach/today.html", ctx)


@reader_required
def attention(request: HttpRequest) -> HttpResponse:
    owner = request.GET.get("owner", "me" if request.user.has_role(Role.LIAISON) else "")
    data = selectors.needs_attention(request.user, owner=owner)
    return render(
        request,
        "outreach/attention.html",
        {
            "nav": "outreach",
            "attention": data,
            "owner": owner,
            "liaisons": selectors.liaisons(),
            "today": timezone.localdate(),
        },
    )


# Accounts -------------------------------------------------------------------------------------------


@reader_required
def accounts(request: HttpRequest) -> HttpResponse:
    form = AccountSearchForm(request.GET or None)
    qs = selectors.search_accounts(
        request.user, form.filters() if form.is_bound else selectors.AccountFilters()
    )
    ctx = {
        "form": form,
        "page": paginate(request, qs, 50),
        "nav": "accounts",
        "hx_target": "#results",
        "pipeline": selectors.pipeline_counts(request.user),
    }
    return _list_page(request, "outreach/accounts.html", "outreach/_account_results.html", ctx)


@reader_required
def account_detail(request: HttpRequest, pk: int) -> HttpResponse:
    from liaison.feedback import selectors as feedback

    account = selectors.get_account_for_user(request.user, pk)
    year = timezone.localdate().year
    providers, contacts = selectors.account_people(account)
    ctx = {
        "nav": "accounts",
        "account": account,
        "can_edit": selectors.can_edit_account(request.user, account),
        "timeline": selectors.account_timeline(account),
        "physicians_met": selectors.last_met_by_our_physicians(account),
        "ledger": selectors.account_ledger(account, year),
        "year": year,
        "open_issues": list(feedback.open_issues_of_practice(account.practice)),
        "tasks": list(
            account.tasks.filter(status=TaskStatus.OPEN).select_related("assignee").order_by("due_on")
        ),
        "providers": providers,
        "contacts": contacts,
        "location": selectors.account_location(account),
        "stage_form": StageForm(initial={"stage": account.stage}),
        "today": timezone.localdate(),
    }
    return render(request, "outreach/account_detail.html", ctx)


@writer_required
def account_add(request: HttpRequest, practice_pk: int) -> HttpResponse:
    practice = get_object_or_404(Practice.objects.referring(), pk=practice_pk)
    form = AddToPipelineForm(request.POST or None, practice=practice)
    if request.method == "POST" and form.is_valid():
        try:
            account = services.add_to_pipeline(
                practice,
                actor=request.user,
                tier=form.cleaned_data["tier"],
                location=form.cleaned_data["location"],
                note=form.cleaned_data["note"],
                owner=request.user if request.user.has_role(Role.LIAISON) else None,
            )
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, f"{account} is in the pipeline.")
            return redirect("outreach:account", account.pk)
    existing = list(Account.objects.filter(practice=practice).select_related("location"))
    return render(
        request,
        "outreach/account_add.html",
        {"nav": "accounts", "form": form, "practice": practice, "existing": existing},
    )


@reader_required
def account_edit(request: HttpRequest, pk: int) -> HttpResponse:
    account = selectors.get_account_for_user(request.user, pk)
    if not selectors.can_edit_account(request.user, account):
        raise PermissionDenied("Only the account's owner or a manager changes it.")
    form = AccountForm(
        request.POST or None,
        can_reassign=request.user.can_manage_outreach,
        initial={
            "tier": account.tier_id,
            "owner": account.owner_id,
            "follow_territory": account.owner_from_territory,
            "potential": account.potential,
        },
    )
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        kwargs: dict[str, Any] = {"tier": d["tier"], "potential": d["potential"]}
        if "owner" in d:
            if d["follow_territory"]:
                kwargs["follow_territory"] = True
            else:
                kwargs["owner"] = d["owner"]
        try:
            services.update_account(account, actor=request.user, **kwargs)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, f"Saved {account}.")
            return redirect("outreach:account", account.pk)
    return render(
        request, "outreach/account_form.html", {"nav": "accounts", "form": form, "account": account}
    )


@require_POST
@reader_required
def account_stage(request: HttpRequest, pk: int) -> HttpResponse:
    account = selectors.get_account_for_user(request.user, pk)
    if not selectors.can_edit_account(request.user, account):
        raise PermissionDenied("Only the account's owner or a manager changes its stage.")
    form = StageForm(request.POST)
    if form.is_valid():
        try:
            services.change_stage(
                account, form.cleaned_data["stage"], actor=request.user, reason=form.cleaned_data["reason"]
            )
        except ValidationError as exc:
            for msg in exc.messages:
                messages.error(request, msg)
        else:
            messages.success(request, f"{account} is now {account.get_stage_display().lower()}.")
    else:
        if "stage" in form.errors:
            messages.error(request, "Pick a stage.")
        for msg in form.errors.get("reason", []):
            messages.error(request, msg)
    return redirect("outreach:account", account.pk)


# Activities -------------------------------------------------------------------------------------------


@reader_required
def activities(request: HttpRequest) -> HttpResponse:
    f = selectors.ActivityFilters(
        kind=request.GET.get("kind", "") if request.GET.get("kind", "") in ActivityKind.values else "",
        status=request.GET.get("status", "")
        if request.GET.get("status", "") in ActivityStatus.values
        else "",
        mine=request.GET.get("mine") == "1",
    )
    qs = selectors.search_activities(request.user, f)
    ctx = {
        "page": paginate(request, qs, 30),
        "nav": "activities",
        "filters": f,
        "hx_target": "#results",
        "kinds": ActivityKind.choices,
        "statuses": ActivityStatus.choices,
    }
    return _list_page(request, "outreach/activities.html", "outreach/_activity_results.html", ctx)


@login_required
def activity_detail(request: HttpRequest, pk: int) -> HttpResponse:
    activity = selectors.get_activity_for_user(request.user, pk)
    activity = selectors.activities_with_details(type(activity).objects.filter(pk=activity.pk)).get()
    return render(
        request,
        "outreach/activity_detail.html",
        {
            "nav": "activities",
            "activity": activity,
            "can_edit": selectors.can_edit_activity(request.user, activity),
        },
    )


def _account_from_query(request: HttpRequest) -> Account | None:
    value = request.GET.get("account") or request.POST.get("account") or ""
    if not value.isdigit():
        return None
    return selectors.get_account_for_user(request.user, int(value))


def _show_saved(request: HttpRequest, activity: Any) -> None:
    verb = "Planned" if activity.status == ActivityStatus.PLANNED else "Logged"
    messages.success(
        request,
        f"{verb}: {activity.get_kind_display().lower()}{' at ' + str(activity.account) if activity.account_id else ''}.",
    )
    for w in getattr(activity, "limit_warnings", []):
        messages.warning(request, w.message)


@writer_required
def activity_new(request: HttpRequest) -> HttpResponse:
    account = _account_from_query(request)
    event_only = request.GET.get("event") == "1"
    if account is None and not event_only:
        return render(
            request,
            "outreach/activity_pick.html",
            {"nav": "activities", "form": AccountPickForm(user=request.user)},
        )
    form = ActivityForm(
        request.POST or None,
        account=account,
        user=request.user,
        initial={"kind": request.GET.get("kind") or ActivityKind.VISIT},
    )
    if request.method == "POST" and form.is_valid():
        try:
            activity = services.log_activity(actor=request.user, account=account, **form.service_kwargs())
        except ValidationError as exc:
            apply_errors(form, exc, {"new_attendees": "new_1_first_name"})
        else:
            _show_saved(request, activity)
            return (
                redirect("outreach:account", account.pk)
                if account
                else redirect("outreach:activity", activity.pk)
            )
    return render(request, "outreach/activity_form.html", _activity_form_ctx(form, account, None))


def _activity_form_ctx(form: ActivityForm, account: Account | None, activity: Any) -> dict:
    over = "cost" in form.errors and any("limit" in e for e in form.errors["cost"])
    return {"nav": "activities", "form": form, "account": account, "activity": activity, "show_confirm": over}


@writer_required
def activity_edit(request: HttpRequest, pk: int) -> HttpResponse:
    activity = selectors.get_activity_for_user(request.user, pk)
    if not selectors.can_edit_activity(request.user, activity):
        raise PermissionDenied("Only the liaison who logged it or a manager changes an activity.")
    account = activity.account
    form = ActivityForm(request.POST or None, account=account, user=request.user, activity=activity)
    if request.method == "POST" and form.is_valid():
        try:
            activity = services.update_activity(activity, actor=request.user, **form.service_kwargs())
        except ValidationError as exc:
            apply_errors(form, exc, {"new_attendees": "new_1_first_name"})
        else:
            _show_saved(request, activity)
            return redirect("outreach:activity", activity.pk)
    return render(request, "outreach/activity_form.html", _activity_form_ctx(form, account, activity))


@require_POST
@writer_required
def activity_preview(request: HttpRequest) -> HttpResponse:
    """htmx: the limit warnings the form would give, while it is being filled in."""
    account = _account_from_query(request)
    form = ActivityForm(request.POST, account=account, user=request.user)
    form.is_valid()
    d = form.cleaned_data
    warnings: list[ledger.LimitWarning] = []
    if d.get("occurred_at") and d.get("cost"):
        new_people = sum(1 for i in (1, 2) if d.get(f"new_{i}_first_name"))
        warnings = services.preview_limit_warnings(
            cost=d["cost"],
            occurred_at=d["occurred_at"],
            providers=d.get("providers") or [],
            contacts_count=len(d.get("contacts") or []) + new_people,
            office_head_count=d.get("office_head_count"),
            status=d.get("status") or ActivityStatus.COMPLETED,
        )
    return render(request, "outreach/_limit_warnings.html", {"warnings": warnings})


# Tasks -------------------------------------------------------------------------------------------------


@login_required
def tasks(request: HttpRequest) -> HttpResponse:
    assignee = request.GET.get("assignee", "me") if request.user.can_read_outreach else "me"
    status = request.GET.get("status", TaskStatus.OPEN)
    status = status if status in TaskStatus.values or status == "" else TaskStatus.OPEN
    qs = selectors.search_tasks(request.user, assignee=assignee, status=status)
    ctx = {
        "page": paginate(request, qs, 50),
        "nav": "tasks",
        "assignee": assignee,
        "status": status,
        "people": selectors.assignable_users() if request.user.can_read_outreach else [],
        "today": timezone.localdate(),
        "hx_target": "#results",
    }
    return _list_page(request, "outreach/tasks.html", "outreach/_task_results.html", ctx)


@login_required
def task_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """A task's page: what it is (with its details), and the form for those who may change it.
    Anyone who sees the task in a list may open it."""
    task = selectors.get_task_for_user(request.user, pk) if pk else None
    if task is None and not request.user.can_log_outreach:
        raise PermissionDenied("Your role does not give access to this page.")
    can_edit = request.user.can_log_outreach and (
        task is None or selectors.can_change_task(request.user, task)
    )
    if request.method == "POST" and not can_edit:
        raise PermissionDenied("Only the person it is for, its author or a manager changes a task.")
    account = task.account if task else _account_from_query(request)
    ctx = {
        "nav": "tasks",
        "task": task,
        "account": account,
        "today": timezone.localdate(),
        "can_change_status": task is not None and selectors.can_change_task(request.user, task),
    }
    if not can_edit:
        return render(request, "outreach/task_form.html", {**ctx, "form": None})
    form = TaskForm(
        request.POST or None,
        instance=type(task).objects.get(pk=task.pk) if task else None,
        initial=None
        if task
        else {"assignee": request.user.pk, "due_on": timezone.localdate() + timedelta(days=7)},
    )
    if request.method == "POST" and form.is_valid():
        data = {k: form.cleaned_data[k] for k in ("title", "due_on", "assignee", "details")}
        try:
            if task is None:
                task = services.create_task(actor=request.user, account=account, **data)
            else:
                services.update_task(task, actor=request.user, **data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, f"Saved the task: {task.title}.")
            return redirect("outreach:account", account.pk) if account else redirect("outreach:tasks")
    return render(request, "outreach/task_form.html", {**ctx, "form": form})


@require_POST
@login_required
def task_status(request: HttpRequest, pk: int) -> HttpResponse:
    task = selectors.get_task_for_user(request.user, pk)
    if not selectors.can_change_task(request.user, task):
        raise PermissionDenied("Only the person it is for, its author or a manager changes a task.")
    action = request.POST.get("action")
    change = {
        "done": services.complete_task,
        "cancel": services.cancel_task,
        "reopen": services.reopen_task,
    }.get(action or "")
    if change is None:
        raise Http404("Unknown action.")
    try:
        change(task, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    if request.htmx:
        task.refresh_from_db()
        return render(
            request,
            "outreach/_task_row.html",
            {"t": task, "today": timezone.localdate(), "user": request.user},
        )
    return redirect(next_url(request, reverse("outreach:tasks")))


# Ledger --------------------------------------------------------------------------------------------------


@reader_required
def ledger_report(request: HttpRequest) -> HttpResponse:
    year = _year(request)
    rows = ledger.yearly_report(year)
    limit = ledger.limit_for(year)
    if request.GET.get("format") == "csv":
        return _ledger_csv(year, rows)
    return render(
        request,
        "outreach/ledger.html",
        {
            "nav": "ledger",
            "year": year,
            "rows": rows,
            "limit": limit,
            "years": selectors.years_with_entries(),
            "over": sum(1 for r in rows if r.level == "over"),
            "warning": sum(1 for r in rows if r.level == "warning"),
        },
    )


def _ledger_csv(year: int, rows: list[ledger.Standing]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="non-monetary-compensation-{year}.csv"'
    writer = csv.writer(response)
    writer.writerow(
        [
            "year",
            "npi",
            "physician",
            "credential",
            "practices",
            "activities",
            "spent",
            "planned",
            "limit",
            "percent_of_limit",
            "status",
        ]
    )
    for r in rows:
        p = r.provider
        practices = sorted({loc.practice.name for loc in p.locations.all()})
        writer.writerow([
            year, p.npi, f"{p.last_name}, {p.first_name}", p.credential, "; ".join(practices), r.activities,
            f"{r.spent:.2f}", f"{r.planned:.2f}", f"{r.limit.amount:.2f}" if r.limit else "", r.percent if r.percent is not None else "", r.level,
        ])  # fmt: skip
    return response


@reader_required
def ledger_provider(request: HttpRequest, pk: int) -> HttpResponse:
    provider = get_object_or_404(Provider.objects.referring().select_related("primary_taxonomy"), pk=pk)
    year = _year(request)
    standing = ledger.standings([provider], year)[0]
    entries = selectors.ledger_entries_of(provider, year)
    return render(
        request,
        "outreach/ledger_provider.html",
        {
            "nav": "ledger",
            "provider": provider,
            "year": year,
            "standing": standing,
            "entries": entries,
            "counts": ledger.counts_against_limit(provider),
            "years": selectors.years_with_entries(),
        },
    )


@admin_required
def ledger_limits(request: HttpRequest) -> HttpResponse:
    form = LimitForm(request.POST or None, initial={"year": timezone.localdate().year + 1})
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            services.set_compensation_limit(d["year"], d["amount"], actor=request.user, note=d["note"])
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, f"The limit for {d['year']} is ${d['amount']:,.2f}.")
            return redirect("outreach:ledger_limits")
    return render(
        request,
        "outreach/ledger_limits.html",
        {"nav": "ledger", "form": form, "limits": CompensationLimit.objects.all()},
    )


# Physicians ------------------------------------------------------------------------------------------------


@reader_required
def physicians(request: HttpRequest) -> HttpResponse:
    year = _year(request)
    return render(
        request,
        "outreach/physicians.html",
        {
            "nav": "physicians",
            "year": year,
            "rows": selectors.physicians_participation(year),
            "years": selectors.participation_years(),
        },
    )


@login_required
def physician_detail(request: HttpRequest, pk: int) -> HttpResponse:
    provider = get_object_or_404(Provider.objects.ours().select_related("primary_taxonomy"), pk=pk)
    own = request.user.has_role(Role.PHYSICIAN) and request.user.provider_id == provider.pk
    if not (request.user.can_read_outreach or own):
        raise PermissionDenied("Physicians see their own participation.")
    recent = selectors.activities_with_details(
        selectors.activities_for(request.user).filter(attendees__provider=provider).order_by("-occurred_at")
    )[:30]
    return render(
        request,
        "outreach/physician_detail.html",
        {
            "nav": "physicians",
            "provider": provider,
            "offices": selectors.offices_met(provider),
            "lunches": selectors.lunches_by_year(provider),
            "recent": recent,
        },
    )


# Collateral ------------------------------------------------------------------------------------------------


@reader_required
def collateral(request: HttpRequest) -> HttpResponse:
    return render(
        request, "outreach/collateral.html", {"nav": "collateral", "items": selectors.collateral_with_usage()}
    )


@reader_required
def collateral_detail(request: HttpRequest, pk: int) -> HttpResponse:
    item = get_object_or_404(CollateralItem, pk=pk)
    return render(
        request,
        "outreach/collateral_detail.html",
        {"nav": "collateral", "item": item, "left": paginate(request, selectors.where_left(item), 50)},
    )


@writer_required
def collateral_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    item = get_object_or_404(CollateralItem, pk=pk) if pk else None
    initial = (
        {"title": item.title, "kind": item.kind, "description": item.description, "is_active": item.is_active}
        if item
        else {"is_active": True}
    )
    form = CollateralForm(request.POST or None, request.FILES or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        d = dict(form.cleaned_data)
        upload = d.pop("file")
        try:
            item = services.save_collateral(item, actor=request.user, file=upload, **d)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, f"Saved {item.title}.")
            return redirect("outreach:collateral_item", item.pk)
    return render(request, "outreach/collateral_form.html", {"nav": "collateral", "form": form, "item": item})


@reader_required
def collateral_file(request: HttpRequest, pk: int) -> HttpResponse:
    item = get_object_or_404(CollateralItem, pk=pk)
    if not item.file:
        raise Http404("No file.")
    try:
        handle = item.file.open("rb")
    except FileNotFoundError:
        raise Http404("The file is missing from storage.") from None
    return FileResponse(handle, as_attachment=True, filename=item.file.name.rsplit("/", 1)[-1])


# Territories and tiers -------------------------------------------------------------------------------------


@reader_required
def territories(request: HttpRequest) -> HttpResponse:
    return render(
        request, "outreach/territories.html", {"nav": "accounts", "territories": selectors.territories()}
    )


@manager_required
def territory_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    territory = get_object_or_404(Territory, pk=pk) if pk else None
    initial = (
        {
            "name": territory.name,
            "liaison": territory.liaison_id,
            "zip_codes": ", ".join(territory.zip_codes),
            "counties": "\n".join(territory.counties),
        }
        if territory
        else None
    )
    form = TerritoryForm(request.POST or None, initial=initial)
    if request.method == "POST" and request.POST.get("delete") and territory is not None:
        services.delete_territory(territory, actor=request.user)
        messages.success(request, f"Deleted {territory.name}.")
        return redirect("outreach:territories")
    if request.method == "POST" and form.is_valid():
        try:
            territory = services.save_territory(
                territory,
                actor=request.user,
                name=form.cleaned_data["name"],
                liaison=form.cleaned_data["liaison"],
                zip_codes=form.zip_list(),
                counties=form.county_list(),
            )
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(
                request, f"Saved {territory.name}; accounts that follow it have its liaison as owner."
            )
            return redirect("outreach:territories")
    return render(
        request, "outreach/territory_form.html", {"nav": "accounts", "form": form, "territory": territory}
    )


@reader_required
def tiers(request: HttpRequest) -> HttpResponse:
    from django.db.models import Count

    qs = Tier.objects.prefetch_related("rules").annotate(n=Count("accounts"))
    return render(request, "outreach/tiers.html", {"nav": "accounts", "tiers": qs})


@manager_required
def tier_edit(request: HttpRequest, pk: int) -> HttpResponse:
    tier = get_object_or_404(Tier, pk=pk)
    initial = [{"touch": r.touch, "every": r.every, "unit": r.unit} for r in tier.rules.all()]
    formset = CadenceRuleFormSet(request.POST or None, initial=initial)
    if request.method == "POST" and formset.is_valid():
        rules = [
            (f["touch"], f["every"], f["unit"])
            for f in formset.cleaned_data
            if f.get("touch") and f.get("every")
        ]
        try:
            services.set_cadence_rules(tier, rules, actor=request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"Saved the rules of {tier}.")
            return redirect("outreach:tiers")
    return render(request, "outreach/tier_form.html", {"nav": "accounts", "tier": tier, "formset": formset})


# Map -----------------------------------------------------------------------------------------------------


@reader_required
def account_map(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "outreach/map.html",
        {
            "nav": "map",
            "markers": selectors.map_markers(request.user),
            "sites": selectors.site_markers(),
            "tiles": settings.MAP_TILE_URL,
            "attribution": settings.MAP_TILE_ATTRIBUTION,
        },
    )


@reader_required
def map_data(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"accounts": selectors.map_markers(request.user), "sites": selectors.site_markers()})


# Day route -----------------------------------------------------------------------------------------------


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


def _route(
    request: HttpRequest, data: Any
) -> tuple[RouteForm, list[Account], routing.DayPlan | None, set[int]]:
    form = RouteForm(data or None, initial={"day": timezone.localdate() + timedelta(days=1)})
    mine = list(
        selectors.with_last_touch(
            selectors.accounts_for(request.user).filter(owner=request.user)
            if request.user.has_role(Role.LIAISON)
            else selectors.accounts_for(request.user)
        )
        .select_related("practice", "location", "tier")
        .order_by("practice__name")
    )
    plan, lunches = None, set()
    if form.is_bound and form.is_valid():
        d = form.cleaned_data
        lunches = {int(v) for v in data.getlist("lunch") if v.isdigit()}
        # A lunch ticked is a stop, whether or not its visit box was ticked too.
        picked = list(
            dict.fromkeys([*(int(v) for v in data.getlist("stop") if v.isdigit()), *sorted(lunches)])
        )
        by_pk = {
            a.pk: a
            for a in selectors.accounts_for(request.user)
            .filter(pk__in=picked)
            .select_related("practice", "location")
        }
        stops, unplaced = [], []
        for pk in picked:
            account = by_pk.get(pk)
            loc = selectors.account_location(account) if account else None
            if loc is None or loc.latitude is None:
                if account is not None:
                    unplaced.append(str(account))
                continue
            minutes_value = data.get(f"minutes_{pk}", "")
            service = (
                int(minutes_value)
                if minutes_value.isdigit() and 0 < int(minutes_value) <= 240
                else (d["lunch_minutes"] if pk in lunches else d["visit_minutes"])
            )
            window = (_minutes(d["lunch_from"]), _minutes(d["lunch_to"])) if pk in lunches else None
            stops.append(
                routing.Stop(
                    pk, str(account), loc.latitude, loc.longitude, service, window, loc.short_address
                )
            )
        if not stops:
            form.add_error(None, "Pick at least one account to visit.")
        else:
            plan = routing.plan_day(
                d["start_point"],
                stops,
                day_start=_minutes(d["day_start"]),
                day_end=_minutes(d["day_end"]),
                return_to_start=d["return_to_start"],
            )
        if unplaced:
            note = (
                f"Left out, as their office has no map position (check its ZIP code): {', '.join(unplaced)}."
            )
            if plan is not None:
                plan.notes.append(note)
            else:
                form.add_error(None, note)
    return form, mine, plan, lunches


@writer_required
def route(request: HttpRequest) -> HttpResponse:
    data = request.GET if "day" in request.GET else None
    form, mine, plan, lunches = _route(request, data)
    if plan is not None and request.GET.get("format") == "ics":
        body = ical.route_calendar(plan, form.cleaned_data["day"], lunches)
        response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="route-{form.cleaned_data["day"]}.ics"'
        return response
    picked = {int(v) for v in request.GET.getlist("stop") if v.isdigit()}
    return render(
        request,
        "outreach/route.html",
        {
            "nav": "route",
            "form": form,
            "accounts": mine,
            "plan": plan,
            "picked": picked,
            "lunches": lunches,
            "query": request.GET.urlencode(),
        },
    )


@require_POST
@writer_required
def route_plan(request: HttpRequest) -> HttpResponse:
    """Turn the computed route into planned visits and lunches (they appear in the calendar)."""
    form, _, plan, lunches = _route(request, request.POST)
    if plan is None or not plan.legs:
        messages.error(request, "Nothing to plan: compute a route first.")
        return redirect("outreach:route")
    created = services.plan_route_visits(
        plan.legs, day=form.cleaned_data["day"], actor=request.user, liaison=request.user, lunch_keys=lunches
    )
    messages.success(request, f"Planned {len(created)} visit(s) on {form.cleaned_data['day']:%A %B %d}.")
    return redirect("outreach:today")


# Calendar ------------------------------------------------------------------------------------------------


@login_required
def calendar_settings(request: HttpRequest) -> HttpResponse:
    new_url = None
    if request.method == "POST":
        if request.POST.get("action") == "revoke":
            for feed in CalendarFeed.objects.usable().filter(user=request.user):
                services.revoke_calendar_feed(feed, actor=request.user)
            messages.success(request, "Your calendar link no longer works.")
            return redirect("outreach:calendar")
        _, raw = services.create_calendar_feed(request.user, actor=request.user)
        new_url = request.build_absolute_uri(reverse("outreach:calendar_feed", args=[raw]))
    feeds = CalendarFeed.objects.filter(user=request.user).order_by("-created_at")[:10]
    return render(request, "outreach/calendar.html", {"nav": "outreach", "feeds": feeds, "new_url": new_url})


def calendar_feed(request: HttpRequest, token: str) -> HttpResponse:
    """The private iCalendar feed (no sign-in: the unguessable token is the credential)."""
    feed = services.feed_for_token(token)
    if feed is None:
        raise Http404("Unknown or revoked calendar link.")
    response = HttpResponse(ical.user_calendar(feed.user), content_type="text/calendar; charset=utf-8")
    response["Cache-Control"] = "private, max-age=300"
    return response
