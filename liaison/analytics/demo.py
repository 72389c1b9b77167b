"""Demo analytics: the real refresh over the demo's two years of referrals and outreach, so that the
dashboards, the cooling alerts (with their explanations, at-risk accounts and owners' tasks), the
attribution and the KPIs show what the detector really finds in that history."""

from __future__ import annotations

from liaison.analytics.models import CoolingAlert
from liaison.analytics.refresh import refresh
from liaison.core.demo import DemoContext


def generate(ctx: DemoContext) -> str:
    run = refresh(as_of=ctx.today)
    alerts = CoolingAlert.objects.filter(cleared_on__isnull=True).count()
    return f"analytics refreshed over {run.referrals} referrals: {alerts} referrers cooling off"
