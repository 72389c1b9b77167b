"""Referral pages: the coordinators' work queue, intake, the referral and its timeline.

Only roles that may see patient data reach these pages; a refused attempt is audited. Every
page that shows patient fields writes a PHI-read audit row.
"""

from __future__ import annotations

from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from liaison.accounts.models import REFERRAL_WORKER_ROLES, User
from liaison.core.forms import apply_errors
from liaison.core.phi import decrypt_bytes
from liaison.core.views import next_url
from liaison.directory.models import Location, Provider
from liaison.referrals import referback, selectors, services
from liaison.referrals.forms import (
    ContactForm,
    DocumentForm,
    EditForm,
    IntakeForm,
    NoteForm,
    OfficePreferenceForm,
    QueueForm,
    StatusForm,
)
from liaison.referrals.models import (
    ACTION_LABELS,
    Holiday,
    Notification,
    NotifyBy,
    OfficePreference,
    ReferralDocument,
    ServiceLine,
    Status,
)


def phi_required(view: Any) -> Any:
    """For roles that may see patient data; anyone else gets 403 and the attempt is audited."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.can_see_phi:
            services.record_denied(request.user, kwargs.get("pk", ""), request.path)
            raise PermissionDenied("Referrals hold patient data, which your role does not give access to.")
        return view(request, *args, **kwargs)

    return wrapper


def _referral(request: HttpRequest, pk: int) -> Any:
    try:
        return selectors.get_referral_for_user(request.user, pk)
    except Http404:
        services.record_denied(request.user, pk, request.path)
        raise


@phi_required
@require_http_methods(["GET", "POST"])
def queue(request: HttpRequest) -> HttpResponse:
    """The work queue. Its filter form is posted, so that a patient's name never goes in a URL
    (browser history, server logs, Referer headers); the other filters are put back in the URL,
    for the view to be bookmarked and shared."""
    posted = request.method == "POST"
    source = request.POST if posted else request.GET.copy()
    if not posted:
        source.pop("patient", None)  # an old bookmark's name is not searched for
    form = QueueForm(source or None)
    data = form.cleaned_data if form.is_valid() else {}
    kept = urlencode(
        {
            k: v
            for k, v in form.data.items()
            if (k in QueueForm.base_fields or k == "page") and k != "patient" and v
        }
    )
    if posted and not data.get("patient") and not request.htmx:
        return redirect(f"{request.path}?{kept}" if kept else request.path)
    filters = selectors.QueueFilters(
        view=data.get("view") or "open",
        site=getattr(data.get("site"), "pk", None),
        service_line=getattr(data.get("service_line"), "pk", None),
        urgency=data.get("urgency", ""),
        patient=data.get("patient", ""),
        sort=data.get("sort") or "urgency",
        step=data.get("step", "") if data.get("view") == "overdue" else "",
        referrer=data.get("referrer"),
    )
    page = selectors.queue_paginator(request.user, filters).get_page(source.get("page"))
    services.record_phi_list(request.user, page.object_list)
    ctx = {
        "form": form,
        "page": page,
        "nav": "referrals",
        "hx_target": "#results",
        "view": filters.view,
        "views": selectors.QUEUE_VIEWS,
        "coordinators": User.objects.filter(is_active=True, role__in=REFERRAL_WORKER_ROLES),
        "now": timezone.now(),
        # Pages of a search for a patient are asked for by posting the form again.
        "page_form": "queue-filters" if data.get("patient") else "",
        "referrer": Provider.objects.filter(pk=filters.referrer).first() if filters.referrer else None,
    }
    if request.htmx and not request.htmx.boosted:
        response = render(request, "referrals/_queue_results.html", ctx)
        if posted:  # the address bar shows the filters, never the patient's name
            response["HX-Push-Url"] = f"{request.path}?{kept}" if kept else request.path
        return response
    return render(request, "referrals/queue.html", ctx)


@phi_required
@require_POST
def bulk(request: HttpRequest) -> HttpResponse:
    """Assign or accept several referrals at once (those the user may see)."""
    ids = [int(i) for i in request.POST.getlist("ids") if i.isdigit()]
    chosen = list(selectors.Referral.objects.for_user(request.user).filter(pk__in=ids).order_by("pk"))
    action = request.POST.get("action", "")
    try:
        if not chosen:
            messages.error(request, "Tick the referrals to act on first.")
        elif action == "assign":
            raw = request.POST.get("assign_to", "")
            user = None if raw == "" else User.objects.filter(pk=raw if raw.isdigit() else 0).first()
            if raw and user is None:
                raise ValidationError("That person is not a user any more: choose someone else.")
            n = services.assign(chosen, user, actor=request.user)
            messages.success(
                request, f"{n} referral(s) assigned to {user}." if user else f"{n} referral(s) unassigned."
            )
        elif action == "accept":
            accepted, skipped = [], []
            for referral in chosen:
                if referral.status == Status.RECEIVED:
                    services.change_status(referral, Status.ACCEPTED, actor=request.user)
                    accepted.append(f"#{referral.pk}")
                else:
                    skipped.append(f"#{referral.pk} ({referral.get_status_display().lower()})")
            text = f"{len(accepted)} referral(s) accepted{': ' + ', '.join(accepted) if accepted else ''}."
            if skipped:
                text += f" Only received referrals are accepted; left as they were: {', '.join(skipped)}."
            (messages.warning if skipped else messages.success)(request, text)
        else:
            messages.error(request, "Choose an action.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect(next_url(request, "referrals:queue"))


@phi_required
def intake(request: HttpRequest) -> HttpResponse:
    initial = {"assigned_to": request.user.pk if request.user.role == "coordinator" else None}
    form = IntakeForm(request.POST or None, request.FILES or None, initial=initial)
    duplicates: list[Any] = []
    if request.method == "POST" and form.is_valid():
        info = form.referrer_info()
        provider, _ = services.resolve_referrer(info)
        if not form.cleaned_data["confirm_not_duplicate"]:
            duplicates = services.find_duplicates(
                patient_last_name=form.cleaned_data["patient_last_name"],
                patient_dob=form.cleaned_data["patient_dob"],
                referring_provider=provider,
                received_on=timezone.localdate(),
                among=selectors.Referral.objects.for_user(request.user),
            )
        if duplicates:
            form.data = form.data.copy()
            form.data["confirm_not_duplicate"] = "on"
        else:
            try:
                referral = services.receive_referral(
                    actor=request.user, referrer=info, **form.referral_fields()
                )
                upload = form.cleaned_data.get("document")
                if upload:
                    services.attach_document(
                        referral,
                        actor=request.user,
                        name=upload.name,
                        content=upload.read(),
                        content_type=upload.content_type or "",
                    )
            except ValidationError as exc:
                apply_errors(form, exc)
            else:
                flag = (
                    " The referrer was not found in the directory: match it below."
                    if referral.referrer_to_match
                    else ""
                )
                messages.success(request, f"Referral #{referral.pk} received.{flag}")
                return redirect("referrals:detail", referral.pk)
    return render(
        request, "referrals/intake.html", {"form": form, "duplicates": duplicates, "nav": "referrals"}
    )


@phi_required
def referrer_options(request: HttpRequest) -> HttpResponse:
    """<option>s for the referrer field's datalist, as the user types."""
    q = request.GET.get("referrer", "").strip()
    providers = []
    if len(q) >= 2:
        qs = Provider.objects.referring().prefetch_related("locations__practice")
        for token in q.split()[:3]:
            if token.isdigit():
                qs = qs.filter(npi__startswith=token)
            else:
                qs = qs.filter(Q(last_name__istartswith=token) | Q(first_name__istartswith=token))
        providers = list(qs.order_by("last_name", "first_name")[:15])
    return render(request, "referrals/_referrer_options.html", {"providers": providers})


