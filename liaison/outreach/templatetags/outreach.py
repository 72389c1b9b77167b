"""Template helpers of outreach: money, stage badges, and the pipeline box on a practice page."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import template
from django.utils import timezone

from liaison.outreach.models import Account

register = template.Library()

STAGE_CLASSES = {
    "target": "",
    "contacted": "",
    "engaged": "ours",
    "referring": "ours",
    "at_risk": "warn",
    "lapsed": "danger",
}


@register.filter
def money(value: Any) -> str:
    if value in (None, ""):
        return ""
    return f"${Decimal(value):,.2f}"


@register.filter
def stage_class(stage: str) -> str:
    return STAGE_CLASSES.get(stage, "")


@register.filter
def level_class(level: str) -> str:
    return {"over": "danger", "warning": "warn"}.get(level, "ours")


@register.filter
def clock(minutes: Any) -> str:
    """Minutes after midnight as HH:MM."""
    try:
        m = int(minutes)
    except (TypeError, ValueError):
        return ""
    return f"{m // 60:02d}:{m % 60:02d}"


@register.filter
def due_day(value: Any, today: Any = None) -> str:
    """'Feb 9' this year, 'Feb 9, 2026' any other: a task ten months overdue must say so."""
    if not value:
        return ""
    today = today or timezone.localdate()
    return value.strftime("%b ") + str(value.day) + ("" if value.year == today.year else f", {value.year}")


@register.filter
def local_day(value: Any) -> Any:
    return timezone.localdate(value) if value else None


@register.inclusion_tag("outreach/_practice_pipeline.html", takes_context=True)
def pipeline_box(context: dict, practice: Any) -> dict:
    """On the directory's practice page: its accounts, or a button to add it to the pipeline."""
    user = context["request"].user
    accounts = (
        list(Account.objects.filter(practice=practice).select_related("owner", "tier", "location"))
        if user.can_read_outreach
        else []
    )
    return {"practice": practice, "accounts": accounts, "user": user}
