"""Feedback jobs: sending survey invitations by email."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from liaison.core.jobs import job, running_job


def survey_email(invitation: object, link: str) -> EmailMessage:
    contact = invitation.contact
    organisation = settings.LIAISON_ORGANISATION_NAME or "our practice"
    body = (
        f"Dear {contact.first_name},\n\n"
        f"{organisation} would value two minutes of your time: how are we doing for the patients "
        f"you refer to us?\n\n{link}\n\n"
        f"Five short questions; the link is yours only and works once, until "
        f"{timezone.localdate(invitation.expires_at):%B %d, %Y}.\n"
        "Please do not include patient names or details in your answers.\n\n"
        f"Thank you,\nPhysician relations, {organisation}\n"
    )
    return EmailMessage(
        subject=f"{invitation.survey.title}",
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[invitation.email],
    )


@job
def send_survey_invitations(job_run_id: int, invitation_ids: list[int]) -> None:
    """Give each invitation its token (only the hash is stored) and email the link."""
    from liaison.feedback.models import SurveyInvitation
    from liaison.feedback.services import new_survey_token

    with running_job(job_run_id) as progress:
        progress.start(len(invitation_ids), "sending survey invitations")
        sent = failed = 0
        for invitation in SurveyInvitation.objects.filter(
            pk__in=invitation_ids, sent_at__isnull=True
        ).select_related("survey", "contact"):
            raw, digest = new_survey_token()
            link = settings.LIAISON_BASE_URL.rstrip("/") + reverse("feedback:survey_answer", args=[raw])
            try:
                with transaction.atomic():
                    SurveyInvitation.objects.filter(pk=invitation.pk).update(
                        digest=digest, sent_at=timezone.now()
                    )
                    survey_email(invitation, link).send()
            except OSError:
                failed += 1
            else:
                sent += 1
            progress.advance()
        progress.finish(f"{sent} sent, {failed} failed", {"sent": sent, "failed": failed})
