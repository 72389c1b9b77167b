"""Campaign jobs: sending (resumable), printing letters, and the periodic resume of sends."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.utils import timezone

from liaison.core.jobs import JobProgress, Progress, job, periodic, running_job
from liaison.core.models import JobRun

logger = logging.getLogger(__name__)


def _summary(campaign_id: int) -> dict[str, int]:
    from liaison.campaigns.sending import counts

    return {k: v for k, v in counts(campaign_id).items() if v}


class CampaignProgress(JobProgress):
    """A resumed send carries on the same job page: starting again does not put the count back
    to 0 (the sender then advances it by what earlier runs did)."""

    def start(self, total: int | None = None, message: str = "") -> None:
        Progress.start(self, total, message)
        JobRun.objects.filter(pk=self.run.pk).update(progress_total=total, message=message[:500])


@job
def send_campaign(job_run_id: int, campaign_id: int) -> dict[str, Any]:
    """Send a campaign's due recipients. Run again (by the resume job, or after a crash) it
    carries on where it stopped; the JobRun stays "running" while retries are pending."""
    from liaison.campaigns.sending import deliver

    run = JobRun.objects.get(pk=job_run_id)
    JobRun.objects.filter(pk=run.pk).update(
        status=JobRun.Status.RUNNING, started_at=run.started_at or timezone.now(), finished_at=None
    )
    progress = CampaignProgress(run)
    try:
        result = deliver(campaign_id, progress=progress)
    except Exception as exc:
        logger.exception("campaign %s: sending failed", campaign_id)
        JobRun.objects.filter(pk=run.pk).update(
            message=f"Interrupted by an internal error ({type(exc).__name__}); it will be retried.",
        )
        raise
    summary = _summary(campaign_id)
    if result.state == "finished":
        text = ", ".join(f"{n} {status}" for status, n in summary.items())
        progress.finish(f"Done: {text}", summary)
        JobRun.objects.filter(pk=run.pk).update(status=JobRun.Status.SUCCEEDED, finished_at=timezone.now())
    elif result.state in ("waiting", "unreachable") and result.resume_at is not None:
        when = timezone.localtime(result.resume_at)
        why = (
            "the mail server could not be reached" if result.state == "unreachable" else "temporary failures"
        )
        progress.finish(f"Waiting ({why}): next try at {when:%H:%M}.")
    return {"state": result.state, "sent": result.sent, **summary}


@job
def print_letters(job_run_id: int, campaign_id: int) -> None:
    """Log each letter on its office's timeline, then make the PDF to print (one page each)."""
    from liaison.campaigns.letters import render_letters
    from liaison.campaigns.models import Campaign, CampaignStatus, Recipient, RecipientStatus
    from liaison.campaigns.services import log_letter

    with running_job(job_run_id) as progress:
        run = JobRun.objects.select_related("created_by").get(pk=job_run_id)
        actor = run.created_by or "campaign letters"
        campaign = Campaign.objects.get(pk=campaign_id)
        rows = list(
            Recipient.objects.filter(
                campaign=campaign, status__in=[RecipientStatus.QUEUED, RecipientStatus.PRINTED]
            ).order_by("pk")
        )
        progress.start(len(rows), "logging the letters on the accounts' timelines")
        last = time.monotonic()
        for row in rows:
            if row.status == RecipientStatus.QUEUED:
                log_letter(row, actor=actor)
            progress.advance()
            if time.monotonic() - last > 2:
                Campaign.objects.filter(pk=campaign_id).update(
                    lease_until=timezone.now() + timedelta(seconds=settings.LIAISON_CAMPAIGN_LEASE_SECONDS)
                )
                last = time.monotonic()
        campaign.refresh_from_db()
        pdf = render_letters(campaign)
        campaign.letters_pdf.save(f"campaign-{campaign.pk}-letters.pdf", ContentFile(pdf), save=False)
        Campaign.objects.filter(pk=campaign_id).update(
            letters_pdf=campaign.letters_pdf.name,
            status=CampaignStatus.SENT,
            finished_at=timezone.now(),
            lease_until=None,
        )
        progress.finish(f"{len(rows)} letters ready to print.", {"letters": len(rows)})


@periodic(every=timedelta(minutes=2))
@job
def resume_campaign_sends() -> dict[str, list[int]]:
    """Start a sender for each campaign whose sender died (lease expired) or whose retries are due."""
    from liaison.campaigns.services import resume_sends

    return {"resumed": resume_sends()}
