"""Analytics jobs: the hourly refresh and the weekly digest email."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.urls import reverse

from liaison.core.jobs import job, periodic, running_job


@job
def refresh_job(job_run_id: int) -> dict[str, Any]:
    """A refresh started from the dashboard, with its progress on the job page."""
    from liaison.analytics.refresh import refresh

    with running_job(job_run_id) as progress:
        run = refresh(progress=progress, actor="analytics (started by a user)")
    return {"referrals": run.referrals, "alerts_opened": run.alerts_opened}


@periodic(every=timedelta(hours=1), offset=timedelta(minutes=20))
@job
def refresh_hourly() -> dict[str, Any]:
    from liaison.analytics.refresh import refresh

    run = refresh()
    return {"referrals": run.referrals, "alerts_opened": run.alerts_opened, "seconds": run.seconds}


def digest_for(user: Any) -> EmailMessage | None:
    """The user's week in numbers: their KPI rows, and the cooling referrers of their accounts
    (managers: all open alerts). No patient data: counts and referrers only."""
    from liaison.accounts.models import Role
    from liaison.analytics import selectors
    from liaison.analytics.models import CoolingAlert

    tables = selectors.kpi_tables(user)
    alerts = CoolingAlert.objects.filter(cleared_on__isnull=True).select_related("account")
    if not user.has_role(Role.ADMIN, Role.MANAGER, Role.ANALYST):
        alerts = alerts.filter(account__owner=user)
    alerts = list(alerts.order_by("p_value")[:10])
    if not tables and not alerts:
        return None
    base = settings.LIAISON_BASE_URL.rstrip("/")
    lines = [f"Hello {user.full_name or user.email},", "", "Your week in Liaison."]
    for table in tables:
        lines += ["", table.title.upper()]
        for row in table.rows:
            lines.append(
                "  "
                + "; ".join(
                    f"{c.label}: {row.get(c.key)}" for c in table.columns if row.get(c.key) not in ("", None)
                )
            )
        if table.note:
            lines.append(f"  ({table.note})")
    if alerts:
        lines += ["", "REFERRERS COOLING OFF"]
        lines += [f"  - {a.explanation}" for a in alerts]
    lines += [
        "",
        f"Dashboard: {base}{reverse('analytics:dashboard')}",
        f"KPIs: {base}{reverse('analytics:kpis')}",
    ]
    return EmailMessage(
        subject="Liaison: your week in numbers",
        body="\n".join(lines) + "\n",
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[user.email],
    )


@periodic(every=timedelta(days=7), offset=timedelta(hours=11))  # Mondays 11:00 UTC
@job
def send_weekly_digests() -> dict[str, int]:
    from liaison.accounts.models import User

    sent = failed = 0
    for user in User.objects.filter(is_active=True).exclude(email=""):
        message = digest_for(user)
        if message is None:
            continue
        try:
            message.send()
        except OSError:
            failed += 1
        else:
            sent += 1
    return {"sent": sent, "failed": failed}