@phi_required
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        referral = _referral(request, pk)
    except Http404:
        if request.user.role != "physician":
            raise
        # Not one of their patients: a physician may still break the glass, with a reason.
        return render(request, "referrals/restricted.html", {"pk": pk, "nav": "referrals"}, status=404)
    services.record_phi_view(request.user, referral)
    ctx = {
        "referral": referral,
        "timeline": selectors.timeline(referral),
        "nav": "referrals",
        "documents": referral.documents.all(),
        "notifications": referral.notifications.all(),
        "status_form": StatusForm(),
        "contact_form": ContactForm(),
        "note_form": NoteForm(),
        "document_form": DocumentForm(),
        "next_steps": [
            (s, "Reschedule" if s == referral.status == Status.SCHEDULED else ACTION_LABELS[s])
            for s in referral.next_statuses
        ],
        "breaches": referral.sla_breaches.all(),
        "candidates": services.referrer_candidates(services.ReferrerInfo(**referral.referrer_as_received))
        if referral.referrer_to_match
        else [],
        # A known referrer with several offices and none named: which one sent it (it gets the letters)?
        "offices": list(referral.referring_provider.locations.select_related("practice"))
        if referral.referring_provider_id and referral.referring_location_id is None
        else [],
    }
    return render(request, "referrals/detail.html", ctx)


def _back(referral: Any) -> HttpResponse:
    return redirect("referrals:detail", referral.pk)


