from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from liaison.accounts.views import admin_required
from liaison.audit import selectors
from liaison.audit.forms import AuditFilterForm
from liaison.audit.models import AuditEvent
from liaison.core.pagination import paginate


@admin_required
def events(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(
        request.GET or None, actions=selectors.known_actions(), object_types=selectors.known_object_types()
    )
    filters = form.cleaned_data if form.is_valid() else {}
    page = paginate(request, selectors.search_events(**filters).select_related("actor"), 50)
    return render(request, "audit/events.html", {"form": form, "page": page, "nav": "audit"})


@admin_required
def event(request: HttpRequest, seq: int) -> HttpResponse:
    ev = get_object_or_404(AuditEvent, seq=seq)
    return render(request, "audit/event.html", {"event": ev, "nav": "audit"})
