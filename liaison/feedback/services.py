"""Writes of feedback: issues raised by referring offices, surveys sent and answered."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from liaison.accounts.models import Role, User
from liaison.audit.services import record
from liaison.core.jobs import start_job
from liaison.core.models import JobRun
from liaison.core.services import save_with_audit
from liaison.directory.models import Contact, Location, Practice
from liaison.feedback.models import (
    Issue,
    IssueEvent,
    IssueStatus,
    Severity,
    Survey,
    SurveyInvitation,
    SurveyResponse,
)
from liaison.feedback.validators import no_patient_identifiers

ISSUE_ASSIGNEE_ROLES = (Role.ADMIN, Role.MANAGER, Role.COORDINATOR, Role.LIAISON, Role.PHYSICIAN)
# Status changes a person may make; "closed" is reached only by recording that the office was told.
TRANSITIONS = {
    IssueStatus.OPEN: {IssueStatus.IN_PROGRESS, IssueStatus.RESOLVED},
    IssueStatus.IN_PROGRESS: {IssueStatus.OPEN, IssueStatus.RESOLVED},
    IssueStatus.RESOLVED: {IssueStatus.IN_PROGRESS},
    IssueStatus.CLOSED: {IssueStatus.IN_PROGRESS},
}


def _user(actor: Any) -> User | None:
    return actor if isinstance(actor, User) and actor.pk else None


def _event(issue: Issue, kind: str, *, actor: Any, **fields: Any) -> IssueEvent:
    event = IssueEvent(
        issue=issue,
        kind=kind,
        actor=_user(actor),
        actor_label=(getattr(actor, "email", None) or str(actor))[:254],
        **fields,
    )
    event.full_clean()
    event.save()
    return event


def _check_people(
    practice: Practice, reporter: Contact | None, location: Location | None, assignee: User | None
) -> None:
    errors: dict[str, list[str]] = {}
    if practice.is_ours:
        errors["practice"] = ["Issues are raised by referring offices, not by our own organisation."]
    if reporter is not None and reporter.practice_id != practice.pk:
        errors["reporter"] = ["This person works at another practice."]
    if location is not None and location.practice_id != practice.pk:
        errors["location"] = ["This office belongs to another practice."]
    if assignee is not None and not assignee.has_role(*ISSUE_ASSIGNEE_ROLES):
        errors["assignee"] = ["Assign the issue to someone who can act on it (not an analyst)."]
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def log_issue(
    *,
    actor: Any,
    practice: Practice,
    category: str,
    summary: str,
    severity: str = Severity.MEDIUM,
    details: str = "",
    reporter: Contact | None = None,
    location: Location | None = None,
    assignee: User | None = None,
    due_on: date | None = None,
) -> Issue:
    """Record an issue an office raised. The due date defaults from the severity."""
    _check_people(practice, reporter, location, assignee)
    issue = Issue(practice=practice, opened_by=_user(actor))
    issue = save_with_audit(
        issue,
        {
            "category": category,
            "severity": severity,
            "summary": summary,
            "details": details,
            "reporter": reporter,
            "location": location,
            "assignee": assignee,
            "due_on": due_on or Issue.default_due(severity),
        },
        actor=actor,
    )
    _event(issue, IssueEvent.Kind.OPENED, actor=actor, to_status=IssueStatus.OPEN)
    if assignee is not None:
        _event(issue, IssueEvent.Kind.ASSIGNED, actor=actor, note=f"assigned to {assignee}")
    return issue


@transaction.atomic
def update_issue(issue: Issue, *, actor: Any, **data: Any) -> Issue:
    """Category, severity, summary, details, reporter, office, due date (not the status)."""
    allowed = {"category", "severity", "summary", "details", "reporter", "location", "due_on"}
    if set(data) - allowed:
        raise TypeError(f"cannot change {', '.join(sorted(set(data) - allowed))} here")
    _check_people(
        issue.practice, data.get("reporter", issue.reporter), data.get("location", issue.location), None
    )
    return save_with_audit(issue, data, actor=actor)


@transaction.atomic
def assign_issue(issue: Issue, assignee: User | None, *, actor: Any) -> Issue:
    _check_people(issue.practice, None, None, assignee)
    if issue.assignee_id != (assignee.pk if assignee else None):
        save_with_audit(issue, {"assignee": assignee}, actor=actor)
        _event(
            issue,
            IssueEvent.Kind.ASSIGNED,
            actor=actor,
            note=f"assigned to {assignee}" if assignee else "unassigned",
        )
    return issue


@transaction.atomic
def change_issue_status(
    issue: Issue, status: str, *, actor: Any, note: str = "", resolution: str | None = None
) -> Issue:
    """Move an issue along: open, in progress, resolved (with its resolution), or reopen it."""
    issue = Issue.objects.select_for_update().get(pk=issue.pk)
    if status not in IssueStatus.values:
        raise ValidationError({"status": [f"Unknown status {status!r}."]})
    if status == IssueStatus.CLOSED:
        raise ValidationError({"status": ["An issue is closed by recording that the office was informed."]})
    if status not in TRANSITIONS.get(issue.status, set()):
        raise ValidationError(
            {
                "status": [
                    f"An issue that is {issue.get_status_display().lower()} cannot become {IssueStatus(status).label.lower()}."
                ]
            }
        )
    data: dict[str, Any] = {}
    if status == IssueStatus.RESOLVED:
        text = (resolution if resolution is not None else issue.resolution).strip()
        if not text:
            raise ValidationError({"resolution": ["Say how it was resolved: the office will be told."]})
        data["resolution"] = text
        data["resolved_at"] = timezone.now()
    if status in (IssueStatus.OPEN, IssueStatus.IN_PROGRESS):
        data["resolved_at"] = None
        data["office_informed_at"] = None
    before = issue.status
    data["status"] = status
    save_with_audit(issue, data, actor=actor)
    _event(issue, IssueEvent.Kind.STATUS, actor=actor, from_status=before, to_status=status, note=note)
    return issue


@transaction.atomic
def record_office_informed(
    issue: Issue, *, actor: Any, how: str, contact: Contact | None = None, note: str = "", when: Any = None
) -> Issue:
    """The last step: the office has been told how its issue was resolved; the issue closes."""
    issue = Issue.objects.select_for_update().get(pk=issue.pk)
    if issue.status != IssueStatus.RESOLVED:
        raise ValidationError({"status": ["Resolve the issue first; then tell the office."]})
    if contact is not None and contact.practice_id != issue.practice_id:
        raise ValidationError({"contact": ["This person works at another practice."]})
    when = when or timezone.now()
    _event(
        issue,
        IssueEvent.Kind.OFFICE_INFORMED,
        actor=actor,
        informed_by=how,
        informed_contact=contact,
        note=note,
        at=when,
    )
    save_with_audit(issue, {"status": IssueStatus.CLOSED, "office_informed_at": when}, actor=actor)
    _event(
        issue,
        IssueEvent.Kind.STATUS,
        actor=actor,
        from_status=IssueStatus.RESOLVED,
        to_status=IssueStatus.CLOSED,
    )
    return issue


@transaction.atomic
def add_issue_note(issue: Issue, note: str, *, actor: Any) -> IssueEvent:
    if not note.strip():
        raise ValidationError({"note": ["Write the note."]})
    event = _event(issue, IssueEvent.Kind.NOTE, actor=actor, note=note.strip())
    record(actor, "note", issue, changes={"note": "added"})
    return event


# Surveys ---------------------------------------------------------------------------------------------

SURVEY_TOKEN_PREFIX = "sv_"
SURVEY_EXPIRY_DAYS = 30


def hash_survey_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def new_survey_token() -> tuple[str, str]:
    raw = SURVEY_TOKEN_PREFIX + secrets.token_urlsafe(24)
    return raw, hash_survey_token(raw)


@transaction.atomic
def send_survey(
    survey: Survey, contacts: Iterable[Contact], *, actor: Any, expires_days: int = SURVEY_EXPIRY_DAYS
) -> tuple[JobRun | None, list[Contact]]:
    """Invite contacts (with an email address) to answer `survey`; the emails go out from a job.

    Returns the job to watch and the contacts skipped (no email, or already invited in the last
    90 days and not yet answered)."""
    if not survey.is_active:
        raise ValidationError({"survey": ["This survey is closed."]})
    contacts = list(contacts)
    recent = set(
        SurveyInvitation.objects.filter(
            contact__in=contacts,
            responded_at__isnull=True,
            created_at__gte=timezone.now() - timedelta(days=90),
        ).values_list("contact_id", flat=True)
    )
    invited, skipped = [], []
    for c in contacts:
        if not c.email or c.pk in recent or c.practice.is_ours or not c.is_active:
            skipped.append(c)
            continue
        invited.append(
            SurveyInvitation.objects.create(
                survey=survey,
                contact=c,
                practice=c.practice,
                email=c.email,
                sent_by=_user(actor),
                expires_at=timezone.now() + timedelta(days=expires_days),
            )
        )
    if not invited:
        return None, skipped
    record(actor, "send", survey, changes={"invitations": len(invited)})
    from liaison.feedback.tasks import send_survey_invitations

    run = start_job(
        kind="survey",
        label=f"Send '{survey.title}' to {len(invited)} contact(s)",
        actor=_user(actor),
        task=send_survey_invitations,
        invitation_ids=[i.pk for i in invited],
    )
    return run, skipped


def invitation_for_token(raw: str) -> SurveyInvitation | None:
    if not raw or len(raw) > 200 or not raw.startswith(SURVEY_TOKEN_PREFIX):
        return None
    return (
        SurveyInvitation.objects.select_related("survey", "contact", "practice")
        .filter(digest=hash_survey_token(raw))
        .first()
    )


@transaction.atomic
def submit_survey_response(
    invitation: SurveyInvitation, *, nps: int, answers: dict[str, int], comment: str = ""
) -> SurveyResponse:
    """A respondent's answers (once per invitation, before it expires)."""
    invitation = SurveyInvitation.objects.select_for_update().select_related("survey").get(pk=invitation.pk)
    if not invitation.is_answerable:
        raise ValidationError("This survey link has already been used or has expired.")
    keys = {q["key"] for q in invitation.survey.questions}
    clean: dict[str, int] = {}
    for key, value in answers.items():
        if key not in keys:
            continue
        if value is None or value == "":
            continue
        if int(value) not in range(1, 6):
            raise ValidationError({key: ["Answer from 1 to 5."]})
        clean[key] = int(value)
    no_patient_identifiers(comment)
    response = SurveyResponse(
        invitation=invitation, practice=invitation.practice, nps=nps, answers=clean, comment=comment.strip()
    )
    response.full_clean()
    response.save()
    invitation.responded_at = response.submitted_at
    invitation.save(update_fields=["responded_at"])
    record(f"survey respondent (invitation {invitation.pk})", "answer", response)
    return response


DEFAULT_QUESTIONS = [
    {"key": "ease", "text": "How easy is it to refer a patient to us?"},
    {"key": "speed", "text": "How quickly are your patients seen?"},
    {"key": "communication", "text": "How well do we keep you informed (consult notes, updates)?"},
    {"key": "staff", "text": "How courteous and helpful is our staff?"},
]


def ensure_default_survey() -> Survey:
    """The survey the migration creates (a flushed database needs it again)."""
    survey = Survey.objects.filter(is_active=True).order_by("-created_at").first()
    if survey is None:
        survey = Survey.objects.create(
            title="How are we doing for your patients?",
            intro="Two minutes, five questions. Your answers go to our physician relations team.",
            questions=DEFAULT_QUESTIONS,
        )
    return survey