def _fail(request: HttpRequest, exc: ValidationError) -> None:
    for field, errors in getattr(exc, "message_dict", {"": exc.messages}).items():
        label = "" if field in ("", "__all__") else field.replace("_", " ").capitalize() + ": "
        messages.error(request, label + " ".join(errors))


@phi_required
@require_POST
def change_status(request: HttpRequest, pk: int) -> HttpResponse:
    referral = _referral(request, pk)
    form = StatusForm(request.POST)
    if not form.is_valid():
        _fail(request, ValidationError(form.errors))
        return _back(referral)
    d = form.cleaned_data
    try:
        services.change_status(
            referral,
            d["to_status"],
            actor=request.user,
            note=d["note"],
            appointment_at=d["appointment_at"],
            decline_reason=d["decline_reason"],
            channel=d["channel"],
            included=d["included"],
        )
    except ValidationError as exc:
        _fail(request, exc)
    else:
        messages.success(request, f"Referral #{referral.pk}: {Status(d['to_status']).label.lower()}.")
    return _back(referral)


@phi_required
@require_POST
def letter_sent(request: HttpRequest, pk: int, notification_pk: int) -> HttpResponse:
    referral = _referral(request, pk)
    notification = get_object_or_404(Notification, pk=notification_pk, referral=referral)
    try:
        services.mark_letter_sent(notification, actor=request.user)
    except ValidationError as exc:
        _fail(request, exc)
    else:
        messages.success(
            request,
            f"Referral #{referral.pk}: the {notification.get_milestone_display().lower()} letter is marked sent.",
        )
    return _back(referral)


@phi_required
@require_POST
def record_contact(request: HttpRequest, pk: int) -> HttpResponse:
    referral = _referral(request, pk)
    form = ContactForm(request.POST)
    if form.is_valid():
        services.record_contact(referral, actor=request.user, **form.cleaned_data)
    else:
        _fail(request, ValidationError(form.errors))
    return _back(referral)


@phi_required
@require_POST
def add_note(request: HttpRequest, pk: int) -> HttpResponse:
    referral = _referral(request, pk)
    form = NoteForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError(form.errors)
        services.add_note(referral, actor=request.user, note=form.cleaned_data["note"])
    except ValidationError as exc:
        _fail(request, exc)
    return _back(referral)


@phi_required
@require_POST
def upload_document(request: HttpRequest, pk: int) -> HttpResponse:
    referral = _referral(request, pk)
    form = DocumentForm(request.POST, request.FILES)
    try:
        if not form.is_valid():
            raise ValidationError(form.errors)
        upload = form.cleaned_data["document"]
        services.attach_document(
            referral,
            actor=request.user,
            name=upload.name,
            content=upload.read(),
            content_type=upload.content_type or "",
        )
    except ValidationError as exc:
        _fail(request, exc)
    return _back(referral)


@phi_required
def document(request: HttpRequest, pk: int, doc_pk: int) -> HttpResponse:
    referral = _referral(request, pk)
    doc = get_object_or_404(ReferralDocument, pk=doc_pk, referral=referral)
    with doc.file.open("rb") as f:
        content = decrypt_bytes(f.read())
    services.record_phi_view(request.user, referral, "download")
    response = HttpResponse(content, content_type=doc.content_type)
    extension = {"application/pdf": "pdf", "image/tiff": "tif", "image/png": "png", "image/jpeg": "jpg"}.get(
        doc.content_type, "bin"
    )
    # A neutral file name: the original may contain the patient's name and would end up in browser history.
    response["Content-Disposition"] = (
        f'inline; filename="referral-{referral.pk}-document-{doc.pk}.{extension}"'
    )
    response["Cache-Control"] = "no-store"
    return response


@phi_required
def letter(request: HttpRequest, pk: int, notification_pk: int) -> HttpResponse:
    referral = _referral(request, pk)
    notification = get_object_or_404(
        Notification, pk=notification_pk, referral=referral, channel=NotifyBy.LETTER
    )
    with notification.document.open("rb") as f:
        content = decrypt_bytes(f.read())
    services.record_phi_view(request.user, referral, "download")
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = (
        f'inline; filename="referral-{referral.pk}-{notification.milestone}.pdf"'
    )
    response["Cache-Control"] = "no-store"
    return response


@phi_required
def edit(request: HttpRequest, pk: int) -> HttpResponse:
    referral = _referral(request, pk)
    fields = list(EditForm.base_fields)
    form = EditForm(request.POST or None, initial={f: getattr(referral, f) for f in fields})
    if request.method == "POST" and form.is_valid():
        try:
            services.update_referral(referral, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, "Saved.")
            return _back(referral)
    services.record_phi_view(request.user, referral)
    return render(request, "referrals/edit.html", {"form": form, "referral": referral, "nav": "referrals"})


