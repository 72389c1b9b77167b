from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

from liaison.core.models import JobRun
from liaison.directory import selectors as directory


def next_url(request: HttpRequest, default: str) -> str:
    """Where a form asked to go back to ("next"), if that is on this site; `default` otherwise
    (a URL or a URL name for `redirect`)."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    allowed = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()})
    return target if target and allowed else default


# Where each role's day starts after signing in (the brand link still leads home).
START_PAGES = {
    "liaison": "outreach:today",
    "physician": "outreach:today",
    "coordinator": "referrals:queue",
    "manager": "analytics:dashboard",
    "analyst": "analytics:dashboard",
}


@login_required
def start(request: HttpRequest) -> HttpResponse:
    """After signing in: the liaison's Today, the coordinator's work queue, the manager's and the
    analyst's dashboard; an admin's home page."""
    return redirect(START_PAGES.get(request.user.role, "core:home"))


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "core/home.html", {"nav": "home", **directory.directory_summary()})


@login_required
def job_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """A job's progress; polled by htmx every second until it finishes. Users see their own jobs,
    admins and managers everyone's."""
    qs = JobRun.objects.all()
    if not request.user.has_role("admin", "manager"):
        qs = qs.filter(created_by=request.user)
    run = get_object_or_404(qs, pk=pk)
    template = "core/_job.html" if request.htmx else "core/job.html"
    return render(request, template, {"run": run})


def healthz(request: HttpRequest) -> JsonResponse:
    """For the load balancer: the process is up and the database answers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
