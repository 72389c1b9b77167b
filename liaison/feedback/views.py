"""Feedback pages: issues (the manager's view and each issue's steps), surveys and the public form."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from liaison.core.forms import apply_errors
from liaison.core.pagination import paginate
from liaison.directory.models import Contact, Practice
from liaison.feedback import selectors, services
from liaison.feedback.forms import (
    AssignForm,
    InformedForm,
    IssueForm,
    IssueSearchForm,
    NoteForm,
    PracticePickForm,
    SendSurveyForm,
    StatusForm,
    SurveyAnswerForm,
)
from liaison.feedback.models import Survey
from liaison.feedback.validators import NOTICE
from liaison.outreach.views import reader_required, writer_required


@reader_required
def issues(request: HttpRequest) -> HttpResponse:
    form = IssueSearchForm(request.GET or None)
    d = form.cleaned_data if form.is_valid() else {}
    f = selectors.IssueFilters(
        status=d.get("status") or "open",
        category=d.get("category", ""),
        severity=d.get("severity", ""),
        assignee=d.get("assignee", ""),
        overdue=d.get("overdue", False),
    )
    ctx = {
        "nav": "issues",
        "form": form,
        "page": paginate(request, selectors.search_issues(request.user, f), 50),
        "counts": selectors.issue_counts(),
        "hx_target": "#results",
    }
    if request.htmx and not request.htmx.boosted:
        return render(request, "feedback/_issue_results.html", ctx)
    return render(request, "feedback/issues.html", ctx)


@writer_required
def issue_new(request: HttpRequest) -> HttpResponse:
    value = request.GET.get("practice", "")
    if not value.isdigit():
        return render(request, "feedback/issue_pick.html", {"nav": "issues", "form": PracticePickForm()})
    practice = get_object_or_404(Practice.objects.referring(), pk=int(value))
    form = IssueForm(request.POST or None, practice=practice)
    if request.method == "POST" and form.is_valid():
        data = {k: form.cleaned_data[k] for k in form.Meta.fields}
        try:
            issue = services.log_issue(actor=request.user, practice=practice, **data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, f"Logged issue #{issue.pk}.")
            return redirect("feedback:issue", issue.pk)
    return render(
        request,
        "feedback/issue_form.html",
        {"nav": "issues", "form": form, "practice": practice, "notice": NOTICE},
    )


@reader_required
def issue_detail(request: HttpRequest, pk: int) -> HttpResponse:
    issue = selectors.get_issue_for_user(request.user, pk)
    ctx = {
        "nav": "issues",
        "issue": issue,
        "can_change": selectors.can_change_issue(request.user, issue) and not request.user.is_read_only,
        "status_form": StatusForm(initial={"resolution": issue.resolution}),
        "assign_form": AssignForm(initial={"assignee": issue.assignee_id}),
        "informed_form": InformedForm(practice=issue.practice, initial={"contact": issue.reporter_id}),
        "note_form": NoteForm(),
    }
    return render(request, "feedback/issue_detail.html", ctx)


@writer_required
def issue_edit(request: HttpRequest, pk: int) -> HttpResponse:
    issue = selectors.get_issue_for_user(request.user, pk)
    form = IssueForm(request.POST or None, instance=type(issue).objects.get(pk=pk), practice=issue.practice)
    del form.fields["assignee"]
    if request.method == "POST" and form.is_valid():
        data = {k: form.cleaned_data[k] for k in form.fields}
        try:
            services.update_issue(issue, actor=request.user, **data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, "Saved.")
            return redirect("feedback:issue", issue.pk)
    return render(
        request,
        "feedback/issue_form.html",
        {"nav": "issues", "form": form, "practice": issue.practice, "issue": issue, "notice": NOTICE},
    )


@require_POST
@writer_required
def issue_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    issue = selectors.get_issue_for_user(request.user, pk)
    if not selectors.can_change_issue(request.user, issue):
        raise PermissionDenied("Your role does not allow this.")
    forms: dict[str, Any] = {
        "status": StatusForm(request.POST),
        "assign": AssignForm(request.POST),
        "informed": InformedForm(request.POST, practice=issue.practice),
        "note": NoteForm(request.POST),
    }
    form = forms.get(action)
    if form is None:
        raise Http404("Unknown action.")
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{field}: {' '.join(errors)}")
        return redirect("feedback:issue", issue.pk)
    d = form.cleaned_data
    try:
        if action == "status":
            services.change_issue_status(
                issue, d["status"], actor=request.user, note=d["note"], resolution=d["resolution"] or None
            )
        elif action == "assign":
            services.assign_issue(issue, d["assignee"], actor=request.user)
        elif action == "informed":
            services.record_office_informed(
                issue, actor=request.user, how=d["how"], contact=d["contact"], note=d["note"]
            )
        else:
            services.add_issue_note(issue, d["note"], actor=request.user)
    except ValidationError as exc:
        for m in exc.messages:
            messages.error(request, m)
    else:
        messages.success(request, "Saved.")
    return redirect("feedback:issue", issue.pk)


# Surveys --------------------------------------------------------------------------------------------


@reader_required
def surveys(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "feedback/surveys.html",
        {
            "nav": "surveys",
            "rows": selectors.scores_per_practice(),
            "totals": selectors.survey_totals(),
            "survey": Survey.objects.filter(is_active=True).first(),
        },
    )


@writer_required
def survey_send(request: HttpRequest, practice_pk: int) -> HttpResponse:
    practice = get_object_or_404(Practice.objects.referring(), pk=practice_pk)
    survey = Survey.objects.filter(is_active=True).order_by("-created_at").first()
    if survey is None:
        raise Http404("No active survey.")
    contacts = (
        Contact.objects.filter(practice=practice, is_active=True).exclude(email="").order_by("last_name")
    )
    form = SendSurveyForm(
        request.POST or None,
        contacts=contacts,
        initial={
            "contacts": [c.pk for c in contacts if c.role in ("office_manager", "referral_coordinator")]
        },
    )
    if request.method == "POST" and form.is_valid():
        try:
            run, skipped = services.send_survey(survey, form.cleaned_data["contacts"], actor=request.user)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            if skipped:
                messages.warning(
                    request,
                    f"Not sent to {', '.join(map(str, skipped))}: no email, or invited in the last 90 days.",
                )
            if run is not None:
                messages.success(request, "The survey is being sent.")
                return redirect("core:job", run.pk)
            return redirect("feedback:surveys")
    return render(
        request,
        "feedback/survey_send.html",
        {"nav": "surveys", "form": form, "practice": practice, "survey": survey},
    )


def survey_answer(request: HttpRequest, token: str) -> HttpResponse:
    """The public form an office contact opens from the email (no sign-in: the token is the key)."""
    invitation = services.invitation_for_token(token)
    if invitation is None:
        raise Http404("Unknown survey link.")
    if not invitation.is_answerable:
        return render(request, "feedback/survey_closed.html", {"invitation": invitation}, status=410)
    form = SurveyAnswerForm(request.POST or None, survey=invitation.survey)
    if request.method == "POST" and form.is_valid():
        try:
            services.submit_survey_response(
                invitation,
                nps=form.cleaned_data["nps"],
                answers=form.answers(),
                comment=form.cleaned_data["comment"],
            )
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            return render(request, "feedback/survey_thanks.html", {"invitation": invitation})
    return render(request, "feedback/survey_answer.html", {"form": form, "invitation": invitation})
