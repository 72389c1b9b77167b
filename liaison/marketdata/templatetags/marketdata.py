from __future__ import annotations

from django import template

from liaison.marketdata.selectors import provider_market
from liaison.outreach.models import Stage

register = template.Library()


@register.inclusion_tag("marketdata/_provider_market.html", takes_context=True)
def provider_market_section(context: template.Context, provider: object) -> dict:
    """Market data on a provider's page, for the roles that see market data."""
    user = context.get("user")
    if user is None or not getattr(user, "can_see_market_data", False):
        return {"show": False}
    return {"show": True, "market": provider_market(provider), "provider": provider, "user": user}


@register.filter
def stage_label(stage: str) -> str:
    """An outreach pipeline stage's name ("referring" -> "Referring")."""
    try:
        return Stage(stage).label
    except ValueError:
        return stage
