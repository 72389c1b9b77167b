"""Campaign pages. Thin: parse, fetch through the selectors' access helpers, call one service."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from liaison.campaigns import segments, selectors, services
from liaison.campaigns.forms import (
    CampaignForm,
    EventForm,
    LiftSuppressionForm,
    QuizForm,
    SegmentForm,
    SuppressionForm,
    TemplateForm,
)
from liaison.campaigns.mail import Content
from liaison.campaigns.mail import render as render_email
from liaison.campaigns.models import (
    Attendance,
    Campaign,
    CampaignKind,
    Event,
    Quiz,
    Recipient,
    RecipientStatus,
    Suppression,
    SuppressionReason,
)
from liaison.core.forms import apply_errors
from liaison.core.pagination import paginate
from liaison.directory.models import Taxonomy

PREVIEW_CHOICES = 200


def capability_required(capability: str) -> Callable:
    def decorate(view: Callable) -> Callable:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not getattr(request.user, capability):
                raise PermissionDenied("Your role does not give access to this page.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


reader_required = capability_required("can_read_campaigns")
sender_required = capability_required("can_send_campaigns")


def _editable(request: HttpRequest, obj: Any) -> None:
    if not selectors.can_edit(request.user, obj):
        raise PermissionDenied("Only its author or a manager can change this.")


def _show_errors(request: HttpRequest, exc: ValidationError) -> None:
    for m in exc.messages:
        messages.error(request, m)


# Campaigns ---------------------------------------------------------------------------------------------


@reader_required
def campaign_list(request: HttpRequest) -> HttpResponse:
    page = paginate(request, selectors.campaign_list(request.user), 50)
    return render(request, "campaigns/campaigns.html", {"nav": "campaigns", "page": page})


@sender_required
def campaign_new(request: HttpRequest) -> HttpResponse:
    initial = {
        "kind": request.GET.get("kind", CampaignKind.NEWSLETTER),
        "segment": request.GET.get("segment"),
    }
    form = CampaignForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            campaign = services.create_campaign(actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, f"Campaign '{campaign.name}' created.")
            if campaign.kind == CampaignKind.QUIZ:
                return redirect("campaigns:quiz", campaign.pk)
            if campaign.kind == CampaignKind.EVENT:
                return redirect("campaigns:event", campaign.pk)
            return redirect("campaigns:campaign", campaign.pk)
    return render(request, "campaigns/campaign_form.html", {"nav": "campaigns", "form": form})


@sender_required
def campaign_edit(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = selectors.get_campaign_for_user(request.user, pk)
    _editable(request, campaign)
    if not campaign.is_draft:
        raise PermissionDenied("This campaign has been sent: it can no longer be changed.")
    initial = {
        "name": campaign.name,
        "kind": campaign.kind,
        "segment": campaign.segment_id,
        "template": campaign.template_id,
        "featured_physician": campaign.featured_physician_id,
    }
    form = CampaignForm(request.POST or None, initial=initial, campaign=campaign)
    if request.method == "POST" and form.is_valid():
        data = {k: form.cleaned_data[k] for k in ("name", "segment", "template", "featured_physician")}
        try:
            services.update_campaign(campaign, actor=request.user, **data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            return redirect("campaigns:campaign", campaign.pk)
    return render(
        request, "campaigns/campaign_form.html", {"nav": "campaigns", "form": form, "campaign": campaign}
    )


def _members(campaign: Campaign) -> tuple[list[segments.Member], str]:
    try:
        return segments.evaluate(campaign.segment), ""
    except ValidationError as exc:
        return [], " ".join(exc.messages)


def draft_content(campaign: Campaign) -> Content:
    """What the campaign would send now (the template and today's settings), for the preview."""
    from django.conf import settings

    template = campaign.template
    return Content(
        campaign_id=campaign.pk,
        kind=campaign.kind,
        subject=template.subject,
        body_text=template.body_text,
        body_html=template.body_html if not campaign.is_letter else "",
        from_email=settings.LIAISON_CAMPAIGN_FROM,
        sender_name=services.organisation_name(),
        postal_address=services.postal_address(),
        tracking=False,
        values=services.campaign_values(campaign),
    )


@reader_required
def campaign_detail(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = selectors.get_campaign_for_user(request.user, pk)
    ctx: dict[str, Any] = {
        "nav": "campaigns",
        "campaign": campaign,
        "can_edit": selectors.can_edit(request.user, campaign),
        "criteria": segments.describe(campaign.segment),
        "quiz": Quiz.objects.filter(campaign=campaign).prefetch_related("questions").first(),
        "event": Event.objects.filter(campaign=campaign).select_related("site__practice").first(),
    }
    if campaign.is_draft:
        members, segment_error = _members(campaign)
        reachable = [m for m in members if m.email and m.consent] if not campaign.is_letter else members
        ctx.update(
            problems=services.problems(campaign) + ([segment_error] if segment_error else []),
            members=members[:PREVIEW_CHOICES],
            member_count=len(members),
            reachable_count=len(reachable),
        )
    else:
        ctx["results"] = selectors.results(campaign)
        ctx["recipients_preview"] = list(
            Recipient.objects.filter(campaign=campaign).order_by("pk").values("pk", "name")[:PREVIEW_CHOICES]
        )
    return render(request, "campaigns/campaign_detail.html", ctx)


@reader_required
def campaign_preview(request: HttpRequest, pk: int) -> HttpResponse:
    """The email (or letter) as one recipient will get it: ?member=contact-12 for a draft,
    ?recipient=<id> for a campaign that was sent."""
    campaign = selectors.get_campaign_for_user(request.user, pk)
    person: dict[str, Any] = {}
    if campaign.is_draft:
        members, _ = _members(campaign)
        key = request.GET.get("member", "")
        member = next((m for m in members if m.key == key), members[0] if members else None)
        if member is None:
            return render(request, "campaigns/_preview.html", {"campaign": campaign, "empty": True})
        person, content, key = (
            services.person_values(member, request.user),
            draft_content(campaign),
            member.key,
        )
        to = f"{member.name} <{member.email}>" if member.email else member.name
    else:
        rows = Recipient.objects.filter(campaign=campaign).order_by("pk")
        raw = request.GET.get("recipient", "")
        row = (rows.filter(pk=int(raw)).first() if raw.isdigit() else None) or rows.first()
        if row is None:
            raise Http404("No recipient.")
        person, content, key = row.merge, Content.of(campaign), str(row.pk)
        to = f"{row.name} <{row.email}>" if row.email else row.name
    if campaign.is_letter:
        ctx = {"campaign": campaign, "letter": True, "key": key}
        return render(request, "campaigns/_preview.html", ctx)
    rendered = render_email(content, person, None)  # a preview never shows a recipient's real links
    ctx = {
        "campaign": campaign,
        "rendered": rendered,
        "to": to,
        "from_email": content.from_email,
        "key": key,
    }
    return render(request, "campaigns/_preview.html", ctx)


@reader_required
def letter_preview(request: HttpRequest, pk: int) -> HttpResponse:
    """One letter as a PDF, for the member (draft) or recipient (printed) chosen."""
    from fpdf import FPDF

    from liaison.campaigns.letters import add_letter

    campaign = selectors.get_campaign_for_user(request.user, pk)
    if not campaign.is_letter:
        raise Http404("Not a letter.")
    key = request.GET.get("key", "")
    if campaign.is_draft:
        members, _ = _members(campaign)
        member = next((m for m in members if m.key == key), members[0] if members else None)
        if member is None:
            raise Http404("Nobody in the segment.")
        row = Recipient(
            campaign=campaign,
            name=member.name,
            practice_id=member.practice_id,
            location_id=member.location_id,
            merge=services.person_values(member, request.user),
        )
        content = draft_content(campaign)
        shown = Campaign(
            pk=campaign.pk,
            name=campaign.name,
            subject=content.subject,
            body_text=content.body_text,
            sender_name=content.sender_name,
            postal_address=content.postal_address,
            merge_values=content.values,
        )
    else:
        row = Recipient.objects.filter(campaign=campaign, pk=int(key) if key.isdigit() else 0).first()
        row = row or Recipient.objects.filter(campaign=campaign).order_by("pk").first()
        if row is None:
            raise Http404("No recipient.")
        shown = campaign
    pdf = FPDF(format="Letter", unit="mm")
    pdf.set_margins(25, 20, 25)
    add_letter(pdf, shown, row, {**row.merge, **shown.merge_values})
    response = HttpResponse(bytes(pdf.output()), content_type="application/pdf")
    response["Content-Disposition"] = 'inline; filename="letter-preview.pdf"'
    return response


@sender_required
@require_POST
def campaign_send(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = selectors.get_campaign_for_user(request.user, pk)
    _editable(request, campaign)
    try:
        run = services.start_send(campaign, actor=request.user)
    except ValidationError as exc:
        _show_errors(request, exc)
        return redirect("campaigns:campaign", campaign.pk)
    messages.success(request, "Printing the letters." if campaign.is_letter else "Sending: follow it here.")
    return redirect("core:job", run.pk)


@sender_required
@require_POST
def campaign_stop(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = selectors.get_campaign_for_user(request.user, pk)
    _editable(request, campaign)
    try:
        n = services.stop_send(campaign, actor=request.user)
    except ValidationError as exc:
        _show_errors(request, exc)
    else:
        messages.success(request, f"Stopped: {n} not sent.")
    return redirect("campaigns:campaign", campaign.pk)


@sender_required
@require_POST
def campaign_resend_uncertain(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = selectors.get_campaign_for_user(request.user, pk)
    _editable(request, campaign)
    try:
        run = services.resend_uncertain(campaign, actor=request.user)
    except ValidationError as exc:
        _show_errors(request, exc)
        return redirect("campaigns:campaign", campaign.pk)
    if run is None:
        messages.info(request, "Nothing uncertain to send again.")
        return redirect("campaigns:campaign", campaign.pk)
    return redirect("core:job", run.pk)


@reader_required
def campaign_recipients(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = selectors.get_campaign_for_user(request.user, pk)
    status = request.GET.get("status", "")
    if status not in RecipientStatus.values:
        status = ""
    page = paginate(request, selectors.recipients_of(campaign, status), 100)
    ctx = {
        "nav": "campaigns",
        "campaign": campaign,
        "page": page,
        "status": status,
        "statuses": RecipientStatus.choices,
    }
    return render(request, "campaigns/recipients.html", ctx)


@reader_required
def letters_pdf(request: HttpRequest, pk: int) -> FileResponse:
    campaign = selectors.get_campaign_for_user(request.user, pk)
    if not campaign.letters_pdf:
        raise Http404("The letters are not ready.")
    return FileResponse(
        campaign.letters_pdf.open("rb"), content_type="application/pdf", filename=f"letters-{campaign.pk}.pdf"
    )


# Quiz and event -------------------------------------------------------------------------------------------


@sender_required
def campaign_quiz(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = selectors.get_campaign_for_user(request.user, pk)
    _editable(request, campaign)
    if campaign.kind != CampaignKind.QUIZ:
        raise Http404("Not a quiz.")
    if not campaign.is_draft:
        raise PermissionDenied("This quiz has been sent: its questions can no longer change.")
    quiz = Quiz.objects.filter(campaign=campaign).first()
    form = QuizForm(request.POST or None, initial=QuizForm.initial_for(quiz))
    if request.method == "POST" and form.is_valid():
        try:
            services.save_quiz(
                campaign,
                actor=request.user,
                closes_at=form.cleaned_data["closes_at"],
                rule=form.cleaned_data["rule"],
                prize=form.cleaned_data["prize"],
                questions=form.questions(),
            )
        except ValidationError as exc:
            apply_errors(form, exc, rename={"questions": "q1_text"})
        else:
            messages.success(request, "Quiz saved.")
            return redirect("campaigns:campaign", campaign.pk)
    return render(
        request, "campaigns/quiz_form.html", {"nav": "campaigns", "form": form, "campaign": campaign}
    )


@sender_required
@require_POST
def quiz_draw(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = selectors.get_campaign_for_user(request.user, pk)
    _editable(request, campaign)
    quiz = get_object_or_404(Quiz, campaign=campaign)
    if campaign.is_draft:
        messages.error(request, "Send the quiz first.")
        return redirect("campaigns:campaign", campaign.pk)
    try:
        if request.POST.get("close_now"):
            services.close_quiz(quiz, actor=request.user)
        draw = services.draw_winner(quiz, actor=request.user)
    except ValidationError as exc:
        _show_errors(request, exc)
    else:
        if draw.winner_id:
            messages.success(request, f"The winner is {draw.winner.recipient.name}.")
        else:
            messages.info(request, "Nobody answered everything right: no winner.")
    return redirect("campaigns:campaign", campaign.pk)


@sender_required
def campaign_event(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = selectors.get_campaign_for_user(request.user, pk)
    _editable(request, campaign)
    if campaign.kind != CampaignKind.EVENT:
        raise Http404("Not an event invitation.")
    event = Event.objects.filter(campaign=campaign).first()
    form = EventForm(request.POST or None, initial=EventForm.initial_for(event))
    if request.method == "POST" and form.is_valid():
        try:
            services.save_event(campaign, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, "Event saved.")
            return redirect("campaigns:campaign", campaign.pk)
    return render(
        request, "campaigns/event_form.html", {"nav": "campaigns", "form": form, "campaign": campaign}
    )


@sender_required
def checkin(request: HttpRequest, pk: int) -> HttpResponse:
    """At the door: the invitees, their RSVP, and a check-in button each."""
    campaign = selectors.get_campaign_for_user(request.user, pk)
    event = get_object_or_404(Event, campaign=campaign)
    q = request.GET.get("q", "").strip()
    qs = selectors.recipients_of(campaign).exclude(status=RecipientStatus.SKIPPED)
    if q:
        qs = qs.filter(Q(name__icontains=q) | Q(practice__name__icontains=q))
    page = paginate(request, qs.select_related("attendance"), 100)
    ctx = {"nav": "campaigns", "campaign": campaign, "event": event, "page": page, "q": q}
    return render(request, "campaigns/checkin.html", ctx)


@sender_required
@require_POST
def checkin_person(request: HttpRequest, pk: int, recipient_pk: int) -> HttpResponse:
    campaign = selectors.get_campaign_for_user(request.user, pk)
    recipient = get_object_or_404(Recipient, campaign=campaign, pk=recipient_pk)
    try:
        if request.POST.get("undo"):
            attendance = Attendance.objects.filter(recipient=recipient).first()
            if attendance is not None:
                services.undo_check_in(attendance, actor=request.user)
        else:
            services.check_in(recipient, actor=request.user)
    except ValidationError as exc:
        _show_errors(request, exc)
    if request.htmx:
        r = selectors.recipients_of(campaign).select_related("attendance").get(pk=recipient.pk)
        return render(request, "campaigns/_checkin_row.html", {"r": r, "campaign": campaign})
    return redirect("campaigns:checkin", campaign.pk)


# Segments -----------------------------------------------------------------------------------------------


@reader_required
def segment_list(request: HttpRequest) -> HttpResponse:
    rows = [
        (s, segments.describe(s)) for s in selectors.segments_for(request.user).select_related("created_by")
    ]
    return render(request, "campaigns/segments.html", {"nav": "campaigns", "rows": rows})


def _segment_form_page(request: HttpRequest, segment: Any) -> HttpResponse:
    initial = SegmentForm.initial_for(segment) if segment else {}
    form = SegmentForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            segment = services.save_segment(segment, actor=request.user, **form.data_for_service())
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, f"Segment '{segment.name}' saved.")
            return redirect("campaigns:segment", segment.pk)
    ctx = {
        "nav": "campaigns",
        "sub": "segments",
        "form": form,
        "segment": segment,
        "taxonomies": Taxonomy.objects.order_by("classification", "specialization"),
    }
    return render(request, "campaigns/segment_form.html", ctx)


@sender_required
def segment_new(request: HttpRequest) -> HttpResponse:
    return _segment_form_page(request, None)


@sender_required
def segment_edit(request: HttpRequest, pk: int) -> HttpResponse:
    segment = get_object_or_404(selectors.segments_for(request.user), pk=pk)
    _editable(request, segment)
    return _segment_form_page(request, segment)


@reader_required
def segment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    segment = get_object_or_404(selectors.segments_for(request.user).select_related("created_by"), pk=pk)
    try:
        members, error = segments.evaluate(segment), ""
    except ValidationError as exc:
        members, error = [], " ".join(exc.messages)
    labels = dict(SuppressionReason.choices)
    suppressed = {e: labels[r] for e, r in Suppression.objects.values_list("email", "reason")}
    ctx = {
        "nav": "campaigns",
        "sub": "segments",
        "segment": segment,
        "criteria": segments.describe(segment),
        "error": error,
        "members": [(m, suppressed.get(m.email)) for m in members[:500]],
        "count": len(members),
        "emailable": sum(1 for m in members if m.email and m.consent and m.email not in suppressed),
        "can_edit": selectors.can_edit(request.user, segment),
    }
    return render(request, "campaigns/segment_detail.html", ctx)


# Templates ------------------------------------------------------------------------------------------------


@reader_required
def template_list(request: HttpRequest) -> HttpResponse:
    templates = selectors.templates_for(request.user).order_by("-is_active", "channel", "name")
    return render(
        request, "campaigns/templates.html", {"nav": "campaigns", "sub": "templates", "templates": templates}
    )


def _template_form_page(request: HttpRequest, template: Any) -> HttpResponse:
    form = TemplateForm(request.POST or None, instance=template)
    if request.method == "POST" and form.is_valid():
        try:
            template = services.save_template(template, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, f"Template '{template.name}' saved.")
            return redirect("campaigns:templates")
    return render(
        request,
        "campaigns/template_form.html",
        {"nav": "campaigns", "sub": "templates", "form": form, "template": template},
    )


@sender_required
def template_new(request: HttpRequest) -> HttpResponse:
    return _template_form_page(request, None)


@sender_required
def template_edit(request: HttpRequest, pk: int) -> HttpResponse:
    template = get_object_or_404(selectors.templates_for(request.user), pk=pk)
    if template.created_by_id is None:
        if not request.user.has_role("admin", "manager"):
            raise PermissionDenied("Only a manager can change the starter templates.")
    else:
        _editable(request, template)
    return _template_form_page(request, template)


# The suppression list ----------------------------------------------------------------------------------


@reader_required
def suppression_list(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "")
    page = paginate(request, selectors.suppressions(q), 100)
    form = SuppressionForm() if request.user.has_role("admin", "manager") else None
    ctx = {"nav": "campaigns", "sub": "suppressions", "page": page, "q": q, "form": form}
    return render(request, "campaigns/suppressions.html", ctx)


@sender_required
@require_POST
def suppression_add(request: HttpRequest) -> HttpResponse:
    if not request.user.has_role("admin", "manager"):
        raise PermissionDenied("A manager flags addresses by hand.")
    form = SuppressionForm(request.POST)
    if form.is_valid():
        try:
            services.add_suppression(actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            _show_errors(request, exc)
        else:
            messages.success(request, f"{form.cleaned_data['email']} will not be emailed.")
    else:
        for errors in form.errors.values():
            for e in errors:
                messages.error(request, e)
    return redirect("campaigns:suppressions")


@sender_required
def suppression_remove(request: HttpRequest, pk: int) -> HttpResponse:
    suppression = get_object_or_404(Suppression, pk=pk)
    if suppression.reason == SuppressionReason.UNSUBSCRIBED:
        if not request.user.is_admin:
            raise PermissionDenied("Only an admin can lift an unsubscribe, on the person's written request.")
    elif not request.user.has_role("admin", "manager"):
        raise PermissionDenied("A manager lifts a flag.")
    form = LiftSuppressionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.remove_suppression(suppression, actor=request.user, note=form.cleaned_data["note"])
        messages.success(request, f"{suppression.email} can be emailed again (with consent).")
        return redirect("campaigns:suppressions")
    ctx = {"nav": "campaigns", "sub": "suppressions", "form": form, "suppression": suppression}
    return render(request, "campaigns/suppression_remove.html", ctx)
