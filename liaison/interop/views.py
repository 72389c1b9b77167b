"""File import pages: upload a practice-management export, map its columns, preview, import.

For coordinators, managers and admins (the file is patient data); others get 403, audited.
"""

from __future__ import annotations

from functools import wraps
from itertools import islice
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from liaison.audit.services import record
from liaison.core.forms import apply_errors
from liaison.interop import selectors, services, tabular
from liaison.interop.forms import CommitForm, MappingForm, UploadForm
from liaison.interop.models import ColumnMapping, ReferralImport
from liaison.referrals.services import record_denied

PREVIEW_ROWS = 20
PREVIEW_CHECKED_ROWS = 5_000
IMPORT_ROLES = ("admin", "manager", "coordinator")


def importer_required(view: Any) -> Any:
    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.has_role(*IMPORT_ROLES):
            record_denied(request.user, kwargs.get("pk", ""), request.path)
            raise PermissionDenied("Importing referrals is for coordinators, managers and admins.")
        return view(request, *args, **kwargs)

    return wrapper


def _upload(request: HttpRequest, pk: int) -> ReferralImport:
    return get_object_or_404(selectors.imports_for(request.user), pk=pk)


@importer_required
def upload(request: HttpRequest) -> HttpResponse:
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        f = form.cleaned_data["file"]
        try:
            created = services.create_upload(actor=request.user, name=f.name, content=f.read())
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            return redirect("interop:mapping", created.pk)
    recent = selectors.imports_for(request.user)[:10]
    return render(request, "interop/upload.html", {"form": form, "recent": recent, "nav": "referrals"})


@importer_required
def mapping(request: HttpRequest, pk: int) -> HttpResponse:
    upload = _upload(request, pk)
    if upload.status in (ReferralImport.Status.IMPORTING, ReferralImport.Status.IMPORTED):
        return redirect("interop:status", upload.pk)
    saved = list(ColumnMapping.objects.order_by("name"))
    chosen = None
    if request.GET.get("use"):
        chosen = next((m for m in saved if str(m.pk) == request.GET["use"]), None)
    chosen = chosen or upload.mapping or selectors.proposed_mapping(upload.headers)
    columns = (
        {k: v for k, v in chosen.columns.items() if v in upload.headers}
        if chosen
        else tabular.suggest_columns(upload.headers)
    )
    form = MappingForm(
        request.POST or None, headers=upload.headers, initial=MappingForm.initial_for(chosen, columns)
    )
    if request.method == "POST" and form.is_valid():
        try:
            saved_mapping = services.save_mapping(
                actor=request.user,
                name=form.cleaned_data["name"],
                columns=form.columns(),
                dob_format=form.cleaned_data["dob_format"],
                date_format=form.cleaned_data["date_format"],
                headers=upload.headers,
            )
        except ValidationError as exc:
            apply_errors(form, exc, rename={k: f"col_{k}" for k in tabular.TARGET_LABELS})
        else:
            ReferralImport.objects.filter(pk=upload.pk).update(mapping=saved_mapping)
            return redirect("interop:preview", upload.pk)
    ctx = {
        "upload": upload,
        "form": form,
        "saved": saved,
        "proposed": chosen if chosen and not request.GET.get("use") and request.method == "GET" else None,
        "nav": "referrals",
    }
    return render(request, "interop/mapping.html", ctx)


@importer_required
def preview(request: HttpRequest, pk: int) -> HttpResponse:
    """The first rows as they will be imported, and the errors of the first rows checked."""
    upload = _upload(request, pk)
    if upload.mapping is None:
        return redirect("interop:mapping", upload.pk)
    if upload.status in (ReferralImport.Status.IMPORTING, ReferralImport.Status.IMPORTED):
        return redirect("interop:status", upload.pk)
    try:
        content = services.read_upload(upload)
        headers, rows = tabular.read_table(content, upload.kind)
        builder = tabular.RowBuilder(services.mapping_spec(upload.mapping), headers)
        built = []
        checked = list(islice(rows, PREVIEW_CHECKED_ROWS))
        for start in range(0, len(checked), 900):
            built += builder.build_chunk(checked[start : start + 900])
    except (ValidationError, tabular.FileError) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
        return redirect("interop:upload")
    counts = {
        key: sum(1 for b in built if b.outcome == key) for key in ("new", "existing", "duplicate", "error")
    }
    errors = [(b.number, message) for b in built for message in b.errors]
    record(request.user, "preview", upload, phi=True, changes={"rows_shown": min(PREVIEW_ROWS, len(built))})
    ctx = {
        "upload": upload,
        "rows": tabular.preview_rows(built[:PREVIEW_ROWS]),
        "errors": errors[:200],
        "more_errors": max(0, len(errors) - 200),
        "counts": counts,
        "checked": len(built),
        "unchecked": max(0, upload.row_count - len(built)),
        "nav": "referrals",
    }
    return render(request, "interop/preview.html", ctx)


@importer_required
@require_POST
def commit(request: HttpRequest, pk: int) -> HttpResponse:
    upload = _upload(request, pk)
    form = CommitForm(request.POST)
    skip = form.is_valid() and form.cleaned_data["skip_bad_rows"]
    try:
        services.start_import(upload, actor=request.user, skip_bad_rows=skip)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("interop:status", upload.pk)


@importer_required
def status(request: HttpRequest, pk: int) -> HttpResponse:
    upload = _upload(request, pk)
    ctx = {"upload": upload, "run": upload.job, "nav": "referrals"}
    if request.htmx:
        return render(request, "interop/_status.html", ctx)
    return render(request, "interop/status.html", ctx)
