"""Market data pages: Opportunities (liaisons, managers, admins; analysts read), the directory
changes report, prospects, and the admin's import page."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from liaison.accounts.models import MARKET_DATA_ROLES, PROSPECT_FLAGGER_ROLES
from liaison.accounts.views import admin_required, role_required
from liaison.core.forms import apply_errors
from liaison.core.pagination import paginate
from liaison.core.views import next_url
from liaison.directory.models import Provider
from liaison.directory.selectors import our_sites
from liaison.marketdata import selectors, services
from liaison.marketdata.forms import ImportForm, OpportunityFilterForm
from liaison.marketdata.models import ImportRun
from liaison.marketdata.scoring import latest_dataset, market_radius

market_reader = role_required(*MARKET_DATA_ROLES)
flagger_required = role_required(*PROSPECT_FLAGGER_ROLES)


@market_reader
def opportunities(request: HttpRequest) -> HttpResponse:
    form = OpportunityFilterForm(request.GET or None)
    page = paginate(request, selectors.opportunities(form.filters()), 25)
    sites = list(our_sites())
    dataset = latest_dataset()
    ctx = {
        "form": form,
        "page": page,
        "nav": "opportunities",
        "hx_target": "#results",
        "map_data": selectors.map_points(page, sites),
        "tile_url": settings.MAP_TILE_URL,
        "tile_attribution": settings.MAP_TILE_ATTRIBUTION,
        "dataset": dataset,
        "radius": market_radius(),
    }
    if request.htmx and not request.htmx.boosted:
        return render(request, "marketdata/_opportunity_results.html", ctx)
    return render(request, "marketdata/opportunities.html", ctx)


@flagger_required
@require_POST
def flag(request: HttpRequest, provider_pk: int) -> HttpResponse:
    provider = get_object_or_404(Provider, pk=provider_pk)
    try:
        prospect, _ = services.flag_prospect(actor=request.user, provider=provider)
    except ValidationError as exc:
        message = "; ".join(exc.messages)
        if request.htmx:
            return render(
                request, "marketdata/_flag_button.html", {"provider": provider, "error": message}, status=400
            )
        messages.error(request, message)
        return redirect(next_url(request, "marketdata:opportunities"))
    if request.htmx:
        account = selectors.practice_account(prospect.practice_id)
        return render(
            request,
            "marketdata/_flag_button.html",
            {
                "provider": provider,
                "flagged": True,
                "stage": account.stage if account else "",
                "account_id": account.pk if account else None,
            },
        )
    messages.success(
        request, f"{provider.display_name} ({prospect.practice.name}) is in the outreach pipeline."
    )
    return redirect(next_url(request, "marketdata:opportunities"))


@market_reader
def prospects(request: HttpRequest) -> HttpResponse:
    page = paginate(request, selectors.prospects(), 50)
    return render(request, "marketdata/prospects.html", {"page": page, "nav": "opportunities"})


@market_reader
def changes(request: HttpRequest) -> HttpResponse:
    run = None
    if request.GET.get("run", "").isdigit():
        run = get_object_or_404(selectors.nppes_runs(), pk=request.GET["run"])
    report = selectors.directory_changes(run)
    return render(
        request,
        "marketdata/changes.html",
        {
            "report": report,
            "runs": selectors.nppes_runs().filter(status=ImportRun.Status.SUCCEEDED)[:20],
            "nav": "opportunities",
        },
    )


@admin_required
def imports(request: HttpRequest) -> HttpResponse:
    page = paginate(request, ImportRun.objects.select_related("job_run").order_by("-started_at", "-pk"), 25)
    return render(request, "marketdata/imports.html", {"page": page, "nav": "opportunities"})


@admin_required
def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(ImportRun, pk=pk)
    return render(request, "marketdata/import_detail.html", {"run": run, "nav": "opportunities"})


@admin_required
def import_new(request: HttpRequest) -> HttpResponse:
    files = [p.name for p in services.available_files()]
    form = ImportForm(request.POST or None, request.FILES or None, files_available=files)
    if request.method == "POST" and form.is_valid():
        name = form.cleaned_data["file_name"]
        if form.cleaned_data.get("upload"):
            name = services.save_upload(form.cleaned_data["upload"])
        try:
            job = services.start_import(
                actor=request.user, kind=form.cleaned_data["kind"], file_name=name, options=form.options()
            )
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            return redirect("core:job", job.pk)
    return render(
        request,
        "marketdata/import_form.html",
        {"form": form, "import_dir": services.import_dir(), "nav": "opportunities"},
    )