@phi_required
@require_POST
def match_referrer(request: HttpRequest, pk: int) -> HttpResponse:
    referral = _referral(request, pk)
    provider = get_object_or_404(Provider, pk=request.POST.get("provider") or 0)
    location = None
    if request.POST.get("location"):
        location = get_object_or_404(
            Location, pk=request.POST["location"] if request.POST["location"].isdigit() else 0
        )
    try:
        services.match_referrer(referral, provider, actor=request.user, location=location)
    except ValidationError as exc:
        _fail(request, exc)
    else:
        where = f" at {location.practice.name}" if location is not None else ""
        messages.success(request, f"Referrer matched: {provider.display_name}{where}.")
    return _back(referral)


@phi_required
def office_updates(request: HttpRequest, location_pk: int) -> HttpResponse:
    """How a referring office wants to hear about its referrals: a letter, an email to one of its
    people, a FHIR Task update, or nothing."""
    if not request.user.can_work_referrals:
        raise PermissionDenied("Coordinators, managers and admins set how an office is kept informed.")
    location = get_object_or_404(
        Location.objects.select_related("practice"), pk=location_pk, practice__is_ours=False
    )
    current = OfficePreference.objects.filter(location=location).first()
    initial = (
        {
            "notify_by": current.notify_by,
            "contact": current.contact_id,
            "fhir_endpoint": current.fhir_endpoint,
        }
        if current
        else {"notify_by": NotifyBy.LETTER}
    )
    form = OfficePreferenceForm(request.POST or None, location=location, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.set_office_preference(location, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(
                request,
                f"{location.practice.name}: updates by {NotifyBy(form.cleaned_data['notify_by']).label.lower()}.",
            )
            return redirect(next_url(request, reverse("directory:practice", args=[location.practice_id])))
    return render(
        request,
        "referrals/office_updates.html",
        {"form": form, "location": location, "nav": "referrals", "next": request.GET.get("next", "")},
    )


@phi_required
def service_levels(request: HttpRequest) -> HttpResponse:
    """The manager view: what is overdue, for whom; performance over 90 days. Counts only."""
    if not request.user.can_work_referrals:
        raise PermissionDenied
    ctx = {
        "overdue": selectors.overdue_summary(),
        "performance": selectors.service_level_performance(),
        "service_lines": ServiceLine.objects.order_by("name"),
        "holidays": Holiday.objects.filter(date__gte=timezone.localdate()).order_by("date")[:20],
        "nav": "referrals",
    }
    return render(request, "referrals/service_levels.html", ctx)


@phi_required
def refer_out(request: HttpRequest, pk: int) -> HttpResponse:
    """Refer the patient of this referral on to a partner: suggestions first, then record it."""
    referral = _referral(request, pk)
    specialty = request.GET.get("specialty", "").strip()[:100]
    radius = request.GET.get("radius_miles", "25")
    suggestions: list[Any] = []
    error = ""
    if request.method == "POST":
        provider = get_object_or_404(Provider.objects.referring(), pk=request.POST.get("provider") or 0)
        try:
            referback.refer_out(
                actor=request.user,
                to_provider=provider,
                referral=referral,
                specialty_code=request.POST.get("specialty_code", ""),
                reason=request.POST.get("reason", "")[:2000],
                urgency=request.POST.get("urgency", "routine"),
            )
        except ValidationError as exc:
            _fail(request, exc)
        else:
            messages.success(request, f"Referred out to {provider.display_name}.")
            return _back(referral)
    elif specialty:
        try:
            suggestions = referback.suggest_partners(
                specialty, referral.patient_zip, float(radius) if radius.replace(".", "", 1).isdigit() else 25
            )
        except ValidationError as exc:
            error = " ".join(exc.messages)
    services.record_phi_view(request.user, referral)
    return render(
        request,
        "referrals/refer_out.html",
        {
            "referral": referral,
            "specialty": specialty,
            "radius": radius,
            "suggestions": suggestions,
            "error": error,
            "nav": "referrals",
        },
    )


@phi_required
def reciprocity(request: HttpRequest) -> HttpResponse:
    return render(
        request, "referrals/reciprocity.html", {"rows": referback.reciprocity(), "nav": "referrals"}
    )


@phi_required
@require_POST
def emergency_access(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        services.grant_emergency_access(pk, actor=request.user, reason=request.POST.get("reason", ""))
    except ValidationError as exc:
        return render(
            request,
            "referrals/restricted.html",
            {"pk": pk, "errors": exc.messages, "nav": "referrals"},
            status=400,
        )
    messages.warning(request, "Emergency access granted for one hour. The administrators have been told.")
    return redirect("referrals:detail", pk)
