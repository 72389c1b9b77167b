"""Demo feedback: a year of issues from referring offices (most resolved and the office told,
some open, a few overdue) and two waves of satisfaction surveys with their answers.

Issues and answers go through the services; their dates are then moved back in time (a demo
only: real ones are dated when they happen)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from liaison.accounts.models import Role
from liaison.core.demo import DemoContext
from liaison.directory.models import Contact, ContactRole
from liaison.feedback import services
from liaison.feedback.models import Issue, IssueEvent, IssueStatus, SurveyInvitation, SurveyResponse
from liaison.outreach.demo import ISSUES, RESOLUTIONS
from liaison.outreach.models import Stage

COMMENTS = [
    "",
    "",
    "",
    "Faster consult notes would help.",
    "Love the same-day fracture clinic.",
    "Hard to reach the scheduler.",
]
NPS_BY_STAGE = {
    Stage.REFERRING: [10, 10, 9, 9, 9, 8, 8, 7, 6],
    Stage.ENGAGED: [9, 8, 8, 7, 7, 6],
    Stage.AT_RISK: [8, 6, 5, 4, 3, 6],
    Stage.LAPSED: [5, 3, 2, 6],
}


def generate(ctx: DemoContext) -> str:
    rng, now = ctx.rng, timezone.now()
    users = ctx.data["users"]
    coordinator, manager = users[Role.COORDINATOR], users[Role.MANAGER]
    accounts = [a for a in ctx.data["outreach_accounts"]]
    for a in accounts:
        a.refresh_from_db()
    touched = [a for a in accounts if a.stage != Stage.TARGET]

    # Issues: more from accounts at risk.
    weights = [4 if a.stage == Stage.AT_RISK else 1 for a in touched]
    n_issues = 0
    for _ in range(28):
        account = rng.choices(touched, weights=weights)[0]
        contacts = list(Contact.objects.filter(practice=account.practice, is_active=True))
        category, summary = rng.choice(ISSUES)
        opened_days_ago = rng.randrange(1, 340)
        opened = now - timedelta(days=opened_days_ago)
        actor = rng.choice([coordinator, coordinator, account.owner or manager])
        issue = services.log_issue(
            actor=actor,
            practice=account.practice,
            category=category,
            summary=summary,
            severity=rng.choices(["low", "medium", "high", "critical"], weights=[3, 5, 3, 1])[0],
            details="Raised during a visit."
            if actor != coordinator
            else "Raised on the phone with the referral coordinator.",
            reporter=rng.choice(contacts) if contacts else None,
            assignee=rng.choice([coordinator, manager]),
            due_on=(opened + timedelta(days=rng.choice([3, 7, 14]))).date(),
        )
        if opened_days_ago > 20 or rng.random() < 0.3:
            services.change_issue_status(issue, IssueStatus.IN_PROGRESS, actor=issue.assignee)
            if opened_days_ago > 30 or rng.random() < 0.4:
                services.change_issue_status(
                    issue, IssueStatus.RESOLVED, actor=issue.assignee, resolution=rng.choice(RESOLUTIONS)
                )
                if opened_days_ago > 40 or rng.random() < 0.5:
                    services.record_office_informed(
                        issue,
                        actor=account.owner or manager,
                        how=rng.choice(["phone", "visit", "email"]),
                        contact=issue.reporter,
                    )
        # Move the story back to when it happened (demo only).
        events = list(issue.events.order_by("pk"))
        for j, e in enumerate(events):
            IssueEvent.objects.filter(pk=e.pk).update(at=opened + timedelta(days=2 * j, hours=j))
        last = opened + timedelta(days=2 * (len(events) - 1))
        Issue.objects.filter(pk=issue.pk).update(
            created_at=opened,
            resolved_at=last if issue.resolved_at else None,
            office_informed_at=last if issue.office_informed_at else None,
        )
        n_issues += 1

    # Surveys: two waves, ten months and three months ago, to the coordinators and office managers.
    survey = services.ensure_default_survey()
    answered = sent = 0
    for wave_days in (300, 90):
        for account in rng.sample(touched, k=min(len(touched), 35)):
            for contact in Contact.objects.filter(
                practice=account.practice,
                role__in=[ContactRole.REFERRAL_COORDINATOR, ContactRole.OFFICE_MANAGER],
            ).exclude(email=""):
                sent_at = now - timedelta(days=wave_days + rng.randrange(0, 5))
                _, digest = services.new_survey_token()
                inv = SurveyInvitation.objects.create(
                    survey=survey,
                    contact=contact,
                    practice=account.practice,
                    email=contact.email,
                    digest=digest,
                    sent_at=sent_at,
                    sent_by=account.owner,
                    expires_at=now + timedelta(days=1),  # answerable now; moved back below (demo only)
                )
                sent += 1
                if rng.random() < 0.65:
                    nps = rng.choice(NPS_BY_STAGE.get(account.stage, [7, 8, 9]))
                    response = services.submit_survey_response(
                        inv,
                        nps=nps,
                        answers={
                            q["key"]: max(1, min(5, round(nps / 2) + rng.choice([-1, 0, 0, 1])))
                            for q in survey.questions
                        },
                        comment=rng.choice(COMMENTS),
                    )
                    when = sent_at + timedelta(days=rng.randrange(0, 6))
                    SurveyResponse.objects.filter(pk=response.pk).update(submitted_at=when)
                    SurveyInvitation.objects.filter(pk=inv.pk).update(responded_at=when)
                    answered += 1
                if wave_days > 100:  # the first wave's links have long expired
                    SurveyInvitation.objects.filter(pk=inv.pk).update(expires_at=sent_at + timedelta(days=30))
    return f"feedback: {n_issues} issues ({Issue.objects.exclude(status=IssueStatus.CLOSED).count()} open), {sent} survey invitations, {answered} answers"
